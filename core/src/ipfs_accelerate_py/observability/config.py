"""The observability settings, validated once by
:func:`~ipfs_accelerate_py.observability.configure`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from ..errors import ConfigurationError, InvalidArgumentError

if TYPE_CHECKING:
    from .otel import Telemetry

__all__ = ["ObservabilityConfig"]

INSTALL_HINT = "pip install 'ipfs-accelerate-core[otel]'"
_TELEMETRY: dict[tuple[Any, Any, bool, bool], Telemetry] = {}


@attrs.frozen(slots=True)
class ObservabilityConfig:
    """What is observed. ``telemetry`` is the OpenTelemetry binding (tracer and instruments),
    present only when tracing or metrics are on."""

    tracing: bool = False
    metrics: bool = False
    capture_content: bool = False
    log_calls: bool = False
    log_json: bool = False
    latency: bool = False
    telemetry: Telemetry | None = None

    @property
    def active(self) -> bool:
        """Whether calls are observed at all (hooks aside)."""
        return self.tracing or self.metrics or self.log_calls or self.latency

    @classmethod
    def build(
        cls,
        *,
        tracing: Any,
        metrics: Any,
        tracer_provider: Any,
        meter_provider: Any,
        capture_content: Any,
        log_calls: Any,
        log_json: Any,
        latency: Any,
    ) -> ObservabilityConfig:
        """Validate the settings and bind OpenTelemetry when tracing or metrics are on."""
        flags = {
            "tracing": tracing,
            "metrics": metrics,
            "capture_content": capture_content,
            "log_calls": log_calls,
            "log_json": log_json,
            "latency": latency,
        }
        for name, value in flags.items():
            if not isinstance(value, bool):
                raise InvalidArgumentError(f"{name} must be True or False, got {value!r}")
        telemetry = None
        if tracing or metrics:
            try:
                from .otel import Telemetry
            except ImportError:
                raise ConfigurationError(
                    f"tracing and metrics need the OpenTelemetry API: {INSTALL_HINT}"
                ) from None
            tp = tracer_provider if tracing else None
            mp = meter_provider if metrics else None
            key = (tp, mp, tracing, metrics)
            telemetry = _TELEMETRY.get(key)
            if telemetry is None:  # once per providers: a meter's gauges are registered once
                telemetry = _TELEMETRY[key] = Telemetry(tp, mp, tracing=tracing, metrics=metrics)
        return cls(
            tracing=tracing,
            metrics=metrics,
            capture_content=capture_content,
            log_calls=log_calls,
            log_json=log_json,
            latency=latency,
            telemetry=telemetry,
        )
