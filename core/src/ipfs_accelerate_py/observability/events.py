"""Events other components put on the current call (see
:func:`~ipfs_accelerate_py.observability.event`)."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgumentError
from . import state

__all__ = ["record_event"]

_SCALARS = (str, bool, int, float)


def _value(value: Any) -> Any:
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, _SCALARS) for v in value):
        return list(value)
    return str(value)


def record_event(name: str, attributes: dict[str, Any]) -> None:
    """Put ``name`` on the current call's span (or the current OpenTelemetry span) and
    count the events that feed metrics: ``cache.hit`` / ``cache.miss``, ``router.fallback``."""
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"event name must be a non-empty string, got {name!r}")
    attrs = {str(k): _value(v) for k, v in attributes.items() if v is not None}
    obs = state.CURRENT.get()
    tel = state.CONFIG.telemetry
    if obs is not None:
        obs.event(name, attrs)
        base = obs.base_attrs
    else:
        base = {}
        if tel is not None and tel.tracer is not None:
            span = tel.current_span()
            if span.is_recording():
                span.add_event(name, attrs)
    if tel is None or not tel.metrics:
        return
    if name in ("cache.hit", "cache.miss"):
        tel.cache.add(1, {**base, "ipfs_accelerate.cache.hit": name == "cache.hit"})
    elif name == "router.fallback":
        tel.fallbacks.add(1, base)
