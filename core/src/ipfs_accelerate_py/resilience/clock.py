"""Time for the resilience services, replaceable so tests need not really wait.

Every service (gate, retry, breaker, key pool) reads time and sleeps only through a
:class:`Clock`. :data:`SYSTEM_CLOCK` is the real one; :class:`FakeClock` advances only when
something sleeps on it or a test calls :meth:`FakeClock.advance`.
"""

from __future__ import annotations

import threading
import time


class Clock:
    """The real clock: monotonic time for intervals, wall time for HTTP dates."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary start; never goes backwards."""
        return time.monotonic()

    def time(self) -> float:
        """Wall-clock seconds since the epoch (to read ``Retry-After`` dates)."""
        return time.time()

    def sleep(self, seconds: float) -> None:
        """Block this thread for ``seconds``."""
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        """Suspend this task for ``seconds`` without blocking the event loop."""
        if seconds > 0:
            import asyncio

            await asyncio.sleep(seconds)


SYSTEM_CLOCK = Clock()


class FakeClock(Clock):
    """A clock that moves only when slept on or advanced; records every sleep.

    Sleeping advances the clock at once, so a test of a 2-second ``Retry-After`` takes no
    real time and can assert ``clock.sleeps == [2.0]``.
    """

    def __init__(self, start: float = 1000.0, wall: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall - start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """The fake monotonic time."""
        with self._lock:
            return self._now

    def time(self) -> float:
        """The fake wall time, moving with the monotonic one."""
        with self._lock:
            return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        """Move time forward without recording a sleep."""
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        """Record the sleep and advance time by it; returns at once."""
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(seconds, 0.0)

    async def asleep(self, seconds: float) -> None:
        """Record the sleep, advance time, and yield to the loop once."""
        import asyncio

        self.sleep(seconds)
        await asyncio.sleep(0)
