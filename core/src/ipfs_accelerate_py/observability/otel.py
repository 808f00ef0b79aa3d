"""The OpenTelemetry binding: the tracer and the metric instruments, GenAI semantic
conventions' names where they exist (``gen_ai.client.operation.duration``,
``gen_ai.client.token.usage``, ``gen_ai.client.operation.time_to_first_chunk``) and
``ipfs_accelerate.client.*`` for the rest. Imported only when tracing or metrics are on;
needs only ``opentelemetry-api``."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace as otel_trace
from opentelemetry.trace import SpanKind, Status, StatusCode

if TYPE_CHECKING:
    from ..endpoint import Endpoint

__all__ = ["Telemetry"]

SCOPE = "ipfs_accelerate_py"
_DURATION_BUCKETS = [
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
]  # the GenAI conventions' advice
_TOKEN_BUCKETS = [
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
]


class Telemetry:
    """A tracer (when tracing) and the instruments (when metrics) for the calls."""

    def __init__(
        self, tracer_provider: Any, meter_provider: Any, *, tracing: bool, metrics: bool
    ) -> None:
        self.tracer: Any = None
        if tracing:
            provider = tracer_provider or otel_trace.get_tracer_provider()
            self.tracer = provider.get_tracer(SCOPE)
        self.metrics = metrics
        self._endpoints: weakref.WeakSet[Endpoint] = weakref.WeakSet()
        if not metrics:
            return
        meter = (meter_provider or otel_metrics.get_meter_provider()).get_meter(SCOPE)
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration (queue wait and retries included).",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self.first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time from the call to the first chunk of a streamed response.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.cost = meter.create_counter(
            "ipfs_accelerate.client.cost", unit="USD", description="Estimated cost of calls."
        )
        self.queue_wait = meter.create_histogram(
            "ipfs_accelerate.client.queue.wait",
            unit="s",
            description="Time a call waited for its endpoint's queue slot.",
        )
        self.retries = meter.create_counter(
            "ipfs_accelerate.client.retries", unit="{retry}", description="Retries scheduled."
        )
        self.breaker_changes = meter.create_counter(
            "ipfs_accelerate.client.breaker.transitions",
            unit="{transition}",
            description="Circuit breaker state changes seen by calls.",
        )
        self.cache = meter.create_counter(
            "ipfs_accelerate.client.cache.requests",
            unit="{request}",
            description="Cache lookups; hit rate = hit=true / all.",
        )
        self.fallbacks = meter.create_counter(
            "ipfs_accelerate.client.router.fallbacks",
            unit="{fallback}",
            description="Router fallbacks to another backend or endpoint.",
        )
        meter.create_observable_gauge(
            "ipfs_accelerate.client.queue.depth",
            callbacks=[self._gate("size")],
            unit="{request}",
            description="Calls waiting in each endpoint's queue.",
        )
        meter.create_observable_gauge(
            "ipfs_accelerate.client.requests.active",
            callbacks=[self._gate("active_requests")],
            unit="{request}",
            description="Calls holding a slot of their endpoint (in flight).",
        )

    def watch(self, ep: Endpoint) -> None:
        """Include ``ep`` in the queue-depth gauge."""
        self._endpoints.add(ep)

    def _gate(self, field: str) -> Callable[[Any], Iterable[Any]]:
        """A gauge callback reading ``field`` of every watched endpoint's gate."""

        def observe(options: Any) -> Iterable[Any]:
            for ep in list(self._endpoints):
                yield otel_metrics.Observation(
                    ep.gate.info()[field],
                    {"gen_ai.provider.name": ep.spec.name, "ipfs_accelerate.endpoint": ep.id},
                )

        return observe

    # -- spans ------------------------------------------------------------------------------
    def start_call(self, name: str, attributes: dict[str, Any], start_ns: int) -> Any:
        """The call's span (a CLIENT span under the current context)."""
        return self.tracer.start_span(
            name, kind=SpanKind.CLIENT, attributes=attributes, start_time=start_ns
        )

    def start_child(self, parent: Any, name: str, attributes: dict[str, Any]) -> Any:
        """A span under ``parent`` (an attempt)."""
        ctx = otel_trace.set_span_in_context(parent)
        return self.tracer.start_span(name, context=ctx, attributes=attributes)

    @staticmethod
    def attach(span: Any) -> object:
        """Make ``span`` current (for nested instrumentation); returns the token to detach."""
        return otel_context.attach(otel_trace.set_span_in_context(span))

    @staticmethod
    def detach(token: Any) -> None:
        """Undo :meth:`attach`."""
        otel_context.detach(token)

    @staticmethod
    def fail(span: Any, error_type: str, description: str) -> None:
        """Mark ``span`` failed with ``error.type``."""
        span.set_attribute("error.type", error_type)
        span.set_status(Status(StatusCode.ERROR, description))

    @staticmethod
    def current_span() -> Any:
        """The current OpenTelemetry span (a non-recording one when there is none)."""
        return otel_trace.get_current_span()
