"""Bounded waiting for tests: poll a condition that another thread makes true.

A test that waits for a server-side counter (``server.in_flight == 1``) or a queue state
uses these, so that a bug fails the test after ``timeout`` instead of hanging it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["await_until", "wait_until"]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Block until ``condition()`` is true; fail with AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"condition not reached within {timeout} s"
        time.sleep(0.002)


async def await_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Like :func:`wait_until`, yielding to the event loop between checks."""
    import asyncio

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"condition not reached within {timeout} s"
        await asyncio.sleep(0.002)
