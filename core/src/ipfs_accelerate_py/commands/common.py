"""What the commands share: opening a backend for interactive use, ``BACKEND:MODEL`` targets,
the prompt from stdin, JSON output, a progress bar and the exit codes."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import ConfigurationError, InvalidArgumentError

if TYPE_CHECKING:
    from ..backend import Backend

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Progress",
    "interactive_backend",
    "print_json",
    "read_stdin",
    "split_target",
]

EXIT_OK = 0
EXIT_FAILED = 1  # the provider or the connection failed, or a check did not pass
EXIT_USAGE = 2  # bad arguments or configuration: unknown backend, missing key, bad model
EXIT_INTERRUPTED = 130

# Interactive commands wait for a person: one quick retry (a refused connection fails in
# about half a second, a 429 with a short Retry-After is still ridden out), short backoff.
INTERACTIVE_POLICY: dict[str, Any] = {
    "max_retries": 1,
    "initial_retry_delay": 0.5,
    "max_retry_delay": 2.0,
    "max_retry_after": 10.0,
}


def split_target(
    backend: str | None, model: str | None, default: str = "openai"
) -> tuple[str, str | None]:
    """The backend and model named by ``-b`` and ``-m``; ``-m BACKEND:MODEL`` names both.

    The part before the first ``:`` counts as a backend only when it is one (installed or
    known), so Ollama's ``llama3:latest`` stays a model name.
    """
    from ..plugins import ALIASES, KNOWN_PACKAGES, installed_backends

    if model and ":" in model:
        head, _, rest = model.partition(":")
        names = set(installed_backends()) | set(KNOWN_PACKAGES) | set(ALIASES)
        if head in names and rest:
            if backend is not None and ALIASES.get(backend, backend) != ALIASES.get(head, head):
                raise InvalidArgumentError(
                    f"-b {backend} and -m {model} name different backends; give one of them"
                )
            return head, rest
    return backend or default, model or None


def interactive_backend(
    name: str, model: str | None = None, base_url: str | None = None, **policy: Any
) -> Backend:
    """``get_backend`` with few retries and short backoff, for a person waiting at a terminal;
    ``base_url`` (``--base-url``) overrides the configured address."""
    from ..core import get_backend

    return get_backend(name, model=model, base_url=base_url, **{**INTERACTIVE_POLICY, **policy})


def add_base_url_flag(parser: Any) -> None:
    """``--base-url URL`` (alias ``--host``, as the guide's Ollama script names it)."""
    parser.add_argument(
        "--base-url", "--host", dest="base_url", default=None, help="the server's address"
    )


def read_stdin(stream: TextIO | None = None, *, wait: float | None = None) -> str | None:
    """All of stdin when it is piped or redirected from a file, else None (a terminal, or
    nothing attached).

    With ``wait`` (seconds), a pipe that has sent nothing by then is left unread: a prompt was
    given on the command line and the pipe is one a parent process holds open without writing
    to it (a job runner), which must not hang the command.
    """
    import os
    import stat

    stream = stream or sys.stdin
    if stream is None or stream.closed:
        return None
    try:
        if stream.isatty():
            return None
        mode = os.fstat(stream.fileno()).st_mode
    except (AttributeError, ValueError, OSError):
        return None
    if not (stat.S_ISFIFO(mode) or stat.S_ISREG(mode)):
        return None  # /dev/null, a socket: nothing was piped
    if wait is not None and stat.S_ISFIFO(mode) and os.name == "posix":
        import select

        ready, _, _ = select.select([stream], [], [], wait)
        if not ready:
            return None
    return stream.read()


def print_json(value: Any, out: TextIO | None = None) -> None:
    """``value`` as indented JSON (non-ASCII kept readable)."""
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str), file=out or sys.stdout)


def require(condition: bool, message: str) -> None:
    """Raise a ConfigurationError with ``message`` unless ``condition``."""
    if not condition:
        raise ConfigurationError(message)


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal (silent when
    piped or redirected, so logs and scripts see only results)."""

    def __init__(self, total: int, label: str, out: TextIO | None = None) -> None:
        self.total = max(total, 1)
        self.label = label
        self.out = out or sys.stderr
        self.done = 0
        self.started = time.monotonic()
        try:
            self.enabled = bool(self.out.isatty())
        except (AttributeError, ValueError):
            self.enabled = False

    def advance(self, count: int = 1) -> None:
        """Count ``count`` more items done and redraw."""
        self.done = min(self.total, self.done + count)
        if not self.enabled:
            return
        width = 30
        filled = int(width * self.done / self.total)
        rate = self.done / max(time.monotonic() - self.started, 1e-9)
        bar = "#" * filled + "-" * (width - filled)
        self.out.write(f"\r{self.label} [{bar}] {self.done}/{self.total} ({rate:.1f}/s)")
        self.out.flush()

    def finish(self) -> None:
        """End the bar's line."""
        if self.enabled:
            self.out.write("\n")
            self.out.flush()
