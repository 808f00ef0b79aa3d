"""One observed call: its span and attempt spans, metrics, latency sample, log line and
hooks. The pipeline creates an :class:`Observation` only while observability is on; the
runners' wrappers below begin and end it, and :class:`~..attempts.Attempts` reports each
attempt to it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..masking import mask_secret, redact, redact_data
from . import hooks as _hooks
from . import state
from .latency import record_latency
from .views import CallView

if TYPE_CHECKING:
    from ..attempts import Attempts, CallOptions
    from ..calls import CallableCall, HttpCall
    from ..endpoint import Endpoint
    from ..resilience.keys import KeyLease
    from ..types import Usage
    from .otel import Telemetry

__all__ = ["Observation"]

_ADDRESSES: dict[str, tuple[str | None, int | None]] = {}
_REQUEST_PARAMS = (
    ("temperature", "gen_ai.request.temperature"),
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("max_completion_tokens", "gen_ai.request.max_tokens"),
    ("top_p", "gen_ai.request.top_p"),
    ("seed", "gen_ai.request.seed"),
)


def _address(url: str) -> tuple[str | None, int | None]:
    """``server.address`` and ``server.port`` of a base URL (cached)."""
    found = _ADDRESSES.get(url)
    if found is None:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(url)
            found = (parts.hostname, parts.port)
        except ValueError:
            found = (None, None)
        if len(_ADDRESSES) < 1024:
            _ADDRESSES[url] = found
    return found


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, default=str)


class Observation:
    """The observed state of one call across its attempts (and pages)."""

    __slots__ = (
        "attempt_span",
        "attempts",
        "base_attrs",
        "breaker",
        "call",
        "cfg",
        "cost",
        "ep",
        "error_type",
        "finish_reasons",
        "first_chunk",
        "groups",
        "input_tokens",
        "last_error",
        "last_lease",
        "operation",
        "opts",
        "output_tokens",
        "queue_wait",
        "response_id",
        "response_model",
        "retries",
        "span",
        "stream",
        "t0",
        "telemetry",
        "text",
        "usage_seen",
    )

    def __init__(
        self, ep: Endpoint, call: HttpCall | CallableCall, opts: CallOptions, stream: bool
    ) -> None:
        self.t0 = time.perf_counter()
        self.ep = ep
        self.call = call
        self.opts = opts
        self.stream = stream
        self.cfg = cfg = state.CONFIG
        self.telemetry = cfg.telemetry
        self.operation = opts.operation or "request"  # a plugin-built call (request())
        self.groups: tuple[_hooks.Hooks, ...] = state.GLOBAL_HOOKS.groups
        own = state.BACKEND_HOOKS.get(ep.usage)
        if own is not None and own.groups:
            self.groups = (*self.groups, *own.groups)
        scoped = _hooks.scope()
        if scoped:
            self.groups = (*self.groups, *scoped)
        self.span: Any = None
        self.attempt_span: Any = None
        self.attempts = 0
        self.retries = 0
        self.queue_wait: float | None = None
        self.first_chunk: float | None = None
        self.breaker = ""
        self.input_tokens = 0
        self.output_tokens = 0
        self.usage_seen = False
        self.cost = 0.0
        self.response_model: str | None = None
        self.response_id: str | None = None
        self.finish_reasons: list[str] = []
        self.error_type: str | None = None
        self.last_error: BaseException | None = None
        self.last_lease: KeyLease | None = None
        self.text: list[str] | None = [] if cfg.capture_content and cfg.tracing else None
        self.base_attrs: dict[str, Any] = {}

    # -- views for hooks --------------------------------------------------------------------
    def view(self, **fields: Any) -> CallView:
        """A :class:`CallView` of this call now, with ``fields`` filled in."""
        lease = self.last_lease
        if lease is not None and "key" not in fields:
            fields["key_name"] = lease.key.name
            fields["key"] = mask_secret(lease.key.secret)
        return CallView(
            backend=self.ep.spec.name,
            endpoint=self.ep.id,
            operation=self.operation,
            model=self.call.model or None,
            request_id=self.opts.request_id,
            priority=self.opts.priority.name,
            stream=self.stream,
            attempt=self.attempts,
            **fields,
        )

    def _body(self) -> Any:
        body = getattr(self.call, "json", None)
        return redact_data(body, self.ep.keys.secrets()) if body is not None else None

    # -- the call ---------------------------------------------------------------------------
    def begin(self) -> CallView | None:
        """Open the call's span; return the on_request view when any hook wants it."""
        tel = self.telemetry
        if tel is not None:
            self._begin_telemetry(tel)
        if self.groups and any(g.on_request for g in self.groups):
            return self.view(body=self._body())
        return None

    def _begin_telemetry(self, tel: Telemetry) -> None:
        ep = self.ep
        model = self.call.model or None
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": self.operation,
            "gen_ai.provider.name": ep.spec.name,
            "gen_ai.system": ep.spec.name,
        }
        if model:
            attrs["gen_ai.request.model"] = model
        address, port = _address(ep.settings.base_url or "")
        if address:
            attrs["server.address"] = address
            if port:
                attrs["server.port"] = port
        self.base_attrs = dict(attrs)
        if tel.metrics:
            tel.watch(ep)
        if tel.tracer is None:
            return
        attrs["ipfs_accelerate.request_id"] = self.opts.request_id
        attrs["ipfs_accelerate.priority"] = self.opts.priority.name
        attrs["ipfs_accelerate.endpoint"] = ep.id
        if self.stream:
            attrs["ipfs_accelerate.stream"] = True
        body = getattr(self.call, "json", None)
        if isinstance(body, dict):
            for name, key in _REQUEST_PARAMS:
                value = body.get(name)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    attrs[key] = value
            if self.cfg.capture_content:
                content = body.get("messages", body.get("input", body.get("prompt")))
                if content is not None:
                    secrets = ep.keys.secrets()
                    attrs["gen_ai.input.messages"] = _json(redact_data(content, secrets))
        name = f"{self.operation} {model}" if model else self.operation
        span = tel.start_call(name, attrs, time.time_ns())
        if span.is_recording():  # else no SDK is set up: skip the attempt spans too
            self.span = span

    def enter(self) -> tuple[Any, Any]:
        """Make this the current call (and its span the current span) in this context."""
        token = state.CURRENT.set(self)
        span = self.span
        return token, (self.telemetry.attach(span) if span is not None else None)  # type: ignore[union-attr]

    def exit(self, tokens: tuple[Any, Any]) -> None:
        """Undo :meth:`enter`."""
        token, otel_token = tokens
        if otel_token is not None:
            self.telemetry.detach(otel_token)  # type: ignore[union-attr]
        state.CURRENT.reset(token)

    def chunk(self, text: str) -> None:
        """A streamed chunk reached the caller."""
        if self.first_chunk is None:
            self.first_chunk = time.perf_counter() - self.t0
        if self.text is not None and text:
            self.text.append(text)

    def event(self, name: str, attributes: dict[str, Any]) -> None:
        """A span event on the current attempt's span, else the call's."""
        span = self.attempt_span if self.attempt_span is not None else self.span
        if span is not None:
            span.add_event(name, attributes)

    # -- attempts (called by Attempts) -------------------------------------------------------
    def attempt_begin(self, att: Attempts) -> None:
        """An attempt begins (before the breaker check)."""
        now = time.perf_counter()
        self._close_attempt()
        self.attempts += 1
        ep = self.ep
        self.breaker = ep.breaker.state.value
        if self.queue_wait is None:
            self.queue_wait = wait = now - self.t0
            tel = self.telemetry
            if tel is not None:
                if tel.metrics:
                    tel.queue_wait.record(wait, self.base_attrs)
                if self.span is not None:
                    self.span.set_attribute("ipfs_accelerate.queue.wait", wait)
        if self.span is not None:
            self.attempt_span = self.telemetry.start_child(  # type: ignore[union-attr]
                self.span,
                "ipfs_accelerate.attempt",
                {"ipfs_accelerate.attempt": self.attempts, "ipfs_accelerate.endpoint": ep.id},
            )

    def _settle(self, lease: KeyLease | None, error: BaseException | None) -> None:
        """Record an attempt's outcome on its span and notice a breaker state change."""
        if lease is not None:
            self.last_lease = lease
        before, after = self.breaker, self.ep.breaker.state.value
        self.breaker = after
        span = self.attempt_span
        tel = self.telemetry
        if before and before != after:
            change = {"ipfs_accelerate.breaker.from": before, "ipfs_accelerate.breaker.to": after}
            if span is not None:
                span.add_event("breaker.state_change", change)
            if tel is not None and tel.metrics:
                tel.breaker_changes.add(1, {**self.base_attrs, **change})
        if span is None:
            return
        span.set_attribute("ipfs_accelerate.breaker.state", after)
        if lease is not None:
            span.set_attribute("ipfs_accelerate.key.name", lease.key.name)
            span.set_attribute("ipfs_accelerate.key", mask_secret(lease.key.secret))
            if lease.wait:
                span.set_attribute("ipfs_accelerate.key.wait", lease.wait)
        if error is not None:
            status = getattr(error, "status_code", None)
            if status is not None:
                span.set_attribute("http.response.status_code", status)
            tel.fail(span, type(error).__name__, self._describe(error))  # type: ignore[union-attr]

    def attempt_ok(
        self, att: Attempts, lease: KeyLease | None, usage: Usage | None, cost: float
    ) -> None:
        """An attempt succeeded; ``cost`` is its estimated cost."""
        if usage is not None:
            self.usage_seen = True
            self.input_tokens += usage.prompt_tokens
            self.output_tokens += usage.completion_tokens
        self.cost += cost
        self._settle(lease, None)
        self._close_attempt()

    def attempt_failed(self, att: Attempts, error: BaseException, lease: KeyLease | None) -> None:
        """An attempt failed (its retry is decided next)."""
        self.last_error = error
        self._settle(lease, error)

    def retrying(self, att: Attempts, error: BaseException, delay: float) -> None:
        """A retry is scheduled after ``delay`` seconds."""
        self.retries += 1
        span = self.attempt_span
        if span is not None:
            span.set_attribute("ipfs_accelerate.retry.delay", delay)
        tel = self.telemetry
        if tel is not None and tel.metrics:
            tel.retries.add(1, {**self.base_attrs, "error.type": type(error).__name__})
        self._close_attempt()
        if self.groups and any(g.on_retry for g in self.groups):
            _hooks.fire("on_retry", self.groups, self.view(error=error, delay=delay))

    def attempt_abandoned(self, att: Attempts, sent: bool) -> None:
        """The caller went away during an attempt (or it could not start)."""
        span = self.attempt_span
        if span is not None:
            span.set_attribute("ipfs_accelerate.attempt.abandoned", True)
            span.set_attribute("ipfs_accelerate.attempt.sent", sent)
        self._close_attempt()

    def _close_attempt(self) -> None:
        span, self.attempt_span = self.attempt_span, None
        if span is not None:
            span.end()

    def _describe(self, error: BaseException) -> str:
        return redact(str(error), self.ep.keys.secrets())[:500]

    # -- the end ----------------------------------------------------------------------------
    def read_result(self, result: Any) -> None:
        """Response model, id, finish reason and (for a stream) usage from the result."""
        model = getattr(result, "model", None)
        if isinstance(model, str):
            self.response_model = model
        rid = getattr(result, "id", None)
        raw = getattr(result, "raw", None)
        if rid is None and isinstance(raw, dict):
            rid = raw.get("id")
        if isinstance(rid, str):
            self.response_id = rid
        reason = getattr(result, "finish_reason", None)
        if isinstance(reason, str):
            self.finish_reasons.append(reason)
        if self.text is not None:
            text = getattr(result, "text", None)
            if isinstance(text, str) and text:
                self.text.append(text)

    def end(
        self, result: Any = None, error: BaseException | None = None, closed: bool = False
    ) -> float:
        """End the call: span, metrics, latency, log line. Returns its duration."""
        duration = time.perf_counter() - self.t0
        if error is not None:
            self.error_type = type(error).__name__
        elif result is not None:
            self.read_result(result)
        if error is not None and self.attempt_span is not None and self.last_error is not error:
            self._settle(None, error)  # it ended the attempt before any outcome (breaker, key)
        self._close_attempt()
        tel = self.telemetry
        if tel is not None:
            self._end_span(error, closed)
            if tel.metrics:
                self._metrics(duration)
        cfg = self.cfg
        if cfg.latency and not closed:
            record_latency(self.ep.spec.name, duration, error is None)
        if cfg.log_calls:
            from .logs import log_call

            log_call(self, duration, cfg.log_json, closed)
        return duration

    def _end_span(self, error: BaseException | None, closed: bool) -> None:
        span = self.span
        if span is None:
            return
        set_attr = span.set_attribute
        if self.response_model:
            set_attr("gen_ai.response.model", self.response_model)
        if self.response_id:
            set_attr("gen_ai.response.id", self.response_id)
        if self.finish_reasons:
            set_attr("gen_ai.response.finish_reasons", list(self.finish_reasons))
        if self.usage_seen:
            set_attr("gen_ai.usage.input_tokens", self.input_tokens)
            set_attr("gen_ai.usage.output_tokens", self.output_tokens)
            set_attr("ipfs_accelerate.cost", self.cost)
        set_attr("ipfs_accelerate.attempts", self.attempts)
        set_attr("ipfs_accelerate.retries", self.retries)
        if self.breaker:
            set_attr("ipfs_accelerate.breaker.state", self.breaker)
        if self.first_chunk is not None:
            set_attr("gen_ai.response.time_to_first_chunk", self.first_chunk)
        if closed:
            set_attr("ipfs_accelerate.stream.closed_early", True)
        if self.text and error is None:
            message = {
                "role": "assistant",
                "parts": [{"type": "text", "content": "".join(self.text)}],
            }
            if self.finish_reasons:
                message["finish_reason"] = self.finish_reasons[-1]
            set_attr("gen_ai.output.messages", _json([message]))
        if error is not None:
            self.telemetry.fail(span, type(error).__name__, self._describe(error))  # type: ignore[union-attr]
        span.end()

    def _metrics(self, duration: float) -> None:
        tel = self.telemetry
        assert tel is not None
        attrs = dict(self.base_attrs)
        if self.response_model:
            attrs["gen_ai.response.model"] = self.response_model
        if self.error_type:
            attrs["error.type"] = self.error_type
        tel.duration.record(duration, attrs)
        if self.usage_seen:
            tel.tokens.record(self.input_tokens, {**attrs, "gen_ai.token.type": "input"})
            tel.tokens.record(self.output_tokens, {**attrs, "gen_ai.token.type": "output"})
            tel.cost.add(self.cost, attrs)
        if self.first_chunk is not None:
            tel.first_chunk.record(self.first_chunk, attrs)
