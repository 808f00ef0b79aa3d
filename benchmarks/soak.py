"""Cancellation and long runs must cost nothing.

1. **Cancellations**: async chat calls and streams (1,000 chunks, so many are cut mid-stream)
   are cancelled at random points (queued in the gate, connecting, waiting, mid-body,
   mid-stream), in waves of 100 tasks, then full-speed traffic runs: it must see no pool
   timeout and the throughput measured before the cancellations.
2. **Memory**: a long mixed run (chat, 10-chunk streams, error replies and retried 503s, 50
   in flight); RSS after a garbage collection at checkpoints. Flat means the growth over the
   second half of the run stays within a few MB (allocator noise), not growing with the
   number of requests.

``run.py`` runs a short version; ``run.py --soak`` the full one (10,000 cancellations and
100,000 requests, several minutes).
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from typing import Any

from clients import FANOUT, KEY, MESSAGES, MODEL


def rss_mb() -> float:
    """This process's resident set size, MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def _best_throughput(call: Any, inflight: int, seconds: float) -> tuple[float, int]:
    """The best of three windows of ``seconds / 3`` (other processes' load only ever lowers
    throughput), and the errors in all three."""
    runs = [await _throughput(call, inflight, seconds / 3) for _ in range(3)]
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


def bench_cancellations(port: int, count: int, seconds: float) -> dict[str, Any]:
    """Throughput before and after ``count`` random cancellations, and errors after."""
    from ipfs_accelerate_py.core import get_backend

    base = f"http://127.0.0.1:{port}"
    chat = get_backend("openai", api_key=KEY, base_url=base + "/v1", **FANOUT)
    streams = get_backend("openai", api_key=KEY, base_url=base + "/c1000/v1", **FANOUT)
    rng = random.Random(1)

    async def one_chat() -> Any:
        return await chat.achat(messages=MESSAGES, model=MODEL)

    async def one_stream() -> int:
        return sum([1 async for _ in streams.astream(messages=MESSAGES, model=MODEL)])

    async def main() -> dict[str, Any]:
        await _throughput(one_chat, 50, 0.2)  # open the connections
        before, _ = await _best_throughput(one_chat, 50, seconds)
        cancelled = completed = 0
        t0 = time.perf_counter()
        while cancelled < count:
            tasks = [
                asyncio.create_task(one_stream() if rng.random() < 0.5 else one_chat())
                for _ in range(100)
            ]
            await asyncio.sleep(rng.uniform(0, 0.2))
            for task in tasks:
                if not task.done():
                    task.cancel()
            for task in tasks:
                try:
                    await task
                    completed += 1
                except asyncio.CancelledError:
                    cancelled += 1
        took = time.perf_counter() - t0
        # the server (another process) may still be reading the requests cut off above: give
        # it a moment, so that "after" measures this process, not the server's backlog
        await asyncio.sleep(1.0)
        await _throughput(one_chat, 50, 0.2)  # the same warm-up "before" had
        after, errors = await _best_throughput(one_chat, 50, seconds)
        await chat.aclose()
        await streams.aclose()
        return {
            "cancelled": cancelled,
            "completed": completed,
            "cancel_s": took,
            "before_rps": before,
            "after_rps": after,
            "errors_after": errors,
            "gate": chat.default_endpoint.gate.info()["active_requests"]
            + streams.default_endpoint.gate.info()["active_requests"],
        }

    try:
        return asyncio.run(main())
    finally:
        chat.close()
        streams.close()


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
    counts = {"chat": 0, "stream": 0, "error": 0}
    points: list[tuple[int, float]] = []

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
        except Exception:
            counts["error"] += 1

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
        took = time.perf_counter() - t0
        for b in (chat, streams, e500, e503):
            await b.aclose()
        return took

    gc.collect()
    start = rss_mb()
    took = asyncio.run(main())
    for b in (chat, streams, e500, e503):
        b.close()
    half = points[len(points) // 2 - 1][1] if len(points) > 1 else start
    return {
        "requests": requests,
        "counts": counts,
        "seconds": took,
        "start_mb": start,
        "points": points,
        "growth_mb": points[-1][1] - points[0][1],
        "second_half_mb": points[-1][1] - half,
    }


def render(cancel: dict[str, Any], memory: dict[str, Any]) -> list[str]:
    """The markdown section."""
    c, m = cancel, memory
    trail = ", ".join(f"{n:,}: {mb:.1f}" for n, mb in m["points"])
    return [
        "## Cancellation and long runs",
        "",
        f"**Cancellations**: {c['cancelled']:,} async chat calls and 1,000-chunk streams "
        f"cancelled at random points in waves of 100 ({c['completed']:,} more finished "
        f"before their cancel came) in {c['cancel_s']:.1f} s; then 50 in flight at full speed.",
        "",
        "| throughput before (best of 3 windows) | after (best of 3) | errors after (pool "
        "timeouts...) | gate slots held after |",
        "|---:|---:|---:|---:|",
        f"| {c['before_rps']:,.0f} req/s | {c['after_rps']:,.0f} req/s | {c['errors_after']} | "
        f"{c['gate']} |",
        "",
        f"**Memory**: {m['requests']:,} async requests, 50 in flight, in {m['seconds']:.0f} s: "
        f"{m['counts']['chat']:,} chats, {m['counts']['stream']:,} streams, "
        f"{m['counts']['error']:,} errors (500s, and 503s retried once). RSS after a "
        f"garbage collection, by requests done (MB): {trail}. Growth from the first "
        f"checkpoint {m['growth_mb']:+.1f} MB, over the second half {m['second_half_mb']:+.1f} "
        "MB.",
        "",
    ]


def summary(cancel: dict[str, Any], memory: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """The targets: same throughput after the cancellations, no errors; memory flat."""
    c, m = cancel, memory
    return [
        (
            "cancellations at random points cost nothing afterwards",
            f"{c['cancelled']:,} cancelled; {c['before_rps']:,.0f} → {c['after_rps']:,.0f} "
            f"req/s, {c['errors_after']} errors after",
            c["errors_after"] == 0 and c["after_rps"] >= 0.8 * c["before_rps"],
        ),
        (
            "memory flat over a long mixed run",
            f"{m['requests']:,} requests: {m['second_half_mb']:+.1f} MB over the second half",
            m["second_half_mb"] < 5.0,
        ),
    ]
