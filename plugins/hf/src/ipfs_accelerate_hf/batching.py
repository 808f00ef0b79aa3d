"""TEI batch embedding: sub-batches no larger than the server allows, sent concurrently.

The limit is the server's ``max_client_batch_size``, read once per endpoint from ``GET /info``
and cached. Each sub-batch is its own ``backend.embed`` call (so each goes through the queue,
breaker, keys and retries); sync callers run them on threads, async ones with
``asyncio.gather``; vectors come back in input order (lists of floats, or with
``output="numpy"`` one float32 array). A sub-batch the server still refuses
as too large (413, or 422 "batch size N > maximum allowed batch size M") is split again
instead of failing, and the limit the server named is remembered.
"""

from __future__ import annotations

import asyncio
import re
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ipfs_accelerate_py.errors import InvalidArgumentError, InvalidRequestError, NotFoundError
from ipfs_accelerate_py.vectors import join

from . import tgi

if TYPE_CHECKING:
    from ipfs_accelerate_py.backend import Backend
    from ipfs_accelerate_py.config import Settings
    from ipfs_accelerate_py.endpoint import Endpoint

__all__ = ["abatch_embed", "batch_embed", "cosine_similarity", "max_batch_size"]

DEFAULT_BATCH_SIZE = 32  # TEI's own default max_client_batch_size; used when /info is absent
MAX_THREADS = 16
_LIMIT = re.compile(r"maximum allowed batch size (\d+)")

_sizes: weakref.WeakKeyDictionary[Endpoint, int] = weakref.WeakKeyDictionary()
_fetching: weakref.WeakKeyDictionary[Endpoint, threading.Lock] = weakref.WeakKeyDictionary()
_lock = threading.Lock()  # guards the two maps only, never held across a request


def endpoint_of(backend: Backend, endpoint_id: str | None) -> Endpoint:
    """The endpoint a call with ``endpoint_id`` goes to."""
    return backend.endpoint(endpoint_id)


def settings_of(backend: Backend, endpoint_id: str | None = None) -> Settings:
    """The settings (base URL) of the endpoint a call with ``endpoint_id`` goes to."""
    return endpoint_of(backend, endpoint_id).settings


def _size_from_info(info: Any) -> int:
    size = info.get("max_client_batch_size") if isinstance(info, dict) else None
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    return DEFAULT_BATCH_SIZE


def max_batch_size(backend: Backend, endpoint_id: str | None = None) -> int:
    """The endpoint's ``max_client_batch_size``, asked of ``/info`` once and cached."""
    ep = endpoint_of(backend, endpoint_id)
    size = _sizes.get(ep)
    if size is not None:
        return size
    with _lock:
        fetching = _fetching.setdefault(ep, threading.Lock())
    with fetching:  # one thread asks; the others wait for its answer
        size = _sizes.get(ep)
        if size is None:
            if tgi.is_hosted(ep.settings):
                size = DEFAULT_BATCH_SIZE
            else:
                try:
                    info = backend.request(
                        tgi.info_call(ep.settings, backend.name), endpoint_id=endpoint_id
                    )
                except NotFoundError:  # a proxy that only forwards /embed
                    info = None
                size = _size_from_info(info)
            with _lock:
                size = _sizes.setdefault(ep, size)
        return size


async def amax_batch_size(backend: Backend, endpoint_id: str | None = None) -> int:
    """Async :func:`max_batch_size` (two first callers racing may both ask ``/info``)."""
    ep = endpoint_of(backend, endpoint_id)
    size = _sizes.get(ep)
    if size is None:
        if tgi.is_hosted(ep.settings):
            size = DEFAULT_BATCH_SIZE
        else:
            try:
                info = await backend.arequest(
                    tgi.info_call(ep.settings, backend.name), endpoint_id=endpoint_id
                )
            except NotFoundError:
                info = None
            size = _size_from_info(info)
        with _lock:
            size = _sizes.setdefault(ep, size)
    return size


def _chunks(texts: Sequence[str], size: int) -> list[list[str]]:
    return [list(texts[i : i + size]) for i in range(0, len(texts), size)]


def _check(texts: Any) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise InvalidArgumentError("texts must be a list of strings")
    if not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidArgumentError("texts must be a non-empty list of strings")
    return list(texts)


def _resplit(err: InvalidRequestError, batch: list[str], ep: Endpoint) -> list[list[str]] | None:
    """Smaller batches for a batch the server refused as too large, else None."""
    too_big = err.status_code == 413 or (
        err.status_code == 422 and "batch size" in err.message.lower()
    )
    if not too_big or len(batch) < 2:
        return None
    found = _LIMIT.search(err.message)
    limit = int(found.group(1)) if found else 0
    if 0 < limit < len(batch):
        with _lock:
            _sizes[ep] = min(_sizes.get(ep, limit), limit)
        return _chunks(batch, limit)
    return _chunks(batch, (len(batch) + 1) // 2)


def _embed(backend: Backend, model: str | None, batch: list[str], opts: dict[str, Any]) -> Any:
    try:
        return backend.embed(input=batch, model=model, **opts).embeddings
    except InvalidRequestError as err:
        parts = _resplit(err, batch, endpoint_of(backend, opts.get("endpoint_id")))
        if parts is None:
            raise
    return join([_embed(backend, model, part, opts) for part in parts])


async def _aembed(
    backend: Backend, model: str | None, batch: list[str], opts: dict[str, Any]
) -> Any:
    try:
        return (await backend.aembed(input=batch, model=model, **opts)).embeddings
    except InvalidRequestError as err:
        parts = _resplit(err, batch, endpoint_of(backend, opts.get("endpoint_id")))
        if parts is None:
            raise
    return join(await asyncio.gather(*(_aembed(backend, model, p, opts) for p in parts)))


def batch_embed(backend: Backend, model: str | None, texts: Sequence[str], **opts: Any) -> Any:
    """One vector per text, in order (lists of floats; one float32 array with
    ``output="numpy"``); sub-batches run concurrently on threads."""
    texts = _check(texts)
    batches = _chunks(texts, max_batch_size(backend, opts.get("endpoint_id")))
    if len(batches) == 1:
        return _embed(backend, model, batches[0], opts)
    with ThreadPoolExecutor(min(len(batches), MAX_THREADS)) as pool:
        done = list(pool.map(lambda b: _embed(backend, model, b, opts), batches))
    return join(done)


async def abatch_embed(
    backend: Backend, model: str | None, texts: Sequence[str], **opts: Any
) -> Any:
    """Async :func:`batch_embed`: the sub-batches run together under ``asyncio.gather``."""
    texts = _check(texts)
    size = await amax_batch_size(backend, opts.get("endpoint_id"))
    return join(
        await asyncio.gather(*(_aembed(backend, model, b, opts) for b in _chunks(texts, size)))
    )


def cosine_similarity(a: Sequence[float], b: Sequence[float]) -> float:
    """The cosine similarity of two vectors of one length (numpy is imported on first use)."""
    import numpy as np

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.ndim != 1 or x.shape != y.shape or not x.size:
        raise InvalidArgumentError(
            f"calculate_similarity needs two vectors of one length, got {x.shape} and {y.shape}"
        )
    norm = float(np.linalg.norm(x) * np.linalg.norm(y))
    if norm == 0.0:
        raise InvalidArgumentError("calculate_similarity is undefined for a zero vector")
    return float(np.dot(x, y) / norm)
