"""The operations outside core's hooks, each a plugin-built call run by ``backend.request``.

TGI's token stream (``/generate_stream``), ``/info`` and ``/health``; TEI's ``/rerank`` and
``/embed_sparse``. Every function takes the backend and the pipeline options
(``endpoint_id=``, ``priority=``, ``timeout=``...), so these calls get the queue, breaker,
keys, retries and accounting like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import tei, tgi
from .batching import settings_of

if TYPE_CHECKING:
    from ipfs_accelerate_py.backend import Backend
    from ipfs_accelerate_py.calls import HttpCall
    from ipfs_accelerate_py.stream import AsyncStream, Stream

__all__ = [
    "aembed_sparse",
    "agenerate_stream",
    "ahealth",
    "amodel_info",
    "arerank",
    "embed_sparse",
    "generate_stream",
    "health",
    "model_info",
    "rerank",
]

_PIPELINE = ("endpoint_id", "priority", "request_id", "api_key_name", "timeout", "queue_timeout")


def _split(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(request parameters, pipeline options)."""
    pipe = {k: options.pop(k) for k in _PIPELINE if k in options}
    for name in ("extra_headers", "extra_body", "extra_query"):
        if name in options:
            pipe[name] = options.pop(name)
    return options, pipe


def _stream_call(
    backend: Backend,
    model: str | None,
    prompt: str,
    parameters: Mapping[str, Any] | None,
    options: dict[str, Any],
) -> tuple[HttpCall, dict[str, Any]]:
    params, pipe = _split(options)
    if parameters is not None:
        params["parameters"] = parameters
    settings = settings_of(backend, pipe.get("endpoint_id"))
    name = backend.resolve_model(model)
    return tgi.generate_stream_call(name, prompt, params, settings, backend.name), pipe


def generate_stream(
    backend: Backend,
    model: str | None,
    prompt: str,
    parameters: Mapping[str, Any] | None = None,
    **options: Any,
) -> Stream:
    """TGI's token stream: chunks with ``text``, then one with ``done=True``."""
    call, pipe = _stream_call(backend, model, prompt, parameters, options)
    return backend.request_stream(call, **pipe)


def agenerate_stream(
    backend: Backend,
    model: str | None,
    prompt: str,
    parameters: Mapping[str, Any] | None = None,
    **options: Any,
) -> AsyncStream:
    """Async :func:`generate_stream`."""
    call, pipe = _stream_call(backend, model, prompt, parameters, options)
    return backend.arequest_stream(call, **pipe)


def model_info(backend: Backend, **options: Any) -> dict[str, Any]:
    """``GET /info`` of a self-hosted TGI or TEI server."""
    settings = settings_of(backend, options.get("endpoint_id"))
    return backend.request(tgi.info_call(settings, backend.name), **options)  # type: ignore[no-any-return]


async def amodel_info(backend: Backend, **options: Any) -> dict[str, Any]:
    """Async :func:`model_info`."""
    settings = settings_of(backend, options.get("endpoint_id"))
    return await backend.arequest(tgi.info_call(settings, backend.name), **options)  # type: ignore[no-any-return]


def health(backend: Backend, **options: Any) -> bool:
    """``GET /health``: ``True`` on 200; an unhealthy server (503) raises ServerError."""
    settings = settings_of(backend, options.get("endpoint_id"))
    return backend.request(tgi.health_call(settings, backend.name), **options)  # type: ignore[no-any-return]


async def ahealth(backend: Backend, **options: Any) -> bool:
    """Async :func:`health`."""
    settings = settings_of(backend, options.get("endpoint_id"))
    return await backend.arequest(tgi.health_call(settings, backend.name), **options)  # type: ignore[no-any-return]


def rerank(backend: Backend, query: str, texts: list[str], **options: Any) -> list[dict[str, Any]]:
    """TEI ``/rerank``: ``[{"index", "score"}...]``, most relevant first."""
    params, pipe = _split(options)
    settings = settings_of(backend, pipe.get("endpoint_id"))
    return backend.request(tei.rerank_call(query, texts, params, settings, backend.name), **pipe)  # type: ignore[no-any-return]


async def arerank(
    backend: Backend, query: str, texts: list[str], **options: Any
) -> list[dict[str, Any]]:
    """Async :func:`rerank`."""
    params, pipe = _split(options)
    settings = settings_of(backend, pipe.get("endpoint_id"))
    call = tei.rerank_call(query, texts, params, settings, backend.name)
    return await backend.arequest(call, **pipe)  # type: ignore[no-any-return]


def embed_sparse(backend: Backend, texts: Any, **options: Any) -> list[list[dict[str, Any]]]:
    """TEI ``/embed_sparse`` (SPLADE models): per text, its ``{"index", "value"}`` pairs."""
    params, pipe = _split(options)
    settings = settings_of(backend, pipe.get("endpoint_id"))
    batch = [texts] if isinstance(texts, str) else list(texts or ())
    return backend.request(tei.sparse_call(batch, params, settings, backend.name), **pipe)  # type: ignore[no-any-return]


async def aembed_sparse(backend: Backend, texts: Any, **options: Any) -> list[list[dict[str, Any]]]:
    """Async :func:`embed_sparse`."""
    params, pipe = _split(options)
    settings = settings_of(backend, pipe.get("endpoint_id"))
    batch = [texts] if isinstance(texts, str) else list(texts or ())
    call = tei.sparse_call(batch, params, settings, backend.name)
    return await backend.arequest(call, **pipe)  # type: ignore[no-any-return]
