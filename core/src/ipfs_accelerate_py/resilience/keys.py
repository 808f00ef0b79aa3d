"""API-key multiplexing: spread calls over several keys, skip keys that are rate limited.

A :class:`KeyPool` holds named keys for one provider. :meth:`KeyPool.acquire` picks one
(round-robin or least-loaded), skipping keys that are cooling down after a 429 or after the
provider's rate-limit headers said the key is spent; :meth:`KeyPool.release` records the
outcome. A cooldown never lasts longer than ``max_cooldown`` (300 s by default, the endpoint
setting ``max_key_cooldown``), whatever a reply asked for, so one reply cannot lock a key out;
reset headers are believed only from successful and 429 replies; :meth:`KeyPool.reset` (and
adding a key again) clears a key's cooldown and rate-limit state.

Secrets appear only masked (:func:`~ipfs_accelerate_py.masking.mask_secret`) in reprs, stats
and errors. One lock guards the pool; it is never held while anyone waits.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ipfs_accelerate_py.errors import ConfigurationError
from ipfs_accelerate_py.fastattrs import evolve
from ipfs_accelerate_py.masking import mask_secret
from ipfs_accelerate_py.resilience import forks
from ipfs_accelerate_py.resilience.clock import SYSTEM_CLOCK, Clock
from ipfs_accelerate_py.types import token_count

if TYPE_CHECKING:
    from ipfs_accelerate_py.calls import Credential

__all__ = ["DEFAULT_MAX_COOLDOWN", "ApiKey", "KeyLease", "KeyPool", "parse_duration"]

_STRATEGIES = {"round-robin": "round-robin", "least-loaded": "least-loaded"}

# regular expressions compiled on first use (_regex): not on the way to a first reply
_DURATION_PART = r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|ns|h|m|s)"
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_RATE_HEADER = (
    r"x-ratelimit-(remaining|reset)-(requests|tokens)"
    r"|anthropic-ratelimit-(requests|tokens|input-tokens|output-tokens)-(remaining|reset)"
)
_RFC3339 = r"(\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d)(\.\d+)?\s*([Zz]|[+-]\d\d:?\d\d)?"
_compiled: dict[str, re.Pattern[str]] = {}


def _regex(source: str) -> re.Pattern[str]:
    """``re.compile(source)``, once."""
    pattern = _compiled.get(source)
    if pattern is None:
        pattern = _compiled[source] = re.compile(source)
    return pattern


DEFAULT_MAX_COOLDOWN = 300.0


def _cooldown_cap(value: object, provider: str | None) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(
            f"max_key_cooldown must be a positive number of seconds, got {value!r}",
            provider=provider,
        )
    return float(value)


def parse_duration(text: str) -> float | None:
    """Parse an OpenAI/Groq reset duration (``"1s"``, ``"6m0s"``, ``"20ms"``, ``"1h2m3.5s"``)
    into seconds; a bare number counts as seconds. Returns ``None`` if ``text`` is not one."""
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        return value if value >= 0 and math.isfinite(value) else None
    total, pos = 0.0, 0
    for match in _regex(_DURATION_PART).finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    return total if pos == len(text) else None


def _parse_timestamp(text: str) -> float | None:
    """Parse an RFC 3339 timestamp into epoch seconds; ``None`` if it is not one."""
    m = _regex(_RFC3339).fullmatch(text.strip())
    if m is None:
        return None
    zone = (m[3] or "Z").upper().replace("Z", "+00:00")
    try:
        stamp = datetime.fromisoformat(f"{m[1]}{zone[:3]}:{zone[-2:]}")
    except ValueError:
        return None
    return stamp.timestamp() + float(m[2] or 0.0)


@dataclass(slots=True, eq=False, repr=False)
class ApiKey:
    """One key and its live counters. Only ``name`` and the masked secret show in its repr."""

    name: str
    secret: str
    in_flight: int = 0
    requests: int = 0
    errors: int = 0
    rate_limited: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cooldown_until: float = 0.0  # monotonic seconds; 0 = usable
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    credential: Any = None  # the Credential handed to the plugin (built once, on add)

    def __repr__(self) -> str:
        return f"ApiKey(name={self.name!r}, key={mask_secret(self.secret)!r})"


class KeyLease:
    """What :meth:`KeyPool.acquire` returns: the key, and the seconds to wait before using it
    (0 when it is usable now). Immutable."""

    __slots__ = ("key", "wait")
    key: ApiKey
    wait: float

    def __init__(self, key: ApiKey, wait: float) -> None:
        _set_key(self, key)  # slot setters: a frozen dataclass costs twice as much
        _set_wait(self, wait)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"KeyLease is immutable; cannot set {name!r}")

    def __repr__(self) -> str:
        return f"KeyLease(key={self.key!r}, wait={self.wait!r})"


_set_key = KeyLease.__dict__["key"].__set__
_set_wait = KeyLease.__dict__["wait"].__set__


def _strategy(value: str, provider: str | None) -> str:
    normalized = _STRATEGIES.get(value.replace("_", "-")) if isinstance(value, str) else None
    if normalized is None:
        raise ConfigurationError(
            f"unknown key strategy {value!r}; valid: 'round-robin', 'least-loaded'",
            provider=provider,
        )
    return normalized


class KeyPool:
    """Named API keys for one provider, handed out round-robin or least-loaded."""

    def __init__(
        self,
        strategy: str = "round-robin",
        *,
        clock: Clock = SYSTEM_CLOCK,
        provider: str | None = None,
        max_cooldown: float = DEFAULT_MAX_COOLDOWN,
    ) -> None:
        self._strategy = _strategy(strategy, provider)
        self._max_cooldown = _cooldown_cap(max_cooldown, provider)
        self._clock = clock
        self._provider = provider
        self._lock = threading.Lock()
        self._keys: dict[str, ApiKey] = {}
        self._order: list[ApiKey] = []
        self._middle = 0.0
        self._cursor = 0
        forks.register(self)

    def _after_fork(self) -> None:
        """In a forked child: the leases in flight belonged to the parent's threads."""
        self._lock = threading.Lock()
        for key in self._order:
            key.in_flight = 0

    @property
    def strategy(self) -> str:
        """``"round-robin"`` or ``"least-loaded"``."""
        return self._strategy

    @strategy.setter
    def strategy(self, value: str) -> None:
        self._strategy = _strategy(value, self._provider)

    @property
    def max_cooldown(self) -> float:
        """The longest a key rests after a 429 or spent rate-limit headers, in seconds."""
        return self._max_cooldown

    @max_cooldown.setter
    def max_cooldown(self, value: float) -> None:
        cap = _cooldown_cap(value, self._provider)
        with self._lock:
            self._max_cooldown = cap
            limit = self._clock.monotonic() + cap
            for key in self._order:  # a lower cap shortens cooldowns under way
                key.cooldown_until = min(key.cooldown_until, limit)

    def add(self, name: str, secret: str | Credential) -> None:
        """Add a key, or replace the secret of the key already called ``name``. A
        :class:`~ipfs_accelerate_py.calls.Credential` adds a credential of several parts
        (an access key id and its secret); its ``secret`` is the part that is masked."""
        from ipfs_accelerate_py.calls import Credential

        credential = secret if isinstance(secret, Credential) else None
        if credential is not None:
            secret = credential.secret
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(
                "API key name must be a non-empty string", provider=self._provider
            )
        if not isinstance(secret, str) or not secret.strip():
            raise ConfigurationError(f"API key {name!r} is empty", provider=self._provider)
        secret = secret.strip()  # a trailing newline read from a file must not reach a header
        if not secret.isprintable() or any(c.isspace() for c in secret):
            raise ConfigurationError(
                f"API key {name!r} contains whitespace or control characters",
                provider=self._provider,
            )
        if credential is None or credential.secret != secret:
            credential = (
                Credential(secret) if credential is None else evolve(credential, secret=secret)
            )
        with self._lock:
            key = self._keys.get(name)
            if key is not None:  # adding a key again replaces it and clears its state
                key.secret = secret
                key.credential = credential
                self._clear_state(key)
            else:
                self._keys[name] = ApiKey(name, secret, credential=credential)
                self._refresh()

    def reset(self, name: str) -> None:
        """Clear the key's cooldown and what rate-limit headers said remains, so it is
        usable at once (its counters of requests, tokens and cost are kept)."""
        with self._lock:
            key = self._keys.get(name)
            if key is None:
                raise self._unknown(name)
            self._clear_state(key)

    def _clear_state(self, key: ApiKey) -> None:
        key.cooldown_until = 0.0
        key.remaining_requests = key.remaining_tokens = None
        self._refresh()

    def remove(self, name: str) -> None:
        """Remove the key called ``name``; leases already handed out stay valid."""
        with self._lock:
            if self._keys.pop(name, None) is None:
                raise self._unknown(name)
            self._refresh()
            self._cursor = self._cursor % len(self._order) if self._order else 0

    def names(self) -> list[str]:
        """The key names, in rotation order."""
        return [key.name for key in self._order]

    def secrets(self) -> list[str]:
        """The key values, for redacting them from provider messages; never display these."""
        return [key.secret for key in self._order]

    def has_free(self, avoid: Collection[str] = ()) -> bool:
        """Whether a key outside ``avoid`` is usable now (not cooling down)."""
        now = self._clock.monotonic()
        with self._lock:
            return any(k.name not in avoid and k.cooldown_until <= now for k in self._order)

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, name: object) -> bool:
        return name in self._keys

    def __repr__(self) -> str:
        keys = ", ".join(map(repr, self._order))
        return f"KeyPool({self._provider!r}, strategy={self._strategy!r}, keys=[{keys}])"

    def acquire(self, name: str | None = None, *, avoid: Collection[str] = ()) -> KeyLease:
        """Pick a key and count it in flight; see the module docs for the rules.

        ``name`` pins that key (waiting out its cooldown). Otherwise keys in ``avoid`` and
        keys cooling down are skipped; if all candidates cool down, the one free first is
        returned with its ``wait``; if ``avoid`` excludes every key it is ignored.
        """
        now = self._clock.monotonic()
        with self._lock:
            if name is not None:
                key = self._keys.get(name)
                if key is None:
                    raise self._unknown(name)
            else:
                key = self._choose(now, avoid)
            key.in_flight += 1
            key.requests += 1
            wait = key.cooldown_until - now
        return KeyLease(key, wait if wait > 0.0 else 0.0)

    def _choose(self, now: float, avoid: Collection[str]) -> ApiKey:
        order = self._order
        n = len(order)
        if not n:
            raise ConfigurationError(
                f"no API key configured for {self._provider or 'this provider'}",
                provider=self._provider,
            )
        if avoid and all(k.name in avoid for k in order):
            avoid = ()
        round_robin = self._strategy == "round-robin"
        middle = self._middle  # least-loaded: an unknown remaining_requests ranks as the mean
        best = soonest = None
        best_left = 0.0
        for i in range(self._cursor, self._cursor + n):  # rotation order breaks ties
            key = order[i % n]
            if avoid and key.name in avoid:
                continue
            if key.cooldown_until > now:
                if soonest is None or key.cooldown_until < soonest.cooldown_until:
                    soonest = key
            elif round_robin:
                best = key
                break
            else:
                left = middle if key.remaining_requests is None else key.remaining_requests
                if (
                    best is None
                    or key.in_flight < best.in_flight
                    or (key.in_flight == best.in_flight and left > best_left)
                ):
                    best, best_left = key, left
        chosen = best or soonest
        assert chosen is not None
        self._cursor = (order.index(chosen) + 1) % n
        return chosen

    def _refresh(self) -> None:
        """Refresh the rotation list and the mean of the known remaining requests."""
        self._order = list(self._keys.values())
        known = [k.remaining_requests for k in self._order if k.remaining_requests is not None]
        self._middle = sum(known) / len(known) if known else 0.0

    def _unknown(self, name: str) -> ConfigurationError:
        known = ", ".join(repr(n) for n in self._keys) or "none"
        return ConfigurationError(
            f"unknown API key name {name!r}; known: {known}", provider=self._provider
        )

    def release(
        self,
        lease_or_key: KeyLease | ApiKey,
        *,
        ok: bool,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cost: float = 0.0,
    ) -> None:
        """End a use of a key: no longer in flight; count an error unless ``ok``; add usage."""
        key = lease_or_key.key if isinstance(lease_or_key, KeyLease) else lease_or_key
        with self._lock:
            if key.in_flight > 0:
                key.in_flight -= 1
            if not ok:
                key.errors += 1
            if prompt_tokens:
                key.prompt_tokens += token_count(prompt_tokens)
            if completion_tokens:
                key.completion_tokens += token_count(completion_tokens)
            if cost and cost > 0.0:
                key.cost += cost

    def cool_down(self, name: str, seconds: float) -> None:
        """After a 429: make ``name`` unusable for ``seconds`` (never shortening a later
        cooldown) and count it rate limited. Unknown names are ignored (key removed)."""
        with self._lock:
            key = self._keys.get(name)
            if key is not None:
                key.rate_limited += 1
                self._extend(key, seconds)

    def _extend(self, key: ApiKey, seconds: float) -> None:
        if seconds > 0:  # NaN compares False; inf and huge waits are capped
            seconds = min(seconds, self._max_cooldown)
            key.cooldown_until = max(key.cooldown_until, self._clock.monotonic() + seconds)

    def observe_headers(
        self, name: str, headers: Mapping[str, str], status: int | None = 200
    ) -> None:
        """Read OpenAI/Groq (``x-ratelimit-*``) or Anthropic (``anthropic-ratelimit-*``)
        rate-limit headers: store what remains, and cool the key down until the reset when
        requests or tokens are spent -- only for a successful (2xx) or 429 reply's headers
        (``status``; ``None``: unknown, no cooldown), and never beyond ``max_cooldown``.
        Unknown names are ignored."""
        remaining: dict[str, int] = {}
        resets: dict[str, str] = {}
        rate_header = _regex(_RATE_HEADER)
        for header, value in headers.items():
            m = rate_header.fullmatch(header.lower()) if "ratelimit" in header.lower() else None
            if m is None:
                continue
            field, kind = (m[1], m[2]) if m[1] else (m[4], m[3])
            if field == "reset":
                resets[kind] = value
            elif (count := _count(value)) is not None:
                remaining[kind] = count
        if not remaining:
            return
        tokens = [left for kind, left in remaining.items() if kind != "requests"]
        waits: list[float] = []
        if status is not None and (200 <= status < 300 or status == 429):
            now_wall = self._clock.time()
            waits = [
                _until(resets[k], now_wall) for k, v in remaining.items() if not v and k in resets
            ]
        with self._lock:
            key = self._keys.get(name)
            if key is None:
                return
            if "requests" in remaining:
                key.remaining_requests = remaining["requests"]
                self._refresh()
            key.remaining_tokens = min(tokens) if tokens else key.remaining_tokens
            if waits:
                self._extend(key, max(waits))

    def stats(self) -> dict[str, dict[str, Any]]:
        """Counters per key name; the key itself appears only masked."""
        now = self._clock.monotonic()
        with self._lock:
            return {
                k.name: {
                    "key": mask_secret(k.secret),
                    "requests": k.requests,
                    "in_flight": k.in_flight,
                    "errors": k.errors,
                    "rate_limited": k.rate_limited,
                    "prompt_tokens": k.prompt_tokens,
                    "completion_tokens": k.completion_tokens,
                    "tokens": k.prompt_tokens + k.completion_tokens,
                    "cost": k.cost,
                    "cooling_down_for": max(0.0, k.cooldown_until - now),
                    "remaining_requests": k.remaining_requests,
                    "remaining_tokens": k.remaining_tokens,
                }
                for k in self._order
            }


def _count(value: str) -> int | None:
    """A remaining-count header value as a non-negative int; ``None`` if it is not a number."""
    try:
        return max(0, int(float(value)))
    except (ValueError, OverflowError):
        return None


def _until(value: str, now_wall: float) -> float:
    """Seconds until a reset given as a duration (OpenAI, Groq) or an RFC 3339 timestamp
    (Anthropic); 0 if it is neither."""
    seconds = parse_duration(value)
    if seconds is not None:
        return seconds
    stamp = _parse_timestamp(value)
    return 0.0 if stamp is None else stamp - now_wall
