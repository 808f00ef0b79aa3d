"""What observability costs per call: off (with and without OpenTelemetry installed) and on.

    .venv/bin/python benchmarks/observability.py [--quick]   # prints the markdown section
    (benchmarks/run.py calls :func:`bench` and :func:`render` for docs/benchmarks.md)

Calls go through ``httpx.MockTransport`` (no socket, no server), so only Python runs and the
differences are not lost in network noise. Variants are interleaved call by call:

- ``off``: observability off in this process (OpenTelemetry importable, never imported);
- ``off, no extra``: the same in a child process where ``opentelemetry`` cannot be imported
  at all, as without ``core[otel]`` (its own raw baseline beside it);
- ``on``: tracing and metrics into the SDK's in-memory exporters (``SimpleSpanProcessor``:
  every span exported synchronously, the worst case), ``hooks``: one no-op ``on_response``
  hook alone, ``log``: one JSON log line per call alone (to a NullHandler).
"""

from __future__ import annotations

import gc
import json
import logging
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import server as wire  # noqa: E402  (benchmarks/server.py: the canned replies)

KEY = "sk-bench-" + "0123456789abcdef" * 3
MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Say hello."}]
BODY = {"model": MODEL, "messages": MESSAGES, "max_tokens": 16}
AUTH = {"Authorization": f"Bearer {KEY}"}
BASE = "http://mock.invalid/v1"
REPLY = wire.chat_completion_body()
HEADERS = [
    ("content-type", "application/json"),
    ("content-length", str(len(REPLY))),
    *wire.OPENAI_HEADERS,
]

__all__ = ["bench", "render"]


def _handler(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers=HEADERS, content=REPLY)


def _backend() -> Any:
    from ipfs_accelerate_py.core import get_backend

    backend = get_backend("openai", api_key=KEY, base_url=BASE)
    client = backend.default_endpoint.transport.client()
    client._transport = httpx.MockTransport(_handler)  # our code runs exactly as it would
    return backend


def _interleave(
    fns: dict[str, Callable[[], Any]], rounds: int, warmup: int
) -> dict[str, list[int]]:
    names = list(fns)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    gc.collect()
    out: dict[str, list[int]] = {n: [] for n in names}
    clock = time.perf_counter_ns
    for i in range(rounds):
        for j in range(len(names)):
            name = names[(i + j) % len(names)]
            fn = fns[name]
            t0 = clock()
            fn()
            out[name].append(clock() - t0)
    return out


def _p50_us(samples: list[int]) -> float:
    return statistics.median(samples) / 1000


def _off_variants(rounds: int, warmup: int) -> dict[str, float]:
    """raw and off p50 (µs) in this process, observability off."""
    from ipfs_accelerate_py import observability

    observability.disable()
    assert not observability.ENABLED
    backend = _backend()
    client = httpx.Client(transport=httpx.MockTransport(_handler))
    url = BASE + "/chat/completions"
    samples = _interleave(
        {
            "raw": lambda: client.post(url, json=BODY, headers=AUTH).json(),
            "off": lambda: backend.chat(messages=MESSAGES, model=MODEL, max_tokens=16),
        },
        rounds,
        warmup,
    )
    loaded = any(m.startswith("opentelemetry") for m in sys.modules)
    return {"raw": _p50_us(samples["raw"]), "off": _p50_us(samples["off"]), "otel_loaded": loaded}


def _child(rounds: int, warmup: int, block_otel: bool) -> dict[str, float]:
    code = (
        "import sys, json\n"
        + ("sys.modules['opentelemetry'] = None\n" if block_otel else "")
        + f"sys.path.insert(0, {str(HERE)!r})\n"
        + "import observability as b\n"
        + f"print(json.dumps(b._off_variants({rounds}, {warmup})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _on_variants(rounds: int, warmup: int) -> dict[str, float]:
    """p50 (µs) of off, on (tracing + metrics), hooks only and log only, interleaved."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from ipfs_accelerate_py import observability

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    logging.getLogger("ipfs_accelerate_py.calls").addHandler(logging.NullHandler())
    logging.getLogger("ipfs_accelerate_py.calls").setLevel(logging.INFO)
    backend = _backend()
    chat = backend.chat

    def call() -> Any:
        return chat(messages=MESSAGES, model=MODEL, max_tokens=16)

    def reset() -> None:
        observability.disable()
        for group in observability.state.GLOBAL_HOOKS.groups:
            observability.remove_hooks(group)
        exporter.clear()

    def on() -> None:
        observability.configure(tracer_provider=tracer_provider, meter_provider=meter_provider)

    def hooks() -> None:
        observability.add_hooks(on_response=lambda view: None)

    def log() -> None:
        observability.configure(
            tracing=False, metrics=False, latency=False, log_calls=True, log_json=True
        )

    # each variant runs in blocks of calls with its settings in force (switching them is
    # not timed); the blocks are interleaved, rotating the order, so noise falls on all alike
    variants: dict[str, Callable[[], None]] = {
        "off": lambda: None,
        "on": on,
        "hooks": hooks,
        "log": log,
    }
    block = 25
    out: dict[str, list[int]] = {n: [] for n in variants}
    clock = time.perf_counter_ns
    names = list(variants)
    for i in range(warmup // block + rounds // block):
        timed = i >= warmup // block
        for j in range(len(names)):
            name = names[(i + j) % len(names)]
            variants[name]()
            try:
                for _ in range(block):
                    t0 = clock()
                    call()
                    if timed:
                        out[name].append(clock() - t0)
            finally:
                reset()
        if i == warmup // block - 1:
            gc.collect()
    backend.close()
    return {name: _p50_us(samples) for name, samples in out.items()}


def _check_ns() -> float:
    """The off check itself: ``_obs.ENABLED and opts.obs is None`` (ns)."""
    setup = (
        "from ipfs_accelerate_py import observability as _obs\n"
        "from ipfs_accelerate_py.attempts import CallOptions\n"
        "opts = CallOptions('r')"
    )
    n = 2_000_000
    t = min(timeit.repeat("_obs.ENABLED and opts.obs is None", setup, number=n, repeat=5))
    base = min(timeit.repeat("pass", setup, number=n, repeat=5))
    return max(0.0, (t - base) / n * 1e9)


def bench(quick: bool = False) -> dict[str, Any]:
    """Run every variant; returns p50s in µs and the off check's cost in ns."""
    rounds, warmup = (1500, 200) if quick else (8000, 500)
    return {
        "off": _child(rounds, warmup, block_otel=False),
        "off_no_extra": _child(rounds, warmup, block_otel=True),
        "on": _on_variants(rounds // 2, warmup),
        "check_ns": _check_ns(),
        "rounds": rounds,
    }


def render(r: dict[str, Any]) -> str:
    """The markdown section for docs/benchmarks.md."""
    off, bare, on = r["off"], r["off_no_extra"], r["on"]
    over = off["off"] - off["raw"]
    over_bare = bare["off"] - bare["raw"]
    rows = [
        ("off (OpenTelemetry installed, never imported)", f"{over:+.1f} µs over raw httpx"),
        ("off, without the extra (opentelemetry unimportable)", f"{over_bare:+.1f} µs over raw"),
        ("the off check itself (one module attribute read)", f"{r['check_ns']:.0f} ns per call"),
        ("on: tracing + metrics (SDK, in-memory exporters)", f"{on['on'] - on['off']:+.1f} µs"),
        ("one no-op on_response hook alone", f"{on['hooks'] - on['off']:+.1f} µs"),
        ("one JSON log line per call alone", f"{on['log'] - on['off']:+.1f} µs"),
    ]
    lines = [
        "## Observability",
        "",
        "Per-call p50 through `httpx.MockTransport` (only Python runs), variants interleaved "
        f"call by call, {r['rounds']} rounds (`benchmarks/observability.py`). Off, a call pays "
        "one attribute read; OpenTelemetry is never imported "
        f"(loaded in the off run: {bool(off['otel_loaded'])}).",
        "",
        "| variant | cost |",
        "| --- | --- |",
        *[f"| {label} | {value} |" for label, value in rows],
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(bench(quick="--quick" in sys.argv)))
