"""Semantic cache, embedding batching and single-flight on a backend, by the guide's names.

A mixin of :class:`~.backend.Backend`: ``enable_semantic_cache(...)``, ``get_cache_stats()``,
``enable_embedding_batching(...)``, ``get_batching_stats()`` and the ``single_flight``
setting. The backend's call methods hand their built request here before the pipeline, so a
cache hit takes no queue slot, no key and no request.

- **Cache** (chat and stream): a hit needs the same backend, endpoint, model, parameters,
  tools, system prompt and earlier turns; the last user message is matched exactly, then by
  meaning (see :mod:`.resilience.cache` and :mod:`.resilience.guard`). Requests with an
  explicit ``temperature > 0`` (or ``n > 1``) are neither looked up nor stored unless the
  cache was enabled with ``cache_sampled=True``; a request without ``temperature`` is cached.
- **Batching** (embed): single-text embeds join batches (:mod:`.resilience.batching`).
- **Single-flight** (on by default, ``backend.single_flight = False`` turns it off):
  identical concurrent embeds, and identical concurrent chats with ``temperature=0``, share
  one provider call. Streams are never shared.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Generator, Hashable
from typing import TYPE_CHECKING, Any

from . import pipeline
from .errors import ConfigurationError, InvalidArgumentError
from .fastattrs import evolve
from .types import ChatResponse, EmbeddingResponse, EmbedRequest, StreamChunk

if TYPE_CHECKING:
    import threading

    import numpy as np

    from .backend import Backend
    from .calls import Call
    from .config import BackendSpec
    from .endpoint import Endpoint
    from .resilience.batching import EmbeddingBatcher
    from .resilience.cache import SemanticCache
    from .resilience.clock import Clock
    from .resilience.usage import UsageTracker
    from .types import ChatRequest

__all__ = ["DEFAULT_SIMILARITY_THRESHOLD", "CacheControls"]

#: chosen from the labelled pairs' measurements in docs/cache.md
DEFAULT_SIMILARITY_THRESHOLD = 0.88


class _Embedder:
    """The cache's embedder: the local model, or another backend's embed through its pipeline."""

    def __init__(self, owner: Any, name: str) -> None:
        from . import plugins

        self.name = name
        self.backend: Backend | None = None
        self.model: str | None = None
        prefix, _, model = name.partition(":")
        if model and prefix in [*plugins.installed_backends(), owner.name]:
            from .core import get_backend

            self.backend = owner if prefix == owner.name else get_backend(prefix)
            self.model = model
        else:
            from .embedder import _missing_extra, find_model_dir

            try:
                import numpy  # noqa: F401
                import safetensors  # noqa: F401
                import tokenizers  # noqa: F401
            except ImportError as exc:
                raise _missing_extra(exc) from None
            find_model_dir(name)  # fail now, not at the first call

    def _unit(self, response: EmbeddingResponse[Any]) -> np.ndarray:
        import numpy as np

        v = response.embeddings  # asked for as numpy: float32, no conversion
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)  # type: ignore[no-any-return]

    def embed(self, text: str) -> np.ndarray:
        if self.backend is None:
            from .embedder import local_embedder

            vector: np.ndarray = local_embedder(self.name).embed([text])[0]
            return vector
        reply = self.backend.embed(input=[text], model=self.model, output="numpy")
        unit: np.ndarray = self._unit(reply)[0]
        return unit

    async def aembed(self, text: str) -> np.ndarray:
        if self.backend is None:
            import asyncio

            return await asyncio.to_thread(self.embed, text)  # the CPU work off the loop
        reply = await self.backend.aembed(input=[text], model=self.model, output="numpy")
        unit: np.ndarray = self._unit(reply)[0]
        return unit


def _jsonable(value: Any) -> Any:
    return repr(value)


def _scope(
    backend: CacheControls, ep: Endpoint, opts: Any, request: ChatRequest
) -> tuple[str, str] | None:
    """(scope, last user text) of a request the cache may hold, or None."""
    msgs = request.messages
    last = msgs[-1]
    if last.role != "user" or last.tool_calls:
        return None
    if isinstance(last.content, list) and any(
        not (isinstance(p, dict) and p.get("type") == "text") for p in last.content
    ):
        return None  # an image or a file: not matched by its text
    text = last.text()
    if not text:
        return None
    scope = json.dumps(
        [
            backend.name,
            ep.id,
            request.model,
            sorted(request.params.items()),
            [m.to_dict() for m in msgs[:-1]],
            last.name,
            opts.extra_body,
            opts.extra_query,
            opts.extra_headers,
            opts.api_key_name,
        ],
        sort_keys=True,
        default=_jsonable,
    )
    return scope, " ".join(text.split())


class CacheControls:
    """The semantic cache, batching and single-flight methods shared by every backend."""

    _cache: SemanticCache | None = None
    _embedder: _Embedder | None = None
    _cache_sampled: bool = False
    _batcher: EmbeddingBatcher | None = None
    _flights: Any = None
    single_flight: bool = True
    """Share one provider call among identical concurrent embeds and temperature-0 chats."""

    name: str
    spec: BackendSpec
    clock: Clock
    usage: UsageTracker
    _lock: threading.Lock
    _hooks: pipeline.PluginHooks | None

    if TYPE_CHECKING:

        def _call(self, hook: str, ep: Endpoint, **args: Any) -> Call: ...

    # -- the guide's methods -----------------------------------------------------------------
    def enable_semantic_cache(
        self,
        similarity_threshold: float = DEFAULT_SIMILARITY_THRESHOLD,
        cache_size: int = 1000,
        ttl: float | None = 3600,
        embedding_model: str = "mini",
        *,
        cache_sampled: bool = False,
        path: str | None = None,
    ) -> None:
        """Answer chats from earlier answers to the same or a similar last user message.

        ``embedding_model``: ``"mini"`` (all-MiniLM-L6-v2 on the CPU, needs
        ``ipfs-accelerate-core[semantic]``), a Hugging Face name or directory, or
        ``"<backend>:<model>"`` to embed through an installed backend. ``ttl=None`` keeps
        entries until evicted; ``path`` persists entries in an SQLite file; with shared state
        (``get_backend(..., shared_state="redis://...")``) entries are also kept in Redis, so
        one process's answer serves another's same or similar question;
        ``cache_sampled=True`` also caches requests with ``temperature > 0``."""
        from .resilience.cache import SemanticCache

        if not isinstance(embedding_model, str) or not embedding_model:
            raise InvalidArgumentError(
                f"embedding_model must be a non-empty string, got {embedding_model!r}"
            )
        shared = None
        config = getattr(self, "shared_config", None)
        if config is not None:  # shared state in Redis: so is the cache, across processes
            from .resilience.redis_cache import RedisCacheStore

            store = config.store
            shared = RedisCacheStore(store.url, namespace=store.namespace)
        cache = SemanticCache(
            similarity_threshold=similarity_threshold,
            cache_size=cache_size,
            ttl=ttl,
            clock=self.clock,
            path=path,
            shared=shared,
        )
        try:
            embedder = _Embedder(self, embedding_model)
        except ConfigurationError:
            cache.close()
            raise
        old = self._cache
        self._embedder, self._cache_sampled, self._cache = embedder, bool(cache_sampled), cache
        if old is not None:
            old.close()

    def disable_semantic_cache(self) -> None:
        """Stop caching (and close the cache's file)."""
        cache, self._cache = self._cache, None
        if cache is not None:
            cache.close()

    def clear_cache(self) -> None:
        """Forget every cached answer (stats are kept)."""
        if self._cache is not None:
            self._cache.clear()

    def get_cache_stats(self) -> dict[str, Any]:
        """hits, misses, hit_rate (percent), cost_savings (USD), size and the settings."""
        if self._cache is None:
            return {"enabled": False, "hits": 0, "misses": 0, "hit_rate": 0.0, "cost_savings": 0.0}
        stats = self._cache.stats()
        stats["enabled"] = True
        stats["embedding_model"] = self._embedder.name if self._embedder else None
        return stats

    def enable_embedding_batching(
        self,
        max_batch_size: int = 20,
        batch_timeout: float = 0.1,
        auto_batching: bool = True,
    ) -> None:
        """Coalesce concurrent single-text embeds into requests of up to ``max_batch_size``
        texts (capped by the server's limit), sent when full or ``batch_timeout`` s after
        the first text. ``auto_batching=False`` keeps the settings but sends each call alone."""
        from .resilience.batching import EmbeddingBatcher

        self._batcher = EmbeddingBatcher(
            max_batch_size=max_batch_size,
            batch_timeout=batch_timeout,
            auto_batching=auto_batching,
            server_limit=self.spec.max_batch_inputs,
        )

    def disable_embedding_batching(self) -> None:
        """Send every embed call on its own again."""
        self._batcher = None

    def get_batching_stats(self) -> dict[str, Any]:
        """batches, batched_requests, avg_batch_size, requests_saved, cost_savings."""
        if self._batcher is None:
            return {"enabled": False, "batches": 0, "batched_requests": 0, "avg_batch_size": 0.0,
                    "requests_saved": 0, "cost_savings": 0.0}  # fmt: skip
        return {"enabled": True, **self._batcher.stats()}

    # -- hooks for Backend's call methods ------------------------------------------------------
    def _flight(self) -> Any:
        if self._flights is None:
            from .resilience.singleflight import SingleFlight

            with self._lock:
                if self._flights is None:
                    self._flights = SingleFlight()
        return self._flights

    def _cache_key(
        self,
        ep: Endpoint,
        opts: Any,
        request: ChatRequest,
    ) -> tuple[str, str] | None:
        params = request.params
        if not self._cache_sampled and (
            (params.get("temperature") or 0) > 0 or (params.get("n") or 1) > 1
        ):
            return None
        return _scope(self, ep, opts, request)

    def _cost(self, request: ChatRequest, response: ChatResponse) -> float:
        usage = response.usage
        if usage is None or self.spec.free:
            return 0.0
        model = request.model or response.model or ""  # as the usage tracker counts it
        cost = self.usage.pricing.cost(
            self.name, model, usage.prompt_tokens, usage.completion_tokens
        )
        return cost or 0.0

    def _run_chat(
        self,
        ep: Endpoint,
        opts: Any,
        call: Call,
        request: ChatRequest,
    ) -> ChatResponse:
        cache = self._cache
        key = None if cache is None else self._cache_key(ep, opts, request)
        vector = None
        if key is not None and cache is not None and self._embedder is not None:
            hit = cache.exact(*key)
            if hit is not None:
                return hit
            try:
                vector = self._embedder.embed(key[1])
            except Exception:  # the embedder failing costs a miss, never the call
                cache.miss()
            else:
                hit = cache.search(*key, vector)
                if hit is not None:
                    return hit
        if self.single_flight and request.params.get("temperature") == 0:
            fkey = ("chat", _flight_key(self, ep, opts, request))
            result = self._flight().run(
                fkey, lambda: pipeline.run(ep, call, opts, hooks=self._hooks)
            )
        else:
            result = pipeline.run(ep, call, opts, hooks=self._hooks)
        if key is not None and cache is not None and isinstance(result, ChatResponse):
            cache.put(*key, vector, result, self._cost(request, result))
        return result  # type: ignore[no-any-return]

    async def _arun_chat(
        self,
        ep: Endpoint,
        opts: Any,
        call: Call,
        request: ChatRequest,
    ) -> ChatResponse:
        cache = self._cache
        key = None if cache is None else self._cache_key(ep, opts, request)
        vector = None
        if key is not None and cache is not None and self._embedder is not None:
            hit = cache.exact(*key)
            if hit is not None:
                return hit
            try:
                vector = await self._embedder.aembed(key[1])
            except Exception:
                cache.miss()
            else:
                hit = cache.search(*key, vector)
                if hit is not None:
                    return hit
        if self.single_flight and request.params.get("temperature") == 0:
            fkey = ("chat", _flight_key(self, ep, opts, request))
            result = await self._flight().arun(
                fkey, lambda: pipeline.arun(ep, call, opts, hooks=self._hooks)
            )
        else:
            result = await pipeline.arun(ep, call, opts, hooks=self._hooks)
        if key is not None and cache is not None and isinstance(result, ChatResponse):
            cache.put(*key, vector, result, self._cost(request, result))
        return result  # type: ignore[no-any-return]

    def _stream_gen(
        self,
        ep: Endpoint,
        opts: Any,
        call: Call,
        request: ChatRequest,
        control: pipeline.StreamControl,
    ) -> Generator[StreamChunk, None, None]:
        """The stream's chunks: the pipeline's own generator when the cache is off (no
        extra layer per chunk), else :meth:`_cached_stream`."""
        if self._cache is None:
            return pipeline.run_stream(ep, call, opts, control, hooks=self._hooks)
        return self._cached_stream(ep, opts, call, request, control)

    def _cached_stream(
        self,
        ep: Endpoint,
        opts: Any,
        call: Call,
        request: ChatRequest,
        control: pipeline.StreamControl,
    ) -> Generator[StreamChunk, None, None]:
        """Chunks replayed from the cache on a hit, else streamed and stored."""
        cache, embedder = self._cache, self._embedder
        key = None if cache is None else self._cache_key(ep, opts, request)
        if key is None or cache is None or embedder is None:
            yield from pipeline.run_stream(ep, call, opts, control, hooks=self._hooks)
            return
        hit = cache.exact(*key)
        vector = None
        if hit is None:
            try:
                vector = embedder.embed(key[1])
            except Exception:
                cache.miss()
            else:
                hit = cache.search(*key, vector)
        if hit is not None:
            yield from _replay(hit)
            return
        record = _Recorder()
        for chunk in pipeline.run_stream(ep, call, opts, control, hooks=self._hooks):
            record.add(chunk)
            yield chunk
        done = record.response()
        if done is not None:
            cache.put(*key, vector, done, self._cost(request, done))

    def _astream_gen(
        self,
        ep: Endpoint,
        opts: Any,
        call: Call,
        request: ChatRequest,
    ) -> AsyncGenerator[StreamChunk, None]:
        """Async :meth:`_stream_gen`."""
        if self._cache is None:
            return pipeline.arun_stream(ep, call, opts, hooks=self._hooks)
        return self._acached_stream(ep, opts, call, request)

    async def _acached_stream(
        self,
        ep: Endpoint,
        opts: Any,
        call: Call,
        request: ChatRequest,
    ) -> AsyncGenerator[StreamChunk, None]:
        """Async :meth:`_cached_stream`."""
        cache, embedder = self._cache, self._embedder
        key = None if cache is None else self._cache_key(ep, opts, request)
        source = pipeline.arun_stream(ep, call, opts, hooks=self._hooks)
        if key is None or cache is None or embedder is None:
            async with _closing(source):
                async for chunk in source:
                    yield chunk
            return
        hit = cache.exact(*key)
        vector = None
        if hit is None:
            try:
                vector = await embedder.aembed(key[1])
            except Exception:
                cache.miss()
            else:
                hit = cache.search(*key, vector)
        if hit is not None:
            await source.aclose()
            for chunk in _replay(hit):
                yield chunk
            return
        record = _Recorder()
        async with _closing(source):
            async for chunk in source:
                record.add(chunk)
                yield chunk
        done = record.response()
        if done is not None:
            cache.put(*key, vector, done, self._cost(request, done))

    def _run_embed(
        self,
        ep: Endpoint,
        opts: Any,
        call: Call,
        request: EmbedRequest,
    ) -> EmbeddingResponse[Any]:
        limit = self.spec.max_batch_inputs
        if limit and len(request.inputs) > limit:  # more texts than the server takes at once
            parts = [
                pipeline.run(ep, self._call("embed", ep, request=part), opts, hooks=self._hooks)
                for part in _chunks(request, limit)
            ]
            return _joined(parts)
        batcher = self._batcher
        if batcher is not None and batcher.auto_batching and len(request.inputs) == 1:

            def send(texts: list[str]) -> list[Any]:
                batch = evolve(request, inputs=tuple(texts))
                out = pipeline.run(
                    ep, self._call("embed", ep, request=batch), opts, hooks=self._hooks
                )
                return _split(out, len(texts))

            return batcher.submit(_batch_key(ep, opts, request), request.inputs[0], send)  # type: ignore[no-any-return]
        if self.single_flight:
            fkey = ("embed", _embed_key(ep, opts, request))
            return self._flight().run(fkey, lambda: pipeline.run(ep, call, opts, hooks=self._hooks))  # type: ignore[no-any-return]
        return pipeline.run(ep, call, opts, hooks=self._hooks)  # type: ignore[no-any-return]

    async def _arun_embed(
        self,
        ep: Endpoint,
        opts: Any,
        call: Call,
        request: EmbedRequest,
    ) -> EmbeddingResponse[Any]:
        limit = self.spec.max_batch_inputs
        if limit and len(request.inputs) > limit:
            parts = [
                await pipeline.arun(
                    ep, self._call("embed", ep, request=part), opts, hooks=self._hooks
                )
                for part in _chunks(request, limit)
            ]
            return _joined(parts)
        batcher = self._batcher
        if batcher is not None and batcher.auto_batching and len(request.inputs) == 1:

            async def send(texts: list[str]) -> list[Any]:
                batch = evolve(request, inputs=tuple(texts))
                out = await pipeline.arun(
                    ep, self._call("embed", ep, request=batch), opts, hooks=self._hooks
                )
                return _split(out, len(texts))

            return await batcher.asubmit(_batch_key(ep, opts, request), request.inputs[0], send)  # type: ignore[no-any-return]
        if self.single_flight:
            fkey = ("embed", _embed_key(ep, opts, request))
            shared: EmbeddingResponse[Any] = await self._flight().arun(
                fkey, lambda: pipeline.arun(ep, call, opts, hooks=self._hooks)
            )
            return shared
        return await pipeline.arun(ep, call, opts, hooks=self._hooks)  # type: ignore[no-any-return]


def _split(response: EmbeddingResponse[Any], n: int) -> list[EmbeddingResponse[Any]]:
    """One response per text of a batch (each with its own vector, a one-row slice of the
    batch's lists or array; usage stays with the batch)."""
    from .errors import MalformedResponseError

    vectors = response.embeddings
    if len(vectors) != n:
        raise MalformedResponseError(
            f"the batch of {n} texts came back with {len(vectors)} vectors"
        )
    return [EmbeddingResponse(vectors[i : i + 1], model=response.model) for i in range(n)]


def _chunks(request: EmbedRequest, size: int) -> list[EmbedRequest]:
    """``request`` cut into requests of at most ``size`` texts, in order."""
    inputs = request.inputs
    return [evolve(request, inputs=inputs[i : i + size]) for i in range(0, len(inputs), size)]


def _joined(parts: list[EmbeddingResponse[Any]]) -> EmbeddingResponse[Any]:
    """The responses of consecutive chunks as one: vectors in order, usage summed."""
    from .types import Usage
    from .vectors import join

    vectors = join([part.embeddings for part in parts])
    usages = [p.usage for p in parts if p.usage is not None]
    usage = None
    if usages:
        usage = Usage.of(
            sum(u.prompt_tokens for u in usages),
            sum(u.completion_tokens for u in usages),
            sum(u.total_tokens for u in usages),
        )
    return EmbeddingResponse(vectors, model=parts[0].model, usage=usage)


def _params_key(params: Any) -> Hashable:
    try:
        key = tuple(sorted(params.items()))
        hash(key)
        return key
    except TypeError:
        return json.dumps(params, sort_keys=True, default=_jsonable)


def _extras(opts: Any) -> Hashable:
    if opts.extra_body is None and opts.extra_query is None and opts.extra_headers is None:
        name: str | None = opts.api_key_name
        return name
    return json.dumps(
        [opts.extra_body, opts.extra_query, opts.extra_headers, opts.api_key_name],
        sort_keys=True,
        default=_jsonable,
    )


def _batch_key(ep: Endpoint, opts: Any, request: EmbedRequest) -> Hashable:
    return (
        ep.id,
        request.model,
        request.encoding_format,
        request.output,
        _params_key(request.params),
        _extras(opts),
    )


def _embed_key(ep: Endpoint, opts: Any, request: EmbedRequest) -> Hashable:
    return (*_batch_key(ep, opts, request), request.inputs)  # type: ignore[misc]


def _flight_key(backend: CacheControls, ep: Endpoint, opts: Any, request: ChatRequest) -> str:
    return json.dumps(
        [ep.id, request.model, sorted(request.params.items()),
         [m.to_dict() for m in request.messages], _extras(opts)],
        sort_keys=True,
        default=_jsonable,
    )  # fmt: skip


def _replay(hit: ChatResponse) -> Generator[StreamChunk, None, None]:
    """A cached answer as a stream: its text, then the closing chunk."""
    if hit.text:
        yield StreamChunk(text=hit.text, model=hit.model)
    yield StreamChunk(done=True, finish_reason=hit.finish_reason, usage=hit.usage, model=hit.model)


class _Recorder:
    """Collects a stream's chunks into the answer the cache keeps."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.last: StreamChunk | None = None
        self.tools = False
        self.model: str | None = None

    def add(self, chunk: StreamChunk) -> None:
        self.parts.append(chunk.text)
        self.tools = self.tools or bool(chunk.tool_calls)
        self.model = chunk.model or self.model
        self.last = chunk

    def response(self) -> ChatResponse | None:
        last = self.last
        if last is None or not last.done or self.tools:
            return None  # cut short, or tool calls: not kept
        return ChatResponse(
            text="".join(self.parts),
            model=self.model,
            finish_reason=last.finish_reason,
            usage=last.usage,
        )


class _closing:
    """``async with`` that closes an async generator, like contextlib.aclosing (3.10+)."""

    def __init__(self, gen: AsyncGenerator[StreamChunk, None]) -> None:
        self.gen = gen

    async def __aenter__(self) -> AsyncGenerator[StreamChunk, None]:
        return self.gen

    async def __aexit__(self, *exc: object) -> None:
        await self.gen.aclose()
