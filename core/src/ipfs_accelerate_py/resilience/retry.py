"""When to retry a failed call, how long to wait first, and how many retries an endpoint may spend.

* :func:`parse_retry_after` reads the server's requested wait from ``retry-after-ms`` or
  ``Retry-After`` (seconds or an HTTP date); :func:`should_retry_header` reads
  ``x-should-retry``.
* :class:`RetryPolicy` turns an error and the retry number into a delay, or ``None`` for
  "do not retry": the server's wait when it asked for one we are willing to honour, else
  capped exponential backoff with jitter.
* :class:`RetryBudget` is a token bucket shared per endpoint (botocore's "standard" retry
  quota): each retry withdraws tokens and each success puts some back, so in an outage retries
  stop once the bucket is empty instead of multiplying the load on a failing service.
"""

from __future__ import annotations

import datetime
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ipfs_accelerate_py.errors import BackendError, ConfigurationError
from ipfs_accelerate_py.resilience import forks

if TYPE_CHECKING:
    import attrs
    from attrs import define, field, setters
else:
    from ..fastattrs import define, field, setters

__all__ = ["RetryBudget", "RetryPolicy", "parse_retry_after", "should_retry_header"]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Look ``name`` (lower case) up directly, then by a case-insensitive scan for plain dicts."""
    value = headers.get(name)
    if value is None:
        for key, candidate in headers.items():
            if key.lower() == name:
                return candidate
    return value


def _seconds(text: str) -> float | None:
    """Parse a finite number, or return ``None``."""
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Return the wait in seconds the server asked for, or ``None`` if it asked for none.

    ``retry-after-ms`` (milliseconds) wins over ``retry-after``, which may be seconds
    (possibly fractional) or an HTTP date, read relative to ``now`` (wall-clock epoch seconds,
    default :func:`time.time`). A wait in the past counts as 0; an unparseable value as absent.
    """
    raw_ms = _header(headers, "retry-after-ms")
    if raw_ms is not None:
        ms = _seconds(raw_ms)
        if ms is not None:
            return max(ms / 1000.0, 0.0)
    raw = _header(headers, "retry-after")
    if raw is None:
        return None
    seconds = _seconds(raw)
    if seconds is not None:
        return max(seconds, 0.0)
    import email.utils  # an HTTP date: rare, and email is not needed before it

    try:
        when = email.utils.parsedate_to_datetime(raw.strip())
        # A date without a zone ("-0000") parses naive; HTTP dates are always GMT.
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        stamp = when.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(stamp - (time.time() if now is None else now), 0.0)


def should_retry_header(headers: Mapping[str, str]) -> bool | None:
    """Read ``x-should-retry``: ``True`` for "true", ``False`` for "false", else ``None``."""
    value = _header(headers, "x-should-retry")
    if value is None:
        return None
    return {"true": True, "false": False}.get(value.strip().lower())


_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def _at_least(low: float, *, integer: bool = False) -> _Validator:
    """An attrs validator raising :class:`ConfigurationError` unless ``value >= low``."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        kind_ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not kind_ok or not value >= low:
            kind = "an integer" if integer else "a number"
            raise ConfigurationError(f"{attribute.name} must be {kind} >= {low}, got {value!r}")

    return check


def _fraction(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """An attrs validator raising :class:`ConfigurationError` unless ``0 <= value <= 1``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ConfigurationError(f"{attribute.name} must be between 0 and 1, got {value!r}")


@define(on_setattr=setters.validate)
class RetryPolicy:
    """How many times to retry and how long to wait before each retry.

    Every field is checked when the policy is built and whenever a field is set later; a bad
    value raises :class:`ConfigurationError`.
    """

    max_retries: int = field(default=5, validator=_at_least(0, integer=True))
    initial_retry_delay: float = field(default=1.0, validator=_at_least(0))
    backoff_factor: float = field(default=2.0, validator=_at_least(1))
    max_retry_delay: float = field(default=60.0, validator=_at_least(0))
    max_retry_after: float = field(default=60.0, validator=_at_least(0))
    jitter: float = field(default=0.25, validator=_fraction)

    def backoff(self, retry_number: int) -> float:
        """The jittered exponential delay before retry ``retry_number`` (0 for the first).

        ``min(initial * factor**n, max) * (1 - jitter * random())``, so with the defaults
        the delays are about 1, 2, 4, 8, 16 seconds, each shortened by up to 25%.
        """
        try:
            raw = self.initial_retry_delay * self.backoff_factor ** max(retry_number, 0)
        except OverflowError:
            raw = self.max_retry_delay
        return min(raw, self.max_retry_delay) * (1.0 - self.jitter * random.random())

    def delay_for(self, error: BackendError, retry_number: int) -> float | None:
        """Seconds to wait before retry ``retry_number`` after ``error``; ``None``: do not retry.

        No retry once ``max_retries`` are spent or when the error is not retryable. A server
        wait (``error.retry_after``) up to ``max_retry_after`` is honoured exactly; a longer
        one means no retry, so the caller gets the error (which carries the wait) at once
        instead of blocking for minutes. Otherwise the delay is :meth:`backoff`.
        """
        if retry_number >= self.max_retries or not error.retryable:
            return None
        if error.retry_after is not None:
            if error.retry_after > self.max_retry_after:
                return None
            return max(float(error.retry_after), 0.0)
        return self.backoff(retry_number)

    def key_cooldown(self, error: BackendError, delay: float | None, retry_number: int) -> float:
        """How long a key that got a 429 rests: the server's wait when it gave one --
        ``retry-after: 0`` included, which means "retry at once", not "back off" -- else
        ``delay`` (from :meth:`delay_for`) or the backoff for ``retry_number``."""
        if error.retry_after is not None:
            return max(float(error.retry_after), 0.0)
        return delay or self.backoff(retry_number)


class RetryBudget:
    """A thread-safe token bucket limiting the retries one endpoint may spend.

    It starts full with ``capacity`` tokens. A retry withdraws ``retry_cost`` tokens
    (``timeout_retry_cost`` after a timeout) and is refused when the bucket cannot pay. A
    call that succeeds refunds what its own retries withdrew, or adds ``success_refill`` if it
    needed none. So a healthy endpoint keeps a full bucket while an outage drains it after
    ``capacity / retry_cost`` retries, after which failures surface at once.
    """

    def __init__(
        self,
        capacity: int = 500,
        retry_cost: int = 5,
        timeout_retry_cost: int = 10,
        success_refill: int = 1,
    ) -> None:
        for name, value, low in (
            ("capacity", capacity, 0),
            ("retry_cost", retry_cost, 1),
            ("timeout_retry_cost", timeout_retry_cost, 1),
            ("success_refill", success_refill, 0),
        ):
            _check_int(name, value, low)
        self._lock = threading.Lock()
        self._capacity = capacity
        self._available = capacity
        self.retry_cost = retry_cost
        self.timeout_retry_cost = timeout_retry_cost
        self.success_refill = success_refill
        forks.register(self)

    def _after_fork(self) -> None:
        """In a forked child: a lock a parent's thread held would never be released."""
        self._lock = threading.Lock()

    @property
    def available(self) -> int:
        """Tokens currently in the bucket."""
        return self._available

    @property
    def capacity(self) -> int:
        """The most tokens the bucket holds; lowering it drops tokens above the new cap."""
        return self._capacity

    @capacity.setter
    def capacity(self, value: int) -> None:
        _check_int("capacity", value, 0)
        with self._lock:
            self._capacity = value
            self._available = min(self._available, value)

    def try_acquire(self, *, timeout: bool = False) -> int:
        """Withdraw the cost of one retry; return the tokens taken, or 0 to refuse the retry."""
        cost = self.timeout_retry_cost if timeout else self.retry_cost
        with self._lock:
            if cost > self._available:
                return 0
            self._available -= cost
            return cost

    def on_success(self, withdrawn: int = 0) -> None:
        """Record a successful call whose retries withdrew ``withdrawn`` tokens in all.

        Refunds ``withdrawn`` if it is positive, else adds ``success_refill``; never above
        ``capacity``.
        """
        amount = withdrawn if withdrawn > 0 else self.success_refill
        with self._lock:
            self._available = min(self._available + amount, self._capacity)

    def __repr__(self) -> str:
        return f"RetryBudget(available={self._available}, capacity={self._capacity})"


def _check_int(name: str, value: object, low: int) -> None:
    """Raise :class:`ConfigurationError` unless ``value`` is an int ``>= low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigurationError(f"{name} must be an integer >= {low}, got {value!r}")
