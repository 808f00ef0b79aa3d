"""Budgets shared by every process: a :class:`~.budgets.BudgetStore` in Redis.

``Router(..., budget_store=RedisBudgetStore("redis://host:6379/0"))`` (or a router built with
``shared_state=``) keeps spend where all processes see it. One Lua script checks every budget a
call falls under and reserves its estimate in the same step, so concurrent callers in any number
of processes never pass a cap by more than one call's estimate, as in one process.

Layout, per budget and value: a day, month or total period keeps two running totals in a hash
``<ns>:budget:<name>:<value>:<period start>`` (expiring after the period); a rolling window keeps
its entries in a sorted set ``<ns>:budgetw:<name>:<value>`` (score: time) with their amounts in a
hash beside it, and drops what left the window at each reservation. Settling moves the
reservation's estimate to the real spend. When Redis cannot answer, the call fails with a
``ConfigurationError`` naming the server rather than spending unchecked.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import attrs

from .budgets import Budget, BudgetExceededError, Reservation
from .errors import ConfigurationError
from .masking import mask_url

__all__ = ["RedisBudgetStore"]

# KEYS: per budget, its key (hash for a period, sorted set for a window).
# ARGV[1] cost, ARGV[2] tokens, ARGV[3] now, ARGV[4] entry id, then per budget five values:
# mode ("p" period, "w" window), window start, max cost (-1: none), max tokens (-1: none),
# ttl in ms (0: none). Returns {0} when reserved, else {i, spent cost, spent tokens, oldest}.
_RESERVE = """
local cost, tokens, now, id = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local n = #KEYS
for i = 1, n do
  local a = 4 + (i - 1) * 5
  local mode, start = ARGV[a + 1], tonumber(ARGV[a + 2])
  local max_cost, max_tokens = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local spent_cost, spent_tokens, oldest = 0, 0, ''
  if mode == 'p' then
    spent_cost = tonumber(redis.call('HGET', KEYS[i], 'cost') or '0')
    spent_tokens = tonumber(redis.call('HGET', KEYS[i], 'tokens') or '0')
  else
    local gone = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', '(' .. start)
    if #gone > 0 then
      redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. start)
      redis.call('HDEL', KEYS[i] .. ':v', unpack(gone))
    end
    local live = redis.call('ZRANGE', KEYS[i], 0, -1, 'WITHSCORES')
    for j = 1, #live, 2 do
      local v = redis.call('HGET', KEYS[i] .. ':v', live[j])
      if v then
        local c, t = string.match(v, '([^ ]+) ([^ ]+)')
        spent_cost = spent_cost + tonumber(c)
        spent_tokens = spent_tokens + tonumber(t)
      end
      if j == 1 then oldest = live[2] end
    end
  end
  if (max_cost >= 0 and spent_cost + cost > max_cost + 1e-12)
     or (max_tokens >= 0 and spent_tokens + tokens > max_tokens) then
    return {i, tostring(spent_cost), tostring(spent_tokens), oldest}
  end
end
for i = 1, n do
  local a = 4 + (i - 1) * 5
  local mode, ttl = ARGV[a + 1], tonumber(ARGV[a + 5])
  if mode == 'p' then
    redis.call('HINCRBYFLOAT', KEYS[i], 'cost', cost)
    redis.call('HINCRBYFLOAT', KEYS[i], 'tokens', tokens)
  else
    redis.call('ZADD', KEYS[i], now, id)
    redis.call('HSET', KEYS[i] .. ':v', id, cost .. ' ' .. tokens)
  end
  if ttl > 0 then
    redis.call('PEXPIRE', KEYS[i], ttl)
    if mode == 'w' then redis.call('PEXPIRE', KEYS[i] .. ':v', ttl) end
  end
end
return {0}
"""

# KEYS: the reservation's keys; ARGV[1] cost delta, ARGV[2] tokens delta, ARGV[3] entry id,
# ARGV[4] new cost, ARGV[5] new tokens, then per key its mode.
_SETTLE = """
for i = 1, #KEYS do
  if ARGV[5 + i] == 'p' then
    if redis.call('EXISTS', KEYS[i]) == 1 then
      redis.call('HINCRBYFLOAT', KEYS[i], 'cost', ARGV[1])
      redis.call('HINCRBYFLOAT', KEYS[i], 'tokens', ARGV[2])
    end
  elseif redis.call('HEXISTS', KEYS[i] .. ':v', ARGV[3]) == 1 then
    redis.call('HSET', KEYS[i] .. ':v', ARGV[3], ARGV[4] .. ' ' .. ARGV[5])
  end
end
return 1
"""

_DAY = 86_400.0


@attrs.define(eq=False)
class _Held:
    """What a Redis reservation needs to be settled."""

    keys: list[str]
    modes: list[str]
    entry: str


class RedisBudgetStore:
    """A :class:`~.budgets.BudgetStore` kept in Redis, shared by every process."""

    def __init__(
        self, url: str, *, namespace: str = "ipfs_accelerate", timeout: float = 1.0
    ) -> None:
        try:
            import redis
        except ImportError:
            raise ConfigurationError(
                "shared budgets need the redis client: pip install 'ipfs-accelerate-core[redis]'"
            ) from None
        self.url = url
        self.namespace = namespace
        self._redis = redis
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._reserve = self._client.register_script(_RESERVE)
        self._settle = self._client.register_script(_SETTLE)
        self._held: dict[int, _Held] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RedisBudgetStore({mask_url(self.url)!r}, namespace={self.namespace!r})"

    def _key(self, budget: Budget, value: str, now: float) -> tuple[str, str, int]:
        """The Redis key, its mode and its time to live in ms for one (budget, value)."""
        base = f"{self.namespace}:{{budget}}:{budget.name}:{value}"
        if isinstance(budget.period, float):
            return base + ":w", "w", int((budget.period + 60) * 1000)
        start = budget.window_start(now)
        if budget.period == "total":
            return base + ":total", "p", 0
        ttl = (_DAY if budget.period == "day" else 32 * _DAY) + 3600
        return f"{base}:{int(start)}", "p", int(ttl * 1000)

    def _failed(self, err: Exception) -> ConfigurationError:
        return ConfigurationError(
            f"the shared budget store at {mask_url(self.url)} cannot answer "
            f"({type(err).__name__}): the call is refused rather than spent unchecked"
        )

    def reserve(
        self, budgets: Sequence[tuple[Budget, str]], cost: float, tokens: int, now: float
    ) -> Reservation:
        """See :meth:`~.budgets.BudgetStore.reserve`."""
        entry = os.urandom(8).hex()
        keys: list[str] = []
        modes: list[str] = []
        args: list[Any] = [repr(float(cost)), int(tokens), repr(float(now)), entry]
        for budget, value in budgets:
            key, mode, ttl = self._key(budget, value, now)
            keys.append(key)
            modes.append(mode)
            args += [
                mode,
                repr(budget.window_start(now)) if mode == "w" else "0",
                -1 if budget.max_cost is None else repr(float(budget.max_cost)),
                -1 if budget.max_tokens is None else int(budget.max_tokens),
                ttl,
            ]
        try:
            result = self._reserve(keys=keys, args=args) if keys else [0]
        except (self._redis.RedisError, OSError) as err:
            raise self._failed(err) from None
        if int(result[0]) != 0:
            budget, value = budgets[int(result[0]) - 1]
            spent_cost, spent_tokens = float(result[1]), float(result[2])
            oldest = float(result[3]) if result[3] not in (b"", "") else None
            over = (
                f"${spent_cost:.6f} of ${budget.max_cost:g} spent"
                if budget.max_cost is not None and spent_cost + cost > budget.max_cost + 1e-12
                else f"{spent_tokens:.0f} of {budget.max_tokens:.0f} tokens used"
            )
            raise BudgetExceededError(
                f"budget {budget.name!r} ({budget.scope} {value!r}, per {budget.period}): "
                f"{over}; this call needs about ${cost:.6f} / {tokens} tokens",
                budget=budget.name,
                retry_after=budget.resets_in(now, oldest),
            )
        reservation = Reservation(tuple((b.name, v) for b, v in budgets), cost, tokens, now)
        with self._lock:
            self._held[id(reservation)] = _Held(keys, modes, entry)
        return reservation

    def settle(self, reservation: Reservation, cost: float, tokens: int) -> None:
        """See :meth:`~.budgets.BudgetStore.settle`."""
        with self._lock:
            if reservation.settled:
                return
            reservation.settled = True
            held = self._held.pop(id(reservation), None)
        if held is None or not held.keys:
            return
        args: list[Any] = [
            repr(float(cost) - reservation.cost),
            int(tokens) - reservation.tokens,
            held.entry,
            repr(float(cost)),
            int(tokens),
            *held.modes,
        ]
        try:
            self._settle(keys=held.keys, args=args)
        except (self._redis.RedisError, OSError):  # the estimate stays counted: the safe side
            pass

    def spent(self, budget: Budget, value: str, now: float) -> tuple[float, int]:
        """See :meth:`~.budgets.BudgetStore.spent`."""
        key, mode, _ = self._key(budget, value, now)
        try:
            if mode == "p":
                got = self._client.hmget(key, ["cost", "tokens"])
                return float(got[0] or 0), int(float(got[1] or 0))
            start = budget.window_start(now)
            live: list[Any] = list(self._client.zrangebyscore(key, start, "+inf"))
            values = self._client.hmget(key + ":v", live) if live else []
        except (self._redis.RedisError, OSError) as err:
            raise self._failed(err) from None
        cost = tokens = 0.0
        for raw in values:
            if raw:
                c, t = raw.split()
                cost, tokens = cost + float(c), tokens + float(t)
        return cost, int(tokens)
