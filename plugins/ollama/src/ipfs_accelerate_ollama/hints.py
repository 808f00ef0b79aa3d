"""Ollama's advice on core's errors: ``ollama pull`` and ``ollama serve``.

The plugin's ``refine_error`` hook runs :func:`refine` on every failed attempt of every call
path (the backend's own calls, the guide's class, the plugin's helpers), so the advice is in
the error whichever way the call was made:

- a missing model (Ollama's JSON 404 ``model "x" not found, try pulling it first``) gets
  "run `ollama pull x` to download it"; the hook sees the error only, not the call, so the
  model is read from Ollama's message (when a message does not name it, the hint says
  ``ollama pull <model>``);
- a refused connection (core's "could not connect to <url> ...") gets "start it with
  `ollama serve`".

A plain-text 404 (Go's ``404 page not found``: an older server without the route) is not a
missing model and gets no hint; :func:`missing_route` tells the two apart for the embeddings
fallback too.
"""

from __future__ import annotations

import re

from ipfs_accelerate_py.errors import (
    BackendError,
    ConnectionError,
    NotFoundError,
    TimeoutError,
)

__all__ = ["missing_route", "refine"]

# server/routes.go: `model "x" not found, try pulling it first`; /api/show: `model 'x' not found`
_MISSING_MODEL = re.compile(r"""model ["']([^"']+)["'] not found""")
PULL = "ollama pull"
SERVE = "start it with `ollama serve`"


def missing_route(err: BackendError) -> bool:
    """A 404 from a server that lacks the route (Go's plain ``404 page not found``), not
    Ollama's JSON ``{"error": "model ... not found"}``."""
    body = err.body
    return isinstance(err, NotFoundError) and not (isinstance(body, dict) and "error" in body)


def _hint(err: BackendError) -> str | None:
    if isinstance(err, NotFoundError) and not missing_route(err):
        if PULL in err.message:
            return None
        found = _MISSING_MODEL.search(err.message)
        return f"run `{PULL} {found.group(1) if found else '<model>'}` to download it"
    if isinstance(err, (ConnectionError, TimeoutError)) and err.message.startswith(
        "could not connect"
    ):
        return None if SERVE in err.message else f"is Ollama running? {SERVE}"
    return None


def refine(err: BackendError) -> BackendError | None:
    """``err`` with Ollama's fix added to its message (a new error of the same class), or
    ``None`` when there is nothing to add."""
    hint = _hint(err)
    if hint is None:
        return None
    return type(err)(
        f"{err.message} ({hint})",
        provider=err.provider,
        status_code=err.status_code,
        code=err.code,
        request_id=err.request_id,
        provider_request_id=err.provider_request_id,
        retry_after=err.retry_after,
        body=err.body,
        retryable=err.retryable,
    )
