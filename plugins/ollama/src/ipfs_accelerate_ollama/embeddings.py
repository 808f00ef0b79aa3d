"""Embeddings that work on any Ollama: ``/api/embed``, or the legacy ``/api/embeddings``.

Ollama 0.3.0 added ``POST /api/embed`` (many inputs per request); older servers only have
``POST /api/embeddings`` (one ``prompt`` per request) and answer ``/api/embed`` with Go's
plain-text ``404 page not found``. :func:`embed` tries ``/api/embed`` and, on that 404 only
(a missing model is a JSON 404 and is raised), embeds each text through the legacy route.
With ``metadata={"legacy_embeddings": True}`` it goes to the legacy route at once.

A hook returns one HTTP call, so ``backend.embed`` itself cannot fall back; this helper
runs the extra calls through ``backend.request`` (the same queue, breaker and retries).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ipfs_accelerate_py.backend import PIPELINE_OPTIONS
from ipfs_accelerate_py.errors import InvalidArgumentError, NotFoundError
from ipfs_accelerate_py.types import EmbeddingResponse
from ipfs_accelerate_py.vectors import check_output, conform

from .hints import missing_route
from .plugin import legacy_embed_call, legacy_enabled

if TYPE_CHECKING:
    from ipfs_accelerate_py.backend import Backend

__all__ = ["aembed", "embed"]

log = logging.getLogger("ipfs_accelerate_py")


def _plan(
    backend: Backend, input: Any, model: str | None, params: dict[str, Any]
) -> tuple[str, list[str], dict[str, Any], dict[str, Any]]:
    texts = [input] if isinstance(input, str) else list(input or ())
    if not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidArgumentError(
            "input must be a non-empty string or a non-empty list of strings"
        )
    name = backend.resolve_model(model)
    check_output(params.get("output", "list"))
    body = {k: v for k, v in params.items() if k not in PIPELINE_OPTIONS}
    body.pop("encoding_format", None)  # Ollama returns floats only
    body.pop("output", None)  # ours: lists or numpy, not the server's
    options = {k: v for k, v in params.items() if k in PIPELINE_OPTIONS}
    return name, texts, body, options


def _joined(parts: list[EmbeddingResponse], model: str, output: str) -> EmbeddingResponse[Any]:
    vectors = conform([p.embeddings[0] for p in parts], output, provider="ollama")
    return EmbeddingResponse(embeddings=vectors, model=model, raw=[p.raw for p in parts])


def _note_fallback(backend: Backend) -> None:
    log.info("%s: /api/embed is missing, using the legacy /api/embeddings", backend.name)


def embed(
    backend: Backend, input: str | list[str], model: str | None = None, **params: Any
) -> EmbeddingResponse[Any]:
    """Embed one text or many on any Ollama version (see the module's text); ``output=``
    as for ``backend.embed`` (``"numpy"``: one float32 array)."""
    name, texts, body, options = _plan(backend, input, model, params)
    if not legacy_enabled(backend.settings):
        try:
            return backend.embed(input=input, model=name, **params)
        except NotFoundError as err:
            if not missing_route(err):
                raise
            _note_fallback(backend)
    parts = [backend.request(legacy_embed_call(name, t, body), **options) for t in texts]
    return _joined(parts, name, params.get("output", "list"))


async def aembed(
    backend: Backend, input: str | list[str], model: str | None = None, **params: Any
) -> EmbeddingResponse[Any]:
    """Async :func:`embed`."""
    name, texts, body, options = _plan(backend, input, model, params)
    if not legacy_enabled(backend.settings):
        try:
            return await backend.aembed(input=input, model=name, **params)
        except NotFoundError as err:
            if not missing_route(err):
                raise
            _note_fallback(backend)
    parts = [await backend.arequest(legacy_embed_call(name, t, body), **options) for t in texts]
    return _joined(parts, name, params.get("output", "list"))
