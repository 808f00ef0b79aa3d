"""One call's attempts: the decisions of the resilience pipeline, with no waiting and no I/O.

:class:`Attempts` passes the breaker, leases a key, builds the request, and after each
attempt accounts for the outcome (breaker, key pool, usage, retry budget) and decides whether
and when to try again. The runners in :mod:`.pipeline` only send, wait and iterate, once for
threads and once for coroutines, so the two paths cannot drift apart.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import attrs

from .calls import HttpCall
from .errors import (
    APIStatusError,
    BackendError,
    CircuitOpenError,
    ConfigurationError,
    InvalidArgumentError,
    MalformedResponseError,
    RateLimitError,
    TimeoutError,
)
from .masking import redact, redact_data
from .resilience.breaker import CircuitState
from .resilience.gate import Priority
from .transport import error_from_exception, error_from_reply, parse_json
from .types import Usage

if TYPE_CHECKING:
    import httpx

    from .endpoint import Endpoint
    from .resilience.keys import KeyLease

log = logging.getLogger("ipfs_accelerate_py")
log.addHandler(logging.NullHandler())

__all__ = ["Attempts", "CallOptions", "new_request_id"]


def new_request_id() -> str:
    """A fresh request id, ``req_`` and 24 hex digits."""
    return "req_" + os.urandom(12).hex()


@attrs.frozen(slots=True)
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


def _is_client_error(err: BackendError) -> bool:
    """A 4xx reply or a request we could not send: about the request, not the endpoint's
    health (whatever x-should-retry says)."""
    if isinstance(err, (InvalidArgumentError, ConfigurationError)):
        return True
    status = err.status_code
    return isinstance(err, APIStatusError) and status is not None and 400 <= status < 500


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
        "avoid",
        "body",
        "call",
        "ep",
        "last_error",
        "lease",
        "opts",
        "retries",
        "spec",
        "withdrawn",
    )

    def __init__(self, ep: Endpoint, call: HttpCall, opts: CallOptions) -> None:
        self.ep = ep
        self.call = call
        self.opts = opts
        self.spec = ep.spec
        self.lease: KeyLease | None = None
        self.retries = 0
        self.withdrawn = 0
        self.avoid: set[str] = set()
        self.last_error: BackendError | None = None
        self.body: Any = None  # the last decoded reply body (for next_page)

    # -- before each attempt -----------------------------------------------------------
    def start(self, client: httpx.Client | httpx.AsyncClient) -> tuple[httpx.Request, float]:
        """Pass the breaker, pick a key, build the request. Returns (request, wait): when
        ``wait`` > 0 every usable key is cooling down and the caller waits before sending.
        Whatever fails after the breaker admitted the call gives its reservations back."""
        ep = self.ep
        try:
            ep.breaker.before_call()
        except CircuitOpenError as open_error:
            last = self.last_error
            if last is None:
                raise
            # the breaker opened during this call's own retries: surface the real failure
            last.message += f" (not retried: {open_error.message})"
            last.retry_after = open_error.retry_after
            last.args = (last._render(),)
            raise last from None
        wait = 0.0
        secret = None
        try:
            if len(ep.keys):
                lease = ep.keys.acquire(self.opts.api_key_name, avoid=self.avoid)
                self.lease = lease
                wait = lease.wait
                if wait > ep.retry.max_retry_after:
                    raise RateLimitError(
                        f"every usable API key is cooling down for another {wait:.1f}s",
                        provider=self.spec.name,
                        request_id=self.opts.request_id,
                        retry_after=wait,
                    )
                secret = lease.key.secret
            elif self.spec.api_key_required:
                raise ep.missing_key()
            return self._build(client, secret), wait
        except BaseException:
            self.abandoned()
            raise

    def _build(self, client: httpx.Client | httpx.AsyncClient, secret: str | None) -> httpx.Request:
        call, opts = self.call, self.opts
        headers = self.spec.auth_headers(secret)
        if self.spec.request_id_header:
            headers[self.spec.request_id_header] = opts.request_id
        if call.headers:
            headers.update(call.headers)
        if opts.extra_headers:
            headers.update(opts.extra_headers)
        body = call.json
        if opts.extra_body:
            if not isinstance(body, dict):
                raise InvalidArgumentError("extra_body needs a call with a JSON object body")
            body = {**body, **opts.extra_body}
        params = call.params
        if opts.extra_query:
            params = {**(params or {}), **opts.extra_query}
        extensions = None
        if opts.timeout is not None:
            t = opts.timeout
            extensions = {"timeout": {"connect": min(5.0, t), "read": t, "write": t, "pool": t}}
        try:
            return client.build_request(
                call.method,
                self.ep.transport.url(call.path),
                json=body,
                params=params,
                headers=headers,
                extensions=extensions,
            )
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(
                f"the request could not be encoded: {exc}",
                provider=self.spec.name,
                request_id=opts.request_id,
            ) from None

    # -- after each attempt --------------------------------------------------------------
    def succeeded(self, headers: httpx.Headers, usage: Usage | None) -> None:
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
        finally:
            if lease is not None:
                ep.keys.release(lease, ok=True, prompt_tokens=p, completion_tokens=c, cost=cost)

    def failed(
        self, err: BackendError, headers: httpx.Headers | None = None, *, retry: bool = True
    ) -> float:
        """Account for a failed attempt; return the delay before the next one, or raise
        ``err`` when it must not be retried (``retry=False``: a stream already under way)."""
        ep = self.ep
        secrets = ep.keys.secrets()
        err.message = redact(err.message, secrets)
        if err.code:
            err.code = redact(err.code, secrets)
        if err.body is not None:
            err.body = redact_data(err.body, secrets)
        if err.request_id is None:
            err.request_id = self.opts.request_id
        err.args = (err._render(),)
        self.last_error = err
        if isinstance(err, RateLimitError) or _is_client_error(err):
            ep.breaker.on_ignored()
        else:
            ep.breaker.on_failure()
            if retry and ep.breaker.state is CircuitState.OPEN:
                retry = False  # this failure opened the circuit: waiting to retry is pointless
                err.message += " (not retried: the circuit breaker opened)"
                err.retry_after = err.retry_after or ep.breaker.reset_timeout
                err.args = (err._render(),)
        rate_limited = isinstance(err, RateLimitError)
        lease, self.lease = self.lease, None
        name = lease.key.name if lease is not None else None
        if lease is not None:
            if headers is not None:
                ep.keys.observe_headers(lease.key.name, headers)
            ep.keys.release(lease, ok=False)
        ep.usage.record_failure(endpoint_id=ep.id, key_name=name)
        if not retry:
            raise err
        delay = ep.retry.delay_for(err, self.retries)
        planned = delay
        if rate_limited and name is not None:
            # the limited key cools down for the server's retry-after (or the backoff); the
            # retry goes at once to another free key, or, with none free, start() waits out
            # the first cooldown, so the retry-after is honoured either way
            planned = err.retry_after or delay or ep.retry.backoff(self.retries)
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
        if not cost:
            err.message += " (not retried: the endpoint's retry budget is exhausted)"
            err.args = (err._render(),)
            raise err
        self.withdrawn += cost
        self.retries += 1
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

    def finish(self, response: httpx.Response) -> tuple[bool, Any]:
        """Account for a complete reply: ``(True, result)`` on success, ``(False, delay)``
        to try again; raises when the call must not be retried."""
        content = response.content
        if response.status_code >= 400:
            return False, self.failed(self.error_reply(response, content), response.headers)
        try:
            result = self.parse(response, content)
        except BackendError as err:  # a malformed reply is a failure like any other
            return False, self.failed(err, response.headers)
        call = self.call
        usage = call.usage_of(result) if call.usage_of else getattr(result, "usage", None)
        self.succeeded(response.headers, usage)
        return True, result

    def abandoned(self) -> None:
        """The caller went away (cancelled, or closed a stream early): count nothing."""
        self.ep.breaker.on_ignored()
        if self.lease is not None:
            self.ep.keys.release(self.lease, ok=True)
            self.lease = None

    def error_reply(self, response: httpx.Response, content: bytes) -> BackendError:
        """The error for an HTTP error status."""
        return error_from_reply(
            response.status_code,
            response.headers,
            content,
            provider=self.spec.name,
            request_id=self.opts.request_id,
            secrets=self.ep.keys.secrets(),
            now=self.ep.clock.time(),
        )

    def parse(self, response: httpx.Response, content: bytes) -> Any:
        """Read a successful reply with the call's parser."""
        call = self.call
        body: Any = content
        if call.json_reply:
            body = parse_json(content, provider=self.spec.name)
        self.body = body
        if call.parse is None:
            return body
        try:
            return call.parse(body)
        except BackendError as err:
            err.request_id = err.request_id or self.opts.request_id
            err.provider = err.provider or self.spec.name
            err.args = (err._render(),)
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedResponseError(
                f"the reply does not have the expected shape ({type(exc).__name__}: {exc}); "
                f"body starts {content[:200]!r}",
                provider=self.spec.name,
                request_id=self.opts.request_id,
            ) from None

    def wrap(self, exc: Exception, *, streaming: bool = False) -> BackendError:
        """Translate a transport exception."""
        return error_from_exception(
            exc, provider=self.spec.name, request_id=self.opts.request_id, streaming=streaming
        )
