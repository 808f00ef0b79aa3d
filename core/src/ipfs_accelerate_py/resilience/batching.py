"""Embedding batching: concurrent single-text embeds coalesced into one provider request.

Callers with the same batch key (endpoint, model, encoding format, dimensions and other
parameters, pipeline extras) join an open batch; it is sent when it holds ``max_batch_size``
texts (or the server's own limit, ``BackendSpec.max_batch_inputs``) or ``batch_timeout``
seconds after its first text, whichever comes first. Each caller receives exactly its own
vector. A failed batch gives every caller in it the same error; the batch is one pipeline
call, so a retryable failure is retried as a batch under the endpoint's retry settings, not
once per caller. Threads batch with threads (the first caller of a batch sends it), and
coroutines with coroutines of the same event loop (a task sends it, so cancelling one caller
cancels neither the batch nor the others). Nothing waits longer than the timeout plus the
request itself.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import Future
from typing import Any

from ..errors import InvalidArgumentError

__all__ = ["EmbeddingBatcher"]

Send = Callable[[list[str]], list[Any]]
ASend = Callable[[list[str]], Awaitable[list[Any]]]


class _Batch:
    __slots__ = ("futures", "ready", "texts", "timer")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.futures: list[Any] = []
        self.ready = threading.Event()
        self.timer: asyncio.TimerHandle | None = None


def _settle(futures: list[Any], vectors: list[Any] | None, error: BaseException | None) -> None:
    for i, future in enumerate(futures):
        if future.done():  # an async caller that was cancelled
            continue
        if error is not None:
            future.set_exception(error)
        else:
            assert vectors is not None
            future.set_result(vectors[i])
    futures.clear()  # the batch lets go of its callers' futures: no cycle through an error


class EmbeddingBatcher:
    """Coalesces single embeds into batches; see the module docstring."""

    def __init__(
        self,
        *,
        max_batch_size: int = 20,
        batch_timeout: float = 0.1,
        auto_batching: bool = True,
        server_limit: int | None = None,
    ) -> None:
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int):
            raise InvalidArgumentError(f"max_batch_size must be an integer, got {max_batch_size!r}")
        if max_batch_size < 1:
            raise InvalidArgumentError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if (
            isinstance(batch_timeout, bool)
            or not isinstance(batch_timeout, (int, float))
            or not 0 <= batch_timeout <= 60
        ):
            raise InvalidArgumentError(
                f"batch_timeout must be a number of seconds in [0, 60], got {batch_timeout!r}"
            )
        self.max_batch_size = max_batch_size
        self.limit = min(max_batch_size, server_limit or max_batch_size)
        self.batch_timeout = float(batch_timeout)
        self.auto_batching = bool(auto_batching)
        self._lock = threading.Lock()
        self._pending: dict[Hashable, _Batch] = {}
        self._apending: dict[tuple[int, Hashable], _Batch] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = self.batched_requests = 0

    def _count(self, batch: _Batch) -> None:
        with self._lock:
            self.batches += 1
            self.batched_requests += len(batch.texts)

    # -- threads -----------------------------------------------------------------------------
    def submit(self, key: Hashable, text: str, send: Send) -> Any:
        """``text``'s vector, embedded in a batch with concurrent callers of the same key."""
        future: Future[Any] = Future()
        with self._lock:
            batch = self._pending.get(key)
            leader = batch is None
            if batch is None:
                batch = self._pending[key] = _Batch()
            batch.texts.append(text)
            batch.futures.append(future)
            if len(batch.texts) >= self.limit:
                del self._pending[key]
                batch.ready.set()
        if leader:
            batch.ready.wait(self.batch_timeout)
            with self._lock:
                if self._pending.get(key) is batch:
                    del self._pending[key]
            self._send(batch, send)
        del batch
        try:
            return future.result()
        finally:
            del future  # no cycle error -> traceback -> this frame -> future -> error

    def _send(self, batch: _Batch, send: Send) -> None:
        self._count(batch)
        try:
            vectors = send(batch.texts)
        except BaseException as exc:
            _settle(batch.futures, None, exc)
            if not isinstance(exc, Exception):
                raise
            return
        _settle(batch.futures, vectors, None)

    # -- coroutines --------------------------------------------------------------------------
    async def asubmit(self, key: Hashable, text: str, send: ASend) -> Any:
        """Async :meth:`submit`: batches with the same event loop's callers."""
        loop = asyncio.get_running_loop()
        loop_key = (id(loop), key)
        future: asyncio.Future[Any] = loop.create_future()
        batch = self._apending.get(loop_key)
        if batch is None:
            batch = self._apending[loop_key] = _Batch()
            batch.timer = loop.call_later(self.batch_timeout, self._aflush, loop_key, batch, send)
        batch.texts.append(text)
        batch.futures.append(future)
        if len(batch.texts) >= self.limit:
            self._aflush(loop_key, batch, send)
        del batch
        try:
            return await future
        finally:
            del future  # no reference cycle through a failed batch's traceback

    def _aflush(self, loop_key: tuple[int, Hashable], batch: _Batch, send: ASend) -> None:
        if self._apending.get(loop_key) is not batch:
            return
        del self._apending[loop_key]
        if batch.timer is not None:
            batch.timer.cancel()
        task = asyncio.ensure_future(self._asend(batch, send))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _asend(self, batch: _Batch, send: ASend) -> None:
        self._count(batch)
        try:
            vectors = await send(batch.texts)
        except BaseException as exc:  # cancelled with its loop: its callers are told so
            _settle(batch.futures, None, exc)
            return
        _settle(batch.futures, vectors, None)

    def stats(self) -> dict[str, Any]:
        """batches, batched_requests, avg_batch_size, requests_saved, cost_savings (USD)."""
        with self._lock:
            batches, requests = self.batches, self.batched_requests
        return {
            "batches": batches,
            "batched_requests": requests,
            "avg_batch_size": round(requests / batches, 2) if batches else 0.0,
            "requests_saved": requests - batches,
            # embedding prices are per token: a batch costs what its texts cost one by one
            "cost_savings": 0.0,
            "max_batch_size": self.limit,
            "batch_timeout": self.batch_timeout,
            "auto_batching": self.auto_batching,
        }
