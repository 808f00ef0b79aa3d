"""Ollama-specific advice added to core's errors: ``ollama pull`` and ``ollama serve``.

Core builds the errors of a call (a 404's message is Ollama's own: ``model "x" not found,
try pulling it first``; a refused connection does not name the server). Until core lets a
plugin annotate its errors, the guide's class and the plugin's helpers pass them through
:func:`hinted`, which appends what to do.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ipfs_accelerate_py.errors import BackendError, ConnectionError, NotFoundError
from ipfs_accelerate_py.masking import mask_url
from ipfs_accelerate_py.stream import Stream

if TYPE_CHECKING:
    from ipfs_accelerate_py.backend import Backend

__all__ = ["explain", "hinted", "hinted_stream", "missing_route"]


def missing_route(err: BackendError) -> bool:
    """A 404 from a server that lacks the route (Go's plain ``404 page not found``), not
    Ollama's JSON ``{"error": "model ... not found"}``."""
    body = err.body
    return isinstance(err, NotFoundError) and not (isinstance(body, dict) and "error" in body)


def explain(err: BackendError, backend: Backend, model: str | None) -> BackendError:
    """Add the fix to ``err`` (in place): pull a missing model, start a server that is not
    running (naming the URL it was looked for at)."""
    hint = None
    if isinstance(err, NotFoundError) and not missing_route(err):
        name = model or backend.settings.default_model
        if name and "ollama pull" not in err.message:
            hint = f"run `ollama pull {name}` to download it"
    elif isinstance(err, ConnectionError) and "ConnectError" in err.message:  # not reached
        url = mask_url(backend.settings.base_url)
        if url not in err.message:
            hint = f"is Ollama running at {url}? start it with `ollama serve`"
    if hint:
        err.message = f"{err.message} ({hint})"
        err.args = (err._render(),)
    return err


@contextmanager
def hinted(backend: Backend, model: str | None) -> Iterator[None]:
    """Re-raise core's errors from the block with :func:`explain`'s advice."""
    try:
        yield
    except BackendError as err:
        explain(err, backend, model)
        raise


def _chunks(stream: Stream, backend: Backend, model: str | None) -> Generator[Any, None, None]:
    with stream, hinted(backend, model):
        yield from stream


def hinted_stream(stream: Stream, backend: Backend, model: str | None) -> Stream:
    """``stream`` with :func:`explain`'s advice on its errors; closing it closes ``stream``."""
    return Stream(_chunks(stream, backend, model))
