"""An endpoint: one server address with its own connections, queue, breaker and keys.

Every backend has a default endpoint built from its settings; ``create_endpoint`` adds more
(another key, another base URL, other limits). Calls pick one with ``endpoint_id=``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import BackendSpec, Settings, missing_key_error
from .errors import ConfigurationError
from .fastattrs import evolve
from .masking import mask_url
from .resilience.breaker import CircuitBreaker
from .resilience.clock import Clock
from .resilience.gate import PriorityGate
from .resilience.keys import KeyPool
from .resilience.retry import RetryBudget, RetryPolicy
from .resilience.usage import UsageTracker
from .transport import Transport

if TYPE_CHECKING:
    from .resilience.shared import SharedConfig, SharedEndpoint

__all__ = ["POLICY_DEFAULTS", "POLICY_NAMES", "Endpoint"]

# An endpoint's resilience policy: the settings it accepts, with their defaults (the
# quickstart guide's names). "Settings" (config.Settings) are where and how to connect;
# "policy" is how calls behave there; "CallOptions" are one call's own options.
POLICY_DEFAULTS: dict[str, Any] = {
    "max_concurrent_requests": 5,
    "queue_size": 100,
    "queue_enabled": True,
    "max_retries": 5,
    "initial_retry_delay": 1.0,
    "backoff_factor": 2.0,
    "max_retry_delay": 60.0,
    "max_retry_after": 60.0,
    "failure_threshold": 5,
    "reset_timeout": 30.0,
    "success_threshold": 3,
    "key_selection_strategy": "round-robin",
    "max_key_cooldown": 300.0,
}
_ALIASES = {
    "circuit_failure_threshold": "failure_threshold",
    "circuit_reset_timeout": "reset_timeout",
    "circuit_success_threshold": "success_threshold",
}


POLICY_NAMES = frozenset(POLICY_DEFAULTS) | frozenset(_ALIASES)


def normalize_policy(values: dict[str, Any]) -> dict[str, Any]:
    """Resolve aliases and reject unknown policy names with the list of valid ones."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = _ALIASES.get(key, key)
        if name not in POLICY_DEFAULTS:
            valid = ", ".join(sorted([*POLICY_DEFAULTS, *_ALIASES]))
            raise ConfigurationError(f"unknown endpoint setting {key!r}; valid settings: {valid}")
        out[name] = value
    return out


class Endpoint:
    """A server address with its own transport, priority gate, breaker, key pool and retry
    settings; usage is recorded in the backend's tracker under this endpoint's id."""

    def __init__(
        self,
        endpoint_id: str,
        spec: BackendSpec,
        settings: Settings,
        *,
        usage: UsageTracker,
        clock: Clock,
        policy: dict[str, Any] | None = None,
        shared: SharedConfig | None = None,
    ) -> None:
        opts = {**POLICY_DEFAULTS, **normalize_policy(policy or {})}
        self.id = endpoint_id
        self.spec = spec
        self.settings = settings
        self.clock = clock
        self.usage = usage
        self.transport = Transport(
            settings.base_url,
            timeout=settings.timeout,
            connect_timeout=settings.connect_timeout,
            headers=spec.default_headers,
        )
        self.gate = PriorityGate(
            opts["max_concurrent_requests"],
            opts["queue_size"],
            enabled=opts["queue_enabled"],
            name=f"{spec.name}:{endpoint_id}",
        )
        self.breaker = CircuitBreaker(
            opts["failure_threshold"],
            opts["reset_timeout"],
            opts["success_threshold"],
            clock=clock,
            name=f"{spec.name}:{endpoint_id}",
            provider=spec.name,
        )
        self.keys = KeyPool(
            opts["key_selection_strategy"],
            clock=clock,
            provider=spec.name,
            max_cooldown=opts["max_key_cooldown"],
        )
        if settings.api_key:
            self.keys.add("default", settings.api_key)
        self.retry = RetryPolicy(
            max_retries=opts["max_retries"],
            initial_retry_delay=opts["initial_retry_delay"],
            backoff_factor=opts["backoff_factor"],
            max_retry_delay=opts["max_retry_delay"],
            max_retry_after=opts["max_retry_after"],
        )
        self.budget = RetryBudget()
        # shared state (resilience/shared.py): None keeps everything in this process
        self.shared: SharedEndpoint | None = None
        if shared is not None:
            from .resilience.shared import ClusterCap, SharedEndpoint

            scope = f"{spec.name}:{endpoint_id}"
            self.shared = SharedEndpoint(shared, scope, opts)
            self.gate.cluster = ClusterCap(shared.store, scope, self.gate)

    def __repr__(self) -> str:
        url = mask_url(self.settings.base_url)
        return f"Endpoint({self.id!r}, {url!r}, keys={self.keys.names()})"

    def with_settings(self, **changes: Any) -> Settings:
        """This endpoint's settings with some fields replaced."""
        return evolve(self.settings, **changes)

    def missing_key(self) -> ConfigurationError:
        """The error for a call made with no key configured."""
        return missing_key_error(self.spec)

    def policy(self) -> dict[str, Any]:
        """The endpoint's current resilience policy, by the quickstart guide's names."""
        return {
            "max_concurrent_requests": self.gate.max_concurrent,
            "queue_size": self.gate.queue_size,
            "queue_enabled": self.gate.enabled,
            "max_retries": self.retry.max_retries,
            "initial_retry_delay": self.retry.initial_retry_delay,
            "backoff_factor": self.retry.backoff_factor,
            "max_retry_delay": self.retry.max_retry_delay,
            "max_retry_after": self.retry.max_retry_after,
            "failure_threshold": self.breaker.failure_threshold,
            "reset_timeout": self.breaker.reset_timeout,
            "success_threshold": self.breaker.success_threshold,
            "key_selection_strategy": self.keys.strategy,
            "max_key_cooldown": self.keys.max_cooldown,
        }
