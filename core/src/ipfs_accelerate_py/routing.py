"""The router's deployments and the strategies that choose among them.

A :class:`Deployment` is one backend (a provider plugin bound to an endpoint: its own gate,
breaker and keys), one model and default parameters, listed under a model alias. Its live
state — calls in flight through the router, latency averages, a cooldown, the requests and
tokens of the last minute — changes only under the router's lock, so a choice and its
reservation are one step: 200 threads choosing at once see each other's choices.

Strategies order the available deployments of an alias:

``least-busy``      fewest calls in flight (the router's own count, or the endpoint gate's
                    active + waiting calls when other code uses the backend too)
``lowest-latency``  lowest moving average of latency (time to first chunk for streams);
                    deployments with fewer than two measurements are tried first, one not chosen
                    for 25 choices is probed once, so a single slow sample cannot starve it
``weighted``        smooth weighted round robin by ``weight`` (exact shares, no randomness)
``usage-based``     most rpm/tpm headroom (declared ``rpm``/``tpm`` limits and the rate-limit
                    headers the key pool read)
``cheapest``        lowest list price from the pricing file (self-hosted: free)

Ties go to the deployment chosen longest ago, so equal deployments share work evenly.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError
from .resilience.breaker import CircuitState
from .structured import MODES

if TYPE_CHECKING:
    from .backend import Backend
    from .endpoint import Endpoint

__all__ = ["STRATEGIES", "Deployment", "choose"]

_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
STRATEGIES = ("least-busy", "lowest-latency", "weighted", "usage-based", "cheapest")
_WINDOW = 60.0  # rpm / tpm window, seconds
_ALPHA = 0.3  # weight of the newest latency sample
_PROBE_EVERY = 25  # lowest-latency: a deployment not chosen for this many choices is probed


class Deployment:
    """One backend + model under an alias, with the router's live counters for it."""

    def __init__(
        self,
        deployment_id: str,
        alias: str,
        backend: Backend,
        model: str,
        *,
        endpoint_id: str | None = None,
        params: Mapping[str, Any] | None = None,
        weight: float = 1.0,
        rpm: int | None = None,
        tpm: int | None = None,
        structured_output: str = "native",
    ) -> None:
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
            raise ConfigurationError(f"deployment {deployment_id!r}: weight must be > 0")
        for name, limit in (("rpm", rpm), ("tpm", tpm)):
            if limit is not None and (
                isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
            ):
                raise ConfigurationError(
                    f"deployment {deployment_id!r}: {name} must be an int >= 1"
                )
        if structured_output not in MODES:
            raise ConfigurationError(
                f"deployment {deployment_id!r}: structured_output must be one of {MODES}"
            )
        self.id = deployment_id
        self.alias = alias
        self.backend = backend
        self.model = model
        self.endpoint_id = endpoint_id
        self.params: dict[str, Any] = dict(params or {})
        self.weight = float(weight)
        self.rpm = rpm
        self.tpm = tpm
        self.structured_output = structured_output
        self.endpoint: Endpoint = backend.endpoint(endpoint_id)
        # live state, changed under the router's lock
        self.in_flight = 0
        self.latency: float | None = None
        self.samples = 0
        self.cooldown_until = 0.0
        self.last_chosen = 0
        self.current_weight = 0.0
        self.minute: deque[list[float]] = deque()  # [time, tokens] per request
        self.minute_tokens = 0.0
        price = backend.usage.pricing.price(backend.name, model) if model else None
        self.price = 0.0 if backend.spec.free else (math.inf if price is None else sum(price))
        self.stats: dict[str, Any] = {
            "requests": 0,
            "successes": 0,
            "failures": 0,
            "fallbacks_from": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost": 0.0,
        }

    def __repr__(self) -> str:
        return f"Deployment({self.id!r}, alias={self.alias!r}, {self.backend.name}:{self.model})"

    # -- availability ------------------------------------------------------------------------
    def _prune(self, now: float) -> None:
        while self.minute and self.minute[0][0] <= now - _WINDOW:
            self.minute_tokens -= self.minute.popleft()[1]

    def available_at(self, now: float) -> float:
        """When (on the router's clock) the deployment can take a call: ``now`` or earlier
        if it can now; later while its router cooldown, open breaker, cooling keys or
        rpm/tpm window stop it. The endpoint's times are read on its own clock."""
        until = self.cooldown_until
        endpoint = self.endpoint
        breaker = endpoint.breaker
        if breaker._state is not _CLOSED and breaker.state is _OPEN:
            opened = breaker._opened_at
            if opened is not None:
                back = opened + breaker.reset_timeout - breaker.clock.monotonic()
                until = max(until, now + back)
        keys = endpoint.keys
        soonest = math.inf
        for key in keys._order:  # a key that never cooled down has 0.0: no clock read
            if key.cooldown_until < soonest:
                soonest = key.cooldown_until
        if 0.0 < soonest < math.inf:
            left = soonest - keys._clock.monotonic()
            if left > 0:
                until = max(until, now + left)
        if self.rpm is not None or self.tpm is not None:
            self._prune(now)
            if self.minute and (
                (self.rpm is not None and len(self.minute) >= self.rpm)
                or (self.tpm is not None and self.minute_tokens >= self.tpm)
            ):
                until = max(until, self.minute[0][0] + _WINDOW)
        return until

    def load(self) -> int:
        """Calls in flight: the router's count, or the gate's when other callers share it."""
        gate = self.endpoint.gate
        return max(self.in_flight, gate._active + gate._waiting)

    def headroom(self, now: float) -> float:
        """The smallest fraction left of the declared rpm/tpm and the key's reported limits."""
        left = 1.0
        if self.rpm is not None:
            self._prune(now)
            left = min(left, 1.0 - (len(self.minute) + self.in_flight) / self.rpm)
        if self.tpm is not None:
            self._prune(now)
            left = min(left, 1.0 - self.minute_tokens / self.tpm)
        return left

    def reserve(self, now: float, tokens: float, tick: int) -> None:
        """Count a call as started (lock held)."""
        self.in_flight += 1
        self.last_chosen = tick
        self.stats["requests"] += 1
        if self.rpm is not None or self.tpm is not None:
            self.minute.append([now, tokens])
            self.minute_tokens += tokens

    def observe(self, seconds: float | None) -> None:
        """Fold one latency sample into the moving average (lock held)."""
        if seconds is None:
            return
        self.samples += 1
        if self.latency is None or seconds < self.latency / 2:
            self.latency = seconds  # a spike must not outlive the next fast sample
        else:
            self.latency = _ALPHA * seconds + (1 - _ALPHA) * self.latency


def _key_remaining(dep: Deployment) -> float:
    """Requests left on the endpoint's best key by the provider's rate-limit headers
    (read when the endpoint has several keys); infinite when none reported."""
    best = -1.0
    for key in dep.endpoint.keys._order:
        if key.remaining_requests is None:
            return math.inf
        best = max(best, float(key.remaining_requests))
    return math.inf if best < 0 else best


def choose(strategy: str, ready: list[Deployment], now: float, tick: int = 0) -> Deployment:
    """The deployment ``strategy`` prefers among ``ready`` (non-empty; lock held); ``tick``
    counts the router's choices."""
    if len(ready) == 1:
        return ready[0]
    if strategy == "least-busy":
        best, best_key = ready[0], (ready[0].load(), ready[0].last_chosen)
        for dep in ready[1:]:
            key = (dep.load(), dep.last_chosen)
            if key < best_key:
                best, best_key = dep, key
        return best
    if strategy == "lowest-latency":
        stale = min(ready, key=lambda d: d.last_chosen)
        if tick - stale.last_chosen > _PROBE_EVERY:  # re-measure: one slow sample must not
            return stale  # starve a deployment for ever
        return min(
            ready,
            key=lambda d: (
                -1.0 if d.latency is None or d.samples < 2 else d.latency,
                d.in_flight,
                d.last_chosen,
            ),
        )
    if strategy == "weighted":
        total = 0.0
        best = ready[0]
        for dep in ready:
            dep.current_weight += dep.weight
            total += dep.weight
            if dep.current_weight > best.current_weight:
                best = dep
        best.current_weight -= total
        return best
    if strategy == "usage-based":
        return min(
            ready,
            key=lambda d: (-d.headroom(now), -_key_remaining(d), d.in_flight, d.last_chosen),
        )
    if strategy == "cheapest":
        return min(ready, key=lambda d: (d.price, d.load(), d.last_chosen))
    raise ConfigurationError(f"unknown routing strategy {strategy!r}; valid: {STRATEGIES}")
