"""A real HTTP/1.1 server on 127.0.0.1 that replays scripted replies and injects faults.

Tests point a client at it, script what each route answers, and check what arrived::

    with ProtocolServer() as server:
        server.on("POST", "/v1/chat", Reply.json({}, status=429, headers={"retry-after": "2"}),
                  Reply.sse(["hello", {"x": 1}, "[DONE]"], split=1))
        httpx.post(server.url("/v1/chat"), json={"model": "m"})
        assert server.requests_to("/v1/chat")[0].json() == {"model": "m"}
        assert server.max_in_flight == 1 and server.connections == 1

Keep-alive, chunked replies, delays, dropped or cut connections and held requests
(``wait_for``) are all supported; every counter and record is updated under one lock.
"""

from __future__ import annotations

import itertools
import json as _json
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any, TypeAlias, cast
from urllib.parse import parse_qsl, urlsplit

import attrs

__all__ = ["Headers", "ProtocolServer", "RecordedRequest", "Reply", "ReplySource"]

Split: TypeAlias = int | Sequence[int] | None


def _merge(content_type: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    out = {"content-type": content_type} if content_type else {}
    for name, value in (extra or {}).items():
        for old in [k for k in out if k.lower() == name.lower()]:
            del out[old]
        out[name] = value
    return out


def _split(payload: bytes, pieces: list[bytes], split: Split) -> list[bytes]:
    if split is None:
        return [p for p in pieces if p]
    if isinstance(split, int):
        if split < 1:
            raise ValueError("split must be >= 1")
        return [payload[i : i + split] for i in range(0, len(payload), split)]
    cuts = [0, *sorted({o for o in split if 0 < o < len(payload)}), len(payload)]
    return [payload[a:b] for a, b in itertools.pairwise(cuts) if b > a]


def _sse_event(event: object) -> bytes:
    if isinstance(event, bytes):
        return event
    name, data = event if isinstance(event, tuple) else (None, event)
    text = data if isinstance(data, str) else _json.dumps(data)
    lines = [f"event: {name}"] if name is not None else []
    lines += [f"data: {line}" for line in (text.split("\n") if text else [""])]
    return ("\n".join(lines) + "\n\n").encode()


@attrs.frozen
class Reply:
    """One scripted HTTP reply, optionally with an injected fault (delay, drop, cut, hold).

    ``cut_after`` with ``chunks`` sends at most that many chunks then closes without the final
    0-chunk; without ``chunks`` it sends the full Content-Length but only that many body bytes.
    ``delay`` and ``wait_for`` apply before the status line, so also before a ``drop``.
    """

    status: int = 200
    headers: dict[str, str] = attrs.field(factory=dict)
    body: bytes = b""
    chunks: list[bytes] | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    drop: bool = False
    cut_after: int | None = None
    wait_for: threading.Event | None = attrs.field(default=None, eq=False)

    @classmethod
    def json(
        cls, obj: Any, status: int = 200, headers: Mapping[str, str] | None = None, **kw: Any
    ) -> Reply:
        """A JSON body (``application/json``)."""
        body = _json.dumps(obj).encode()
        return cls(status=status, headers=_merge("application/json", headers), body=body, **kw)

    @classmethod
    def text(
        cls,
        text: str,
        status: int = 200,
        content_type: str = "text/plain",
        headers: Mapping[str, str] | None = None,
        **kw: Any,
    ) -> Reply:
        """A UTF-8 text body with the given content type."""
        return cls(status=status, headers=_merge(content_type, headers), body=text.encode(), **kw)

    @classmethod
    def raw(
        cls,
        body: bytes,
        status: int = 200,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        **kw: Any,
    ) -> Reply:
        """Exact body bytes, e.g. malformed JSON."""
        return cls(status=status, headers=_merge(content_type, headers), body=body, **kw)

    @classmethod
    def sse(
        cls,
        events: Iterable[object] | bytes,
        split: Split = None,
        headers: Mapping[str, str] | None = None,
        **kw: Any,
    ) -> Reply:
        """A chunked ``text/event-stream``.

        Events are ``str`` (one ``data:`` line per line), JSON-encoded objects,
        ``(event_name, data)`` tuples or raw ``bytes``; or pass one pre-built ``bytes`` payload.
        ``split``: None = one chunk per event, ``n`` = every n bytes, list = at those offsets.
        """
        pieces = [events] if isinstance(events, bytes) else [_sse_event(e) for e in events]
        payload = b"".join(pieces)
        hdrs = _merge("text/event-stream", {"cache-control": "no-cache", **(headers or {})})
        return cls(headers=hdrs, chunks=_split(payload, pieces, split), **kw)

    @classmethod
    def ndjson(
        cls,
        objs: Iterable[object] | bytes,
        split: Split = None,
        headers: Mapping[str, str] | None = None,
        **kw: Any,
    ) -> Reply:
        """A chunked ``application/x-ndjson`` stream: one JSON value (or raw ``bytes``) per line."""
        if isinstance(objs, bytes):
            pieces = [objs]
        else:
            pieces = [o if isinstance(o, bytes) else _json.dumps(o).encode() + b"\n" for o in objs]
        payload = b"".join(pieces)
        hdrs = _merge("application/x-ndjson", headers)
        return cls(headers=hdrs, chunks=_split(payload, pieces, split), **kw)

    @classmethod
    def drop_connection(cls, **kw: Any) -> Reply:
        """Close the connection after reading the request, without sending anything."""
        return cls(drop=True, **kw)


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive request headers; repeated headers join with ``", "``."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self.raw: tuple[tuple[str, str], ...] = tuple(pairs)
        self._map: dict[str, str] = {}
        for name, value in self.raw:
            key = name.lower()
            self._map[key] = f"{self._map[key]}, {value}" if key in self._map else value

    def __getitem__(self, name: str) -> str:
        return self._map[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._map

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def get_all(self, name: str) -> list[str]:
        """Every value sent for ``name``, in order."""
        return [v for k, v in self.raw if k.lower() == name.lower()]

    def __repr__(self) -> str:
        return f"Headers({self._map!r})"


@attrs.frozen
class RecordedRequest:
    """A request as the server received it (``path`` excludes the query string)."""

    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    body: bytes
    started: float
    index: int

    def json(self) -> Any:
        """The body decoded as JSON."""
        return _json.loads(self.body)


ReplySource: TypeAlias = Reply | Callable[[RecordedRequest], Reply]


class _Aborted(Exception):
    pass


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512

    def __init__(self, owner: ProtocolServer, address: tuple[str, int]) -> None:
        self.owner = owner
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)

    def server_bind(self) -> None:  # skip HTTPServer's reverse-DNS getfqdn()
        TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]  # disconnects are handled in _Handler; anything else is a bug
        if exc is not None:
            with self.owner._lock:
                self.owner._errors.append(exc)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ipfs-accelerate-test"
    disable_nagle_algorithm = True
    _flying = False  # this connection's current request is counted in owner.in_flight

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def owner(self) -> ProtocolServer:
        return cast(_HTTPServer, self.server).owner

    def setup(self) -> None:
        super().setup()
        self.owner._opened(self.connection)

    def finish(self) -> None:
        self.owner._closed(self.connection)
        super().finish()

    def handle(self) -> None:
        try:
            super().handle()
        except (OSError, _Aborted):  # client went away or stop(); other errors -> owner.errors
            self.close_connection = True

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while size := int(self._exactly(-1).split(b";")[0], 16):
                parts.append(self._exactly(size))
                self._exactly(-1)
            while self._exactly(-1).strip():
                pass  # trailers
            return b"".join(parts)
        return self._exactly(int(self.headers.get("Content-Length") or 0))

    def _exactly(self, size: int) -> bytes:  # size -1: one line
        data = self.rfile.readline(65537) if size < 0 else self.rfile.read(size)
        if len(data) < size or (size < 0 and not data):
            raise ConnectionAbortedError("client closed mid-request")
        return data

    def _dispatch(self) -> None:
        body = self._read_body()
        target = urlsplit(self.path)
        query = dict(parse_qsl(target.query, keep_blank_values=True))
        headers = Headers(self.headers.items())
        owner = self.owner
        request, source = owner._arrive(self.command, target.path or "/", query, headers, body)
        self._flying = True
        try:
            self._reply(owner._resolve(request, source))
        finally:
            self._land()

    def _land(self) -> None:
        # Called just before the last byte (or the close) goes out, so a client that has
        # seen its reply end can never observe this request as still in flight.
        if self._flying:
            self._flying = False
            self.owner._leave()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _pause(self, seconds: float) -> None:
        if seconds > 0 and self.owner._stopping.wait(seconds):
            raise _Aborted

    def _abort(self) -> None:
        self._land()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _reply(self, reply: Reply) -> None:
        try:
            if reply.wait_for is not None:
                while not reply.wait_for.wait(0.05):
                    if self.owner._stopping.is_set():
                        raise _Aborted
            self._pause(reply.delay)
            if reply.drop:
                raise _Aborted
            self._write(reply)
        except _Aborted:
            self._abort()

    def _write(self, reply: Reply) -> None:
        no_body = reply.status < 200 or reply.status in (204, 304)
        send_body = not no_body and self.command != "HEAD"
        try:
            phrase = HTTPStatus(reply.status).phrase
        except ValueError:
            phrase = "Unknown"
        lines = [f"HTTP/1.1 {reply.status} {phrase}", f"Date: {formatdate(usegmt=True)}"]
        lines += [f"Server: {self.server_version}"]
        given = {k.lower() for k in reply.headers}
        if reply.chunks is not None and not no_body:
            if "transfer-encoding" not in given:
                lines.append("Transfer-Encoding: chunked")
        elif not no_body and "content-length" not in given:
            lines.append(f"Content-Length: {len(reply.body)}")
        lines += [f"{k}: {v}" for k, v in reply.headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if not send_body:
            self._land()
            self.wfile.write(head)
        elif reply.chunks is None:
            if reply.cut_after is not None:
                self.wfile.write(head + reply.body[: reply.cut_after])
                raise _Aborted
            self._land()
            self.wfile.write(head + reply.body)
        else:
            self.wfile.write(head)
            chunks = [c for c in reply.chunks if c][: reply.cut_after]
            for i, chunk in enumerate(chunks):
                self._pause(reply.chunk_delay if i else 0.0)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self._pause(reply.chunk_delay if chunks else 0.0)
            if reply.cut_after is not None:
                raise _Aborted
            self._land()
            self.wfile.write(b"0\r\n\r\n")


@attrs.define
class _Route:
    script: deque[ReplySource]
    default: ReplySource | None


class ProtocolServer:
    """A threaded HTTP/1.1 loopback server answering scripted replies and recording requests."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._address = (host, port)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes: dict[tuple[str, str], _Route] = {}
        self._open: dict[socket.socket, threading.Thread] = {}
        self._requests: list[RecordedRequest] = []
        self._unexpected: list[RecordedRequest] = []
        self._errors: list[BaseException] = []
        self._connections = self._in_flight = self._max_in_flight = 0

    def start(self) -> ProtocolServer:
        """Bind and serve in a background daemon thread; returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError("ProtocolServer already started")
        self._stopping.clear()
        self._httpd = _HTTPServer(self, self._address)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="ProtocolServer", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, abort held replies and close every connection (returns within ~1 s)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(1.0)
        with self._lock:
            open_conns = list(self._open.items())
        for conn, _ in open_conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + 0.5
        for _, thread in open_conns:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> ProtocolServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        if self._httpd is None:
            raise RuntimeError("ProtocolServer not started")
        host = self._httpd.server_name
        return f"http://{f'[{host}]' if ':' in host else host}:{self._httpd.server_port}"

    def url(self, path: str) -> str:
        """Absolute URL for ``path`` on this server."""
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def on(
        self,
        method: str,
        path: str,
        *replies: ReplySource,
        default: ReplySource | None = None,
    ) -> None:
        """Script ``method path``: ``replies`` answer one request each, then ``default`` answers.

        ``path`` ``"*"`` (and ``method`` ``"*"``) match any request no exact route takes.
        Replaces any previous script for the route. A callable receives the
        :class:`RecordedRequest` and returns the :class:`Reply`.
        """
        with self._lock:
            self._routes[(method.upper(), path)] = _Route(deque(replies), default)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of every request received, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """Requests received for ``path`` (and ``method``, if given), in arrival order."""
        m = method.upper() if method else None
        return [r for r in self.requests if r.path == path and (m is None or r.method == m)]

    @property
    def unexpected(self) -> list[RecordedRequest]:
        """Requests that found no scripted reply (they were answered with a 500)."""
        with self._lock:
            return list(self._unexpected)

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised by callable replies (answered with a 500) or inside the server."""
        with self._lock:
            return list(self._errors)

    @property
    def in_flight(self) -> int:
        """Requests fully read whose reply is not finished yet.

        A request leaves just before its last byte (or the close) is sent, so a client that
        has seen its reply end never sees it counted.
        """
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """High-water mark of :attr:`in_flight` since start or :meth:`reset`."""
        with self._lock:
            return self._max_in_flight

    @property
    def connections(self) -> int:
        """TCP connections accepted since start or :meth:`reset`."""
        with self._lock:
            return self._connections

    def reset(self) -> None:
        """Forget scripts, records and counters (requests still in flight stay counted)."""
        with self._lock:
            self._routes.clear()
            self._requests, self._unexpected, self._errors = [], [], []
            self._connections, self._max_in_flight = 0, self._in_flight

    # -- called from handler threads -------------------------------------------------

    def _opened(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections += 1
            self._open[conn] = threading.current_thread()
            if self._stopping.is_set():  # accepted while stop() was already sweeping
                conn.shutdown(socket.SHUT_RDWR)

    def _closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._open.pop(conn, None)

    def _arrive(
        self, method: str, path: str, query: dict[str, str], headers: Headers, body: bytes
    ) -> tuple[RecordedRequest, ReplySource | None]:
        with self._lock:
            request = RecordedRequest(
                method, path, query, headers, body, time.monotonic(), len(self._requests)
            )
            self._requests.append(request)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            routes = self._routes
            route = (
                routes.get((method, path)) or routes.get((method, "*")) or routes.get(("*", "*"))
            )
            source = None
            if route is not None:
                source = route.script.popleft() if route.script else route.default
            if source is None:
                self._unexpected.append(request)
            return request, source

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _resolve(self, request: RecordedRequest, source: ReplySource | None) -> Reply:
        if source is None:
            message = f"no reply scripted for {request.method} {request.path}"
            return Reply.json({"error": {"message": message}}, status=500)
        if isinstance(source, Reply):
            return source
        try:
            return source(request)
        except Exception as exc:
            with self._lock:
                self._errors.append(exc)
            return Reply.json({"error": {"message": f"reply callable raised {exc!r}"}}, status=500)
