"""Measure what ipfs_accelerate_py adds on top of raw httpx, and write docs/benchmarks.md.

    .venv/bin/python benchmarks/run.py            # about 2 minutes
    .venv/bin/python benchmarks/run.py --quick    # ~30 seconds, noisier
    .venv/bin/python benchmarks/run.py --compare  # and the openai client and litellm

Everything runs in this one process (so the ratios compare like with like) against a
loopback server in a child process (benchmarks/server.py) that answers at once:

1. per-call overhead of ``backend.chat`` / ``achat`` over ``httpx.Client.post(...).json()`` /
   ``httpx.AsyncClient``, with the pipeline on (defaults) and off; the same A/B again with
   ``httpx.MockTransport`` instead of a socket, which isolates the pure-Python cost;
2. a 1,000-chunk SSE stream through ``backend.stream`` / ``astream`` against raw
   ``iter_lines`` / ``aiter_lines``;
3. cold ``import`` + ``get_backend("openai")`` in fresh processes (time and peak RSS);
4. the SSE decoder alone, each pipeline step alone, and a cProfile of plain chat calls.

Calls of the variants being compared are interleaved (raw, ours, ours-off, raw, ...; the
order rotates every round) so that machine noise falls on all of them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime
import gc
import inspect
import io
import json
import math
import os
import platform
import pstats
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import clients  # noqa: E402
import compare  # noqa: E402  (side by side with openai and litellm, and the plot)
import concurrency  # noqa: E402  (throughput versus requests in flight)
import embeddings_bench  # noqa: E402  (256 x 384 vectors as lists and as numpy)
import plugins_bench  # noqa: E402  (every plugin in its own framing)
import server as wire  # noqa: E402  (benchmarks/server.py: the canned replies)
import soak  # noqa: E402  (cancellations and memory over long runs)

from ipfs_accelerate_py import pipeline  # noqa: E402
from ipfs_accelerate_py.core import get_backend  # noqa: E402
from ipfs_accelerate_py.decoders import SSEDecoder  # noqa: E402

KEY = "sk-bench-" + "0123456789abcdef" * 3
MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Say hello."}]
PARAMS = {"max_tokens": 16}
BODY = {"model": MODEL, "messages": MESSAGES, **PARAMS}
STREAM_BODY = {
    "model": MODEL,
    "messages": MESSAGES,
    "stream": True,
    "stream_options": {"include_usage": True},
}
AUTH = {"Authorization": f"Bearer {KEY}"}
# "Pipeline off": every switch that exists to turn a part of the pipeline off or down.
OFF = {"queue_enabled": False, "max_retries": 0}
STREAM_CHUNKS = 1000
STREAM_EVENTS = STREAM_CHUNKS + 4  # role chunk, 1,000 content chunks, finish, usage, [DONE]
STREAM_BYTES = len(b"".join(wire.stream_events(STREAM_CHUNKS)))

TARGET_CALL_US = 100.0
TARGET_STREAM_RATIO = 3.0
TARGET_IMPORT_MS = 150.0
TARGET_IMPORT_MB = 45.0
TARGET_FIRST_REPLY_MS = 20.0  # import + get_backend + first reply, over raw httpx's


_T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - _T0:5.1f} s] {msg}", file=sys.stderr, flush=True)


# --- statistics --------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1)."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def summary(samples_ns: list[int]) -> dict[str, float]:
    us = [v / 1000 for v in samples_ns]
    return {"n": len(us), "p50": pct(us, 0.5), "p99": pct(us, 0.99), "mean": statistics.fmean(us)}


def block_deltas(ours: list[int], raw: list[int], blocks: int = 5) -> list[float]:
    """p50(ours) - p50(raw) in µs within each of ``blocks`` consecutive slices of the run
    (the samples are interleaved, so slice i of both covers the same stretch of time)."""
    n = min(len(ours), len(raw))
    size = max(1, n // blocks)
    out = []
    for b in range(blocks):
        o, r = ours[b * size : (b + 1) * size], raw[b * size : (b + 1) * size]
        if o and r:
            out.append((statistics.median(o) - statistics.median(r)) / 1000)
    return out


def paired_delta(ours: list[int], raw: list[int]) -> float:
    """Median over rounds of (ours - raw) in µs: each pair ran back to back."""
    return statistics.median(o - r for o, r in zip(ours, raw, strict=False)) / 1000


# --- interleaved timing ------------------------------------------------------------------


def interleave(
    fns: dict[str, Callable[[], Any]],
    rounds: int,
    warmup: int,
    between: Callable[[], Any] | None = None,
) -> dict[str, list[int]]:
    """Call each function once per round, rotating the order; time every call (ns).
    ``between`` runs (untimed) before each call."""
    names = list(fns)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    gc.collect()
    out: dict[str, list[int]] = {name: [] for name in names}
    clock = time.perf_counter_ns
    k = len(names)
    for i in range(rounds):
        for j in range(k):
            name = names[(i + j) % k]
            fn = fns[name]
            if between is not None:
                between()
            t0 = clock()
            fn()
            out[name].append(clock() - t0)
    return out


async def ainterleave(
    fns: dict[str, Callable[[], Awaitable[Any]]], rounds: int, warmup: int
) -> dict[str, list[int]]:
    """:func:`interleave` for coroutine functions, inside the running loop."""
    names = list(fns)
    for _ in range(warmup):
        for fn in fns.values():
            await fn()
    gc.collect()
    out: dict[str, list[int]] = {name: [] for name in names}
    clock = time.perf_counter_ns
    k = len(names)
    for i in range(rounds):
        for j in range(k):
            name = names[(i + j) % k]
            fn = fns[name]
            t0 = clock()
            await fn()
            out[name].append(clock() - t0)
    return out


# --- the loopback server -----------------------------------------------------------------


@contextlib.contextmanager
def loopback_server() -> Iterator[int]:
    """Start benchmarks/server.py in a child process; yield its port."""
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "server.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # the server exits when its stdin closes
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def make_backends(base_url: str) -> tuple[Any, Any]:
    on = get_backend("openai", api_key=KEY, base_url=base_url)
    off = get_backend("openai", api_key=KEY, base_url=base_url, **OFF)
    return on, off


# --- 1. per-call overhead ----------------------------------------------------------------


def bench_chat_sync(port: int, rounds: int, warmup: int) -> dict[str, list[int]]:
    base = f"http://127.0.0.1:{port}/v1"
    url = base + "/chat/completions"
    on, off = make_backends(base)
    client = httpx.Client()
    try:
        fns = {
            "raw": lambda: client.post(url, json=BODY, headers=AUTH).json(),
            "on": lambda: on.chat(messages=MESSAGES, model=MODEL, **PARAMS),
            "off": lambda: off.chat(messages=MESSAGES, model=MODEL, **PARAMS),
        }
        assert (
            fns["on"]().text
            == fns["off"]().text
            == fns["raw"]()["choices"][0]["message"]["content"]
        )
        return interleave(fns, rounds, warmup)
    finally:
        client.close()
        on.close()
        off.close()


def bench_chat_async(port: int, rounds: int, warmup: int) -> dict[str, list[int]]:
    base = f"http://127.0.0.1:{port}/v1"
    url = base + "/chat/completions"

    async def main() -> dict[str, list[int]]:
        on, off = make_backends(base)
        client = httpx.AsyncClient()

        async def raw() -> Any:
            return (await client.post(url, json=BODY, headers=AUTH)).json()

        try:
            fns = {
                "raw": raw,
                "on": lambda: on.achat(messages=MESSAGES, model=MODEL, **PARAMS),
                "off": lambda: off.achat(messages=MESSAGES, model=MODEL, **PARAMS),
            }
            return await ainterleave(fns, rounds, warmup)
        finally:
            await client.aclose()
            await on.aclose()
            await off.aclose()

    return asyncio.run(main())


def mock_handler(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers=MOCK_HEADERS, content=MOCK_BODY)


MOCK_BODY = wire.chat_completion_body()
MOCK_HEADERS = [
    ("content-type", "application/json"),
    ("content-length", str(len(MOCK_BODY))),
    *wire.OPENAI_HEADERS,
]
MOCK_BASE = "http://mock.invalid/v1"


def mock_backend(
    handler: Callable[[httpx.Request], httpx.Response] | None = None, **settings: Any
) -> Any:
    """A backend whose default endpoint's sync client sends through httpx.MockTransport.

    The only intrusion: the httpx client our transport made gets MockTransport as its
    underlying transport (httpx's ``_transport``); our code runs exactly as it would."""
    backend = get_backend("openai", api_key=KEY, base_url=MOCK_BASE, **settings)
    client = backend.default_endpoint.transport.client()
    client._transport = httpx.MockTransport(handler or mock_handler)
    return backend


async def amock(backend: Any) -> None:
    """The same for the backend's async client of the running loop (see
    ``clients.mock_async``)."""
    await clients.mock_async(backend, mock_handler)


def bench_chat_mock(rounds: int, warmup: int, cold_rounds: int) -> dict[str, dict[str, list[int]]]:
    """The same A/B with httpx.MockTransport: no socket, no server, so only Python runs."""
    url = MOCK_BASE + "/chat/completions"
    on, off = mock_backend(), mock_backend(**OFF)
    client = httpx.Client(transport=httpx.MockTransport(mock_handler))
    fns = {
        "raw": lambda: client.post(url, json=BODY, headers=AUTH).json(),
        "on": lambda: on.chat(messages=MESSAGES, model=MODEL, **PARAMS),
        "off": lambda: off.chat(messages=MESSAGES, model=MODEL, **PARAMS),
    }
    sync = interleave(fns, rounds, warmup)
    junk = bytearray(16 << 20)

    def evict_caches() -> None:  # what a socket round trip and a context switch do, roughly
        junk[::64] = bytes(len(junk) // 64)

    del fns["off"]
    cold = interleave(fns, cold_rounds, warmup // 4, between=evict_caches)

    async def amain() -> dict[str, list[int]]:
        await amock(on)
        await amock(off)
        aon, aoff = on, off
        aclient = httpx.AsyncClient(transport=httpx.MockTransport(mock_handler))

        async def raw() -> Any:
            return (await aclient.post(url, json=BODY, headers=AUTH)).json()

        return await ainterleave(
            {
                "raw": raw,
                "on": lambda: aon.achat(messages=MESSAGES, model=MODEL, **PARAMS),
                "off": lambda: aoff.achat(messages=MESSAGES, model=MODEL, **PARAMS),
            },
            rounds,
            warmup,
        )

    return {"sync": sync, "async": asyncio.run(amain()), "cold": cold}


def check_same_request() -> None:
    """The raw and our requests must match: same body bytes, URL and auth header, for the
    plain call and for the stream."""
    seen: list[httpx.Request] = []
    sse = b"".join(wire.stream_events(3))

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if b'"stream":true' in request.content:
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=sse)
        return mock_handler(request)

    backend = mock_backend(handler)
    client = httpx.Client(transport=httpx.MockTransport(handler))
    url = MOCK_BASE + "/chat/completions"
    backend.chat(messages=MESSAGES, model=MODEL, **PARAMS)
    client.post(url, json=BODY, headers=AUTH)
    list(backend.stream(messages=MESSAGES, model=MODEL))
    with client.stream("POST", url, json=STREAM_BODY, headers=AUTH) as r:
        r.read()
    for ours, raw in (seen[0:2], seen[2:4]):
        assert ours.content == raw.content, (ours.content, raw.content)
        assert ours.url == raw.url, (ours.url, raw.url)
        assert ours.headers["authorization"] == raw.headers["authorization"]


# --- 2. streams --------------------------------------------------------------------------


def stream_fns_sync(port: int, prefix: str, client: httpx.Client, backend: Any) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/{prefix}/v1/chat/completions"

    def raw_lines() -> int:
        n = 0
        with client.stream("POST", url, json=STREAM_BODY, headers=AUTH) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    n += 1
        return n

    def raw_json() -> int:
        n = 0
        with client.stream("POST", url, json=STREAM_BODY, headers=AUTH) as r:
            for line in r.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    json.loads(line[6:])
                    n += 1
        return n

    def ours() -> int:
        n = 0
        for _chunk in backend.stream(messages=MESSAGES, model=MODEL):
            n += 1
        return n

    assert raw_lines() == STREAM_EVENTS and ours() == STREAM_CHUNKS + 1, (raw_lines(), ours())
    return {"raw": raw_lines, "raw+json": raw_json, "ours": ours}


def bench_stream_sync(port: int, rounds: int, warmup: int) -> dict[str, dict[str, list[int]]]:
    out = {}
    client = httpx.Client()
    for prefix in ("c1000", "l1000"):
        backend = get_backend(
            "openai", api_key=KEY, base_url=f"http://127.0.0.1:{port}/{prefix}/v1"
        )
        out[prefix] = interleave(stream_fns_sync(port, prefix, client, backend), rounds, warmup)
        backend.close()
    client.close()
    return out


def bench_stream_async(port: int, rounds: int, warmup: int) -> dict[str, dict[str, list[int]]]:
    async def main() -> dict[str, dict[str, list[int]]]:
        out = {}
        client = httpx.AsyncClient()
        for prefix in ("c1000", "l1000"):
            url = f"http://127.0.0.1:{port}/{prefix}/v1/chat/completions"
            backend = get_backend(
                "openai", api_key=KEY, base_url=f"http://127.0.0.1:{port}/{prefix}/v1"
            )

            async def raw_lines(url: str = url) -> int:
                n = 0
                async with client.stream("POST", url, json=STREAM_BODY, headers=AUTH) as r:
                    async for line in r.aiter_lines():
                        if line.startswith("data: "):
                            n += 1
                return n

            async def raw_json(url: str = url) -> int:
                n = 0
                async with client.stream("POST", url, json=STREAM_BODY, headers=AUTH) as r:
                    async for line in r.aiter_lines():
                        if line.startswith("data: ") and line != "data: [DONE]":
                            json.loads(line[6:])
                            n += 1
                return n

            async def ours(backend: Any = backend) -> int:
                n = 0
                async for _chunk in backend.astream(messages=MESSAGES, model=MODEL):
                    n += 1
                return n

            assert await raw_lines() == STREAM_EVENTS and await ours() == STREAM_CHUNKS + 1
            fns = {"raw": raw_lines, "raw+json": raw_json, "ours": ours}
            out[prefix] = await ainterleave(fns, rounds, warmup)
            await backend.aclose()
        await client.aclose()
        return out

    return asyncio.run(main())


# --- 3. cold import ----------------------------------------------------------------------

_TIMED = """\
import time
t = time.perf_counter()
{body}dt = time.perf_counter() - t
"""
# Peak RSS: VmHWM. Not ru_maxrss: a child started by subprocess (vfork + exec) inherits its
# parent's high-water mark in ru_maxrss on Linux, so it would report this process's size.
_REPORT = """\
import sys
rss = 0
try:
    with open("/proc/self/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    import resource
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(dt, rss, len(sys.modules))
"""
IMPORT_BODY = """\
from ipfs_accelerate_py.core import get_backend
b = get_backend('openai', api_key='x' * 20)
"""
IMPORT_CODE = _TIMED.format(body=IMPORT_BODY) + _REPORT
BASELINE_CODE = _TIMED.format(body="") + _REPORT
# httpx is imported by the first request, not by get_backend: measured too, so the doc
# shows what a program that makes a call pays in all.
FIRST_CALL_CODE = _TIMED.format(body=IMPORT_BODY + "import httpx\n") + _REPORT

Run = tuple[float, float, float, int, str]


def run_python(code: str, cwd: str, env: dict[str, str], *flags: str) -> Run:
    """Run ``code`` in a fresh interpreter: (wall s, in-process s, peak RSS MB, modules,
    stderr)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, *flags, "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - t0
    dt, rss_kb, mods = proc.stdout.split()
    return wall, float(dt), int(rss_kb) / 1024, int(mods), proc.stderr


def importtime_breakdown(
    stderrs: list[str],
) -> tuple[list[tuple[float, str]], list[tuple[float, str]]]:
    """From ``-X importtime`` outputs (one per run): each module's least self time over the
    runs, summed per top-level package, and our own modules' (ms), largest first."""
    best: dict[str, float] = {}
    for stderr in stderrs:
        for line in stderr.splitlines():
            parts = line.split("|")
            if len(parts) != 3 or not parts[1].strip().isdigit():
                continue
            self_ms = int(parts[0].split(":")[1]) / 1000
            name = parts[2].strip()
            best[name] = min(best.get(name, self_ms), self_ms)
    packages: dict[str, float] = {}
    ours: list[tuple[float, str]] = []
    for name, self_ms in best.items():
        top = name.split(".")[0]
        packages[top] = packages.get(top, 0.0) + self_ms
        if top.startswith("ipfs_accelerate"):
            ours.append((self_ms, name))
    return sorted(((v, k) for k, v in packages.items()), reverse=True), sorted(ours, reverse=True)


def compile_ms() -> tuple[float, int]:
    """What compiling our modules (core and the openai plugin) from source costs: what every
    start pays more when there is no bytecode cache for them."""
    import ipfs_accelerate_openai
    import ipfs_accelerate_py

    files = [
        *Path(ipfs_accelerate_py.__file__).parent.rglob("*.py"),
        *Path(ipfs_accelerate_openai.__file__).parent.rglob("*.py"),
    ]
    files = [f for f in files if "testing" not in f.parts and f.name != "cli.py"]
    sources = [(f.read_text(), str(f)) for f in files]
    t0 = time.perf_counter()
    for text, name in sources:
        compile(text, name, "exec")
    return (time.perf_counter() - t0) * 1000, len(sources)


def bench_import(runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:  # cwd: no stray .env on the way up
        # Bytecode cached, as after `pip install` (which compiles): a private cache, so that
        # PYTHONDONTWRITEBYTECODE in the environment cannot force compiling on every start
        # and nothing is written into the source tree.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        run_python(IMPORT_CODE, tmp, env)  # fill the bytecode cache and the OS file cache
        run_python(BASELINE_CODE, tmp, env)
        base: list[Run] = []
        ours: list[Run] = []
        first: list[Run] = []
        for _ in range(runs):  # interleaved, as everything else
            base.append(run_python(BASELINE_CODE, tmp, env))
            ours.append(run_python(IMPORT_CODE, tmp, env))
            first.append(run_python(FIRST_CALL_CODE, tmp, env))
        stderrs = [run_python(IMPORT_CODE, tmp, env, "-X", "importtime")[4] for _ in range(3)]

    def med(rows: list[Run], i: int) -> float:
        return statistics.median(float(r[i]) for r in rows)  # type: ignore[arg-type]

    packages, own = importtime_breakdown(stderrs)
    return {
        "runs": runs,
        "import_ms": med(ours, 1) * 1000,
        "import_ms_min": min(r[1] for r in ours) * 1000,
        "import_ms_max": max(r[1] for r in ours) * 1000,
        "first_call_ms": med(first, 1) * 1000,
        "first_call_rss_mb": med(first, 2),
        "wall_ms": med(ours, 0) * 1000,
        "base_wall_ms": med(base, 0) * 1000,
        "rss_mb": med(ours, 2),
        "base_rss_mb": med(base, 2),
        "modules": int(med(ours, 3)),
        "base_modules": int(med(base, 3)),
        "importtime_total_ms": sum(v for v, _ in packages),
        "importtime_packages": packages[:12],
        "importtime_ours": own[:10],
        "compile": compile_ms(),
    }


# --- 4. decoder, steps, profile ----------------------------------------------------------


def per_call_ns(fn: Callable[[], Any], budget_s: float = 0.15, repeats: int = 7) -> float:
    """The best over ``repeats`` of the mean time of one call in a loop, in ns (the minimum,
    as timeit does: noise only ever adds time)."""
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < budget_s / repeats / 4 or n < 10:
        fn()
        n += 1
    results = []
    for _ in range(repeats):
        t = time.perf_counter_ns()
        for _ in range(n):
            fn()
        results.append((time.perf_counter_ns() - t) / n)
    return min(results)


def bench_decoder(scale: float) -> dict[str, float]:
    """Per-event cost of SSEDecoder alone, of the whole stream state (decoder + OpenAI event
    parser + StreamChunk), and of json.loads alone, on the 1,000-chunk stream's events."""
    from ipfs_accelerate_py.openai_compat import stream_call
    from ipfs_accelerate_py.types import ChatRequest, Message

    events = wire.stream_events(STREAM_CHUNKS)
    blob = b"".join(events)
    payloads = [e[6:-2] for e in events]
    n = len(events)
    call = stream_call(ChatRequest(MODEL, (Message("user", "hi"),), {}), "openai")

    def per_event() -> None:
        d = SSEDecoder("openai")
        for e in events:
            d.feed(e)

    def one_buffer() -> None:
        SSEDecoder("openai").feed(blob)

    def state() -> None:
        s = pipeline.StreamState(call, "openai")
        for e in events:
            s.feed(e)

    def loads() -> None:
        for p in payloads[:-1]:
            json.loads(p)

    def lines() -> None:  # what httpx's iter_lines does per line, for scale
        for e in events:
            e.decode("utf-8").splitlines()

    b = 0.6 * scale
    return {
        "events": n,
        "sse_per_event_ns": per_call_ns(per_event, b) / n,
        "sse_one_buffer_ns": per_call_ns(one_buffer, b) / n,
        "state_per_event_ns": per_call_ns(state, b) / n,
        "json_loads_ns": per_call_ns(loads, b) / (n - 1),
    }


class StepsBroken(RuntimeError):
    """Section 4's steps table no longer fits core: a refactor moved the internals it uses."""


Step = tuple[str, Callable[[], Any], Callable[..., Any], bool]
"""(label, the step to run alone, the function it times, whether a real ``backend.chat``
call runs that function: checked on a traced call, so the table follows the code path)."""


def chat_steps() -> list[Step]:
    """The steps of one successful sync ``backend.chat`` call, in the order the call runs
    them: Backend.chat → _chat_call → pipeline.run → gate slot → Attempts → Attempts.start
    → HttpExecutor.attempt (build, send, read, finish) → Attempts.succeeded; each made
    runnable alone on the MockTransport backend. Uses core's internals: what no longer fits
    raises here, at once."""
    from ipfs_accelerate_py import attempts, executors
    from ipfs_accelerate_py.backend import Backend
    from ipfs_accelerate_py.resilience.breaker import CircuitBreaker
    from ipfs_accelerate_py.resilience.gate import Priority, PriorityGate
    from ipfs_accelerate_py.resilience.keys import KeyPool
    from ipfs_accelerate_py.resilience.usage import UsageTracker
    from ipfs_accelerate_py.transport import Transport, parse_json

    backend = mock_backend()
    ep = backend.default_endpoint
    hooks = backend._hooks
    client = ep.transport.client()
    raw_client = httpx.Client(transport=httpx.MockTransport(mock_handler))
    url = MOCK_BASE + "/chat/completions"
    same_ep, opts, call, request = backend._chat_call("chat", MESSAGES, MODEL, None, dict(PARAMS))
    assert same_ep is ep, (same_ep, ep)
    http = executors.executor_for(call)
    assert isinstance(http, executors.HttpExecutor), http
    lease = ep.keys.acquire(None, avoid=set())
    ep.keys.release(lease, ok=True)
    credential = lease.key.credential

    def new_attempts() -> attempts.Attempts:
        return attempts.Attempts(ep, call, opts, hooks)

    att = new_attempts()
    built = http.build(att, client, credential)
    response = client.send(built, stream=True)
    content = ep.transport.read(response, None)
    response.close()
    headers = response.headers
    outcome = http.finish(att, response, content)
    if outcome.error is not None:
        raise outcome.error
    usage = att.usage_of(outcome.result, headers)
    abs_url = ep.transport.url(call.path)

    def start() -> None:
        a = new_attempts()
        a.start()
        a.abandoned()

    def gate_cycle() -> None:
        with ep.gate.slot(Priority.NORMAL, None):
            pass

    def breaker_cycle() -> None:
        ep.breaker.before_call()
        ep.breaker.on_success()

    def lease_cycle() -> None:
        ep.keys.release(ep.keys.acquire(None, avoid=set()), ok=True)

    def send_read() -> bytes:
        r = client.send(built, stream=True)
        try:
            return ep.transport.read(r, None)
        finally:
            r.close()

    def succeeded() -> None:
        a = new_attempts()
        a.lease = ep.keys.acquire(None, avoid=set())
        a.succeeded(headers, usage)

    return [
        (
            "whole call, MockTransport: backend.chat(...)",
            lambda: backend.chat(messages=MESSAGES, model=MODEL, **PARAMS),
            Backend.chat,
            True,
        ),
        (
            "raw: client.post(...).json(), MockTransport",
            lambda: raw_client.post(url, json=BODY, headers=AUTH).json(),
            httpx.Client.post,
            False,
        ),
        (
            "build the call: options, messages, checks, ChatRequest, plugin hook",
            lambda: backend._chat_call("chat", MESSAGES, MODEL, None, dict(PARAMS)),
            Backend._chat_call,
            True,
        ),
        (
            "  of which: pipeline options and a new request id",
            lambda: backend._split(dict(PARAMS)),
            Backend._split,
            True,
        ),
        (
            "  of which: plugin hook through pluggy (chat_call)",
            lambda: backend._call("chat", ep, request=request),
            Backend._call,
            True,
        ),
        (
            "the pipeline: pipeline.run (every row below)",
            lambda: pipeline.run(ep, call, opts, hooks=hooks),
            pipeline.run,
            True,
        ),
        ("  priority gate slot (enter + exit)", gate_cycle, PriorityGate.slot, True),
        (
            "  Attempts(...): the call's state across attempts",
            new_attempts,
            attempts.Attempts,
            True,
        ),
        (
            "  Attempts.start (+ abandoned, to give back): breaker, key lease",
            start,
            attempts.Attempts.start,
            True,
        ),
        (
            "    of which: breaker before_call + on_success",
            breaker_cycle,
            CircuitBreaker.before_call,
            True,
        ),
        ("    of which: key pool acquire + release", lease_cycle, KeyPool.acquire, True),
        (
            "  HttpExecutor.attempt: build, send, read, parse",
            lambda: http.attempt(att, credential),
            executors.HttpExecutor.attempt,
            True,
        ),
        (
            "    of which: HttpExecutor.build: headers, cached absolute URL, build_request",
            lambda: http.build(att, client, credential),
            executors.HttpExecutor.build,
            True,
        ),
        (
            "      of which: client.build_request",
            lambda: client.build_request(
                "POST", abs_url, json=BODY, params=None, headers=built.headers
            ),
            httpx.Client.build_request,
            True,
        ),
        (
            "      raw: client.build_request (URL string)",
            lambda: raw_client.build_request("POST", url, json=BODY, headers=AUTH),
            httpx.Client.build_request,
            False,
        ),
        (
            "    of which: client.send(stream=True) + Transport.read + close",
            send_read,
            Transport.read,
            True,
        ),
        (
            "    of which: HttpExecutor.finish: status, JSON, ChatResponse",
            lambda: http.finish(att, response, content),
            executors.HttpExecutor.finish,
            True,
        ),
        (
            "      of which: parse_json(content) (orjson when installed)",
            lambda: parse_json(content, provider="openai"),
            parse_json,
            True,
        ),
        (
            "  Attempts.succeeded: breaker, retry budget, usage, key release",
            succeeded,
            attempts.Attempts.succeeded,
            True,
        ),
        (
            "    of which: usage.record (price lookup + counters)",
            lambda: ep.usage.record(MODEL, 9, 12, endpoint_id=ep.id, key_name=lease.key.name),
            UsageTracker.record,
            True,
        ),
        (
            "  with several keys only: keys.observe_headers (x-ratelimit-*)",
            lambda: ep.keys.observe_headers(lease.key.name, headers),
            KeyPool.observe_headers,
            False,
        ),
    ]


def _function(func: Callable[..., Any]) -> Any:
    """The Python function a step names (a class: its ``__init__``)."""
    return inspect.unwrap(func.__init__ if isinstance(func, type) else func)  # type: ignore[misc]


def code_of(func: Callable[..., Any]) -> Any:
    """The code object of the function a step times."""
    return _function(func).__code__


def where(func: Callable[..., Any]) -> str:
    """``file:Qualname`` of the function a step times, for the table's code column."""
    f = _function(func)
    return f"{rel_path(f.__code__.co_filename)}:{f.__qualname__}"


def check_steps(steps: list[Step]) -> None:
    """Run every step once, and check that a real ``backend.chat`` call runs each function
    the table says it does (a refactor that reroutes the call shows up here); raise
    StepsBroken otherwise."""
    backend = mock_backend()
    backend.chat(messages=MESSAGES, model=MODEL, **PARAMS)  # first-call work out of the way
    called: set[Any] = set()

    def trace(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            called.add(frame.f_code)

    before = sys.getprofile()
    sys.setprofile(trace)
    try:
        backend.chat(messages=MESSAGES, model=MODEL, **PARAMS)
    finally:
        sys.setprofile(before)
    for label, fn, func, in_call in steps:
        try:
            fn()
        except Exception as exc:
            raise StepsBroken(
                f"pipeline step {label.strip()!r} ({where(func)}) fails: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if in_call and code_of(func) not in called:
            raise StepsBroken(
                f"pipeline step {label.strip()!r}: a backend.chat call no longer runs "
                f"{where(func)}; update chat_steps() in benchmarks/run.py"
            )


def bench_steps(scale: float) -> list[tuple[str, float, str]]:
    """The cost of each pipeline step of one successful chat call, taken apart (µs)."""
    try:
        steps = chat_steps()
    except Exception as exc:
        raise StepsBroken(f"the pipeline steps table: {type(exc).__name__}: {exc}") from exc
    check_steps(steps)
    return [
        (label, per_call_ns(fn, 0.3 * scale) / 1000, where(func)) for label, fn, func, _ in steps
    ]


def short_name(func: tuple[str, int, str]) -> str:
    path, line, name = func
    if path == "~":
        return name
    return f"{rel_path(path)}:{line}({name})"


def rel_path(path: str) -> str:
    """A source file's path for the tables: in site-packages (a venv inside the checkout
    too), under the checkout, or in the standard library."""
    p = Path(path)
    parts = p.parts
    if "site-packages" in parts:
        return "/".join(parts[parts.index("site-packages") + 1 :])
    try:
        rel = str(p.resolve().relative_to(ROOT))
        return rel.replace("core/src/ipfs_accelerate_py/", "ipfs_accelerate_py/")
    except ValueError:
        pass
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    try:
        return "stdlib/" + str(p.relative_to(stdlib))
    except ValueError:
        return p.name


def group_of(func: tuple[str, int, str]) -> str:
    path = func[0]
    if path == "~":
        return "builtins / C"
    for pkg in ("ipfs_accelerate", "httpx", "httpcore", "pluggy", "attr", "h11", "anyio"):
        if f"/{pkg}" in path:
            return "ipfs_accelerate_py (+plugin)" if pkg == "ipfs_accelerate" else pkg
    if "/benchmarks/" in path:
        return "benchmark harness"
    return "stdlib (Python)"


def profile_chat(calls: int) -> dict[str, Any]:
    backend = mock_backend()
    raw_client = httpx.Client(transport=httpx.MockTransport(mock_handler))
    url = MOCK_BASE + "/chat/completions"
    for _ in range(200):
        backend.chat(messages=MESSAGES, model=MODEL, **PARAMS)
    result: dict[str, Any] = {"calls": calls}
    for which in ("raw", "ours"):
        prof = cProfile.Profile()
        if which == "ours":
            prof.enable()
            for _ in range(calls):
                backend.chat(messages=MESSAGES, model=MODEL, **PARAMS)
            prof.disable()
        else:
            prof.enable()
            for _ in range(calls):
                raw_client.post(url, json=BODY, headers=AUTH).json()
            prof.disable()
        st = pstats.Stats(prof, stream=io.StringIO())
        raw_stats: dict[Any, Any] = st.stats  # type: ignore[attr-defined]
        total = sum(v[2] for v in raw_stats.values())
        result[f"{which}_total_us"] = total / calls * 1e6
        if which == "ours":
            rows = sorted(raw_stats.items(), key=lambda kv: kv[1][2], reverse=True)

            def row(f: Any, v: Any) -> tuple[str, int, float, float]:
                return (short_name(f), v[1], v[2] / calls * 1e6, v[3] / calls * 1e6)

            result["top"] = [row(f, v) for f, v in rows[:15]]
            own = [(f, v) for f, v in rows if group_of(f).startswith("ipfs_accelerate")]
            result["top_ours"] = [row(f, v) for f, v in own[:12]]
        groups: dict[str, float] = {}
        for f, v in raw_stats.items():
            g = group_of(f)
            groups[g] = groups.get(g, 0.0) + v[2]
        result[f"{which}_groups"] = {g: t / calls * 1e6 for g, t in groups.items()}
    return result


# --- report ------------------------------------------------------------------------------


def machine_info() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import h11
    import httpcore

    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "httpx": httpx.__version__,
        "httpcore": httpcore.__version__,
        "h11": h11.__version__,
        "others": ", ".join(
            f"{n} {clients.version(n)}"
            for n in ("aiohttp", "httpx-aiohttp", "orjson", "openai", "litellm")
        ),
        "load": ", ".join(f"{x:.2f}" for x in load),
    }


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**NOT met**"


def render(r: dict[str, Any]) -> str:
    m = r["machine"]
    out: list[str] = []
    w = out.append
    w("# Benchmarks")
    w("")
    w(
        "What ipfs_accelerate_py costs on top of raw httpx: per call, per streamed chunk and "
        "at import. Generated by `benchmarks/run.py`; do not edit by hand."
    )
    w("")
    w("```bash")
    w(".venv/bin/python benchmarks/run.py --compare # writes this file and benchmarks.png")
    w(".venv/bin/python benchmarks/run.py --quick   # ~30 s, fewer samples (noisier)")
    w(".venv/bin/python benchmarks/run.py --soak    # and the full soak: soak.md (minutes)")
    w("```")
    w("")
    w("| machine | |")
    w("|---|---|")
    w(f"| date | {m['date']} |")
    w(f"| CPU | {m['cpu']}, {m['cores']} cores (shared with other processes) |")
    w(f"| OS | {m['os']} |")
    w(f"| Python | {m['python']} |")
    w(f"| httpx / httpcore / h11 | {m['httpx']} / {m['httpcore']} / {m['h11']} |")
    w(f"| also | {m['others']} |")
    w(f"| load average (1, 5, 15 min) | at start {m['load']}; at end {r['load_end']} |")
    w(f"| mode | {'--quick' if r['quick'] else 'full'}, run took {r['elapsed_s']:.0f} s |")
    w("")

    w("## Summary")
    w("")
    w("| target | result | |")
    w("|---|---|---|")
    for row in r["summary"]:
        w(f"| {row[0]} | {row[1]} | {verdict(row[2])} |")
    w("")
    raw_sync = summary(r["chat"]["sync"]["raw"])["p50"]
    w(
        "For context: the targets were set on a machine where raw httpx takes about 300 µs "
        f"per loopback chat request; here it takes {raw_sync:.0f} µs "
        f"({raw_sync / 300:.1f}x as long), so compare percentages (overhead / raw) across "
        "machines rather than absolute figures. The official `openai` client and `litellm` "
        "are measured side by side below (`--compare`, where installed). Sections 5 and "
        "later (throughput, side by side, cancellations and memory, every plugin, "
        "embeddings) follow section 4."
    )
    w("")

    w("## 1. Per-call overhead over raw httpx")
    w("")
    w(
        "One chat completion against a loopback server in another process that answers at "
        f"once with a fixed {len(MOCK_BODY)}-byte `chat.completion` body (HTTP/1.1 keep-alive, "
        "`Content-Length`, the headers api.openai.com sends, `x-ratelimit-*` included). "
        "**raw** is `client.post(url, json=body, headers=auth).json()` with one shared "
        "`httpx.Client` (`httpx.AsyncClient` for async); **on** is `backend.chat(...)` / "
        "`achat(...)` with "
        '`get_backend("openai", api_key=..., base_url=server/v1)`, everything at its defaults; '
        "**off** is the same with "
        + ", ".join(f"`{k}={v!r}`" for k, v in OFF.items())
        + ". The request bodies and auth header are checked to be byte-identical."
    )
    w("")
    w(
        "Calls are interleaved (raw, on, off, then the order rotates), timed one by one "
        "with `perf_counter_ns`, after a warm-up. Δ p50 = ours p50 - raw p50; paired Δ = "
        "the median over rounds of (ours - raw) for calls that ran back to back; the range "
        "is Δ p50 measured separately in 5 consecutive slices of the run (a noise indicator)."
    )
    w("")
    for kind in ("sync", "async"):
        samples = r["chat"][kind]
        raw = summary(samples["raw"])
        w(f"**{kind}** ({raw['n']} calls of each, loopback HTTP)")
        w("")
        w(
            "| variant | p50 µs | p99 µs | mean µs | Δ p50 µs | paired Δ µs | Δ p50 per slice "
            "| target ≤ 100 µs |"
        )
        w("|---|---:|---:|---:|---:|---:|---|---|")
        w(f"| raw httpx | {raw['p50']:.0f} | {raw['p99']:.0f} | {raw['mean']:.0f} | | | | |")
        for name, label in (("on", "pipeline on (defaults)"), ("off", "pipeline off")):
            s = summary(samples[name])
            d = s["p50"] - raw["p50"]
            blocks = block_deltas(samples[name], samples["raw"])
            rng = f"{min(blocks):.0f} … {max(blocks):.0f}"
            ok = verdict(d <= TARGET_CALL_US) if name == "on" else ""
            w(
                f"| {label} | {s['p50']:.0f} | {s['p99']:.0f} | {s['mean']:.0f} | "
                f"**{d:+.0f}** | {paired_delta(samples[name], samples['raw']):+.0f} | {rng} | "
                f"{ok} |"
            )
        w("")
    w(
        "The same A/B without a socket: both sides send through `httpx.MockTransport` "
        "returning the same reply (the httpx client our backend made, sync or for the running "
        "loop, gets MockTransport as its underlying transport; everything of ours runs as "
        "usual). No server, no kernel, no other "
        "process: what is left is the Python each side runs, so this is the cleanest "
        "measure of the pipeline's own cost."
    )
    w("")
    w("| MockTransport | raw p50 µs | on p50 µs | off p50 µs | Δ on µs | Δ off µs |")
    w("|---|---:|---:|---:|---:|---:|")
    for kind in ("sync", "async"):
        s = {k: summary(v) for k, v in r["mock"][kind].items()}
        w(
            f"| {kind} ({s['raw']['n']} calls each) | {s['raw']['p50']:.1f} | "
            f"{s['on']['p50']:.1f} | {s['off']['p50']:.1f} | "
            f"**{s['on']['p50'] - s['raw']['p50']:+.1f}** | "
            f"{s['off']['p50'] - s['raw']['p50']:+.1f} |"
        )
    s = {k: summary(v) for k, v in r["mock"]["cold"].items()}
    w(
        f"| sync, CPU caches evicted before each call ({s['raw']['n']} calls each) | "
        f"{s['raw']['p50']:.1f} | {s['on']['p50']:.1f} | | "
        f"**{s['on']['p50'] - s['raw']['p50']:+.1f}** | |"
    )
    w("")
    w(
        "The last row writes 16 MB between calls, roughly what a socket round trip and a "
        "context switch do to the CPU caches: the same code then costs about twice as much, "
        "on both sides: after each real round trip our extra code runs with cold caches."
    )
    w("")
    w(
        "**Why ours can take less time than raw httpx.** httpx's client hands every reply to "
        "`http.cookiejar` through adapters (a `urllib.request.Request` built from the "
        "request, the reply's headers copied into an `email.message.Message`, twice); core's "
        "clients keep cookies but skip that for a reply that sets none. And on aiohttp's "
        "pool (the `aio` extra) an async call skips httpx's request and response "
        "objects altogether (`direct.Direct`), while raw is `httpx.AsyncClient` on "
        "httpx's own pool. The MockTransport rows run our route through httpx's objects "
        "(MockTransport is an httpx transport), so they show the pipeline's cost against "
        "httpx with the cookie work as the only difference on httpx's side."
    )
    w("")
    w(
        '**What "off" means.** `queue_enabled=False` admits every call at once (the gate '
        "still counts active calls under its lock) and `max_retries=0` makes the first "
        "failure final. That is every switch there is: the circuit breaker, the key pool "
        "(the key is sent through it), the request id, the rate-limit header reading and the "
        "usage and cost accounting have no off switch, and on a *successful* call the retry "
        "policy is never consulted (only the retry budget's refill runs, on and off alike). "
        "So on and off run the same code on the success path and differ by noise only; "
        '"off" changes what happens on failures, not what a success costs.'
    )
    w("")

    w("## 2. Streaming: 1,000 chunks")
    w("")
    w(
        f"A streamed chat completion of {STREAM_CHUNKS} content chunks "
        f"({STREAM_EVENTS} SSE events with the role chunk, finish chunk, usage chunk and "
        f"`[DONE]`; {STREAM_BYTES / 1000:.0f} KB). "
        '**raw** is `with client.stream("POST", ...) as r: for line in '
        "r.iter_lines(): ...` counting the `data:` lines (async: `aiter_lines`); "
        "**raw+json** also `json.loads` each event, the least any real consumer does; "
        "**ours** is `for chunk in backend.stream(...)` (async: `astream`), which decodes "
        "each event into a `StreamChunk` and checks the end marker. Two framings: one SSE "
        "event per HTTP chunk (`Transfer-Encoding: chunked`, as api.openai.com sends them) "
        "and the whole stream as one `Content-Length` body (large reads). Time per stream, "
        "request to last chunk; streams interleaved as above."
    )
    w("")
    w(
        "| stream | raw ms p50 | raw+json ms p50 | ours ms p50 | ours p99 ms | "
        "ours / raw | ours / raw+json | target ≤ 3x |"
    )
    w("|---|---:|---:|---:|---:|---:|---:|---|")
    for kind in ("sync", "async"):
        for prefix, label in (("c1000", "chunked"), ("l1000", "Content-Length")):
            s = {k: summary(v) for k, v in r["stream"][kind][prefix].items()}
            ratio = s["ours"]["p50"] / s["raw"]["p50"]
            w(
                f"| {kind}, {label} ({s['raw']['n']} each) | {s['raw']['p50'] / 1000:.2f} | "
                f"{s['raw+json']['p50'] / 1000:.2f} | {s['ours']['p50'] / 1000:.2f} | "
                f"{s['ours']['p99'] / 1000:.2f} | **{ratio:.2f}x** | "
                f"{s['ours']['p50'] / s['raw+json']['p50']:.2f}x | "
                f"{verdict(ratio <= TARGET_STREAM_RATIO)} |"
            )
    w("")

    imp = r["import"]
    w('## 3. Cold import + `get_backend("openai")`')
    w("")
    w(
        f"A fresh interpreter runs `from ipfs_accelerate_py.core import get_backend; "
        f"get_backend('openai', api_key='x' * 20)` timed with `perf_counter` inside the "
        "process, then reports its peak RSS (`VmHWM` from `/proc/self/status`: `ru_maxrss` "
        "of a child started with vfork + exec reports the parent's size on Linux); the "
        "baseline is the same script without those two lines. Median of "
        f"{imp['runs']} runs each, interleaved, after a warm-up run. Bytecode is cached, as "
        "after `pip install`, which compiles (a private `PYTHONPYCACHEPREFIX`, so a "
        "`PYTHONDONTWRITEBYTECODE=1` environment does not force compiling at every start); "
        "the working directory has no `.env`."
    )
    w("")
    w("| | ours | bare `python` | difference | target | |")
    w("|---|---:|---:|---:|---|---|")
    w(
        f"| import + get_backend, in-process | {imp['import_ms']:.0f} ms "
        f"(min {imp['import_ms_min']:.0f}, max {imp['import_ms_max']:.0f}) | 0 ms | "
        f"{imp['import_ms']:.0f} ms | < {TARGET_IMPORT_MS:.0f} ms | "
        f"{verdict(imp['import_ms'] < TARGET_IMPORT_MS)} |"
    )
    w(
        f"| ... and httpx, which the first request imports | {imp['first_call_ms']:.0f} ms, "
        f"{imp['first_call_rss_mb']:.1f} MB | | | | |"
    )
    w(
        f"| peak RSS of the process | {imp['rss_mb']:.1f} MB | {imp['base_rss_mb']:.1f} MB | "
        f"{imp['rss_mb'] - imp['base_rss_mb']:+.1f} MB | < {TARGET_IMPORT_MB:.0f} MB (whole "
        f"process) | {verdict(imp['rss_mb'] < TARGET_IMPORT_MB)} |"
    )
    w(
        f"| process wall time (start to exit) | {imp['wall_ms']:.0f} ms | "
        f"{imp['base_wall_ms']:.0f} ms | {imp['wall_ms'] - imp['base_wall_ms']:+.0f} ms | | |"
    )
    w(
        f"| modules in `sys.modules` | {imp['modules']} | {imp['base_modules']} | "
        f"{imp['modules'] - imp['base_modules']:+d} | | |"
    )
    cms, nfiles = imp["compile"]
    w(f"| without bytecode cache: compiling our {nfiles} modules | +{cms:.0f} ms | | | | |")
    w("")
    w(
        "The last row is what each start costs more when our modules have no bytecode cache, "
        "as with an editable install under `PYTHONDONTWRITEBYTECODE=1` (this environment "
        "sets it)."
    )
    w("")
    w(
        "Where the import time goes: `python -X importtime`, each module's least self time "
        f"over three runs, summed per top-level package ({imp['importtime_total_ms']:.0f} ms "
        "in all; importtime's own bookkeeping inflates it a little), and our own modules' "
        "self time (mostly building the value classes: `fastattrs`, without attrs):"
    )
    w("")
    w("| package | self ms | | our module | self ms |")
    w("|---|---:|---|---|---:|")
    pk, ow = imp["importtime_packages"], imp["importtime_ours"]
    for i in range(max(len(pk), len(ow))):
        left = f"`{pk[i][1]}` | {pk[i][0]:.1f}" if i < len(pk) else " | "
        right = f"`{ow[i][1]}` | {ow[i][0]:.1f}" if i < len(ow) else " | "
        w(f"| {left} | | {right} |")
    w("")

    dec = r["decoder"]
    w("## 4. Where the time goes")
    w("")
    w(
        f"### SSE decoding, per event ({dec['events']} events, "
        f"{STREAM_BYTES / dec['events']:.0f} bytes on average)"
    )
    w("")
    w("| | ns per event |")
    w("|---|---:|")
    w(f"| `SSEDecoder.feed`, one event per feed (chunked) | {dec['sse_per_event_ns']:.0f} |")
    w(f"| `SSEDecoder.feed`, the whole stream in one buffer | {dec['sse_one_buffer_ns']:.0f} |")
    w(
        "| `StreamState.feed`: decoder + OpenAI event parser (`json.loads`) + `StreamChunk`"
        f" | {dec['state_per_event_ns']:.0f} |"
    )
    w(f"| for scale: `json.loads` of one event's data alone | {dec['json_loads_ns']:.0f} |")
    w("")
    w("### Pipeline steps of one successful chat call, taken apart")
    w("")
    w(
        "Each step timed alone in a loop (best of 7 repeats, µs per call), on the backend "
        "with the MockTransport, in the order a call runs them. Indented rows are inside "
        "the row above, so rows do not add up exactly; a loop keeps caches warm, so in a real "
        "call each step costs more (up to about twice, see the evicted-caches row above). "
        "Before timing, every step runs once and a traced `backend.chat` call must run each "
        "function in the code column (raw and comparison rows aside): the suite stops "
        "if a refactor left the table behind."
    )
    w("")
    w("| step | µs | code |")
    w("|---|---:|---|")
    for label, us, where in r["steps"]:
        text = label.lstrip(" ")
        indent = "&emsp;" * ((len(label) - len(text)) // 2)
        w(f"| {indent}{text} | {us:.1f} | `{where}` |")
    w("")
    prof = r["profile"]
    w(f"### cProfile of {prof['calls']} `backend.chat` calls (MockTransport)")
    w("")
    w(
        "Top 15 functions by own time (tottime), per chat call. cProfile's own cost "
        f"inflates every function call: profiled, a call takes {prof['ours_total_us']:.0f} µs "
        f"(raw httpx: {prof['raw_total_us']:.0f} µs), so read the shares, not the absolute "
        "values."
    )
    w("")
    w("| function | calls per chat | tottime µs | cumtime µs |")
    w("|---|---:|---:|---:|")
    for name, ncalls, tot, cum in prof["top"]:
        w(f"| `{name}` | {ncalls / prof['calls']:g} | {tot:.1f} | {cum:.1f} |")
    w("")
    w("Our own functions only (ipfs_accelerate_py and the plugin), top 12 by own time:")
    w("")
    w("| function | calls per chat | tottime µs | cumtime µs |")
    w("|---|---:|---:|---:|")
    for name, ncalls, tot, cum in prof["top_ours"]:
        w(f"| `{name}` | {ncalls / prof['calls']:g} | {tot:.1f} | {cum:.1f} |")
    w("")
    w("Own time per call by package, profiled (ours vs raw httpx):")
    w("")
    w("| package | ours µs | raw µs |")
    w("|---|---:|---:|")
    groups = sorted(
        set(prof["ours_groups"]) | set(prof["raw_groups"]),
        key=lambda g: -prof["ours_groups"].get(g, 0.0),
    )
    for g in groups:
        w(f"| {g} | {prof['ours_groups'].get(g, 0.0):.1f} | {prof['raw_groups'].get(g, 0.0):.1f} |")
    w("")

    w("## How to read this, and noise")
    w("")
    w(
        "- All measurements of one page come from one process run, so ratios between rows "
        "hold even when absolute numbers move between runs. The variants compared are "
        "interleaved call by call, so a burst of load from another process hits all of them."
    )
    w(
        "- The machine is a shared 2-core VM: the loopback server takes one core, the "
        "client the other, and anything else running competes with both. Absolute times move "
        "by 10-20 % between runs with the load; Δ p50 moves by a few tens of µs. p99 catches "
        "scheduler hiccups and garbage collections and moves much more. Trust Δ p50, the "
        "paired Δ and the per-slice range beside them; if that range is wide, run again."
    )
    w(
        "- The MockTransport rows have no server and no kernel in them and vary least: they "
        "are the pipeline's pure-Python cost with warm caches, a lower bound. The loopback Δ "
        "is what a caller sees; it is larger mostly because of cold caches (see the "
        "evicted-caches row)."
    )
    w(
        "- Microsecond step timings come from tight loops with warm caches and are lower "
        "bounds; the cProfile table is inflated by profiling and shows shares only."
    )
    w("- `--quick` takes about a tenth of the samples: fine to spot a regression, not to quote.")
    w("")
    return "\n".join(out)


NEEDED = (
    "numpy",
    "opentelemetry.sdk",
    *(f"ipfs_accelerate_{p}" for p in ("openai", "claude", "groq", "gemini", "ollama", "hf")),
    "ipfs_accelerate_local",
)
"""What the whole run imports; checked first, so that a partial environment fails at once."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="~20 s run with fewer samples")
    parser.add_argument(
        "--out", default=str(ROOT / "docs" / "benchmarks.md"), help="the page to write"
    )
    parser.add_argument("--no-write", action="store_true", help="print the page instead")
    parser.add_argument("--json", help="also dump the raw samples and results to this file")
    parser.add_argument(
        "--shared-state", action="store_true", help="add benchmarks/shared_state.py (Redis)"
    )
    parser.add_argument(
        "--compare", action="store_true", help="also measure openai and litellm, if installed"
    )
    parser.add_argument(
        "--soak",
        action="store_true",
        help="also the full soak (10,000 cancellations on each async transport, 100,000 "
        "requests; minutes), written to soak.md next to --out",
    )
    args = parser.parse_args()
    missing = [name for name in NEEDED if not clients.installed(name)]
    if missing:
        print(
            f"benchmarks/run.py needs {', '.join(missing)}: run it in the environment "
            "./scripts/setup makes (every plugin, and core's numpy and otel-test extras)",
            file=sys.stderr,
        )
        return 2
    q = args.quick
    scale = 0.2 if q else 1.0
    chat_n, achat_n, stream_n = (400, 300, 6) if q else (5000, 3000, 60)
    mock_n = 800 if q else 8000
    import_runs = 3 if q else 10
    profile_calls = 500 if q else 2000
    warm = 100 if q else 300

    started = time.perf_counter()
    results: dict[str, Any] = {"quick": q, "machine": machine_info()}
    check_same_request()
    check_steps(chat_steps())  # section 4's table still fits core: fail now, not at the end
    with loopback_server() as port:
        log(f"loopback server on port {port}")
        log(f"1. chat, sync: {chat_n} calls x 3 variants")
        results["chat"] = {"sync": bench_chat_sync(port, chat_n, warmup=warm)}
        log(f"1. chat, async: {achat_n} calls x 3 variants")
        results["chat"]["async"] = bench_chat_async(port, achat_n, warmup=warm)
        log(f"2. streams: {stream_n} rounds x 3 variants x 2 framings, sync and async")
        results["stream"] = {
            "sync": bench_stream_sync(port, stream_n, warmup=3),
            "async": bench_stream_async(port, stream_n, warmup=3),
        }
        log("5. async throughput versus requests in flight")
        results["sweep"] = concurrency.bench_concurrency(
            port,
            compare=args.compare,
            reps=1 if q else 3,
            # 1,000 workers take a while to reach a steady state (connections opened, the
            # gate's queue filled): a window after a short warm-up still holds that ramp
            duration=0.25 if q else 0.6,
            warmup=0.1 if q else 0.4,
        )
        cancels, requests = (300, 1_000) if q else (2_000, 10_000)
        log(f"7. {cancels:,} cancellations, then {requests:,} requests for memory")
        results["cancel"] = soak.bench_cancellations(port, cancels, 0.5 if q else 1.0)
        results["memory"] = soak.bench_memory(port, requests)
        if args.soak:
            out = Path(args.out).with_name("soak.md")
            log(f"7. the full soak (benchmarks/soak.py), written to {out}")
            soak.write_full(
                port,
                out,
                {**results["machine"], "commit": soak.commit()},
                ".venv/bin/python benchmarks/run.py --soak",
                write=not args.no_write,
                cancels=soak.FULL_CANCELS,
                requests=soak.FULL_REQUESTS,
                seconds=5.0,
                windows=5,
            )
        log("8. every plugin: chat and a 1,000-chunk stream in its own framing")
        results["plugins"] = plugins_bench.bench_plugins(port, 150 if q else 500, 4 if q else 20)
        results["plugins"]["stdjson"] = plugins_bench.bench_stdjson(port, 4 if q else 20)
        log("9. embeddings, 256 x 384")
        results["embeddings"] = embeddings_bench.bench_embeddings(port, 10 if q else 40)
        log("6. side by side" + (" with openai and litellm" if args.compare else ""))
        results["compare"] = {
            "chat": compare.bench_chat(port, 100 if q else 600, args.compare),
            "stream": compare.bench_stream(port, 3 if q else 10, args.compare),
        }
        with tempfile.TemporaryDirectory() as tmp:
            cold = compare.bench_cold(port, 5 if q else 15, args.compare, tmp, dict(os.environ))
            results["compare"]["cold"], results["compare"]["cold_cpu"] = cold["wall"], cold["cpu"]
    log(f"1b. chat over MockTransport: {mock_n} calls x 3 variants, sync and async")
    results["mock"] = bench_chat_mock(mock_n, warmup=2 * warm, cold_rounds=mock_n // 4)
    log(f"5. router overhead: {mock_n} calls x 3 variants, sync and async")
    import router_overhead

    results["router"] = router_overhead.bench_router(
        mock_backend, interleave, ainterleave, mock_n, 2 * warm
    )
    log(f"3. cold import: {import_runs} runs")
    results["import"] = bench_import(import_runs)
    log("4. SSE decoder alone")
    results["decoder"] = bench_decoder(scale)
    log("4. pipeline steps alone")
    results["steps"] = bench_steps(scale)
    log(f"4. cProfile of {profile_calls} chat calls")
    results["profile"] = profile_chat(profile_calls)
    log("5. observability: off (with and without OpenTelemetry), on, hooks, log lines")
    import observability as observability_bench  # benchmarks/observability.py

    results["observability"] = observability_bench.bench(q)
    results["load_end"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    results["elapsed_s"] = time.perf_counter() - started

    chat_on = (
        summary(results["chat"]["sync"]["on"])["p50"]
        - summary(results["chat"]["sync"]["raw"])["p50"]
    )
    achat_on = (
        summary(results["chat"]["async"]["on"])["p50"]
        - summary(results["chat"]["async"]["raw"])["p50"]
    )
    ratios = {
        (kind, prefix): summary(results["stream"][kind][prefix]["ours"])["p50"]
        / summary(results["stream"][kind][prefix]["raw"])["p50"]
        for kind in ("sync", "async")
        for prefix in ("c1000", "l1000")
    }
    imp = results["import"]
    raw_sync = summary(results["chat"]["sync"]["raw"])["p50"]
    raw_async = summary(results["chat"]["async"]["raw"])["p50"]
    mock = {
        kind: summary(results["mock"][kind]["on"])["p50"]
        - summary(results["mock"][kind]["raw"])["p50"]
        for kind in ("sync", "async")
    }
    results["summary"] = [
        (
            "≤ 100 µs p50 above raw httpx, everything on (sync)",
            f"{chat_on:+.0f} µs over raw's {raw_sync:.0f} µs ({chat_on / raw_sync:.0%}); "
            f"without a socket (MockTransport) {mock['sync']:+.0f} µs",
            chat_on <= TARGET_CALL_US,
        ),
        (
            "≤ 100 µs p50 above raw httpx, everything on (async)",
            f"{achat_on:+.0f} µs over raw's {raw_async:.0f} µs ({achat_on / raw_async:.0%}); "
            f"without a socket {mock['async']:+.0f} µs",
            achat_on <= TARGET_CALL_US,
        ),
        (
            "1,000-chunk stream ≤ 3x raw line iteration, chunked (one event per HTTP chunk, "
            "as api.openai.com sends)",
            f"sync {ratios['sync', 'c1000']:.2f}x, async {ratios['async', 'c1000']:.2f}x",
            max(ratios["sync", "c1000"], ratios["async", "c1000"]) <= TARGET_STREAM_RATIO,
        ),
        (
            "1,000-chunk stream ≤ 3x raw line iteration, one Content-Length body",
            f"sync {ratios['sync', 'l1000']:.2f}x, async {ratios['async', 'l1000']:.2f}x",
            max(ratios["sync", "l1000"], ratios["async", "l1000"]) <= TARGET_STREAM_RATIO,
        ),
        (
            "import + get_backend < 150 ms",
            f"{imp['import_ms']:.0f} ms",
            imp["import_ms"] < TARGET_IMPORT_MS,
        ),
        (
            "import + get_backend < 45 MB (process peak RSS)",
            f"{imp['rss_mb']:.1f} MB ({imp['rss_mb'] - imp['base_rss_mb']:+.1f} MB over bare "
            "python)",
            imp["rss_mb"] < TARGET_IMPORT_MB,
        ),
    ]
    cold, cold_cpu = results["compare"]["cold"], results["compare"]["cold_cpu"]
    first_reply = compare.over_raw(cold, "ours")
    results["summary"].append(
        (
            "import + get_backend + first reply ≤ 20 ms over raw httpx's (a fresh interpreter, "
            "plugin and pipeline on)",
            f"{first_reply:+.0f} ms over raw's {statistics.median(cold['raw httpx']):.0f} ms "
            f"(CPU time {compare.over_raw(cold_cpu, 'ours'):+.0f} ms); median of "
            f"{len(cold['ours'])} rounds",
            first_reply <= TARGET_FIRST_REPLY_MS,
        )
    )
    router_row, router_section = router_overhead.summarize(results["router"])
    results["summary"].append(router_row)
    results["summary"] += concurrency.summary(results["sweep"])
    results["summary"] += soak.summary(results["cancel"], results["memory"])
    results["summary"] += plugins_bench.summary(results["plugins"])
    results["summary"] += embeddings_bench.summary(results["embeddings"])
    page = render(results)
    page += "\n".join(
        [
            "",
            *concurrency.render(results["sweep"]),
            *compare.render(results["compare"]),
            *soak.render(results["cancel"], results["memory"]),
            *plugins_bench.render(results["plugins"]),
            *embeddings_bench.render(results["embeddings"]),
        ]
    )
    page += "\n" + router_section + "\n" + observability_bench.render(results["observability"])
    if args.shared_state:  # benchmarks/shared_state.py: needs a redis-server and the client
        import shared_state

        page += "\n" + shared_state.report(shared_state.run(q)) + "\n"
    log("bulk transfers: TEI batch_embed, S3 folder upload (benchmarks/transfers.py)")
    import transfers

    page += "\n" + transfers.render(transfers.bench(q))
    if not args.no_write:
        compare.plot(results["compare"], results["sweep"], Path(args.out).with_suffix(".png"))
    if args.no_write:
        print(page)
    else:
        Path(args.out).write_text(page + "\n" if not page.endswith("\n") else page)
        log(f"wrote {args.out}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, default=str))
    for label, value, ok in results["summary"]:
        print(f"{'ok  ' if ok else 'MISS'} {label}: {value}")
    print(f"took {results['elapsed_s']:.0f} s")
    if not args.no_write:  # the semantic cache, batching and local embedder: docs/cache.md
        import cache as cache_bench

        cache_bench.main(quick=q)
    return 0


if __name__ == "__main__":
    sys.exit(main())
