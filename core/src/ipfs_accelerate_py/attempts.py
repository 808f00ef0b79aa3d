"""One call's attempts: the decisions of the resilience pipeline, with no waiting and no I/O.

:class:`Attempts` passes the breaker and leases a credential before each attempt, and after
it accounts for the outcome (breaker, key pool, usage, retry budget) and decides whether and
when to try again. It knows no transport: the executors in :mod:`.executors` carry out an
attempt (an HTTP exchange, or a call into Python code), and the runners in :mod:`.pipeline`
only wait and iterate, once for threads and once for coroutines.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .calls import CallableCall, Credential, HttpCall
from .config import new_idempotency_key
from .errors import (
    APIStatusError,
    AuthenticationError,
    BackendError,
    CircuitOpenError,
    ConfigurationError,
    InvalidArgumentError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TimeoutError,
)
from .masking import redact, redact_data
from .resilience.breaker import CircuitState
from .resilience.gate import Priority
from .transport import error_from_exception, error_from_reply
from .types import Usage

if TYPE_CHECKING:
    from attrs import frozen
else:
    from .fastattrs import frozen

if TYPE_CHECKING:
    from .endpoint import Endpoint
    from .resilience.clock import Clock
    from .resilience.keys import KeyLease

log = logging.getLogger("ipfs_accelerate_py")
log.addHandler(logging.NullHandler())

__all__ = ["Attempts", "CallOptions", "PluginHooks", "new_request_id"]


def new_request_id() -> str:
    """A fresh request id, ``req_`` and 24 hex digits."""
    return "req_" + os.urandom(12).hex()


@frozen(slots=True)
class CallOptions:
    """Per-call pipeline options, split off the caller's keyword arguments."""

    request_id: str
    priority: Priority = Priority.NORMAL
    api_key_name: str | None = None
    timeout: float | None = None
    queue_timeout: float | None = None
    extra_headers: Any = None
    extra_body: Any = None
    extra_query: Any = None
    total_timeout: float | None = None
    operation: str | None = None  # the GenAI operation name, set only while observing
    obs: Any = None  # the call's observability.call.Observation, only while observing


@frozen(slots=True)
class PluginHooks:
    """The plugin's own say in an attempt: ``authorize(request, credential)`` places the
    credential on an HTTP request; ``refine(error)`` returns a more precise error for one
    core built (or ``None`` to keep it)."""

    authorize: Callable[[Any, Credential], None] | None = None
    refine: Callable[[BackendError], BackendError | None] | None = None


def _is_client_error(err: BackendError) -> bool:
    """A 3xx/4xx reply or a request we could not send: about the request, not the
    endpoint's health (whatever x-should-retry says)."""
    if isinstance(err, (InvalidArgumentError, ConfigurationError)):
        return True
    if isinstance(err, ServerError):  # a plugin may say a 4xx is the server failing (TGI 424)
        return False
    status = err.status_code
    if status is None:  # raised by a parser reading a 200 (a prompt blocked by a filter)
        return isinstance(err, (InvalidRequestError, AuthenticationError, NotFoundError))
    return isinstance(err, APIStatusError) and status is not None and 300 <= status < 500


def _when(delay: float, planned: float | None, keys: int) -> str:
    """How a retry will go, for the log line."""
    if delay:
        return f"in {delay:.2f}s"
    if keys > 1:
        return f"on another key (this one cools down for {planned or 0:.2f}s)"
    return f"once the key's rate-limit cooldown ends ({planned or 0:.2f}s)"


class Attempts:
    """The state of one call across its attempts: which key, how many retries, what to do
    with each outcome. It does no waiting and no I/O itself."""

    __slots__ = (
        "authorize",
        "avoid",
        "body",
        "call",
        "ep",
        "idempotency_key",
        "last_error",
        "lease",
        "obs",
        "opts",
        "refine",
        "retries",
        "shared_probe",
        "shared_tokens",
        "spec",
        "withdrawn",
    )

    def __init__(
        self,
        ep: Endpoint,
        call: HttpCall | CallableCall,
        opts: CallOptions,
        hooks: PluginHooks | None = None,
    ) -> None:
        self.ep = ep
        self.authorize = hooks.authorize if hooks is not None else None
        self.refine = hooks.refine if hooks is not None else None
        self.call = call
        self.opts = opts
        self.obs = opts.obs  # observability: None unless observing
        self.spec = ep.spec
        self.lease: KeyLease | None = None
        self.retries = 0
        self.withdrawn = 0
        self.shared_probe = False  # this attempt is the cluster's half-open probe
        self.shared_tokens = 0  # tokens reserved in the shared tpm bucket
        self.avoid: set[str] = set()
        self.last_error: BackendError | None = None
        self.body: Any = None  # the last decoded reply body (for next_page)
        # one per call, the same on every retry, for providers that honour one
        self.idempotency_key = new_idempotency_key() if self.spec.idempotency_header else None

    # -- before each attempt -----------------------------------------------------------
    def start(self, *, shared: bool = True) -> tuple[Credential | None, float]:
        """Pass the breaker and lease a credential. Returns (credential, wait): when
        ``wait`` > 0 every usable key is cooling down and the caller waits before sending.
        Whatever fails after the breaker admitted the call gives its reservations back.
        With shared state (``ep.shared``) the shared admission follows (``shared=False``
        skips it: :meth:`astart` asks it on the event loop)."""
        ep = self.ep
        if shared and ep.shared is not None:
            credential, wait = self.start(shared=False)
            return ep.shared.admit(self, credential, wait)
        if self.obs is not None:
            self.obs.attempt_begin(self)
        try:
            ep.breaker.before_call()
        except CircuitOpenError as open_error:
            last = self.last_error
            if last is None:
                raise
            # the breaker opened during this call's own retries: surface the real failure
            last.message += f" (not retried: {open_error.message})"
            last.retry_after = open_error.retry_after
            raise last from None
        try:
            if len(ep.keys):
                lease = ep.keys.acquire(self.opts.api_key_name, avoid=self.avoid)
                self.lease = lease
                if lease.wait > ep.retry.max_retry_after:
                    raise RateLimitError(
                        f"every usable API key is cooling down for another {lease.wait:.1f}s",
                        provider=self.spec.name,
                        request_id=self.opts.request_id,
                        retry_after=lease.wait,
                    )
                return lease.key.credential, lease.wait
            if self.spec.api_key_required:
                raise ep.missing_key()
            return None, 0.0
        except BaseException:
            self.abandoned()
            raise

    async def astart(self) -> tuple[Credential | None, float]:
        """:meth:`start` for a coroutine: the shared admission (if any) never blocks the loop."""
        if self.ep.shared is None:
            return self.start()
        credential, wait = self.start(shared=False)
        return await self.ep.shared.aadmit(self, credential, wait)

    def deadline(self) -> float | None:
        """The monotonic time by which this attempt's reply must be complete."""
        timeout = self.opts.timeout
        if timeout is None:
            timeout = self.ep.settings.timeout
        return time.monotonic() + timeout

    # -- after each attempt --------------------------------------------------------------
    @property
    def clock(self) -> Clock:
        """The endpoint's clock."""
        return self.ep.clock

    def succeeded(self, headers: Mapping[str, str], usage: Usage | None) -> None:
        """Account for a successful attempt."""
        ep = self.ep
        lease, self.lease = self.lease, None
        p = usage.prompt_tokens if usage else 0
        c = usage.completion_tokens if usage else 0
        cost = 0.0
        try:
            ep.breaker.on_success()
            ep.budget.on_success(self.withdrawn) if self.withdrawn else ep.budget.on_success()
            name = lease.key.name if lease is not None else None
            if name is not None and len(ep.keys) > 1:  # the headers matter only to choose
                ep.keys.observe_headers(name, headers)
            cost = ep.usage.record(
                self.call.model or "(no model)", p, c, endpoint_id=ep.id, key_name=name
            )
            if ep.shared is not None:
                ep.shared.succeeded(self, lease, usage, cost, headers)
        finally:
            if lease is not None:
                ep.keys.release(lease, ok=True, prompt_tokens=p, completion_tokens=c, cost=cost)
        if self.obs is not None:
            self.obs.attempt_ok(self, lease, usage, cost)

    def failed(
        self, err: BackendError, headers: Mapping[str, str] | None = None, *, retry: bool = True
    ) -> float:
        """Account for a failed attempt; return the delay before the next one, or raise
        ``err`` when it must not be retried (``retry=False``: a stream already under way)."""
        ep = self.ep
        if self.refine is not None:
            err = self._refined(err)
        secrets = ep.keys.secrets()
        err.message = redact(err.message, secrets)
        if err.code:
            err.code = redact(err.code, secrets)
        if err.provider_request_id:
            err.provider_request_id = redact(err.provider_request_id, secrets)
        if err.body is not None:
            err.body = redact_data(err.body, secrets)
        if err.request_id is None:
            err.request_id = self.opts.request_id
        self.last_error = err
        counted = not (isinstance(err, RateLimitError) or _is_client_error(err))
        if not counted:
            ep.breaker.on_ignored()
        else:
            ep.breaker.on_failure()
            if retry and ep.breaker.state is CircuitState.OPEN:
                retry = False  # this failure opened the circuit: waiting to retry is pointless
                err.message += " (not retried: the circuit breaker opened)"
                err.retry_after = err.retry_after or ep.breaker.reset_timeout
        rate_limited = isinstance(err, RateLimitError)
        lease, self.lease = self.lease, None
        name = lease.key.name if lease is not None else None
        if lease is not None:
            if headers is not None:
                ep.keys.observe_headers(lease.key.name, headers, status=err.status_code)
            ep.keys.release(lease, ok=False)
        ep.usage.record_failure(endpoint_id=ep.id, key_name=name)
        if self.obs is not None:
            self.obs.attempt_failed(self, err, lease)
        if ep.shared is not None:
            rest = 0.0
            if rate_limited and name is not None:
                rest = ep.retry.key_cooldown(err, ep.retry.delay_for(err, self.retries), 0)
            ep.shared.failed(self, lease, err, counted, rest)
        if not retry:
            raise err
        delay = ep.retry.delay_for(err, self.retries)
        planned = delay
        if rate_limited and name is not None:
            # the limited key cools down for the server's retry-after (or the backoff); the
            # retry goes at once to another free key, or, with none free, start() waits out
            # the first cooldown, so the retry-after is honoured either way
            planned = ep.retry.key_cooldown(err, delay, self.retries)
            ep.keys.cool_down(name, planned)
            self.avoid.add(name)
            pinned = self.opts.api_key_name is not None
            if delay is not None:
                delay = 0.0
            elif (
                not pinned
                and err.retryable
                and self.retries < ep.retry.max_retries
                and ep.keys.has_free(self.avoid)
            ):
                delay = 0.0  # a long retry-after on this key; another key is free now
        if delay is None:
            raise err
        cost = ep.budget.try_acquire(timeout=isinstance(err, TimeoutError))
        if cost and ep.shared is not None:
            cost = ep.shared.retry_withdraw(ep.budget, cost)
        if not cost:
            err.message += " (not retried: the endpoint's retry budget is exhausted)"
            raise err
        self.withdrawn += cost
        self.retries += 1
        if self.obs is not None:
            self.obs.retrying(self, err, delay)
        log.warning(
            "%s [%s]: retry %d/%d %s after %s",
            self.spec.name,
            self.opts.request_id,
            self.retries,
            ep.retry.max_retries,
            _when(delay, planned, len(ep.keys)),
            err,
        )
        return delay

    def _refined(self, err: BackendError) -> BackendError:
        assert self.refine is not None
        try:
            better = self.refine(err)
        except Exception:  # a faulty hook must not hide the real error
            log.exception("%s: the plugin's refine_error hook failed", self.spec.name)
            return err
        if better is None or better is err:
            return err
        for name in ("provider", "status_code", "request_id", "provider_request_id", "body"):
            if getattr(better, name) is None:
                setattr(better, name, getattr(err, name))
        if better.retry_after is None:
            better.retry_after = err.retry_after
        return better

    def usage_of(self, result: Any, headers: Mapping[str, str] | None = None) -> Usage | None:
        """The usage a successful result reports (or, failing that, its reply's headers)."""
        call = self.call
        usage = call.usage_of(result) if call.usage_of else getattr(result, "usage", None)
        if usage is None and headers and isinstance(call, HttpCall) and call.usage_headers:
            usage = call.usage_headers(headers)
        return usage

    def abandoned(self, *, sent: bool = False, usage: Usage | None = None) -> None:
        """The caller went away (cancelled, or closed a stream early): the breaker counts
        nothing; a request that reached the server is recorded with the tokens known so far,
        since the provider did (and bills) the work."""
        ep = self.ep
        ep.breaker.on_ignored()
        if self.obs is not None:
            self.obs.attempt_abandoned(self, sent)
        lease, self.lease = self.lease, None
        name = lease.key.name if lease is not None else None
        p = usage.prompt_tokens if usage else 0
        c = usage.completion_tokens if usage else 0
        cost = 0.0
        try:
            if sent:
                cost = ep.usage.record(
                    self.call.model or "(no model)", p, c, endpoint_id=ep.id, key_name=name
                )
            if ep.shared is not None:
                ep.shared.abandoned(self, lease, usage, sent)
        finally:
            if lease is not None:
                ep.keys.release(lease, ok=True, prompt_tokens=p, completion_tokens=c, cost=cost)

    def error_reply(self, status: int, headers: Mapping[str, str], content: bytes) -> BackendError:
        """The error for an HTTP error status (or a redirect, which is never followed)."""
        if 300 <= status < 400:
            location = redact(headers.get("location", "(none)"), self.ep.keys.secrets())
            return InvalidRequestError(
                f"the server redirected the request to {location[:300]}; redirects are not "
                "followed (the credentials would go along): set the base URL to the new address",
                provider=self.spec.name,
                status_code=status,
                request_id=self.opts.request_id,
            )
        return error_from_reply(
            status,
            headers,
            content,
            provider=self.spec.name,
            request_id=self.opts.request_id,
            secrets=self.ep.keys.secrets(),
            now=self.ep.clock.time(),
        )

    def wrap(self, exc: Exception, *, streaming: bool = False) -> BackendError:
        """Translate a transport exception."""
        return error_from_exception(
            exc,
            provider=self.spec.name,
            request_id=self.opts.request_id,
            streaming=streaming,
            url=self.ep.settings.base_url,
        )
