"""Where resilience state that must be global lives: the :class:`StateStore` interface.

By default every process keeps its own gate, breaker, key cooldowns, retry budget and usage
(:class:`LocalState`: nothing shared, no server, no cost on the hot path). When many
processes share one provider account, ``get_backend(..., shared_state="redis://...")`` (or
``IPFS_ACCELERATE_REDIS_URL``) puts that state in Redis (:mod:`.redis_state`), so the
concurrency cap, rate limits, key cooldowns, breaker, retry budget and usage totals are
cluster-wide. Core talks only to this interface; nothing else knows which store is behind it.

Every operation degrades: when the store cannot answer (unreachable, slow, restarted) it
answers as :class:`LocalState` does ("go ahead", "nothing shared"), so the in-process state
decides alone and no call fails because of the store.

Scopes are strings naming one endpoint (``backend:endpoint_id``); ``key_id`` is
:func:`key_id` of a secret, never the secret.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import attrs

__all__ = [
    "Admission",
    "LocalState",
    "Outcome",
    "StateStore",
    "UsageRow",
    "key_id",
]


def key_id(secret: str, namespace: str = "") -> str:
    """A short, one-way identity for an API key (SHA-256 of namespace and secret, 16 hex)."""
    return hashlib.sha256(f"{namespace}\x00{secret}".encode()).hexdigest()[:16]


@attrs.define(slots=True)
class Admission:
    """The store's answer before an attempt.

    ``verdict`` is ``"go"`` (send after ``wait`` seconds, a rate-limit reservation),
    ``"open"`` (the shared breaker is open for ``wait`` more seconds), ``"probing"`` (half-open
    and another process holds the one probe) or ``"cooling"`` (this key rests ``wait`` more
    seconds). ``probe`` is True when this attempt is the cluster's half-open probe.
    """

    verdict: str = "go"
    wait: float = 0.0
    probe: bool = False


GO = Admission()


@attrs.define(slots=True)
class Outcome:
    """What one attempt did, for the store to account: ``result`` is ``"ok"``, ``"fail"``
    (counts against the breaker), ``"ignore"`` (says nothing about health) or ``"none"``."""

    result: str
    probe: bool = False
    cooldown: float = 0.0  # rest this key so long (a 429's retry-after), 0: no change
    tokens_refund: float = 0.0  # estimated minus actual tokens, given back to the tpm bucket
    model: str = ""
    requests: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0


@attrs.define(slots=True, frozen=True)
class UsageRow:
    """Shared usage totals of one (backend, endpoint, key id, model)."""

    backend: str
    endpoint: str
    key: str
    model: str
    requests: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0


@attrs.define(slots=True, frozen=True)
class Limits:
    """An endpoint's shared limits: requests and tokens per ``window`` seconds (0: none),
    the breaker's thresholds, and the half-open probe's lease."""

    rpm: int = 0
    tpm: int = 0
    window: float = 60.0
    failure_threshold: int = 5
    reset_timeout: float = 30.0
    success_threshold: int = 3
    probe_ttl: float = 60.0


@runtime_checkable
class StateStore(Protocol):
    """The operations the gate, breaker, key pool, retry budget and usage need shared."""

    namespace: str

    # the cluster-wide concurrency cap: leases that expire unless renewed by a live holder
    def acquire_lease(self, scope: str, limit: int) -> str | None:
        """A lease token, or None when ``limit`` leases are held (try again later)."""
        ...

    async def aacquire_lease(self, scope: str, limit: int) -> str | None:
        """:meth:`acquire_lease` without blocking the event loop."""
        ...

    def release_lease(self, scope: str, token: str) -> None:
        """Give a lease back (never raises)."""
        ...

    # breaker, key cooldown and rate limits: one round trip before each attempt
    def admit(self, scope: str, key: str, limits: Limits, tokens: int) -> Admission:
        """Ask the shared breaker, the key's cooldown and the rpm/tpm windows; reserves a
        request (and ``tokens`` estimated tokens) when the verdict is "go"."""
        ...

    async def aadmit(self, scope: str, key: str, limits: Limits, tokens: int) -> Admission:
        """:meth:`admit` without blocking the event loop."""
        ...

    def settle(self, scope: str, key: str, limits: Limits, outcome: Outcome) -> None:
        """Account an attempt's outcome (breaker, cooldown, token refund, usage); never
        blocks the caller (it may be sent in the background)."""
        ...

    def observe_headers(self, scope: str, key: str, headers: Mapping[str, str]) -> None:
        """Feed the provider's ``x-ratelimit-remaining-*`` / reset headers to the shared view."""
        ...

    # the retry budget: a shared token bucket
    def retry_withdraw(self, scope: str, cost: int, capacity: int) -> int | None:
        """Withdraw ``cost`` tokens: the cost when granted, 0 when refused, None: decide
        locally (the store cannot answer)."""
        ...

    def retry_deposit(self, scope: str, amount: int, capacity: int) -> None:
        """Put ``amount`` tokens back (capped at ``capacity``)."""
        ...

    # generic counters, for budgets: add within a window, read the total
    def counter_add(self, name: str, amount: float, ttl: float | None = None) -> float | None:
        """Add to a named counter (expiring ``ttl`` s after creation); the new total, or None."""
        ...

    def counter_get(self, name: str) -> float | None:
        """A named counter's total (0.0 when absent), or None when the store cannot answer."""
        ...

    def usage(self) -> list[UsageRow]:
        """Every shared usage row of this namespace."""
        ...

    def flush(self, timeout: float = 1.0) -> bool:
        """Wait until background writes are sent; True when nothing is left pending."""
        ...

    def close(self) -> None:
        """Stop background work and close connections."""
        ...


class LocalState:
    """The default store: nothing is shared, every answer is "go ahead"; the in-process
    gate, breaker, key pool, budget and usage tracker decide alone (today's behaviour)."""

    namespace = ""

    def acquire_lease(self, scope: str, limit: int) -> str | None:
        """Always granted: the in-process gate is the only cap."""
        return "local"

    async def aacquire_lease(self, scope: str, limit: int) -> str | None:
        """Always granted."""
        return "local"

    def release_lease(self, scope: str, token: str) -> None:
        """Nothing to give back."""

    def admit(self, scope: str, key: str, limits: Limits, tokens: int) -> Admission:
        """Always "go"."""
        return GO

    async def aadmit(self, scope: str, key: str, limits: Limits, tokens: int) -> Admission:
        """Always "go"."""
        return GO

    def settle(self, scope: str, key: str, limits: Limits, outcome: Outcome) -> None:
        """Nothing to account beyond the in-process objects."""

    def observe_headers(self, scope: str, key: str, headers: Mapping[str, str]) -> None:
        """Nothing shared to feed."""

    def retry_withdraw(self, scope: str, cost: int, capacity: int) -> int | None:
        """Decide locally."""
        return None

    def retry_deposit(self, scope: str, amount: int, capacity: int) -> None:
        """Nothing shared."""

    def counter_add(self, name: str, amount: float, ttl: float | None = None) -> float | None:
        """No shared counters."""
        return None

    def counter_get(self, name: str) -> float | None:
        """No shared counters."""
        return None

    def usage(self) -> list[UsageRow]:
        """No shared usage."""
        return []

    def flush(self, timeout: float = 1.0) -> bool:
        """Nothing pending."""
        return True

    def close(self) -> None:
        """Nothing to close."""
