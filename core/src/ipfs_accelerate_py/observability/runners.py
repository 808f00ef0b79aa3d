"""The observed runners: each wraps one of :mod:`..pipeline`'s runners with an
:class:`~.call.Observation` (begin, make current, end, hooks). The pipeline calls these only
while observability is on, passing itself as ``runner`` with the observation in the call's
options, so the wrapped run goes straight through."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator
from typing import TYPE_CHECKING, Any

from . import hooks as _hooks
from .call import Observation

if TYPE_CHECKING:
    from ..attempts import CallOptions
    from ..endpoint import Endpoint
    from ..types import StreamChunk

__all__ = ["arun", "arun_stream", "run", "run_stream"]


def _start(ep: Endpoint, call: Any, opts: CallOptions, stream: bool) -> tuple[Observation, Any]:
    from . import replace

    obs = Observation(ep, call, opts, stream)
    return obs, replace(opts, "obs", obs)


def _failed(obs: Observation, exc: BaseException) -> Any:
    """End the call with ``exc``; the on_error view when hooks want it (not for a
    cancellation or interrupt, which is no error of the call's)."""
    duration = obs.end(error=exc)
    if isinstance(exc, Exception) and any(g.on_error for g in obs.groups):
        return obs.view(error=exc, duration=duration)
    return None


def _done(obs: Observation, result: Any) -> Any:
    duration = obs.end(result=result)
    if any(g.on_response for g in obs.groups):
        usage = getattr(result, "usage", None)
        return obs.view(result=result, usage=usage, cost=obs.cost, duration=duration)
    return None


def run(runner: Callable[..., Any], ep: Endpoint, call: Any, opts: CallOptions, hooks: Any) -> Any:
    """Observe a call run from a thread."""
    obs, opts = _start(ep, call, opts, False)
    view = obs.begin()
    if view is not None:
        _hooks.fire("on_request", obs.groups, view)
    tokens = obs.enter()
    try:
        result = runner(ep, call, opts, hooks)
    except BaseException as exc:
        obs.exit(tokens)
        view = _failed(obs, exc)
        if view is not None:
            _hooks.fire("on_error", obs.groups, view)
        raise
    obs.exit(tokens)
    view = _done(obs, result)
    if view is not None:
        _hooks.fire("on_response", obs.groups, view)
    return result


async def arun(
    runner: Callable[..., Any], ep: Endpoint, call: Any, opts: CallOptions, hooks: Any
) -> Any:
    """Observe a call run from a coroutine."""
    obs, opts = _start(ep, call, opts, False)
    view = obs.begin()
    if view is not None:
        await _hooks.afire("on_request", obs.groups, view)
    tokens = obs.enter()
    try:
        result = await runner(ep, call, opts, hooks)
    except BaseException as exc:
        obs.exit(tokens)
        view = _failed(obs, exc)
        if view is not None:
            await _hooks.afire("on_error", obs.groups, view)
        raise
    obs.exit(tokens)
    view = _done(obs, result)
    if view is not None:
        await _hooks.afire("on_response", obs.groups, view)
    return result


def run_stream(
    runner: Callable[..., Generator[StreamChunk, None, None]],
    ep: Endpoint,
    call: Any,
    opts: CallOptions,
    control: Any,
    hooks: Any,
) -> Generator[StreamChunk, None, None]:
    """Observe a stream read from a thread: begins at the first read, ends with the final
    chunk, an error, or the caller closing it."""
    obs, opts = _start(ep, call, opts, True)
    gen = runner(ep, call, opts, control, hooks)
    view = obs.begin()
    if view is not None:
        _hooks.fire("on_request", obs.groups, view)
    final = None
    try:
        while True:
            tokens = obs.enter()
            try:
                chunk = next(gen)
            except StopIteration:
                break
            finally:
                obs.exit(tokens)
            if chunk.done:
                final = chunk
            else:
                obs.chunk(chunk.text)
            yield chunk
    except GeneratorExit:
        gen.close()
        obs.end(closed=True)
        raise
    except BaseException as exc:
        view = _failed(obs, exc)
        if view is not None:
            _hooks.fire("on_error", obs.groups, view)
        raise
    if final is None:  # closed from another thread
        obs.end(closed=True)
        return
    view = _done(obs, final)
    if view is not None:
        _hooks.fire("on_response", obs.groups, view)


async def arun_stream(
    runner: Callable[..., AsyncGenerator[StreamChunk, None]],
    ep: Endpoint,
    call: Any,
    opts: CallOptions,
    hooks: Any,
) -> AsyncGenerator[StreamChunk, None]:
    """Observe a stream read from a coroutine."""
    obs, opts = _start(ep, call, opts, True)
    gen = runner(ep, call, opts, hooks)
    view = obs.begin()
    if view is not None:
        await _hooks.afire("on_request", obs.groups, view)
    final = None
    try:
        while True:
            tokens = obs.enter()
            try:
                chunk = await gen.__anext__()
            except StopAsyncIteration:
                break
            finally:
                obs.exit(tokens)
            if chunk.done:
                final = chunk
            else:
                obs.chunk(chunk.text)
            yield chunk
    except GeneratorExit:
        await gen.aclose()
        obs.end(closed=True)
        raise
    except BaseException as exc:
        if not isinstance(exc, Exception):  # cancelled: close the inner stream too
            await gen.aclose()
        view = _failed(obs, exc)
        if view is not None:
            await _hooks.afire("on_error", obs.groups, view)
        raise
    if final is None:
        obs.end(closed=True)
        return
    view = _done(obs, final)
    if view is not None:
        await _hooks.afire("on_response", obs.groups, view)
