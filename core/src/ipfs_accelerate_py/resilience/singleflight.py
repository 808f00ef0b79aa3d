"""Single-flight: identical concurrent requests share one provider call.

The first caller with a key runs the call; callers arriving with the same key while it is in
flight wait for it and receive the same result (or the same error). Threads share with
threads, and coroutines with coroutines of the same event loop. An async call runs in its
own task, so a waiting caller's cancellation (the first one's included) never cancels it
for the others.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class SingleFlight:
    """Coalesces identical in-flight calls by key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[Hashable, Future[Any]] = {}
        self._tasks: dict[tuple[int, Hashable], asyncio.Task[Any]] = {}
        self.shared = 0  # callers served by another's call

    def run(self, key: Hashable, fn: Callable[[], T]) -> T:
        """``fn()``, or the result of the identical call already in flight."""
        with self._lock:
            waiting = self._calls.get(key)
            if waiting is None:
                future: Future[Any] = Future()
                self._calls[key] = future
            else:
                self.shared += 1
        if waiting is not None:
            try:
                return waiting.result()  # type: ignore[no-any-return]
            finally:
                del waiting  # no cycle error -> traceback -> this frame -> future -> error
        try:
            result = fn()
        except BaseException as exc:
            future.set_exception(exc)
            del future  # as above: the error must not keep this frame (and its sockets) alive
            raise
        else:
            future.set_result(result)
            return result
        finally:
            with self._lock:
                self._calls.pop(key, None)

    async def arun(self, key: Hashable, fn: Callable[[], Awaitable[T]]) -> T:
        """Async :meth:`run`: callers of one event loop share ``fn()``'s task."""
        loop_key = (id(asyncio.get_running_loop()), key)
        task = self._tasks.get(loop_key)
        if task is not None and not task.done():
            self.shared += 1
        else:
            task = asyncio.ensure_future(fn())
            self._tasks[loop_key] = task

            def forget(t: asyncio.Task[Any], k: tuple[int, Hashable] = loop_key) -> None:
                if self._tasks.get(k) is t:
                    del self._tasks[k]
                if not t.cancelled():
                    t.exception()  # retrieved: no "never retrieved" warning if all left

            task.add_done_callback(forget)
        try:
            return await asyncio.shield(task)
        finally:
            del task  # no reference cycle through a failed task's traceback
