"""Testing observability: OpenTelemetry's SDK with in-memory span and metric exporters
(:class:`Telemetry`; needs ``opentelemetry-sdk``, the ``otel-test`` extra), and
:func:`reset_observability` to leave observability off between tests."""

from __future__ import annotations

from typing import Any

from ipfs_accelerate_py import observability
from ipfs_accelerate_py.observability import state

__all__ = ["Telemetry", "everything", "reset_observability"]


class Telemetry:
    """The in-memory exporters of one test."""

    def __init__(self) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def configure(self, **options: Any) -> None:
        """Turn observability on with these providers."""
        observability.configure(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **options
        )

    def spans(self) -> list[Any]:
        """Finished spans, in end order."""
        return list(self.exporter.get_finished_spans())

    def calls(self) -> list[Any]:
        """The call spans (not attempts), in end order."""
        return [s for s in self.spans() if s.name != "ipfs_accelerate.attempt"]

    def attempts_of(self, call: Any) -> list[Any]:
        """The attempt spans under ``call``, by attempt number."""
        found = [
            s
            for s in self.spans()
            if s.parent is not None and s.parent.span_id == call.context.span_id
        ]
        return sorted(found, key=lambda s: s.attributes["ipfs_accelerate.attempt"])

    def points(self, name: str) -> list[Any]:
        """Data points of metric ``name`` (collected now)."""
        data = self.reader.get_metrics_data()
        out: list[Any] = []
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        out.extend(metric.data.data_points)
        return out


def reset_observability() -> None:
    """Observability off, with no hooks and no latency samples."""
    for group in state.GLOBAL_HOOKS.groups:
        state.GLOBAL_HOOKS.remove(group)
    state.BACKEND_HOOKS.clear()
    observability.reset_latency()
    observability.disable()


def everything(telemetry: Telemetry) -> str:
    """Every span's name, attributes, events and status, as one string to search."""
    parts: list[str] = []
    for span in telemetry.spans():
        parts.append(span.name)
        parts.append(repr(dict(span.attributes or {})))
        parts.append(repr(span.status.description))
        for event in span.events:
            parts.append(event.name)
            parts.append(repr(dict(event.attributes or {})))
    return "\n".join(parts)
