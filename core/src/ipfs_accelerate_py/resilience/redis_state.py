"""Shared resilience state in Redis: :class:`RedisState`, the :class:`~.state.StateStore` for
deployments where many processes share one provider account.

Each decision is one Lua script (:mod:`.redis_lua`), so one round trip: a lease for the
cluster-wide concurrency cap, and an admission (shared breaker, key cooldown, rpm/tpm
reservation) before each attempt. What needs no answer (outcomes, usage, lease releases and
renewals) goes through one background thread that sends it in pipelined batches, so the
caller never waits for it and nothing blocks an event loop; the async path uses
``redis.asyncio`` (one client per event loop).

Faults: every command has a short timeout (``timeout``, default 0.25 s). When Redis does not
answer, one warning is logged and the store answers as :class:`~.state.LocalState` for
``retry_interval`` seconds (the in-process state decides alone), then tries again; usage
accounted meanwhile is kept and sent when Redis is back. Only a command sent since the last
change of state may change it (:mod:`.redis_health`), so one outage gives one warning.
Leases expire ``lease_ttl`` seconds after their holder stops renewing them, so a killed
worker never leaks slots.

API keys never reach Redis: a key is named by :func:`~.state.key_id` (a SHA-256 prefix).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from typing import Any

from ipfs_accelerate_py.errors import ConfigurationError
from ipfs_accelerate_py.resilience import forks, redis_lua
from ipfs_accelerate_py.resilience.redis_health import Health
from ipfs_accelerate_py.resilience.state import GO, Admission, Limits, Outcome, UsageRow

__all__ = ["RedisState"]

log = logging.getLogger("ipfs_accelerate_py.shared")

_VERDICTS = ("go", "open", "probing", "cooling")
_SCRIPTS = {
    name: getattr(redis_lua, name)
    for name in (
        "LEASE_ACQUIRE",
        "LEASE_RENEW",
        "ADMIT",
        "SETTLE",
        "BUDGET_WITHDRAW",
        "BUDGET_DEPOSIT",
        "COUNTER_ADD",
    )
}
_MAX_PENDING = 10_000  # usage rows kept while Redis is down


def _import_redis() -> Any:
    try:
        import redis
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ConfigurationError(
            "shared_state needs the redis client: pip install 'ipfs-accelerate-core[redis]'"
        ) from err
    return redis


class RedisState:
    """A :class:`~.state.StateStore` in Redis (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "ipfs_accelerate",
        timeout: float = 0.25,
        lease_ttl: float = 10.0,
        retry_interval: float = 1.0,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigurationError(
                "shared_state must be a redis://, rediss:// or unix:// URL, got "
                f"{type(url).__name__ if not isinstance(url, str) else 'another scheme'}"
            )
        if not isinstance(namespace, str) or not namespace:
            raise ConfigurationError("the shared state namespace must be a non-empty string")
        for label, value in (("timeout", timeout), ("lease_ttl", lease_ttl)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigurationError(f"shared state {label} must be > 0, got {value!r}")
        self._redis = _import_redis()
        self.url = url
        self.namespace = namespace
        self.timeout = float(timeout)
        self.lease_ttl = float(lease_ttl)
        self.retry_interval = float(retry_interval)
        self._sha: dict[str, str] = {}
        self._aclients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self._setup()
        forks.register(self)

    def _setup(self) -> None:
        redis = self._redis
        self._client = redis.Redis.from_url(self.url, **self._options())
        self._health = Health(self.retry_interval)  # a forked child finds out for itself
        self._lock = threading.Lock()
        self._held: dict[str, set[str]] = {}
        self._queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._pending: list[tuple[str, Any]] = []  # usage kept while Redis is down
        self._idle = threading.Event()
        self._idle.set()
        self._closed = False
        self._worker: threading.Thread | None = None

    def _options(self) -> dict[str, Any]:
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        return {
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
            "retry": Retry(NoBackoff(), 0),
            "decode_responses": False,
        }

    def _after_fork(self) -> None:
        """In a forked child: new connections, no worker, no leases (they were the parent's)."""
        self._aclients = weakref.WeakKeyDictionary()
        self._setup()

    def __repr__(self) -> str:
        from ipfs_accelerate_py.masking import mask_url

        return f"RedisState({mask_url(self.url)!r}, namespace={self.namespace!r})"

    # -- plumbing ------------------------------------------------------------------------
    def _key(self, scope: str, *parts: str) -> str:
        return ":".join((self.namespace, scope, *parts))

    def _failed(self, err: BaseException, epoch: int) -> None:
        """A command sent in ``epoch`` failed: warn when that begins an outage."""
        if not self._health.failed(epoch):
            return  # the outage already began, or the command predates the last change
        try:  # drop the idle pooled connections: after a silent outage (no FIN) they would
            self._client.connection_pool.disconnect(inuse_connections=False)  # time out
        except Exception:
            pass
        log.warning(
            "shared state at %r unreachable (%s); going on with local state, retrying every %.1fs",
            self,
            type(err).__name__,
            self.retry_interval,
        )

    def _answered(self, epoch: int) -> None:
        """A command sent in ``epoch`` was answered: say so when that ends an outage."""
        if self._health.answered(epoch):
            log.warning("shared state at %r is back; resynchronising", self)
            self._ensure_worker()

    def _eval(self, client: Any, name: str, keys: list[str], args: list[Any]) -> Any:
        sha = self._sha.get(name)
        if sha is None:
            sha = self._sha[name] = client.script_load(_SCRIPTS[name])
        try:
            return client.evalsha(sha, len(keys), *keys, *args)
        except self._redis.exceptions.NoScriptError:  # Redis restarted: load it again
            sha = self._sha[name] = client.script_load(_SCRIPTS[name])
            return client.evalsha(sha, len(keys), *keys, *args)

    async def _aeval(self, name: str, keys: list[str], args: list[Any]) -> Any:
        import asyncio

        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            import redis.asyncio as aredis

            client = self._aclients[loop] = aredis.Redis.from_url(self.url, **self._options())
        sha = self._sha.get(name)
        if sha is None:
            sha = self._sha[name] = await client.script_load(_SCRIPTS[name])
        try:
            return await client.evalsha(sha, len(keys), *keys, *args)
        except self._redis.exceptions.NoScriptError:
            sha = self._sha[name] = await client.script_load(_SCRIPTS[name])
            return await client.evalsha(sha, len(keys), *keys, *args)

    def _call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run a script; None when Redis cannot answer (then local state decides)."""
        epoch = self._health.begin()
        if epoch is None:
            return None
        try:
            result = self._eval(self._client, name, keys, args)
        except (self._redis.RedisError, OSError) as err:
            self._failed(err, epoch)
            return None
        self._answered(epoch)
        return result

    async def _acall(self, name: str, keys: list[str], args: list[Any]) -> Any:
        epoch = self._health.begin()
        if epoch is None:
            return None
        try:
            result = await self._aeval(name, keys, args)
        except (self._redis.RedisError, OSError) as err:
            self._failed(err, epoch)
            return None
        self._answered(epoch)
        return result

    # -- leases --------------------------------------------------------------------------
    def _lease_args(self, scope: str, limit: int) -> tuple[list[str], list[Any], str]:
        token = uuid.uuid4().hex
        return [self._key(scope, "leases")], [limit, int(self.lease_ttl * 1000), token], token

    def _granted(self, scope: str, result: Any, token: str) -> str | None:
        if result is None:
            return "local"  # Redis cannot answer: the in-process gate alone caps
        if not result:
            return None
        with self._lock:
            self._held.setdefault(scope, set()).add(token)
        self._ensure_worker()
        return token

    def acquire_lease(self, scope: str, limit: int) -> str | None:
        """A lease token; None when ``limit`` leases are held cluster-wide."""
        keys, args, token = self._lease_args(scope, limit)
        return self._granted(scope, self._call("LEASE_ACQUIRE", keys, args), token)

    async def aacquire_lease(self, scope: str, limit: int) -> str | None:
        """:meth:`acquire_lease` on the running loop's asyncio client."""
        keys, args, token = self._lease_args(scope, limit)
        return self._granted(scope, await self._acall("LEASE_ACQUIRE", keys, args), token)

    def release_lease(self, scope: str, token: str) -> None:
        """Give a lease back (in the background; never raises)."""
        if token == "local":
            return
        with self._lock:
            held = self._held.get(scope)
            if held is not None:
                held.discard(token)
        self._send("release", (self._key(scope, "leases"), token))

    # -- admission and outcomes ----------------------------------------------------------
    def _admit_args(
        self, scope: str, key: str, limits: Limits, tokens: int
    ) -> tuple[list[str], list[Any]]:
        keys = [
            self._key(scope, "breaker"),
            self._key(scope, "probe"),
            self._key(scope, "cool", key),
            self._key(scope, "rpm", key),
            self._key(scope, "tpm", key),
        ]
        args = [
            int(limits.probe_ttl * 1000),
            limits.rpm,
            limits.tpm,
            tokens if limits.tpm else 0,
            int(limits.window * 1000),
            uuid.uuid4().hex,
            int(min(max(limits.window * 0.02, 0.25), 1.0) * 1000),
        ]
        return keys, args

    @staticmethod
    def _admission(result: Any) -> Admission:
        if result is None:
            return GO
        verdict, wait_ms, probe = (int(x) for x in result)
        return Admission(_VERDICTS[verdict], wait_ms / 1000.0, bool(probe))

    def admit(self, scope: str, key: str, limits: Limits, tokens: int) -> Admission:
        """One round trip: shared breaker, the key's cooldown, rpm/tpm reservation."""
        keys, args = self._admit_args(scope, key, limits, tokens)
        return self._admission(self._call("ADMIT", keys, args))

    async def aadmit(self, scope: str, key: str, limits: Limits, tokens: int) -> Admission:
        """:meth:`admit` on the running loop's asyncio client."""
        keys, args = self._admit_args(scope, key, limits, tokens)
        return self._admission(await self._acall("ADMIT", keys, args))

    def settle(self, scope: str, key: str, limits: Limits, outcome: Outcome) -> None:
        """Queue an attempt's outcome for the background sender."""
        field = ""
        if outcome.requests or outcome.failures:
            backend, _, endpoint = scope.partition(":")
            field = "\t".join((backend, endpoint, key, outcome.model))
        keys = [
            self._key(scope, "breaker"),
            self._key(scope, "probe"),
            self._key(scope, "cool", key),
            self._key(scope, "tpm", key),
            f"{self.namespace}:usage",
        ]
        args = [
            outcome.result,
            limits.failure_threshold,
            int(limits.reset_timeout * 1000),
            limits.success_threshold,
            1 if outcome.probe else 0,
            int(outcome.cooldown * 1000),
            outcome.tokens_refund,
            limits.tpm,
            field,
            outcome.requests,
            outcome.failures,
            outcome.prompt_tokens,
            outcome.completion_tokens,
            repr(float(outcome.cost)),
        ]
        self._send("settle", (keys, args))

    def observe_headers(self, scope: str, key: str, headers: Mapping[str, str]) -> None:
        """A reply saying no requests (or tokens) remain rests the key until its reset."""
        from ipfs_accelerate_py.resilience.keys import parse_duration

        rest = 0.0
        for kind in ("requests", "tokens"):
            remaining = headers.get(f"x-ratelimit-remaining-{kind}")
            if remaining is not None and remaining.strip() in ("0", "0.0"):
                reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}", "") or "")
                rest = max(rest, reset if reset is not None else 1.0)
        if rest > 0:
            self.settle(scope, key, Limits(), Outcome("none", cooldown=rest))

    # -- retry budget and counters -------------------------------------------------------
    def retry_withdraw(self, scope: str, cost: int, capacity: int) -> int | None:
        """Withdraw from the shared retry budget; None when Redis cannot answer."""
        result = self._call("BUDGET_WITHDRAW", [self._key(scope, "budget")], [cost, capacity])
        return None if result is None else int(result)

    def retry_deposit(self, scope: str, amount: int, capacity: int) -> None:
        """Refill the shared retry budget (in the background)."""
        self._send("deposit", (self._key(scope, "budget"), amount, capacity))

    def counter_add(self, name: str, amount: float, ttl: float | None = None) -> float | None:
        """Add to ``<namespace>:counter:<name>``; the new total, or None."""
        key = f"{self.namespace}:counter:{name}"
        result = self._call("COUNTER_ADD", [key], [repr(float(amount)), int((ttl or 0) * 1000)])
        return None if result is None else float(result)

    def counter_get(self, name: str) -> float | None:
        """A counter's total (0.0 when absent); None when Redis cannot answer."""
        epoch = self._health.begin()
        if epoch is None:
            return None
        try:
            value = self._client.get(f"{self.namespace}:counter:{name}")
        except (self._redis.RedisError, OSError) as err:
            self._failed(err, epoch)
            return None
        self._answered(epoch)
        return float(value) if value is not None else 0.0

    def usage(self) -> list[UsageRow]:
        """Every shared usage row of this namespace (raises when Redis cannot answer)."""
        self.flush()
        raw = self._client.hgetall(f"{self.namespace}:usage")
        rows: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for field, value in raw.items():
            backend, endpoint, key, model, metric = field.decode().split("\t")
            row = rows.setdefault((backend, endpoint, key, model), {})
            row[metric] = float(value) if metric == "cost" else int(value)
        return [
            UsageRow(backend=b, endpoint=e, key=k, model=m, **values)
            for (b, e, k, m), values in sorted(rows.items())
        ]

    # -- the background sender -----------------------------------------------------------
    def _send(self, kind: str, item: Any) -> None:
        if self._closed:
            return
        self._idle.clear()
        self._queue.put((kind, item))
        self._ensure_worker()

    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            with self._lock:
                if self._worker is None or not self._worker.is_alive():
                    self._worker = threading.Thread(
                        target=self._work, name="ipfs-accelerate-shared-state", daemon=True
                    )
                    self._worker.start()

    def _work(self) -> None:
        renew_every = self.lease_ttl / 3
        next_renew = time.monotonic() + renew_every
        while not self._closed:
            batch: list[tuple[str, Any]] = []
            try:
                timeout = max(next_renew - time.monotonic(), 0.001)
                batch.append(self._queue.get(timeout=min(timeout, 0.5)))
                while len(batch) < 512:
                    batch.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            if time.monotonic() >= next_renew:
                next_renew = time.monotonic() + renew_every
                with self._lock:
                    held = {scope: list(tokens) for scope, tokens in self._held.items() if tokens}
                batch.extend(("renew", item) for item in held.items())
            if self._pending and self._health.available():
                batch[:0], self._pending = self._pending, []
            if batch:
                self._flush_batch(batch)
            if self._queue.empty():
                self._idle.set()

    def _flush_batch(self, batch: list[tuple[str, Any]]) -> None:
        epoch = self._health.begin()
        if epoch is None:
            self._keep(batch)
            return
        try:
            for name in ("SETTLE", "LEASE_RENEW", "BUDGET_DEPOSIT"):
                if name not in self._sha:
                    self._sha[name] = self._client.script_load(_SCRIPTS[name])
            pipe = self._client.pipeline(transaction=False)
            for kind, item in batch:
                if kind == "settle":
                    keys, args = item
                    pipe.evalsha(self._sha["SETTLE"], len(keys), *keys, *args)
                elif kind == "release":
                    pipe.zrem(*item)
                elif kind == "renew":
                    scope, tokens = item
                    key = self._key(scope, "leases")
                    ttl = int(self.lease_ttl * 1000)
                    pipe.evalsha(self._sha["LEASE_RENEW"], 1, key, ttl, *tokens)
                elif kind == "deposit":
                    key, amount, capacity = item
                    pipe.evalsha(self._sha["BUDGET_DEPOSIT"], 1, key, amount, capacity)
            results = pipe.execute(raise_on_error=False)
        except (self._redis.RedisError, OSError) as err:
            self._failed(err, epoch)
            self._keep(batch)
            return
        if any(isinstance(r, self._redis.exceptions.NoScriptError) for r in results):
            self._sha.clear()  # Redis restarted: reload the scripts, send the batch again
            self._flush_batch(batch)
            return
        self._answered(epoch)

    def _keep(self, batch: list[tuple[str, Any]]) -> None:
        """Keep what must not be lost (usage) to send when Redis is back; drop the rest
        (breaker outcomes and cooldowns are stale by then, leases expire on their own)."""
        for kind, item in batch:
            if kind == "settle" and item[1][8] and len(self._pending) < _MAX_PENDING:
                keys, args = item
                usage_only = ["none", *args[1:5], 0, 0, 0, *args[8:]]
                self._pending.append(("settle", (keys, usage_only)))

    def flush(self, timeout: float = 1.0) -> bool:
        """Wait until queued writes are sent; True when nothing is left pending."""
        if self._worker is None:
            return True
        return self._idle.wait(timeout) and not self._pending

    def close(self) -> None:
        """Send what is queued (briefly), stop the sender and close connections."""
        self.flush(0.5)
        self._closed = True
        try:
            self._client.close()
        except Exception:  # pragma: no cover - closing must never raise
            pass


def from_environment() -> tuple[str | None, str]:
    """``IPFS_ACCELERATE_REDIS_URL`` and ``IPFS_ACCELERATE_REDIS_NAMESPACE`` (or defaults)."""
    url = os.environ.get("IPFS_ACCELERATE_REDIS_URL") or None
    return url, os.environ.get("IPFS_ACCELERATE_REDIS_NAMESPACE") or "ipfs_accelerate"
