"""A circuit breaker: stop calling an endpoint that keeps failing, then probe it to recover.

CLOSED lets every call through and counts failures. After ``failure_threshold`` consecutive
failures (or, if ``failure_rate_threshold`` is set, too high a failure percentage within the
sliding ``window``) it turns OPEN: calls fail fast with :class:`CircuitOpenError` for
``reset_timeout`` seconds. Then it is HALF_OPEN: up to ``half_open_max_calls`` probe calls go
through at a time; ``success_threshold`` successful probes close it, one failed probe opens it
again for a fresh ``reset_timeout``.

The caller reports each admitted call's outcome with :meth:`CircuitBreaker.on_success`,
:meth:`CircuitBreaker.on_failure` or, for outcomes that say nothing about the endpoint's health
(a 4xx client error, a cancelled call), :meth:`CircuitBreaker.on_ignored`.
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar, overload

from ipfs_accelerate_py.errors import CircuitOpenError, ConfigurationError
from ipfs_accelerate_py.resilience import forks
from ipfs_accelerate_py.resilience.clock import SYSTEM_CLOCK, Clock

__all__ = ["CircuitBreaker", "CircuitState"]

_MAX_EVENTS = 10_000  # the sliding window never holds more outcomes than this
_T = TypeVar("_T")


class CircuitState(str, enum.Enum):
    """The three states of a circuit breaker."""

    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"

    def __str__(self) -> str:
        return self.value


# Module constants: reading an enum member through its class costs ~0.2 us on Python 3.11.
_CLOSED: Final = CircuitState.CLOSED
_OPEN: Final = CircuitState.OPEN
_HALF_OPEN: Final = CircuitState.HALF_OPEN


class _Setting(Generic[_T]):
    """A plain settable attribute whose every assignment is checked; bad values raise."""

    def __init__(self, check: Callable[[Any], bool], rule: str) -> None:
        self._check = check
        self._rule = rule

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name
        self._slot = "_setting_" + name

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> _Setting[_T]: ...
    @overload
    def __get__(self, obj: object, objtype: type | None = None) -> _T: ...
    def __get__(self, obj: object | None, objtype: type | None = None) -> _T | _Setting[_T]:
        if obj is None:
            return self
        value: _T = obj.__dict__[self._slot]
        return value

    def __set__(self, obj: object, value: _T) -> None:
        if isinstance(value, bool) or not self._check(value):
            raise ConfigurationError(f"{self._name} must be {self._rule}, got {value!r}")
        obj.__dict__[self._slot] = value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float))


class CircuitBreaker:
    """A thread-safe circuit breaker for one endpoint; see the module docstring.

    Every constructor argument is also a plain attribute that may be changed at run time
    (``breaker.failure_threshold = 3``); bad values raise :class:`ConfigurationError`.
    ``failure_rate_threshold`` is a percentage (0-100] or ``None`` to disable rate mode.
    """

    failure_threshold = _Setting[int](lambda v: isinstance(v, int) and v >= 1, "an int >= 1")
    reset_timeout = _Setting[float](lambda v: _is_number(v) and v >= 0, "a number >= 0")
    success_threshold = _Setting[int](lambda v: isinstance(v, int) and v >= 1, "an int >= 1")
    half_open_max_calls = _Setting[int](lambda v: isinstance(v, int) and v >= 1, "an int >= 1")
    window = _Setting[float](lambda v: _is_number(v) and v > 0, "a number > 0")
    failure_rate_threshold = _Setting["float | None"](
        lambda v: v is None or (_is_number(v) and 0 < v <= 100), "None or a percentage in (0, 100]"
    )
    min_calls_in_window = _Setting[int](lambda v: isinstance(v, int) and v >= 1, "an int >= 1")

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        success_threshold: int = 3,
        *,
        half_open_max_calls: int = 1,
        window: float = 60.0,
        failure_rate_threshold: float | None = None,
        min_calls_in_window: int = 10,
        clock: Clock = SYSTEM_CLOCK,
        name: str = "",
        provider: str | None = None,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.success_threshold = success_threshold
        self.half_open_max_calls = half_open_max_calls
        self.window = window
        self.failure_rate_threshold = failure_rate_threshold
        self.min_calls_in_window = min_calls_in_window
        self.clock = clock
        self.name = name
        self.provider = provider
        self._lock = threading.Lock()
        self._events: deque[tuple[float, bool]] = deque()  # (monotonic time, ok), oldest first
        self._clear()
        forks.register(self)

    def _after_fork(self) -> None:
        """In a forked child: the probes in flight belonged to the parent's threads."""
        self._lock = threading.Lock()
        self._probes = 0

    def _clear(self) -> None:
        """Return to CLOSED with every counter zeroed (lock held, or during __init__)."""
        self._state = _CLOSED
        self._consecutive = self._total_failures = self._total_successes = self._times_opened = 0
        self._probes = self._probe_successes = 0
        self._opened_at: float | None = None
        self._open_reason = ""
        self._last_failure: float | None = None
        self._last_success: float | None = None
        self._clear_window()

    def _clear_window(self) -> None:
        self._events.clear()
        self._window_failures = self._window_successes = 0

    def _record(self, now: float, ok: bool) -> None:
        """Append an outcome to the window, dropping the oldest beyond ``_MAX_EVENTS``."""
        if len(self._events) >= _MAX_EVENTS:
            self._drop_oldest()
        self._events.append((now, ok))
        if ok:
            self._window_successes += 1
        else:
            self._window_failures += 1

    def _drop_oldest(self) -> None:
        if self._events.popleft()[1]:
            self._window_successes -= 1
        else:
            self._window_failures -= 1

    def _prune(self, now: float) -> None:
        """Forget outcomes older than ``window`` seconds."""
        cutoff = now - self.window
        while self._events and self._events[0][0] <= cutoff:
            self._drop_oldest()

    def _open(self, now: float, reason: str) -> None:
        self._state = _OPEN
        self._opened_at = now
        self._open_reason = reason
        self._times_opened += 1
        self._probes = self._probe_successes = 0

    def _advance(self, now: float) -> CircuitState:
        """Turn OPEN into HALF_OPEN once ``reset_timeout`` has passed; return the state."""
        opened = self._opened_at
        if self._state is _OPEN and opened is not None and (now - opened >= self.reset_timeout):
            self._state = _HALF_OPEN
            self._probes = self._probe_successes = 0
        return self._state

    @property
    def state(self) -> CircuitState:
        """The current state (OPEN turns HALF_OPEN here once ``reset_timeout`` has passed)."""
        now = self.clock.monotonic()
        with self._lock:
            return self._advance(now)

    def before_call(self) -> None:
        """Admit a call, or raise :class:`CircuitOpenError` (with ``retry_after``) to fail fast."""
        if self._state is _CLOSED:  # fast path: no lock, no clock
            return
        now = self.clock.monotonic()
        with self._lock:
            state = self._advance(now)
            if state is _CLOSED:
                return
            if state is _HALF_OPEN:
                if self._probes < self.half_open_max_calls:
                    self._probes += 1
                    return
                message, wait = "is half-open: probe in progress", 0.0
            else:
                assert self._opened_at is not None
                wait = max(self._opened_at + self.reset_timeout - now, 0.0)
                message = f"is open after {self._open_reason}; next probe in {wait:.1f}s"
        label = self.name or self.provider or "this endpoint"
        raise CircuitOpenError(
            f"circuit for {label} {message}", provider=self.provider, retry_after=wait
        )

    def on_success(self) -> None:
        """Record a successful call; enough successful probes close a half-open circuit."""
        now = self.clock.monotonic()
        with self._lock:
            self._total_successes += 1
            self._last_success = now
            if len(self._events) >= _MAX_EVENTS:  # _record, inlined on this hot path
                self._drop_oldest()
            self._events.append((now, True))
            self._window_successes += 1
            self._consecutive = 0
            if self._state is _HALF_OPEN:
                self._probes = max(self._probes - 1, 0)
                self._probe_successes += 1
                if self._probe_successes >= self.success_threshold:
                    self._state = _CLOSED
                    self._opened_at = None
                    self._probes = self._probe_successes = 0
                    # Forget the outage so its failures cannot re-open the circuit at once.
                    self._clear_window()

    def on_failure(self) -> None:
        """Record a failed call; may open the circuit (always, for a failed half-open probe)."""
        now = self.clock.monotonic()
        with self._lock:
            self._total_failures += 1
            self._last_failure = now
            self._record(now, False)
            self._consecutive += 1
            if self._state is _HALF_OPEN:
                self._open(now, "a failed half-open probe")
            elif self._state is _CLOSED:
                if self._consecutive >= self.failure_threshold:
                    self._open(now, f"{self._consecutive} consecutive failures")
                    return
                threshold = self.failure_rate_threshold
                if threshold is None:
                    return
                self._prune(now)
                calls = self._window_failures + self._window_successes
                rate = 100.0 * self._window_failures / calls
                if calls >= self.min_calls_in_window and rate >= threshold:
                    self._open(now, f"{rate:.0f}% of {calls} calls failing in {self.window:g}s")

    def on_ignored(self) -> None:
        """Record a call whose outcome must not count; it only frees a half-open probe slot."""
        if self._state is _CLOSED:
            return
        with self._lock:
            if self._state is _HALF_OPEN:
                self._probes = max(self._probes - 1, 0)

    def metrics(self) -> dict[str, Any]:
        """A snapshot of the state and counters; times are wall-clock epoch seconds."""
        now, wall = self.clock.monotonic(), self.clock.time()
        with self._lock:
            self._advance(now)
            self._prune(now)

            def epoch(mono: float | None) -> float | None:
                return None if mono is None else wall - (now - mono)

            calls = self._window_failures + self._window_successes
            opened = self._opened_at if self._state is _OPEN else None
            return {
                "state": self._state.value,
                "recent_failures": self._window_failures,
                "recent_successes": self._window_successes,
                "failure_rate": 100.0 * self._window_failures / calls if calls else 0.0,
                "consecutive_failures": self._consecutive,
                "total_failures": self._total_failures,
                "total_successes": self._total_successes,
                "times_opened": self._times_opened,
                "opened_at": epoch(self._opened_at),
                "last_failure_at": epoch(self._last_failure),
                "last_success_at": epoch(self._last_success),
                "next_attempt_at": None if opened is None else epoch(opened + self.reset_timeout),
            }

    def reset(self) -> None:
        """Force the circuit CLOSED and clear every counter."""
        with self._lock:
            self._clear()

    def __repr__(self) -> str:
        return f"CircuitBreaker(name={self.name!r}, state={self._state.value})"
