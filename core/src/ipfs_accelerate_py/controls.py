"""A backend's endpoints, keys, settings and status, by the quickstart guide's names.

``client.max_retries = 5``, ``client.create_endpoint(...)``, ``client.add_api_key(...)``,
``client.get_queue_info()``, ``client.circuit_state``... live here, as a mixin of
:class:`~.backend.Backend`; each setting reads and writes the default endpoint's component.
"""

from __future__ import annotations

import itertools
import threading
from typing import TYPE_CHECKING, Any

from .config import seconds_setting
from .endpoint import Endpoint, normalize_policy
from .errors import ConfigurationError

if TYPE_CHECKING:
    from .calls import Credential
    from .config import BackendSpec
    from .resilience.clock import Clock
    from .resilience.shared import SharedConfig
    from .resilience.usage import UsageTracker

__all__ = ["EndpointControls"]


class _EndpointSetting:
    """A quickstart-guide setting (``client.max_retries = 5``) that reads and writes the
    default endpoint's component attribute."""

    def __init__(self, component: str, attribute: str, doc: str) -> None:
        self.component = component
        self.attribute = attribute
        self.__doc__ = doc

    def __get__(self, obj: EndpointControls | None, owner: type) -> Any:
        if obj is None:
            return self
        return getattr(getattr(obj.default_endpoint, self.component), self.attribute)

    def __set__(self, obj: EndpointControls, value: Any) -> None:
        setattr(getattr(obj.default_endpoint, self.component), self.attribute, value)


class EndpointControls:
    """Endpoint, key, settings and status methods shared by every backend."""

    name: str
    spec: BackendSpec
    clock: Clock
    usage: UsageTracker
    default_endpoint: Endpoint
    endpoints: dict[str, Endpoint]
    _lock: threading.Lock
    _ids: itertools.count[int]
    shared_config: SharedConfig | None  # shared state (resilience/shared.py), None: none

    max_concurrent_requests = _EndpointSetting("gate", "max_concurrent", "Calls in flight at once.")
    queue_size = _EndpointSetting("gate", "queue_size", "Callers allowed to wait for a slot.")
    queue_enabled = _EndpointSetting("gate", "enabled", "False admits every call at once.")
    max_retries = _EndpointSetting("retry", "max_retries", "Retries after the first attempt.")
    initial_retry_delay = _EndpointSetting("retry", "initial_retry_delay", "First backoff, s.")
    backoff_factor = _EndpointSetting("retry", "backoff_factor", "Backoff multiplier.")
    max_retry_delay = _EndpointSetting("retry", "max_retry_delay", "Longest backoff, s.")
    max_retry_after = _EndpointSetting("retry", "max_retry_after", "Longest Retry-After obeyed.")
    failure_threshold = _EndpointSetting("breaker", "failure_threshold", "Failures that open.")
    circuit_failure_threshold = failure_threshold
    reset_timeout = _EndpointSetting("breaker", "reset_timeout", "Seconds open before a probe.")
    circuit_reset_timeout = reset_timeout
    circuit_success_threshold = _EndpointSetting(
        "breaker", "success_threshold", "Probe successes that close the circuit."
    )
    key_selection_strategy = _EndpointSetting(
        "keys", "strategy", "'round-robin' or 'least-loaded'."
    )
    max_key_cooldown = _EndpointSetting(
        "keys", "max_cooldown", "Longest a key rests after a 429 or spent rate limit, s."
    )

    # -- endpoints and keys -----------------------------------------------------------------
    def create_endpoint(
        self,
        *,
        api_key: str | Credential | None = None,
        base_url: str | None = None,
        endpoint_id: str | None = None,
        timeout: float | None = None,
        **settings: Any,
    ) -> str:
        """Add an endpoint with its own key, address, queue, breaker and retry settings
        (unset ones are copied from the default endpoint); returns its id."""
        from .config import normalize_endpoint_url

        base = self.default_endpoint
        changes: dict[str, Any] = {}
        if api_key is not None:
            changes["api_key"] = api_key
        if base_url is not None:
            changes["base_url"] = normalize_endpoint_url(self.spec, base_url)
        if timeout is not None:
            changes["timeout"] = seconds_setting(timeout, "timeout", parse_text=True)
        shared = self.shared_config
        if any(name in settings for name in ("shared_state", "rpm", "tpm", "rate_window")):
            from .resilience.shared import pop_shared_settings

            shared = pop_shared_settings(settings)
        policy = {**base.policy(), **normalize_policy(settings)}
        with self._lock:
            eid = endpoint_id or f"endpoint-{next(self._ids)}"
            if eid in self.endpoints:
                raise ConfigurationError(f"endpoint {eid!r} already exists on {self.name}")
            ep = Endpoint(
                eid,
                self.spec,
                base.with_settings(**changes),
                usage=self.usage,
                clock=self.clock,
                policy=policy,
                shared=shared,
            )
            self.endpoints[eid] = ep
        return eid

    def add_api_key(
        self, name: str, key: str | Credential, *, endpoint_id: str | None = None
    ) -> None:
        """Add a named key to the (default) endpoint's pool for multiplexing."""
        self._endpoint(endpoint_id).keys.add(name, key)

    def reset_api_key(self, name: str, *, endpoint_id: str | None = None) -> None:
        """Make a key usable at once: clear its cooldown and rate-limit state (adding the
        key again with ``add_api_key`` does the same)."""
        self._endpoint(endpoint_id).keys.reset(name)

    def _endpoint(self, endpoint_id: str | None) -> Endpoint:
        if endpoint_id is None:
            return self.default_endpoint
        try:
            return self.endpoints[endpoint_id]
        except KeyError:
            raise ConfigurationError(
                f"no endpoint {endpoint_id!r} on {self.name}; endpoints: {list(self.endpoints)}"
            ) from None

    # -- status -----------------------------------------------------------------------------
    @property
    def circuit_state(self) -> str:
        """The default endpoint's circuit state: CLOSED, OPEN or HALF_OPEN."""
        return self.default_endpoint.breaker.state.value

    def get_circuit_state(self, endpoint_id: str | None = None) -> str:
        """An endpoint's circuit state: CLOSED, OPEN or HALF_OPEN."""
        return self._endpoint(endpoint_id).breaker.state.value

    def get_circuit_metrics(self, endpoint_id: str | None = None) -> dict[str, Any]:
        """recent_failures, failure_rate (percent), state and timestamps of an endpoint."""
        return self._endpoint(endpoint_id).breaker.metrics()

    def get_queue_info(self, endpoint_id: str | None = None) -> dict[str, int]:
        """size (waiting), active_requests and capacity of an endpoint's queue."""
        return self._endpoint(endpoint_id).gate.info()

    def get_queue_status(self, endpoint_id: str | None = None) -> dict[str, int]:
        """Waiting callers per priority: high_priority, normal_priority, low_priority."""
        return self._endpoint(endpoint_id).gate.status()

    def get_key_usage_stats(self, endpoint_id: str | None = None) -> dict[str, dict[str, Any]]:
        """Per key (masked): requests, tokens, cost, errors, in flight, cooldown."""
        return self._endpoint(endpoint_id).keys.stats()

    def get_usage_stats(self, endpoint_id: str | None = None) -> dict[str, Any]:
        """total_requests, tokens, estimated_cost_usd: of the backend, or one endpoint."""
        if endpoint_id is not None:
            self._endpoint(endpoint_id)
        return self.usage.stats(endpoint_id=endpoint_id)

    def reset_usage_stats(self) -> None:
        """Clear the usage counters."""
        self.usage.reset()
