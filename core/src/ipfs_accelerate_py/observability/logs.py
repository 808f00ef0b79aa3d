"""The per-call log line: one INFO record on ``ipfs_accelerate_py.calls`` per call, as
``key=value`` text or JSON, with the same fields as the span and no secret (no key, no
prompt). The fields are also on the record as ``record.ipfs_accelerate`` (a dict)."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .call import Observation

__all__ = ["call_fields", "log_call"]

log = logging.getLogger("ipfs_accelerate_py.calls")


def call_fields(obs: Observation, duration: float, closed: bool) -> dict[str, Any]:
    """The fields of one call's log line."""
    fields: dict[str, Any] = {
        "event": "gen_ai.call",
        "request_id": obs.opts.request_id,
        "backend": obs.ep.spec.name,
        "endpoint": obs.ep.id,
        "operation": obs.operation,
        "model": obs.call.model or None,
        "response_model": obs.response_model,
        "response_id": obs.response_id,
        "priority": obs.opts.priority.name,
        "stream": obs.stream,
        "outcome": "closed" if closed else ("error" if obs.error_type else "ok"),
        "error_type": obs.error_type,
        "duration_ms": round(duration * 1000, 3),
        "queue_ms": None if obs.queue_wait is None else round(obs.queue_wait * 1000, 3),
        "ttft_ms": None if obs.first_chunk is None else round(obs.first_chunk * 1000, 3),
        "attempts": obs.attempts,
        "retries": obs.retries,
        "breaker": obs.breaker or None,
        "finish_reason": obs.finish_reasons[-1] if obs.finish_reasons else None,
        "input_tokens": obs.input_tokens if obs.usage_seen else None,
        "output_tokens": obs.output_tokens if obs.usage_seen else None,
        "cost": round(obs.cost, 8) if obs.usage_seen else None,
    }
    status = getattr(obs.last_error, "status_code", None)
    if obs.error_type and status is not None:
        fields["status_code"] = status
    return {k: v for k, v in fields.items() if v is not None}


def log_call(obs: Observation, duration: float, as_json: bool, closed: bool) -> None:
    """Log one call at INFO."""
    if not log.isEnabledFor(logging.INFO):
        return
    fields = call_fields(obs, duration, closed)
    if as_json:
        message = json.dumps(fields, separators=(",", ":"))
    else:
        message = " ".join(f"{k}={v}" for k, v in fields.items())
    log.info("%s", message, extra={"ipfs_accelerate": fields})
