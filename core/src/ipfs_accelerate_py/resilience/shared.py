"""Glue between an endpoint's in-process resilience objects and a shared :class:`StateStore`.

An endpoint with shared state gets a :class:`SharedEndpoint` (``ep.shared``; ``None`` by
default, so the hot path pays one attribute test). It adds, on top of the in-process
objects, which still decide first:

* the gate: after a local slot, a cluster-wide lease (:class:`ClusterCap`, ``gate.cluster``),
  held as long as the slot (across retries and backoff sleeps); a waiter polls for it with
  short, jittered sleeps (2-100 ms; ``time.sleep`` in a thread, ``asyncio.sleep`` on a
  loop), within the call's ``queue_timeout``;
* before each attempt, one admission: the shared breaker (fail fast; one half-open probe
  cluster-wide), the key's shared cooldown (another free key is tried), and the rpm/tpm
  reservation (a wait before sending);
* after each attempt, the outcome: breaker, a 429's cooldown for every process, the tpm
  correction from the reply's usage, and usage totals (sent in the background).

Settings (``get_backend`` keywords, popped before the endpoint policy is read):
``shared_state`` (a redis URL, or a :class:`StateStore`; default ``IPFS_ACCELERATE_REDIS_URL``),
``shared_namespace`` (default ``IPFS_ACCELERATE_REDIS_NAMESPACE`` or ``ipfs_accelerate``),
``rpm`` and ``tpm`` (per key, or per endpoint when it has no key; 0: none),
``rate_window`` (seconds, default 60: the "minute" of rpm/tpm). ``IPFS_ACCELERATE_REDIS_TIMEOUT``
sets how long a Redis command may take before local state decides (default 0.25 s).
"""

from __future__ import annotations

import atexit
import random
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ipfs_accelerate_py.errors import CircuitOpenError, ConfigurationError, TimeoutError
from ipfs_accelerate_py.resilience.state import Limits, Outcome, StateStore, key_id

if TYPE_CHECKING:
    from ipfs_accelerate_py.attempts import Attempts
    from ipfs_accelerate_py.calls import Credential
    from ipfs_accelerate_py.errors import BackendError
    from ipfs_accelerate_py.resilience.gate import PriorityGate
    from ipfs_accelerate_py.resilience.keys import KeyLease
    from ipfs_accelerate_py.resilience.retry import RetryBudget
    from ipfs_accelerate_py.types import Usage

__all__ = [
    "ClusterCap",
    "SharedConfig",
    "SharedEndpoint",
    "flush_all",
    "pop_shared_settings",
    "store_for",
]

SHARED_NAMES = ("shared_state", "shared_namespace", "rpm", "tpm", "rate_window")
_POLL_MIN, _POLL_MAX = 0.002, 0.1
_stores: dict[tuple[str, str], StateStore] = {}
_stores_lock = threading.Lock()


@attrs.define(frozen=True)
class SharedConfig:
    """A backend's shared-state settings."""

    store: StateStore
    rpm: int = 0
    tpm: int = 0
    window: float = 60.0


def store_for(url: str, namespace: str = "ipfs_accelerate") -> StateStore:
    """The process's one :class:`~.redis_state.RedisState` for ``url`` and ``namespace``."""
    with _stores_lock:
        store = _stores.get((url, namespace))
        if store is None:
            import os

            from ipfs_accelerate_py.resilience.redis_state import RedisState

            timeout = float(os.environ.get("IPFS_ACCELERATE_REDIS_TIMEOUT") or 0.25)
            store = _stores[(url, namespace)] = RedisState(
                url, namespace=namespace, timeout=timeout
            )
        return store


def flush_all(timeout: float = 1.0) -> None:
    """Send every store's queued writes (lease releases, outcomes, usage); at exit too."""
    for store in list(_stores.values()):
        store.flush(timeout)


atexit.register(flush_all)


def _limit(name: str, value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{name} must be an integer >= 0, got {value!r}")
    return value


def pop_shared_settings(settings: dict[str, Any]) -> SharedConfig | None:
    """Take the shared-state keywords out of ``settings``; None when nothing is shared."""
    import os

    values = {name: settings.pop(name) for name in SHARED_NAMES if name in settings}
    target = values.get("shared_state") or os.environ.get("IPFS_ACCELERATE_REDIS_URL") or None
    rpm, tpm = _limit("rpm", values.get("rpm")), _limit("tpm", values.get("tpm"))
    window = values.get("rate_window", 60.0)
    if isinstance(window, bool) or not isinstance(window, (int, float)) or not window > 0:
        raise ConfigurationError(f"rate_window must be a number of seconds > 0, got {window!r}")
    if target is None:
        if rpm or tpm:
            raise ConfigurationError(
                "rpm= and tpm= need shared state: pass shared_state='redis://...' or set "
                "IPFS_ACCELERATE_REDIS_URL"
            )
        return None
    if isinstance(target, str):
        namespace = values.get("shared_namespace") or os.environ.get(
            "IPFS_ACCELERATE_REDIS_NAMESPACE", "ipfs_accelerate"
        )
        store = store_for(target, namespace)
    elif isinstance(target, StateStore):
        store = target
    else:
        raise ConfigurationError(
            f"shared_state must be a redis:// URL or a StateStore, got {type(target).__name__}"
        )
    return SharedConfig(store, rpm, tpm, float(window))


class ClusterCap:
    """A gate's cluster-wide concurrency cap: lease-backed slots across every process."""

    def __init__(self, store: StateStore, scope: str, gate: PriorityGate) -> None:
        self.store, self.scope, self._gate = store, scope, gate

    @property
    def limit(self) -> int:
        """The cap: the gate's ``max_concurrent`` (changing it changes the cap at once)."""
        return self._gate.max_concurrent

    def _timeout(self, timeout: float | None) -> TimeoutError:
        return TimeoutError(f"waited {timeout} s for a cluster-wide slot of {self.scope!r}")

    def enter(self, timeout: float | None) -> str:
        """Take a lease, polling with short sleeps; TimeoutError after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = _POLL_MIN
        while True:
            token = self.store.acquire_lease(self.scope, self.limit)
            if token is not None:
                return token
            if deadline is not None and time.monotonic() + pause > deadline:
                raise self._timeout(timeout)
            time.sleep(pause * (0.5 + random.random()))  # jitter: waiters spread out
            pause = min(pause * 1.5, _POLL_MAX)

    async def aenter(self, timeout: float | None) -> str:
        """:meth:`enter` without blocking the event loop."""
        import asyncio

        deadline = None if timeout is None else time.monotonic() + timeout
        pause = _POLL_MIN
        while True:
            token = await self.store.aacquire_lease(self.scope, self.limit)
            if token is not None:
                return token
            if deadline is not None and time.monotonic() + pause > deadline:
                raise self._timeout(timeout)
            await asyncio.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 1.5, _POLL_MAX)

    def exit(self, token: str) -> None:
        """Give the lease back."""
        self.store.release_lease(self.scope, token)


def estimate_tokens(call: Any) -> int:
    """A rough token estimate of a request: its body's characters / 4, plus ``max_tokens``."""
    body = getattr(call, "json", None)
    if not isinstance(body, Mapping):
        return 1
    out = body.get("max_tokens") or body.get("max_completion_tokens") or 0
    return max(len(repr(body)) // 4, 1) + (out if isinstance(out, int) else 0)


class SharedEndpoint:
    """An endpoint's view of the shared store: scope, limits, and key identities."""

    def __init__(self, config: SharedConfig, scope: str, policy: Mapping[str, Any]) -> None:
        self.store = config.store
        self.scope = scope
        self.limits = Limits(
            rpm=config.rpm,
            tpm=config.tpm,
            window=config.window,
            failure_threshold=policy["failure_threshold"],
            reset_timeout=policy["reset_timeout"],
            success_threshold=policy["success_threshold"],
        )
        self._ids: dict[str, str] = {}

    def key_of(self, lease: KeyLease | None) -> str:
        """The hashed identity of a lease's key ("-" for none)."""
        if lease is None:
            return "-"
        secret = lease.key.secret
        kid = self._ids.get(secret)
        if kid is None:
            kid = self._ids[secret] = key_id(secret, self.store.namespace)
        return kid

    def refused(self, verdict: str, wait: float) -> CircuitOpenError:
        """The error for a call the shared breaker refuses."""
        if verdict == "open":
            message = f"circuit for {self.scope} is open (shared); next probe in {wait:.1f}s"
        else:
            message = f"circuit for {self.scope} is half-open (shared): probe in progress"
        return CircuitOpenError(message, provider=self.scope.partition(":")[0], retry_after=wait)

    def outcome(self, result: str, probe: bool, **fields: Any) -> Outcome:
        """An :class:`Outcome` of this endpoint."""
        return Outcome(result, probe, **fields)

    # -- the attempt's side: called by attempts.Attempts when ``ep.shared`` is set ---------
    def _verdict(self, att: Attempts, admission: Any, tries: int) -> tuple[float, bool]:
        """Apply an admission: (extra wait, True to ask again with another key)."""
        verdict, wait = admission.verdict, admission.wait
        if verdict == "go":
            att.shared_probe = admission.probe
            return wait, False
        lease = att.lease
        if verdict == "cooling" and lease is not None:
            ep = att.ep
            ep.keys.cool_down(lease.key.name, wait)  # the local pool learns the rest
            if (
                att.opts.api_key_name is None
                and tries < len(ep.keys)
                and ep.keys.has_free({*att.avoid, lease.key.name})
            ):
                return 0.0, True
            return wait, False
        if verdict == "cooling":
            return wait, False
        error = self.refused(verdict, wait)
        att.abandoned()
        last = att.last_error
        if last is None:
            raise error
        last.message += f" (not retried: {error.message})"
        last.retry_after = error.retry_after
        raise last from None

    def _rechoose(self, att: Attempts) -> tuple[Credential | None, float]:
        lease, att.lease = att.lease, None
        if lease is not None:
            att.ep.keys.release(lease, ok=True)
            att.avoid.add(lease.key.name)
        return att.start(shared=False)

    def admit(
        self, att: Attempts, credential: Credential | None, wait: float
    ) -> tuple[Credential | None, float]:
        """Before an attempt (thread): the shared admission, added to the local wait."""
        if self.limits.rpm and getattr(att.call, "path", None) is not None:
            att.ep.transport.client()  # made now, so the reservation is timed at the send
        tokens = estimate_tokens(att.call) if self.limits.tpm else 0
        for tries in range(1, len(att.ep.keys) + 2):
            admission = self.store.admit(self.scope, self.key_of(att.lease), self.limits, tokens)
            extra, again = self._verdict(att, admission, tries)
            if not again:
                att.shared_tokens = tokens
                return credential, max(wait, extra)
            credential, wait = self._rechoose(att)
        return credential, wait  # pragma: no cover - bounded by the key count

    async def aadmit(
        self, att: Attempts, credential: Credential | None, wait: float
    ) -> tuple[Credential | None, float]:
        """Before an attempt (event loop): :meth:`admit` on the asyncio client."""
        if self.limits.rpm and getattr(att.call, "path", None) is not None:
            await att.ep.transport.aclient()
        tokens = estimate_tokens(att.call) if self.limits.tpm else 0
        for tries in range(1, len(att.ep.keys) + 2):
            key = self.key_of(att.lease)
            admission = await self.store.aadmit(self.scope, key, self.limits, tokens)
            extra, again = self._verdict(att, admission, tries)
            if not again:
                att.shared_tokens = tokens
                return credential, max(wait, extra)
            credential, wait = self._rechoose(att)
        return credential, wait  # pragma: no cover

    def retry_withdraw(self, budget: RetryBudget, cost: int) -> int:
        """After the local retry budget paid ``cost``: the shared one pays too, or the
        retry is refused (the local tokens go back); Redis unreachable: local decides."""
        granted = self.store.retry_withdraw(self.scope, cost, budget.capacity)
        if granted is None or granted:
            return cost
        budget.on_success(cost)  # refund the local withdrawal
        return 0

    def succeeded(
        self,
        att: Attempts,
        lease: KeyLease | None,
        usage: Usage | None,
        cost: float,
        headers: Mapping[str, str],
    ) -> None:
        """After a successful attempt: breaker, tpm correction, usage, rate-limit headers."""
        p = usage.prompt_tokens if usage else 0
        c = usage.completion_tokens if usage else 0
        key = self.key_of(lease)
        refund = float(att.shared_tokens - (p + c)) if att.shared_tokens and usage else 0.0
        self.store.settle(
            self.scope,
            key,
            self.limits,
            Outcome(
                "ok",
                att.shared_probe,
                tokens_refund=refund,
                model=att.call.model or "(no model)",
                requests=1,
                prompt_tokens=p,
                completion_tokens=c,
                cost=cost,
            ),
        )
        att.shared_probe = False
        budget = att.ep.budget
        refill = att.withdrawn if att.withdrawn > 0 else budget.success_refill
        if refill:
            self.store.retry_deposit(self.scope, refill, budget.capacity)
        if headers:
            self.store.observe_headers(self.scope, key, headers)

    def failed(
        self,
        att: Attempts,
        lease: KeyLease | None,
        err: BackendError,
        counted: bool,
        cooldown: float,
    ) -> None:
        """After a failed attempt: breaker (when ``counted``), the key's cooldown, usage."""
        self.store.settle(
            self.scope,
            self.key_of(lease),
            self.limits,
            Outcome(
                "fail" if counted else "ignore",
                att.shared_probe,
                cooldown=cooldown,
                model=att.call.model or "(no model)",
                failures=1,
            ),
        )
        att.shared_probe = False

    def abandoned(
        self, att: Attempts, lease: KeyLease | None, usage: Usage | None, sent: bool
    ) -> None:
        """The caller went away: free the probe; count a sent request's usage."""
        if not sent and not att.shared_probe:
            return
        p = usage.prompt_tokens if usage else 0
        c = usage.completion_tokens if usage else 0
        self.store.settle(
            self.scope,
            self.key_of(lease),
            self.limits,
            Outcome(
                "ignore",
                att.shared_probe,
                model=att.call.model or "(no model)",
                requests=1 if sent else 0,
                prompt_tokens=p,
                completion_tokens=c,
            ),
        )
        att.shared_probe = False
