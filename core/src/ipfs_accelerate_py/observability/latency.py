"""Per-backend latency samples kept in process, for percentiles (``ipfs-accelerate usage``)."""

from __future__ import annotations

import threading
from collections import deque

__all__ = ["latency_summary", "record_latency", "reset_latency"]

_SAMPLES = 4096  # the most recent successful calls per backend
_lock = threading.Lock()
_durations: dict[str, deque[float]] = {}
_errors: dict[str, int] = {}


def record_latency(backend: str, seconds: float, ok: bool) -> None:
    """Keep one call's duration (successful calls) or count a failure."""
    with _lock:
        if ok:
            samples = _durations.get(backend)
            if samples is None:
                samples = _durations[backend] = deque(maxlen=_SAMPLES)
            samples.append(seconds)
        else:
            _errors[backend] = _errors.get(backend, 0) + 1


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100), at least 1
    return ordered[int(rank) - 1]


def latency_summary() -> dict[str, dict[str, float | int]]:
    """Per backend (observed in this process, with ``latency`` on): ``count`` (successful
    calls sampled, the most recent 4096), ``errors``, and ``p50_ms`` / ``p90_ms`` /
    ``p99_ms`` / ``max_ms`` of whole-call durations (queue wait and retries included)."""
    with _lock:
        snapshot = {name: sorted(samples) for name, samples in _durations.items()}
        errors = dict(_errors)
    out: dict[str, dict[str, float | int]] = {}
    for name in sorted(set(snapshot) | set(errors)):
        ordered = snapshot.get(name, [])
        row: dict[str, float | int] = {"count": len(ordered), "errors": errors.get(name, 0)}
        if ordered:
            for q in (50, 90, 99):
                row[f"p{q}_ms"] = round(_percentile(ordered, q) * 1000, 3)
            row["max_ms"] = round(ordered[-1] * 1000, 3)
        out[name] = row
    return out


def reset_latency() -> None:
    """Forget every sample (tests; a long-lived process starting a new period)."""
    with _lock:
        _durations.clear()
        _errors.clear()
