"""Cancellation and long runs must cost nothing.

1. **Cancellations**: async chat calls and 1,000-chunk streams on one backend are cancelled
   at random points in waves of 150 tasks (more than the gate's 100 slots, so some wait in
   its queue); some replies come slowly (the loopback server's ``x-bench-pace`` header: a
   chat reply's body in two parts 40 ms apart, a stream in 20 parts 5 ms apart), so calls
   are also caught mid-body and mid-stream. Where each call was when cancelled is read off
   its ``CancelledError``'s traceback: queued in the gate, connecting (opening a connection
   or waiting for the reply's head), mid-body or mid-stream. Then full-speed chat traffic on
   the same backend: it must see no error (no pool timeout) and the throughput measured
   before the cancellations; the gate, the key pool and the connection pool must hold
   nothing. (On httpx's own pool a cancelled call's send and close finish in background
   tasks, outside the gate: each wave waits for them, or the waves would outrun the pool.)
2. **Memory**: a long mixed run (chat, 10-chunk streams, error replies and retried 503s, 50
   in flight); RSS and the number of objects the garbage collector tracks after a
   collection at checkpoints. Flat means the growth over the second half of the run stays
   within a few MB (allocator noise), not growing with the number of requests.

``run.py`` runs a short version in its suite (section 7). The full one (10,000
cancellations on each async transport, 100,000 requests; a few minutes) writes
docs/soak.md::

    .venv/bin/python benchmarks/soak.py       # or: benchmarks/run.py --soak, after the suite
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clients import FANOUT, KEY, MESSAGES, MODEL

PACE = "x-bench-pace"  # benchmarks/server.py: HEAD_MS,PIECES,GAP_MS
SLOW_BODY = {PACE: "0,2,60"}  # a chat reply's body in two parts, 60 ms apart
SLOW_STREAM = {PACE: "0,10,15"}  # a 100-chunk stream in 10 parts, 15 ms apart
WAVE = 150  # tasks per wave: the gate admits 100 (FANOUT), the rest queue
# each task is cancelled after a random 0 to this many seconds (unless done by then): httpx's
# own pool serves ~10x fewer requests a second with 100 in flight (quadratic scheduling), so
# its calls get a longer window to get past connecting
CANCEL_WITHIN = {"aiohttp": 0.3, "httpx": 1.0}
PHASES = ("queued", "connecting", "mid-body", "mid-stream")
FULL_CANCELS, FULL_REQUESTS = 10_000, 100_000
TRANSPORT_ENV = "IPFS_ACCELERATE_ASYNC_TRANSPORT"
TRANSPORTS = {"aiohttp": "aiohttp's pool (`aio` extra)", "httpx": "httpx's own pool"}


def rss_mb() -> float:
    """This process's resident set size, MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# --- where a cancelled call was ------------------------------------------------------------


def _frames(exc: BaseException) -> list[str]:
    """``folder/file.py:function`` of each frame the exception went through, outermost
    first (co_name, not co_qualname: Python 3.10 has no co_qualname)."""
    out = []
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        path = Path(code.co_filename)
        out.append(f"{path.parent.name}/{path.name}:{code.co_name}")
        tb = tb.tb_next
    return out


def phase_of(exc: BaseException) -> tuple[str, str]:
    """(phase, detail) of a call cancelled where ``exc`` (its CancelledError) was raised.

    The phases: ``queued`` (waiting in the priority gate), ``connecting`` (from the gate to
    the reply's head: waiting for a pooled connection, opening one, or the request sent and
    the head not yet in), ``mid-body`` (reading a chat reply's body), ``mid-stream`` (a
    stream opened, between or reading its chunks); anything else is ``other``."""
    frames = _frames(exc)

    def has(*names: str) -> bool:
        return any(n in f for f in frames for n in names)

    if has("resilience/gate.py:aacquire"):
        return "queued", "in the priority gate's queue"
    if has("ipfs_accelerate_py/transport.py:aread"):
        return "mid-body", "reading the reply's body"
    if has("executors.py:aopen", "executors.py:aattempt"):
        if has("transport.py:aclient", "transport.py:_open_aclient"):
            return "connecting", "creating the event loop's client (first use)"
        if has("aiohttp/client_reqrep.py:start"):
            return "connecting", "request sent, awaiting the reply's head"
        if has("_wait_for_available_connection"):
            return "connecting", "waiting for a free pooled connection"
        if has("aiohttp/connector.py:", "create_connection", "connect_tcp"):
            return "connecting", "opening a connection"
        if frames[-1].endswith("transport.py:asend"):  # httpx's pool: the send is shielded
            return "connecting", "in the send (shielded: opening a connection or awaiting the head)"
    elif has("pipeline.py:arun_stream"):
        return "mid-stream", "between or reading chunks"
    return "other", " > ".join(frames[-3:])


# --- 1. cancellations -----------------------------------------------------------------------


@contextlib.contextmanager
def async_transport(name: str | None) -> Iterator[str]:
    """Use aiohttp's pool (``None``: the default, when the ``aio`` extra is installed) or
    httpx's own (``"httpx"``) for the clients created inside; yields the one in use."""
    from ipfs_accelerate_py import aio_transport

    old = os.environ.get(TRANSPORT_ENV)
    if name is not None:
        os.environ[TRANSPORT_ENV] = name
    try:
        yield "aiohttp" if aio_transport.aiohttp_available() else "httpx"
    finally:
        if old is None:
            os.environ.pop(TRANSPORT_ENV, None)
        else:
            os.environ[TRANSPORT_ENV] = old


async def _drain(limit: float) -> float:
    """Wait (up to ``limit`` seconds) until no other task is left on the loop; the wait."""
    t0 = time.perf_counter()
    while len(asyncio.all_tasks()) > 1 and time.perf_counter() - t0 < limit:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    return time.perf_counter() - t0


async def _best_throughput(
    call: Any, inflight: int, seconds: float, windows: int = 3
) -> tuple[float, int]:
    """The best of ``windows`` windows of ``seconds / windows`` (other processes' load only
    ever lowers throughput), and the errors in all of them."""
    runs = [await _throughput(call, inflight, seconds / windows) for _ in range(windows)]
    return max(r for r, _ in runs), sum(e for _, e in runs)


async def _throughput(call: Any, inflight: int, seconds: float) -> tuple[float, int]:
    done = errors = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done, errors
        while time.perf_counter() < stop:
            try:
                await call()
                done += 1
            except Exception:
                errors += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return done / (time.perf_counter() - t0), errors


def pool_in_use(backend: Any) -> int | None:
    """Connections (aiohttp) or requests (httpx's pool) the running loop's client holds:
    library internals, ``None`` where they are not found."""
    loop = asyncio.get_running_loop()
    entry = backend.default_endpoint.transport._aclients.get(id(loop))
    if entry is None:
        return None
    transport = getattr(entry[1], "_transport", None)
    session = getattr(transport, "client", None)
    connector = getattr(session, "connector", None)
    if connector is not None and hasattr(connector, "_acquired"):
        return len(connector._acquired)
    pool = getattr(transport, "_pool", None)
    if pool is not None and hasattr(pool, "_requests"):
        return len(pool._requests)
    return None


def bench_cancellations(
    port: int, count: int, seconds: float, transport: str | None = None, windows: int = 3
) -> dict[str, Any]:
    """Throughput before and after ``count`` random cancellations on one backend, the
    phases they hit, and what is still held afterwards."""
    from ipfs_accelerate_py.core import get_backend

    with async_transport(transport) as transport_name:
        within = CANCEL_WITHIN[transport_name]
        # /c100/: streams of 100 chunks, an event per HTTP chunk (chat replies as anywhere)
        url = f"http://127.0.0.1:{port}/c100/v1"
        backend = get_backend("openai", api_key=KEY, base_url=url, **FANOUT)
        rng = random.Random(1)

        async def chat(headers: dict[str, str] | None = None) -> Any:
            return await backend.achat(messages=MESSAGES, model=MODEL, extra_headers=headers)

        async def stream(headers: dict[str, str] | None = None) -> int:
            chunks = backend.astream(messages=MESSAGES, model=MODEL, extra_headers=headers)
            return sum([1 async for _ in chunks])

        kinds = (
            ("chat", 0.25, lambda: chat()),
            ("chat, slow body", 0.25, lambda: chat(SLOW_BODY)),
            ("stream", 0.25, lambda: stream()),
            ("stream, slow", 0.25, lambda: stream(SLOW_STREAM)),
        )

        async def main() -> dict[str, Any]:
            loop = asyncio.get_running_loop()
            await _throughput(chat, 50, 0.2)  # open the connections
            before, errors_before = await _best_throughput(chat, 50, seconds, windows)
            phases: Counter[str] = Counter()
            details: Counter[tuple[str, str]] = Counter()
            by_kind: Counter[tuple[str, str]] = Counter()
            failures: Counter[str] = Counter()
            cancelled = completed = waves = progress = 0
            drained = 0.0
            t0 = time.perf_counter()
            while cancelled < count:
                waves += 1
                if waves > 100 + 10 * count // WAVE:  # fail, never spin
                    raise RuntimeError(f"only {cancelled} cancellations in {waves} waves")
                picks = rng.choices(kinds, weights=[k[1] for k in kinds], k=WAVE)
                tasks = [(name, asyncio.create_task(make())) for name, _, make in picks]
                for _, task in tasks:  # each at its own random point
                    loop.call_later(rng.uniform(0, within), task.cancel)
                for name, task in tasks:
                    try:
                        await task
                        completed += 1
                    except asyncio.CancelledError as exc:
                        cancelled += 1
                        phase, detail = phase_of(exc)
                        phases[phase] += 1
                        details[phase, detail] += 1
                        by_kind[phase, name] += 1
                    except Exception as exc:  # must not happen: reported, not hidden
                        failures[f"{type(exc).__name__}: {str(exc)[:120]}"] += 1
                # On httpx's pool the sends (and closes) of cancelled calls finish in their
                # own tasks (Transport.asend), outside the gate: wait for them before the next
                # wave, or the waves outrun the pool and its queue grows without bound
                drained += await _drain(120.0)
                if cancelled // 1000 > progress:
                    progress = cancelled // 1000
                    print(
                        f"soak: {cancelled:,} cancelled, {time.perf_counter() - t0:.0f} s",
                        file=sys.stderr,
                        flush=True,
                    )
            took = time.perf_counter() - t0
            # give the server (another process) a moment with the requests cut off above, so
            # that "after" measures this process
            await asyncio.sleep(1.0)
            await _throughput(chat, 50, 0.2)  # the same warm-up "before" had
            # and a fresh backend alongside, window for window: the machine's load may have
            # changed since "before"; this control sees the same load as "after"
            fresh = get_backend("openai", api_key=KEY, base_url=url, **FANOUT)

            async def fresh_chat() -> Any:
                return await fresh.achat(messages=MESSAGES, model=MODEL)

            await _throughput(fresh_chat, 50, 0.2)
            after = control = 0.0
            errors = 0
            for _ in range(windows):
                rps, errs = await _throughput(chat, 50, seconds / windows)
                after, errors = max(after, rps), errors + errs
                control = max(control, (await _throughput(fresh_chat, 50, seconds / windows))[0])
            await fresh.aclose()
            fresh.close()
            await _drain(10.0)
            ep = backend.default_endpoint
            held = {
                "gate_active": ep.gate.info()["active_requests"],
                "gate_waiting": ep.gate.info()["size"],
                "key_leases": sum(k["in_flight"] for k in ep.keys.stats().values()),
                "pool": pool_in_use(backend),
                "tasks": len(asyncio.all_tasks()) - 1,
                "breaker": ep.breaker.state.value,
            }
            await backend.aclose()
            return {
                "transport": TRANSPORTS[transport_name],
                "cancelled": cancelled,
                "completed": completed,
                "failed": dict(failures),
                "waves": waves,
                "phases": {p: phases.get(p, 0) for p in (*PHASES, "other")},
                "details": [[p, d, n] for (p, d), n in sorted(details.items())],
                "by_kind": [[p, k, n] for (p, k), n in sorted(by_kind.items())],
                "windows": windows,
                "window_s": seconds / windows,
                "cancel_s": took,
                "cancel_within_s": within,
                "drain_s": drained,
                "before_rps": before,
                "errors_before": errors_before,
                "after_rps": after,
                "control_rps": control,
                "errors_after": errors,
                "held": held,
                # the short version's table (run.py) shows these two
                "gate": held["gate_active"] + held["gate_waiting"],
            }

        try:
            return asyncio.run(main())
        finally:
            backend.close()


# --- 2. memory ------------------------------------------------------------------------------


def bench_memory(port: int, requests: int, checkpoints: int = 10) -> dict[str, Any]:
    """RSS over a long mixed run: chat (70%), 10-chunk streams (20%), 500 errors (5%) and
    503s retried once (5%)."""
    from ipfs_accelerate_py.core import get_backend

    base = f"http://127.0.0.1:{port}"
    quick = {"max_retries": 1, "initial_retry_delay": 0.0, "failure_threshold": 10**9}
    chat = get_backend("openai", api_key=KEY, base_url=base + "/v1", **FANOUT)
    streams = get_backend("openai", api_key=KEY, base_url=base + "/c10/v1", **FANOUT)
    e500 = get_backend("openai", api_key=KEY, base_url=base + "/e500/v1", **FANOUT, **quick)
    e503 = get_backend("openai", api_key=KEY, base_url=base + "/e503/v1", **FANOUT, **quick)
    rng = random.Random(2)
    counts = {"chat": 0, "stream": 0, "error": 0, "error_500": 0, "error_503": 0, "other": 0}
    points: list[tuple[int, float]] = []
    objects: list[tuple[int, int]] = []
    window_events: list[int] = []

    async def one() -> None:
        r = rng.random()
        try:
            if r < 0.7:
                await chat.achat(messages=MESSAGES, model=MODEL)
                counts["chat"] += 1
            elif r < 0.9:
                [c async for c in streams.astream(messages=MESSAGES, model=MODEL)]
                counts["stream"] += 1
            else:
                await (e500 if r < 0.95 else e503).achat(messages=MESSAGES, model=MODEL)
                counts["other"] += 1  # an error endpoint answered: must not happen
        except Exception as exc:
            counts["error"] += 1
            status = getattr(exc, "status_code", None)
            counts["error_500" if status == 500 else "error_503" if status == 503 else "other"] += 1

    async def main() -> float:
        step = max(1, requests // checkpoints)
        t0 = time.perf_counter()
        issued = 0
        sem = asyncio.Semaphore(50)

        async def limited() -> None:
            async with sem:
                await one()

        while issued < requests:
            n = min(step, requests - issued)
            await asyncio.gather(*(limited() for _ in range(n)))
            issued += n
            gc.collect()
            points.append((issued, rss_mb()))
            objects.append((issued, len(gc.get_objects())))
        took = time.perf_counter() - t0
        for b in (chat, streams, e500, e503):
            # the breakers' sliding windows (outcomes of the last 60 s, at most 10,000 per
            # endpoint) are part of what RSS holds: counted, to tell them from a leak
            window_events.append(len(b.default_endpoint.breaker._events))
            await b.aclose()
        return took

    gc.collect()
    start = rss_mb()
    took = asyncio.run(main())
    for b in (chat, streams, e500, e503):
        b.close()
    half = points[len(points) // 2 - 1][1] if len(points) > 1 else start
    half_objects = objects[len(objects) // 2 - 1][1] if len(objects) > 1 else objects[0][1]
    return {
        "requests": requests,
        "counts": counts,
        "retries": counts["error_503"],  # each 503 retried once
        "seconds": took,
        "start_mb": start,
        "points": points,
        "objects": objects,
        "growth_mb": points[-1][1] - points[0][1],
        "second_half_mb": points[-1][1] - half,
        "second_half_objects": objects[-1][1] - half_objects,
        "breaker_window_events": window_events,
    }


# --- the suite's section (the short run) ----------------------------------------------------


def _phase_text(c: dict[str, Any]) -> str:
    return ", ".join(f"{c['phases'][p]:,} {p}" for p in (*PHASES, "other") if c["phases"][p])


def render(cancel: dict[str, Any], memory: dict[str, Any]) -> list[str]:
    """The markdown section of docs/benchmarks.md (the short run)."""
    c, m = cancel, memory
    trail = ", ".join(f"{n:,}: {mb:.1f}" for n, mb in m["points"])
    return [
        "## Cancellation and long runs",
        "",
        f"**Cancellations**, on {c['transport']}: {c['cancelled']:,} async chat calls and "
        f"100-chunk streams (half of each with a slow reply) cancelled, each at its own random "
        f"point, in {c['waves']} waves of {WAVE} on one backend ({_phase_text(c)}; "
        f"{c['completed']:,} more finished before their cancel came) in "
        f"{c['cancel_s']:.1f} s; then 50 in flight at full speed on the same backend.",
        "",
        f"| throughput before (best of {c['windows']} windows) | after | a fresh backend, "
        "alternating with after | errors after (pool timeouts...) | held after (gate slots, "
        "key leases, pooled connections) |",
        "|---:|---:|---:|---:|---:|",
        f"| {c['before_rps']:,.0f} req/s | {c['after_rps']:,.0f} req/s | "
        f"{c['control_rps']:,.0f} req/s | {c['errors_after']} | {c['gate']}, "
        f"{c['held']['key_leases']}, {_pool(c['held']['pool'])} |",
        "",
        f"**Memory**: {m['requests']:,} async requests, 50 in flight, in {m['seconds']:.0f} s: "
        f"{m['counts']['chat']:,} chats, {m['counts']['stream']:,} streams, "
        f"{m['counts']['error']:,} errors (500s, and 503s retried once). RSS after a "
        f"garbage collection, by requests done (MB): {trail}. Growth from the first "
        f"checkpoint {m['growth_mb']:+.1f} MB, over the second half {m['second_half_mb']:+.1f} "
        "MB.",
        "",
        "This is the short run. The full one (10,000 cancellations on each async transport, "
        "then 100,000 requests) is [soak.md](soak.md), written by `benchmarks/soak.py` "
        "(or `benchmarks/run.py --soak`).",
        "",
    ]


def nothing_held(c: dict[str, Any]) -> bool:
    """No gate slot, key lease, pooled connection or task left after the run."""
    h = c["held"]
    return h["gate_active"] == h["gate_waiting"] == h["key_leases"] == h["tasks"] == 0 and (
        h["pool"] == 0
    )


def cancel_ok(c: dict[str, Any]) -> bool:
    """No error, the throughput of before (or of a fresh backend measured alongside, when
    the machine got slower meanwhile), nothing held, every phase hit."""
    return (
        c["errors_after"] == 0
        and not c["failed"]
        and c["after_rps"] >= 0.8 * min(c["before_rps"], c["control_rps"])
        and nothing_held(c)
        and all(c["phases"][p] for p in PHASES)
    )


def _throughputs(c: dict[str, Any]) -> str:
    return (
        f"{c['before_rps']:,.0f} → {c['after_rps']:,.0f} req/s (a fresh backend alongside: "
        f"{c['control_rps']:,.0f})"
    )


def memory_ok(m: dict[str, Any]) -> bool:
    """Flat: under 5 MB over the second half, and every request as expected."""
    return m["second_half_mb"] < 5.0 and m["counts"]["other"] == 0


def summary(cancel: dict[str, Any], memory: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """The targets: same throughput after the cancellations, no errors; memory flat."""
    c, m = cancel, memory
    return [
        (
            "cancellations at random points cost nothing afterwards",
            f"{c['cancelled']:,} cancelled ({_phase_text(c)}); {_throughputs(c)}, "
            f"{c['errors_after']} errors after",
            cancel_ok(c),
        ),
        (
            "memory flat over a long mixed run",
            f"{m['requests']:,} requests: {m['second_half_mb']:+.1f} MB over the second half",
            memory_ok(m),
        ),
    ]


# --- the full soak: docs/soak.md ------------------------------------------------------------


def run_full(
    port: int, cancels: int, requests: int, seconds: float, windows: int
) -> dict[str, Any]:
    """The full soak: cancellations on each async transport installed, then memory."""
    from ipfs_accelerate_py import aio_transport

    t0 = time.perf_counter()
    transports: list[str | None] = [None]
    with async_transport(None):
        if aio_transport.aiohttp_available():
            transports.append("httpx")  # httpx's own pool too (no `aio` extra)
    cancel = []
    for name in transports:
        print(
            f"soak: {cancels:,} cancellations on {name or 'the default'} transport",
            file=sys.stderr,
            flush=True,
        )
        cancel.append(bench_cancellations(port, cancels, seconds, name, windows))
    print(f"soak: {requests:,} requests for memory", file=sys.stderr, flush=True)
    memory = bench_memory(port, requests)
    return {"cancel": cancel, "memory": memory, "elapsed_s": time.perf_counter() - t0}


def render_page(r: dict[str, Any], machine: dict[str, str], command: str) -> str:
    """docs/soak.md."""
    from importlib.metadata import version

    m = r["memory"]
    out: list[str] = []
    w = out.append
    w("# Soak: cancellations and a long run")
    w("")
    w(
        "A record of one run of the full soak (`benchmarks/soak.py`; the benchmark suite, "
        "[benchmarks.md](benchmarks.md), runs a short version). Generated; do not edit by hand."
    )
    w("")
    w("```bash")
    w(command)
    w("```")
    w("")
    w("| machine | |")
    w("|---|---|")
    w(f"| date | {machine['date']} |")
    w(f"| CPU | {machine['cpu']}, {machine['cores']} cores (shared with other processes) |")
    w(f"| OS | {machine['os']} |")
    w(f"| Python | {machine['python']} |")
    w(f"| ipfs-accelerate-core | {version('ipfs-accelerate-core')} ({machine['commit']}) |")
    w(f"| httpx / httpcore / h11 | {machine['httpx']} / {machine['httpcore']} / {machine['h11']} |")
    w(f"| also | {machine['others']} |")
    w(f"| load average (1, 5, 15 min) | at start {machine['load']}; at end {r['load_end']} |")
    w(f"| run took | {r['elapsed_s']:.0f} s |")
    w("")
    w("## Summary")
    w("")
    w("| target | result | |")
    w("|---|---|---|")
    for c in r["cancel"]:
        ok = cancel_ok(c)
        w(
            f"| {c['cancelled']:,} cancellations at random points cost nothing afterwards, "
            f"{c['transport']} | {_throughputs(c)}, {c['errors_after']} errors after, "
            f"{'nothing held' if nothing_held(c) else 'held: ' + str(c['held'])} | "
            f"{_verdict(ok)} |"
        )
    w(
        f"| memory flat over {m['requests']:,} mixed requests | {m['second_half_mb']:+.1f} MB "
        f"over the second half ({m['growth_mb']:+.1f} MB from the first checkpoint) | "
        f"{_verdict(memory_ok(m))} |"
    )
    w("")
    w("## Cancellations")
    w("")
    cs = r["cancel"]
    w(
        "One backend (`max_concurrent_requests=100`, `queue_size=100_000`, 100 pooled "
        "connections) against the loopback server (benchmarks/server.py, another process). "
        f"Waves of {WAVE} tasks, each one of: a chat call (25%), a chat call whose reply body "
        "comes in two parts 60 ms apart (25%), a 100-chunk stream (25%), the same stream sent "
        "in 10 parts 15 ms apart (25%) (the server's `x-bench-pace` header). Each task is "
        "cancelled at its own random point, 0 to "
        + " or ".join(f"{c['cancel_within_s'] * 1000:.0f} ms on {c['transport']}" for c in cs)
        + " after the wave started, unless done by then. Where each call was is read off its "
        "CancelledError's traceback. On httpx's pool the sends and closes of cancelled calls "
        "finish in their own tasks, outside the gate (core shields them from httpcore's "
        "cancellation bugs): the next wave waits for them, or waves would outrun the pool. "
        "Then plain chat calls run at full speed, 50 in flight, on the same backend (same "
        "gate, key pool and connection pool): throughput is the best of "
        f"{cs[0]['windows']} windows of {cs[0]['window_s']:.1f} s, measured the same way "
        "before the cancellations, and, since other processes' load may change in between, "
        "against a fresh backend whose windows alternate with after's."
    )
    w("")
    w("| | " + " | ".join(c["transport"] for c in r["cancel"]) + " |")
    w("|---|" + "---:|" * len(r["cancel"]))

    def row(label: str, cells: list[str]) -> None:
        w(f"| {label} | " + " | ".join(cells) + " |")

    row("cancelled", [f"{c['cancelled']:,}" for c in cs])
    for p in (*PHASES, "other"):
        row(
            f"&emsp;{p}",
            [f"{c['phases'][p]:,} ({c['phases'][p] / c['cancelled']:.0%})" for c in cs],
        )
    row("finished before their cancel", [f"{c['completed']:,}" for c in cs])
    row("failed otherwise (must be 0)", [f"{sum(c['failed'].values())}" for c in cs])
    row("waves, time", [f"{c['waves']}, {c['cancel_s']:.0f} s" for c in cs])
    row(
        "of which waiting for cancelled calls' background work",
        [f"{c['drain_s']:.1f} s" for c in cs],
    )
    row(
        "throughput before (errors)",
        [f"{c['before_rps']:,.0f} req/s ({c['errors_before']})" for c in cs],
    )
    row(
        "throughput after (errors: pool timeouts...)",
        [f"{c['after_rps']:,.0f} req/s ({c['errors_after']})" for c in cs],
    )
    row("after / before", [f"{c['after_rps'] / c['before_rps']:.0%}" for c in cs])
    row(
        "a fresh backend, windows alternating with after's",
        [f"{c['control_rps']:,.0f} req/s" for c in cs],
    )
    row("after / fresh", [f"{c['after_rps'] / c['control_rps']:.0%}" for c in cs])
    row(
        "gate slots held / waiting after",
        [f"{c['held']['gate_active']} / {c['held']['gate_waiting']}" for c in cs],
    )
    row("key leases held after", [f"{c['held']['key_leases']}" for c in cs])
    row("connection pool in use after", [_pool(c["held"]["pool"]) for c in cs])
    row("other tasks left on the loop", [f"{c['held']['tasks']}" for c in cs])
    row("circuit breaker after", [c["held"]["breaker"] for c in cs])
    w("")
    w("Where the cancellations hit, in detail:")
    w("")
    details: dict[tuple[str, str], list[int]] = {}
    for i, c in enumerate(cs):
        for p, d, n in c["details"]:
            details.setdefault((p, d), [0] * len(cs))[i] = n
    w("| phase | where | " + " | ".join(c["transport"] for c in cs) + " |")
    w("|---|---|" + "---:|" * len(cs))
    order = {p: i for i, p in enumerate((*PHASES, "other"))}
    for (p, d), ns in sorted(details.items(), key=lambda kv: (order[kv[0][0]], -sum(kv[1]))):
        w(f"| {p} | {d} | " + " | ".join(f"{n:,}" for n in ns) + " |")
    for c in cs:
        if c["failed"]:
            w("")
            w(
                f"Failures on {c['transport']}: "
                + "; ".join(f"{n} x {e}" for e, n in c["failed"].items())
            )
    w("")
    w("## Memory")
    w("")
    counts = m["counts"]
    w(
        f"{m['requests']:,} async requests, 50 in flight, in {m['seconds']:.0f} s "
        f"({m['requests'] / m['seconds']:,.0f} req/s) on the default transport: "
        f"{counts['chat']:,} chat calls, {counts['stream']:,} 10-chunk streams, "
        f"{counts['error_500']:,} 500 errors and {counts['error_503']:,} 503s each retried "
        f"once ({counts['other']} unexpected outcomes). RSS and the objects the garbage "
        "collector tracks, after a collection, at each checkpoint:"
    )
    w("")
    w("| requests done | RSS MB | change | gc-tracked objects |")
    w("|---:|---:|---:|---:|")
    prev = m["start_mb"]
    w(f"| 0 (before) | {m['start_mb']:.1f} | | |")
    for (n, mb), (_, objs) in zip(m["points"], m["objects"], strict=True):
        w(f"| {n:,} | {mb:.1f} | {mb - prev:+.1f} | {objs:,} |")
        prev = mb
    w("")
    w(
        f"Growth from the first checkpoint {m['growth_mb']:+.1f} MB; over the second half "
        f"{m['second_half_mb']:+.1f} MB and {m['second_half_objects']:+,} objects. Part of "
        "what RSS holds, bounded by design: each endpoint's circuit breaker keeps the "
        "outcomes of the last 60 s in a sliding window (at most 10,000; tuples of a float and "
        "a bool, which the garbage collector does not track), "
        f"{sum(m['breaker_window_events']):,} outcomes over the four backends at the end "
        f"({', '.join(f'{n:,}' for n in m['breaker_window_events'])}); they stop growing "
        "once they hold 60 s of outcomes (or 10,000), so RSS levels off after a run's first "
        "minute."
    )
    w("")
    return "\n".join(out)


def _pool(n: int | None) -> str:
    return "(not found)" if n is None else str(n)


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**NOT met**"


def commit() -> str:
    import subprocess

    try:
        here = Path(__file__).resolve().parent
        head = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--", "core", "benchmarks"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return f"commit {head}{' + local changes' if dirty else ''}"
    except (OSError, subprocess.CalledProcessError):
        return "commit unknown"


def write_full(
    port: int,
    out: Path,
    machine: dict[str, str],
    command: str,
    json_out: str | None = None,
    write: bool = True,
    **counts: Any,
) -> bool:
    """Run the full soak, write ``out`` (or print the page when ``write`` is false; the raw
    results to ``json_out``), print the summary; True when every target was met."""
    r = run_full(port, **counts)
    r["load_end"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    page = render_page(r, machine, command)
    if write:
        out.write_text(page)
        print(f"soak: wrote {out}", file=sys.stderr)
    else:
        print(page)
    if json_out:
        Path(json_out).write_text(json.dumps({"machine": machine, **r}, default=str))
    ok = all(cancel_ok(c) for c in r["cancel"]) and memory_ok(r["memory"])
    for c in r["cancel"]:
        print(
            f"{'ok  ' if cancel_ok(c) else 'MISS'} {c['transport']}: {c['cancelled']:,} cancelled "
            f"({_phase_text(c)}); {c['before_rps']:,.0f} -> {c['after_rps']:,.0f} req/s, "
            f"{c['errors_after']} errors after, held {c['held']}"
        )
    m = r["memory"]
    print(
        f"{'ok  ' if memory_ok(m) else 'MISS'} memory: {m['requests']:,} requests in "
        f"{m['seconds']:.0f} s, {m['second_half_mb']:+.1f} MB over the second half"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        default=str(Path(__file__).resolve().parents[1] / "docs" / "soak.md"),
        help="the page to write (default: docs/soak.md)",
    )
    parser.add_argument("--no-write", action="store_true", help="print the page instead")
    parser.add_argument(
        "--cancels",
        type=int,
        default=FULL_CANCELS,
        help=f"cancellations per async transport (default {FULL_CANCELS:,})",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=FULL_REQUESTS,
        help=f"requests in the memory run (default {FULL_REQUESTS:,})",
    )
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="throughput: the windows' total time"
    )
    parser.add_argument("--windows", type=int, default=5, help="throughput: the best of these")
    parser.add_argument("--json", help="also dump the raw results to this file")
    args = parser.parse_args()
    from run import loopback_server, machine_info  # benchmarks/run.py

    machine = {**machine_info(), "commit": commit()}  # before: the tree may change meanwhile
    command = ".venv/bin/python benchmarks/soak.py"
    if (args.cancels, args.requests) != (FULL_CANCELS, FULL_REQUESTS):
        command += f" --cancels {args.cancels} --requests {args.requests}"
    with loopback_server() as port:
        ok = write_full(
            port,
            Path(args.out),
            machine,
            command,
            args.json,
            write=not args.no_write,
            cancels=args.cancels,
            requests=args.requests,
            seconds=args.seconds,
            windows=args.windows,
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
