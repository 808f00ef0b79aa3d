"""Spend and token budgets per user, team, API key or tag, exact under concurrency.

A :class:`Budget` caps cost (USD) and/or tokens for one scope (``user``, ``team``,
``api_key``, ``tag``) per calendar ``day`` or ``month`` (UTC), over a rolling window of
seconds, or for all time (``total``). Before a call the router *reserves* an estimate in the
:class:`BudgetStore` (prompt tokens from the text, completion tokens from ``max_tokens``, at
the model's price); the reservation fails with :class:`BudgetExceededError` when what is spent
plus what is reserved plus this estimate would pass a cap. After the call the reservation is
*settled* with the real usage (or released, for a call that sent nothing billable). Because
check and reservation are one step under one lock, concurrent callers can never overspend:
committed spend never exceeds the cap unless a reply costs more than its estimate, and then
by at most that difference.

The store is an interface so that a shared store (Redis, later) can replace
:class:`MemoryBudgetStore` without touching the router.
"""

from __future__ import annotations

import datetime
import math
import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import attrs

from .errors import BackendError, ConfigurationError
from .types import Message

__all__ = [
    "SCOPES",
    "Budget",
    "BudgetExceededError",
    "BudgetStore",
    "MemoryBudgetStore",
    "Reservation",
    "estimate_tokens",
]

SCOPES = ("user", "team", "api_key", "tag")
_PERIODS = ("day", "month", "total")


class BudgetExceededError(BackendError):
    """A call would pass a budget's cap; nothing was sent. ``budget`` names it and
    ``retry_after`` says when its period resets (``None`` for a total budget)."""

    label = "Budget exceeded"

    def __init__(self, message: str, *, budget: str = "", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.budget = budget


def _positive(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigurationError(f"budget {name} must be a number >= 0, got {value!r}")
    return float(value)


def _period(value: Any) -> str | float:
    if value in _PERIODS:
        return str(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    raise ConfigurationError(
        f"budget period must be 'day', 'month', 'total' or a window in seconds, got {value!r}"
    )


@attrs.frozen(slots=True)
class Budget:
    """A cap on cost (``max_cost`` USD) and/or tokens (``max_tokens``) for calls whose
    ``scope`` (``user``, ``team``, ``api_key``, ``tag``) equals ``match`` (``"*"``: a separate
    budget for each value), per ``period`` (``"day"``, ``"month"``, ``"total"`` or seconds)."""

    name: str
    scope: str = attrs.field()
    match: str = "*"
    max_cost: float | None = None
    max_tokens: float | None = None
    period: str | float = attrs.field(default="day", converter=_period)

    @scope.validator
    def _check_scope(self, _: Any, value: str) -> None:
        if value not in SCOPES:
            raise ConfigurationError(f"budget scope must be one of {SCOPES}, got {value!r}")

    def __attrs_post_init__(self) -> None:
        _positive(self.max_cost, "max_cost")
        _positive(self.max_tokens, "max_tokens")
        if self.max_cost is None and self.max_tokens is None:
            raise ConfigurationError(f"budget {self.name!r} needs max_cost or max_tokens")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Budget:
        """A budget from a config mapping (``name``, ``scope``, ``match``, ``max_cost``...)."""
        known = {"name", "scope", "match", "max_cost", "max_tokens", "period"}
        unknown = set(data) - known
        if unknown:
            raise ConfigurationError(f"unknown budget fields: {sorted(unknown)}")
        if "name" not in data or "scope" not in data:
            raise ConfigurationError("a budget needs a name and a scope")
        return cls(**dict(data))

    def applies(self, values: Mapping[str, Sequence[str]]) -> list[str]:
        """The values of this budget's scope that the call carries and it covers."""
        have = values.get(self.scope) or ()
        return [v for v in have if self.match in ("*", v)]

    def window_start(self, now_wall: float) -> float:
        """Wall time at which the current period began."""
        if self.period == "total":
            return -math.inf
        if isinstance(self.period, float):
            return now_wall - self.period
        day = datetime.datetime.fromtimestamp(now_wall, datetime.timezone.utc)
        day = day.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.period == "month":
            day = day.replace(day=1)
        return day.timestamp()

    def resets_in(self, now_wall: float, oldest: float | None) -> float | None:
        """Seconds until spend starts to fall off (period end, or the oldest entry leaving a
        rolling window)."""
        if self.period == "total":
            return None
        if isinstance(self.period, float):
            return None if oldest is None else max(oldest + self.period - now_wall, 0.0)
        start = datetime.datetime.fromtimestamp(self.window_start(now_wall), datetime.timezone.utc)
        if self.period == "day":
            end = start + datetime.timedelta(days=1)
        else:
            end = (start + datetime.timedelta(days=32)).replace(day=1)
        return end.timestamp() - now_wall


@attrs.define(eq=False)
class Reservation:
    """What one call holds in the store until settled: its estimate under each budget key."""

    keys: tuple[tuple[str, str], ...]
    cost: float
    tokens: int
    at: float
    settled: bool = False


class BudgetStore(Protocol):
    """Where budgets keep their spend. One method checks and reserves atomically."""

    def reserve(
        self, budgets: Sequence[tuple[Budget, str]], cost: float, tokens: int, now: float
    ) -> Reservation:
        """Reserve ``cost``/``tokens`` under every (budget, value), or raise
        :class:`BudgetExceededError` naming the first budget it would pass."""
        ...

    def settle(self, reservation: Reservation, cost: float, tokens: int) -> None:
        """Replace the reservation's estimate by the real spend (0, 0 to release it)."""
        ...

    def spent(self, budget: Budget, value: str, now: float) -> tuple[float, int]:
        """Cost and tokens counted (settled and reserved) in the budget's current period."""
        ...


class _Ledger:
    """One budget key's entries in time order: ``[wall time, cost, tokens]`` lists."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: deque[list[float]] = deque()

    def total(self, start: float) -> tuple[float, float]:
        while self.entries and self.entries[0][0] < start:
            self.entries.popleft()
        cost = sum(e[1] for e in self.entries)
        tokens = sum(e[2] for e in self.entries)
        return cost, tokens


class MemoryBudgetStore:
    """The budget store of one process: every check-and-reserve under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ledgers: dict[tuple[str, str], _Ledger] = {}
        self._entries: dict[int, list[list[float]]] = {}

    def reserve(
        self, budgets: Sequence[tuple[Budget, str]], cost: float, tokens: int, now: float
    ) -> Reservation:
        """See :meth:`BudgetStore.reserve`."""
        with self._lock:
            for budget, value in budgets:
                ledger = self._ledgers.setdefault((budget.name, value), _Ledger())
                spent_cost, spent_tokens = ledger.total(budget.window_start(now))
                over = None
                if budget.max_cost is not None and spent_cost + cost > budget.max_cost + 1e-12:
                    over = f"${spent_cost:.6f} of ${budget.max_cost:g} spent"
                elif budget.max_tokens is not None and spent_tokens + tokens > budget.max_tokens:
                    over = f"{spent_tokens:.0f} of {budget.max_tokens:.0f} tokens used"
                if over is not None:
                    oldest = ledger.entries[0][0] if ledger.entries else None
                    raise BudgetExceededError(
                        f"budget {budget.name!r} ({budget.scope} {value!r}, per "
                        f"{budget.period}): {over}; this call needs about ${cost:.6f} / "
                        f"{tokens} tokens",
                        budget=budget.name,
                        retry_after=budget.resets_in(now, oldest),
                    )
            reservation = Reservation(tuple((b.name, v) for b, v in budgets), cost, tokens, now)
            entries = []
            for key in reservation.keys:
                entry = [now, cost, float(tokens)]
                self._ledgers[key].entries.append(entry)
                entries.append(entry)
            self._entries[id(reservation)] = entries
            return reservation

    def settle(self, reservation: Reservation, cost: float, tokens: int) -> None:
        """See :meth:`BudgetStore.settle`."""
        with self._lock:
            if reservation.settled:
                return
            reservation.settled = True
            for entry in self._entries.pop(id(reservation), ()):
                entry[1], entry[2] = cost, float(tokens)

    def spent(self, budget: Budget, value: str, now: float) -> tuple[float, int]:
        """See :meth:`BudgetStore.spent`."""
        with self._lock:
            ledger = self._ledgers.get((budget.name, value))
            if ledger is None:
                return 0.0, 0
            cost, tokens = ledger.total(budget.window_start(now))
            return cost, int(tokens)


def estimate_tokens(
    messages: Iterable[Message], max_tokens: Any, default_completion: int
) -> tuple[int, int]:
    """A generous (prompt, completion) token estimate: ~4 characters per token plus a few per
    message; the completion is ``max_tokens`` when given."""
    chars = 0
    count = 0
    for message in messages:
        count += 1
        chars += len(message.text())
    prompt = chars // 4 + 1 + 4 * count
    completion = (
        max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else default_completion
    )
    return prompt, completion
