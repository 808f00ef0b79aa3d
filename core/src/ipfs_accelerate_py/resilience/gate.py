"""The per-endpoint priority gate: bounded concurrency with a bounded, prioritised queue.

At most ``max_concurrent`` calls hold a slot; up to ``queue_size`` more wait, served HIGH
before NORMAL before LOW and first come, first served within a level. A full queue refuses
at once with :class:`~ipfs_accelerate_py.errors.QueueFullError`.

One gate serves OS threads and asyncio tasks on any number of event loops at once. All
state sits under one ``threading.Lock`` that is held only for a few statements, never across
a wait or an await, so an event loop is never blocked. A freed slot is handed directly to
the best waiter (``active`` does not drop), so a newcomer can never barge ahead of the
queue. A thread waiter is woken through its own pre-acquired lock; an async waiter by
resolving its future, at once when the slot is freed on that waiter's own running loop, else
through ``call_soon_threadsafe`` on its loop. A waiter that gives up (timeout, cancellation,
closed loop) either leaves the queue or, if a slot reached it meanwhile, passes it on.
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import TYPE_CHECKING

from ipfs_accelerate_py.errors import ConfigurationError, QueueFullError, TimeoutError
from ipfs_accelerate_py.resilience import forks

if TYPE_CHECKING:
    import asyncio

    from ipfs_accelerate_py.resilience.shared import ClusterCap

_LOCK_TYPE = type(threading.Lock())

__all__ = ["Priority", "PriorityGate"]


class Priority(enum.IntEnum):
    """How urgently a call wants a slot; a lower value is served first."""

    HIGH = 0
    NORMAL = 1
    LOW = 2

    @classmethod
    def parse(cls, value: Priority | str | int | None) -> Priority:
        """Read a priority from a member, a name (any case) or 0/1/2; ``None`` is NORMAL."""
        if value is None:
            return cls.NORMAL
        if isinstance(value, cls):
            return value
        if isinstance(value, str) and value.strip().upper() in cls.__members__:
            return cls[value.strip().upper()]
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2:
            return cls(value)
        raise ConfigurationError(
            f"invalid priority {value!r}; valid: HIGH, NORMAL, LOW (any case) or 0, 1, 2"
        )


_WAITING, _GRANTED, _DONE, _ABANDONED = range(4)


class _Waiter:
    """One queued caller, woken through ``handle``: a thread's held lock or a task's future."""

    __slots__ = ("handle", "priority", "state")

    def __init__(self, priority: Priority, handle: threading.Lock | asyncio.Future[None]) -> None:
        self.priority = priority
        self.handle = handle
        self.state = _WAITING


def _resolve(future: asyncio.Future[None]) -> None:
    """Wake an async waiter (runs on its loop); a cancelled or expired one is left alone."""
    if not future.done():
        future.set_result(None)


class PriorityGate:
    """Limit one endpoint's concurrent calls; queue the rest by priority, then arrival."""

    def __init__(
        self,
        max_concurrent: int = 5,
        queue_size: int = 100,
        *,
        enabled: bool = True,
        name: str = "",
    ) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._queues: tuple[deque[_Waiter], ...] = (deque(), deque(), deque())
        self._waiting = 0
        self._active = 0
        self._max = 1
        self._queue_size = 0
        self._enabled = True
        self.max_concurrent = max_concurrent
        self.queue_size = queue_size
        self.enabled = enabled
        # with shared state: a cluster-wide cap whose lease a slot() holds with the slot
        self.cluster: ClusterCap | None = None
        forks.register(self)

    def _after_fork(self) -> None:
        """In a forked child: the slots and the queue belonged to the parent's threads."""
        self._lock = threading.Lock()
        self._queues = (deque(), deque(), deque())
        self._waiting = 0
        self._active = 0

    @property
    def max_concurrent(self) -> int:
        """Slots that may be held at once (>= 1); raising it admits waiters at once."""
        return self._max

    @max_concurrent.setter
    def max_concurrent(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"max_concurrent must be an integer >= 1, got {value!r}")
        with self._lock:
            self._max = value
            woken = self._admit_locked(all_waiters=False)
        for waiter in woken:
            self._deliver(waiter)

    @property
    def queue_size(self) -> int:
        """Callers that may wait (>= 0); 0 refuses whenever every slot is busy."""
        return self._queue_size

    @queue_size.setter
    def queue_size(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigurationError(f"queue_size must be an integer >= 0, got {value!r}")
        self._queue_size = value

    @property
    def enabled(self) -> bool:
        """When False everyone is admitted at once (still counted); disabling admits waiters."""
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        with self._lock:
            self._enabled = bool(value)
            woken = [] if value else self._admit_locked(all_waiters=True)
        for waiter in woken:
            self._deliver(waiter)

    def acquire(self, priority: Priority = Priority.NORMAL, timeout: float | None = None) -> None:
        """Take a slot, blocking this thread up to ``timeout`` seconds (None: no limit).

        Raises QueueFullError at once when the queue is full, and
        ipfs_accelerate_py.errors.TimeoutError when the wait runs out.
        """
        if type(priority) is not Priority:
            priority = Priority.parse(priority)
        with self._lock:
            if not self._enabled or (self._active < self._max and not self._waiting):
                self._active += 1
                return
            lock = threading.Lock()
            lock.acquire()
            waiter = _Waiter(priority, lock)
            self._enqueue_locked(waiter)
        try:
            wait = -1.0 if timeout is None else min(max(timeout, 0.0), threading.TIMEOUT_MAX)
            if lock.acquire(timeout=wait):
                return  # only a grant releases the waiter's lock
        except BaseException:
            if self._settle(waiter):
                self.release()
            raise
        if not self._settle(waiter):
            raise self._timeout_error(timeout)

    async def aacquire(
        self, priority: Priority = Priority.NORMAL, timeout: float | None = None
    ) -> None:
        """Take a slot without blocking the event loop; same errors as :meth:`acquire`."""
        if type(priority) is not Priority:
            priority = Priority.parse(priority)
        with self._lock:
            if not self._enabled or (self._active < self._max and not self._waiting):
                self._active += 1
                return
            import asyncio  # only on the async path, so sync-only users never load asyncio

            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            waiter = _Waiter(priority, future)
            self._enqueue_locked(waiter)
        expiry = None if timeout is None else loop.call_later(timeout, _resolve, future)
        try:
            await future
        except BaseException:  # cancelled, or the coroutine closed with its loop
            if self._settle(waiter):
                self.release()
            raise
        finally:
            if expiry is not None:
                expiry.cancel()
        if not self._settle(waiter):
            raise self._timeout_error(timeout)

    def release(self) -> None:
        """Free a slot: hand it to the best waiter, or lower the active count."""
        with self._lock:
            if self._active > 0 and not self._waiting:  # fast path
                self._active -= 1
                return
            waiter = self._release_locked()
        if waiter is not None:
            self._deliver(waiter)

    def slot(
        self, priority: Priority = Priority.NORMAL, timeout: float | None = None
    ) -> AbstractContextManager[None]:
        """A context manager holding a slot for its block (acquire, then release)."""
        return _Slot(self, priority, timeout)

    def aslot(
        self, priority: Priority = Priority.NORMAL, timeout: float | None = None
    ) -> AbstractAsyncContextManager[None]:
        """An async context manager holding a slot for its block."""
        return _Slot(self, priority, timeout)

    def info(self) -> dict[str, int]:
        """Counts: ``size`` (waiting), ``active_requests``, ``capacity``, ``max_concurrent``."""
        with self._lock:
            return {
                "size": self._waiting,
                "active_requests": self._active,
                "capacity": self._queue_size,
                "max_concurrent": self._max,
            }

    def status(self) -> dict[str, int]:
        """Waiters per priority, plus ``active_requests`` and total ``size``."""
        with self._lock:
            high, normal, low = (len(q) for q in self._queues)
            return {
                "high_priority": high,
                "normal_priority": normal,
                "low_priority": low,
                "active_requests": self._active,
                "size": self._waiting,
            }

    def __repr__(self) -> str:
        return f"PriorityGate(name={self.name!r}, enabled={self._enabled}, {self.info()})"

    def _label(self) -> str:
        return f"gate {self.name!r}" if self.name else "the priority gate"

    def _timeout_error(self, timeout: float | None) -> TimeoutError:
        return TimeoutError(f"waited {timeout} s in the queue of {self._label()}")

    def _enqueue_locked(self, waiter: _Waiter) -> None:
        if self._waiting >= self._queue_size:
            raise QueueFullError(
                f"{self._label()} refused the call: {self._waiting} waiting, "
                f"queue_size {self._queue_size}, max_concurrent {self._max}, "
                f"{self._active} active",
                provider=None,
            )
        self._queues[waiter.priority].append(waiter)
        self._waiting += 1

    def _pop_locked(self) -> _Waiter:
        for queue in self._queues:
            if queue:
                self._waiting -= 1
                return queue.popleft()
        raise AssertionError("no waiter to pop")  # pragma: no cover

    def _admit_locked(self, *, all_waiters: bool) -> list[_Waiter]:
        """Grant new slots to waiters while there is room (or to all of them)."""
        woken: list[_Waiter] = []
        while self._waiting and (all_waiters or self._active < self._max):
            waiter = self._pop_locked()
            waiter.state = _GRANTED
            self._active += 1
            woken.append(waiter)
        return woken

    def _settle(self, waiter: _Waiter) -> bool:
        """Close a waiter's wait; True when it holds a granted slot it must use or pass on."""
        with self._lock:
            state, waiter.state = waiter.state, _DONE
            if state == _WAITING:
                self._queues[waiter.priority].remove(waiter)
                self._waiting -= 1
            return state == _GRANTED

    def _release_locked(self) -> _Waiter | None:
        """Free one slot; return the waiter it was handed to, if any (to be woken)."""
        if self._active <= 0:
            raise RuntimeError(f"{self._label()}: release() without a matching acquire()")
        if self._waiting and (self._active <= self._max or not self._enabled):
            waiter = self._pop_locked()
            waiter.state = _GRANTED
            return waiter
        self._active -= 1
        return None

    def _deliver(self, waiter: _Waiter) -> None:
        """Wake a granted waiter; if its loop is closed, pass its slot on (and so on)."""
        while not self._wake(waiter):
            with self._lock:
                if waiter.state != _GRANTED:  # it settled itself and passed the slot on
                    return
                waiter.state = _ABANDONED
                next_waiter = self._release_locked()
            if next_waiter is None:
                return
            waiter = next_waiter

    @staticmethod
    def _wake(waiter: _Waiter) -> bool:
        """Wake a waiter; False when it cannot be woken because its loop is closed."""
        handle = waiter.handle
        if isinstance(handle, _LOCK_TYPE):
            handle.release()
            return True
        from asyncio import events  # loaded already: the waiter is a future

        loop = handle.get_loop()
        if loop is events._get_running_loop():  # released on the waiter's own loop (the
            _resolve(handle)  # common case): no write to the loop's self-pipe to wake it
            return True
        try:
            loop.call_soon_threadsafe(_resolve, handle)
        except RuntimeError:
            return False
        return True


class _Slot:
    """The (async) context manager returned by :meth:`PriorityGate.slot` and ``aslot``."""

    __slots__ = ("_gate", "_priority", "_timeout", "_token")

    def __init__(self, gate: PriorityGate, priority: Priority, timeout: float | None) -> None:
        self._gate, self._priority, self._timeout = gate, priority, timeout
        self._token: str | None = None

    def __enter__(self) -> None:
        self._gate.acquire(self._priority, self._timeout)
        cluster = self._gate.cluster
        if cluster is not None:
            try:
                self._token = cluster.enter(self._timeout)
            except BaseException:
                self._gate.release()
                raise

    def __exit__(self, *exc_info: object) -> None:
        token, self._token = self._token, None
        if token is not None and self._gate.cluster is not None:
            self._gate.cluster.exit(token)
        self._gate.release()

    async def __aenter__(self) -> None:
        await self._gate.aacquire(self._priority, self._timeout)
        cluster = self._gate.cluster
        if cluster is not None:
            try:
                self._token = await cluster.aenter(self._timeout)
            except BaseException:
                self._gate.release()
                raise

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__()
