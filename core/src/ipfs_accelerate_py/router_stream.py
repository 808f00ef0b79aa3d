"""Routed streams: fallback before the first chunk, stalls as failures, and two mid-stream modes.

* A failure **before the first chunk** (an error status, a refused connection, a stall)
  falls back to the next deployment; the caller sees nothing of it but ``attempts``.
* A **stall** — no event within ``stream_idle_timeout`` seconds (the router's setting, or the
  call's ``timeout=``) — is a :class:`~.errors.TimeoutError` like any other failure.
* A failure **mid-stream**, after chunks reached the caller:

  - ``stream_resume="raise"`` (the default): the error is raised with ``partial_text`` (the
    text already delivered) and ``attempts`` attached as attributes;
  - ``stream_resume="continue"``: the call continues on the next deployment, sent the
    conversation plus the partial answer as a final assistant message (trailing whitespace
    removed, as Anthropic requires) so that it continues the text; the caller reads one
    stream. Providers that honour an assistant prefix (Anthropic, most open-model servers)
    continue mid-sentence; OpenAI treats it as an earlier turn and usually continues too,
    but may repeat a few words.

The final ``done`` chunk carries the usage of the attempt that finished; every attempt's
usage is in ``stream.attempts``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import TYPE_CHECKING, Any

from .errors import BackendError
from .stream import AsyncStream, Stream
from .types import Message, StreamChunk

if TYPE_CHECKING:
    from .route_plan import RoutePlan
    from .router import Router
    from .router_types import RouteAttempt
    from .routing import Deployment

__all__ = ["AsyncRouterStream", "RouterStream", "StreamInfo", "stream_async", "stream_sync"]


class StreamInfo:
    """What a routed stream has done so far: the text delivered and the deployment now read."""

    __slots__ = ("deployment", "inner", "text")

    def __init__(self) -> None:
        self.text = ""
        self.deployment: str | None = None
        self.inner: Stream | AsyncStream | None = None


def _messages(msgs: list[Message], prefix: str) -> list[Message]:
    if not prefix:
        return msgs
    return [*msgs, Message("assistant", prefix.rstrip())]


def _args(router: Router, dep: Deployment, params: dict[str, Any]) -> dict[str, Any]:
    args = router._args(dep, params)
    if router.stream_idle_timeout is not None:
        args.setdefault("timeout", router.stream_idle_timeout)
    return args


def _on_error(
    router: Router, plan: RoutePlan, dep: Deployment, err: BackendError, got: bool, info: StreamInfo
) -> None:
    err.partial_text = info.text  # type: ignore[attr-defined]
    if got and router.stream_resume == "raise":
        plan.failed(dep, err, final=True)
    plan.failed(dep, err)
    if info.text:
        plan.reason = "stream_resume"


def stream_sync(
    router: Router, plan: RoutePlan, msgs: list[Message], params: dict[str, Any], info: StreamInfo
) -> Generator[StreamChunk, None, None]:
    """The chunks of a routed stream, read from a thread."""
    while True:
        dep, wait = plan.next()
        if dep is None:
            router.clock.sleep(wait)
            continue
        plan.reserve_budget(dep, msgs, params)
        info.deployment = dep.id
        started = time.perf_counter()
        ttft: float | None = None
        final: StreamChunk | None = None
        try:
            inner = dep.backend.stream(
                messages=_messages(msgs, info.text), model=dep.model, **_args(router, dep, params)
            )
            info.inner = inner
            with inner:
                for chunk in inner:
                    if chunk.done:
                        final = chunk
                        break
                    if ttft is None:
                        ttft = time.perf_counter() - started
                    info.text += chunk.text
                    yield chunk
        except BackendError as err:
            _on_error(router, plan, dep, err, ttft is not None, info)
            continue
        except BaseException:  # GeneratorExit: the caller stopped reading
            plan.release(dep)
            raise
        finally:
            info.inner = None
        if final is None:  # closed from another thread
            plan.release(dep)
            return
        plan.succeeded(dep, final.usage, ttft)
        yield final
        return


async def stream_async(
    router: Router, plan: RoutePlan, msgs: list[Message], params: dict[str, Any], info: StreamInfo
) -> AsyncGenerator[StreamChunk, None]:
    """The chunks of a routed stream, read from a coroutine."""
    while True:
        dep, wait = plan.next()
        if dep is None:
            await router.clock.asleep(wait)
            continue
        plan.reserve_budget(dep, msgs, params)
        info.deployment = dep.id
        started = time.perf_counter()
        ttft: float | None = None
        final: StreamChunk | None = None
        try:
            inner = dep.backend.astream(
                messages=_messages(msgs, info.text), model=dep.model, **_args(router, dep, params)
            )
            info.inner = inner
            async with inner:
                async for chunk in inner:
                    if chunk.done:
                        final = chunk
                        break
                    if ttft is None:
                        ttft = time.perf_counter() - started
                    info.text += chunk.text
                    yield chunk
        except BackendError as err:
            _on_error(router, plan, dep, err, ttft is not None, info)
            continue
        except BaseException:  # GeneratorExit / CancelledError
            plan.release(dep)
            raise
        finally:
            info.inner = None
        if final is None:
            plan.release(dep)
            return
        plan.succeeded(dep, final.usage, ttft)
        yield final
        return


class RouterStream(Iterator[StreamChunk]):
    """A routed stream read from a thread: iterate, ``close()`` or use in ``with``; also
    ``attempts``, ``deployment`` and ``text`` (delivered so far)."""

    __slots__ = ("_gen", "_info", "_plan", "_reading")

    def __init__(
        self, gen: Generator[StreamChunk, None, None], info: StreamInfo, plan: RoutePlan
    ) -> None:
        self._gen = gen
        self._info = info
        self._plan = plan
        self._reading = threading.Lock()

    @property
    def attempts(self) -> tuple[RouteAttempt, ...]:
        """Every deployment tried so far, in order."""
        return tuple(self._plan.attempts)

    @property
    def deployment(self) -> str | None:
        """The deployment being read (or that finished)."""
        return self._info.deployment

    @property
    def text(self) -> str:
        """The text delivered so far."""
        return self._info.text

    def __iter__(self) -> RouterStream:
        return self

    def __next__(self) -> StreamChunk:
        with self._reading:
            return next(self._gen)

    def close(self) -> None:
        """Stop reading (from any thread): close the connection, free the slot."""
        if self._reading.acquire(blocking=False):
            try:
                self._gen.close()
            finally:
                self._reading.release()
        else:
            inner = self._info.inner
            if isinstance(inner, Stream):
                inner.close()

    def __enter__(self) -> RouterStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncRouterStream(AsyncIterator[StreamChunk]):
    """A routed stream read from a coroutine (``async for``, ``aclose()``, ``async with``)."""

    __slots__ = ("_gen", "_info", "_plan")

    def __init__(
        self, gen: AsyncGenerator[StreamChunk, None], info: StreamInfo, plan: RoutePlan
    ) -> None:
        self._gen = gen
        self._info = info
        self._plan = plan

    @property
    def attempts(self) -> tuple[RouteAttempt, ...]:
        """Every deployment tried so far, in order."""
        return tuple(self._plan.attempts)

    @property
    def deployment(self) -> str | None:
        """The deployment being read (or that finished)."""
        return self._info.deployment

    @property
    def text(self) -> str:
        """The text delivered so far."""
        return self._info.text

    def __aiter__(self) -> AsyncRouterStream:
        return self

    async def __anext__(self) -> StreamChunk:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        """Stop reading: close the connection and free the slot."""
        await self._gen.aclose()

    async def __aenter__(self) -> AsyncRouterStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
