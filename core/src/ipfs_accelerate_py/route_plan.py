"""One routed call's decisions: which deployment next, whether an error falls back, budgets.

:class:`RoutePlan` does no I/O and no waiting (as :class:`~.attempts.Attempts` for one
backend): :meth:`RoutePlan.next` picks and reserves a deployment or says how long to wait for
the first to come back; :meth:`RoutePlan.failed` accounts for an error and decides whether
the call moves on (and along which chain); :meth:`RoutePlan.succeeded` settles the attempt.
The router's sync, async and streaming runners share it.

Fallback rules. Tried, in order: the alias's other deployments, then each alias of
``fallbacks[alias]``. Errors that move on: rate limit, overloaded and other server errors,
timeouts, dropped connections, open breakers, full queues, malformed or schema-invalid
replies, and a deployment's own misconfiguration (authentication, not found). A context
window error moves to ``context_window_fallbacks[alias]`` only; a content filter (an error
or a reply with ``finish_reason="content_filter"``) to ``content_policy_fallbacks[alias]``
only. Anything else (a bad request, a budget) is raised at once. Every deployment is tried
at most once per call.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from .budgets import Budget, BudgetExceededError, Reservation, estimate_tokens
from .errors import (
    AuthenticationError,
    BackendError,
    CircuitOpenError,
    ConflictError,
    ConnectionError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    OverloadedError,
    QueueFullError,
    RateLimitError,
    ServerError,
    TimeoutError,
)
from .router_types import NoDeploymentAvailableError, RouteAttempt
from .routing import Deployment, choose
from .types import Message, Usage

if TYPE_CHECKING:
    from .router import Router

__all__ = ["FALLBACK_ERRORS", "RoutePlan", "is_content_filter", "is_context_window"]

FALLBACK_ERRORS: tuple[type[BackendError], ...] = (
    RateLimitError,
    ServerError,
    TimeoutError,
    ConnectionError,
    CircuitOpenError,
    QueueFullError,
    ConflictError,
    MalformedResponseError,
    AuthenticationError,
    NotFoundError,
    NoDeploymentAvailableError,
)
_CONTEXT_MARKERS = (
    "context_length",
    "context length",
    "context window",
    "maximum context",
    "prompt is too long",
    "too many tokens",
    "input is too long",
    "exceeds the maximum number of tokens",
    "reduce the length",
)
_FILTER_MARKERS = ("content_filter", "content_policy", "content policy", "safety", "blocked")


def _text_of(err: BackendError) -> str:
    return f"{err.code or ''} {err.message}".lower()


def is_context_window(err: BackendError) -> bool:
    """Whether a provider refused the request for being longer than the model's context."""
    return isinstance(err, InvalidRequestError) and any(
        m in _text_of(err) for m in _CONTEXT_MARKERS
    )


def is_content_filter(err: BackendError) -> bool:
    """Whether a provider refused the request by its content policy."""
    return isinstance(err, InvalidRequestError) and any(m in _text_of(err) for m in _FILTER_MARKERS)


class RoutePlan:
    """The state of one routed call across its attempts."""

    __slots__ = (
        "alias",
        "attempts",
        "budget_values",
        "deadline",
        "groups",
        "last_error",
        "reason",
        "reservation",
        "router",
        "started",
        "tried",
    )

    def __init__(
        self,
        router: Router,
        alias: str,
        deadline: float | None,
        budget_values: dict[str, list[str]] | None,
    ) -> None:
        self.router = router
        self.alias = alias
        self.groups: list[str] = router._chains[alias]
        self.tried: set[str] = set()
        self.attempts: list[RouteAttempt] = []
        self.last_error: BackendError | None = None
        self.reason = "primary"
        now = router.clock.monotonic()
        self.deadline = now + (router.wait_timeout if deadline is None else deadline)
        self.budget_values = budget_values
        self.reservation: Reservation | None = None
        self.started = 0.0

    # -- choosing ---------------------------------------------------------------------------
    def next(self) -> tuple[Deployment | None, float]:
        """A reserved deployment to try now, or ``(None, seconds)`` to wait for the first one
        to come back. Raises when the chain is exhausted or the wait would pass the deadline."""
        router = self.router
        now = router.clock.monotonic()
        soonest = math.inf
        with router._lock:
            for alias in self.groups:
                ready = []
                for dep in router._aliases.get(alias, ()):
                    if dep.id in self.tried:
                        continue
                    at = dep.available_at(now)
                    if at <= now:
                        ready.append(dep)
                    elif at < soonest:
                        soonest = at
                if ready:
                    router._tick += 1
                    dep = choose(router.strategy, ready, now, router._tick)
                    dep.reserve(now, 0.0, router._tick)
                    self.tried.add(dep.id)
                    self.started = time.perf_counter()
                    return dep, 0.0
        if soonest is math.inf:
            raise self.exhausted()
        wait = soonest - now
        if soonest > self.deadline:
            err = NoDeploymentAvailableError(
                f"every deployment for {self.alias!r} is cooling down, rate limited or open; "
                f"the first comes back in {wait:.1f}s, after this call's deadline",
                retry_after=wait,
            )
            raise self.finish_error(err)
        return None, wait

    def exhausted(self) -> BackendError:
        """The error that ends a call with nothing left to try: the last real one."""
        if self.last_error is not None:
            return self.finish_error(self.last_error)
        known = ", ".join(sorted(self.router._aliases)) or "none"
        return self.finish_error(
            NoDeploymentAvailableError(f"no deployment for {self.alias!r}; aliases: {known}")
        )

    def finish_error(self, err: BackendError) -> BackendError:
        """Attach the attempts to the error the call raises."""
        err.attempts = tuple(self.attempts)  # type: ignore[attr-defined]
        return err

    # -- budgets ----------------------------------------------------------------------------
    def reserve_budget(
        self,
        dep: Deployment,
        messages: list[Message] | None,
        params: dict[str, Any],
        completion: int | None = None,
    ) -> None:
        """Reserve this attempt's estimated spend, or raise :class:`BudgetExceededError`.
        ``completion`` overrides the completion estimate (0 for embeddings)."""
        router = self.router
        if not router.budgets or not self.budget_values:
            return
        applying: list[tuple[Budget, str]] = []
        for budget in router.budgets:
            applying.extend((budget, value) for value in budget.applies(self.budget_values))
        if not applying:
            return
        limit = params.get("max_tokens", params.get("max_completion_tokens"))
        prompt, guess = estimate_tokens(messages or (), limit, router.default_completion_tokens)
        completion = guess if completion is None else completion
        cost = router.cost(dep, prompt, completion)
        try:
            self.reservation = router.budget_store.reserve(
                applying, cost, prompt + completion, router.clock.time()
            )
        except BudgetExceededError as err:
            self.release(dep)
            raise self.finish_error(err) from None

    def _settle(self, dep: Deployment, usage: Usage | None) -> None:
        reservation, self.reservation = self.reservation, None
        if reservation is None:
            return
        if usage is None:
            self.router.budget_store.settle(reservation, reservation.cost, reservation.tokens)
            return
        cost = self.router.cost(dep, usage.prompt_tokens, usage.completion_tokens)
        self.router.budget_store.settle(reservation, cost, usage.total_tokens)

    # -- outcomes ---------------------------------------------------------------------------
    def release(self, dep: Deployment) -> None:
        """End the deployment's reservation without an outcome (the caller went away; a
        budget reservation is charged its estimate, since the request may have been sent)."""
        with self.router._lock:
            dep.in_flight -= 1
        self._settle(dep, None)

    def _record(
        self,
        dep: Deployment,
        outcome: str,
        err: str | None,
        usage: Usage | None,
        ttft: float | None,
    ) -> None:
        latency = time.perf_counter() - self.started
        self.attempts.append(
            RouteAttempt(
                dep.id,
                dep.backend.name,
                dep.model,
                dep.alias,
                self.reason,
                outcome,
                err,
                latency,
                usage,
            )
        )
        cost = (
            0.0
            if usage is None
            else self.router.cost(dep, usage.prompt_tokens, usage.completion_tokens)
        )
        with self.router._lock:
            dep.in_flight -= 1
            if usage is not None:
                stats = dep.stats
                stats["prompt_tokens"] += usage.prompt_tokens
                stats["completion_tokens"] += usage.completion_tokens
                stats["cost"] += cost
            if outcome == "ok":
                dep.stats["successes"] += 1
                dep.observe(latency if ttft is None else ttft)
                if usage is not None and dep.tpm is not None and dep.minute:
                    dep.minute[-1][1] += usage.total_tokens
                    dep.minute_tokens += usage.total_tokens
            else:
                dep.stats["failures"] += 1

    def succeeded(
        self,
        dep: Deployment,
        usage: Usage | None,
        ttft: float | None = None,
        spent: Usage | None = None,
    ) -> None:
        """Account for a reply (``spent``: what the budget is charged, when more than this
        reply's usage, e.g. with a validation retry)."""
        self._record(dep, "ok", None, usage, ttft)
        self._settle(dep, spent or usage)

    def failed(
        self, dep: Deployment, err: BackendError, usage: Usage | None = None, *, final: bool = False
    ) -> None:
        """Account for an error, then raise it unless the call can move on (never when
        ``final``). Moves to the context-window or content-policy chain when the error calls
        for it."""
        self._record(dep, "error", type(err).__name__, usage, None)
        # a timeout or a cut connection may have been processed (and billed): charge the
        # estimate; a refusal with a status was not
        ambiguous = usage is None and isinstance(err, (TimeoutError, ConnectionError))
        self._settle(dep, None if ambiguous else usage if usage is not None else _ZERO)
        self.last_error = err
        if final:
            raise self.finish_error(err)
        router = self.router
        if isinstance(err, RateLimitError) and dep.endpoint.keys.has_free():
            pass  # the key pool cools the limited key; the deployment's other keys serve
        elif isinstance(err, (RateLimitError, OverloadedError, AuthenticationError, NotFoundError)):
            cooldown = err.retry_after if err.retry_after else router.cooldown
            with router._lock:
                dep.cooldown_until = max(dep.cooldown_until, router.clock.monotonic() + cooldown)
        if is_context_window(err):
            self._switch(router.context_window_fallbacks.get(dep.alias), "context_window", err)
        elif is_content_filter(err):
            self._switch(router.content_policy_fallbacks.get(dep.alias), "content_policy", err)
        elif isinstance(err, FALLBACK_ERRORS):
            with router._lock:
                dep.stats["fallbacks_from"] += 1
            self.reason = "fallback"
        else:
            raise self.finish_error(err)

    def note_invalid(self, dep: Deployment, usage: Usage | None) -> None:
        """Record a structured reply that failed validation; the retry on the same deployment
        follows (the deployment stays reserved)."""
        latency = time.perf_counter() - self.started
        self.attempts.append(
            RouteAttempt(
                dep.id,
                dep.backend.name,
                dep.model,
                dep.alias,
                self.reason,
                "invalid",
                "StructuredOutputError",
                latency,
                usage,
            )
        )
        self.reason, self.started = "validation_retry", time.perf_counter()

    def filtered(self, dep: Deployment, usage: Usage | None) -> bool:
        """A reply stopped by a content filter: whether an alternative is configured (then
        the call moves on to it)."""
        chain = self.router.content_policy_fallbacks.get(dep.alias)
        if not chain:
            return False
        self._record(dep, "content_filter", "content_filter", usage, None)
        self._settle(dep, usage)
        self.groups, self.reason = list(chain), "content_policy"
        return True

    def _switch(self, chain: list[str] | None, reason: str, err: BackendError) -> None:
        if not chain:
            raise self.finish_error(err)
        self.groups, self.reason = list(chain), reason


_ZERO = Usage()
