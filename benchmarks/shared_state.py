"""Shared resilience state in Redis: what it costs per call, and what it saves under load.

    .venv/bin/python benchmarks/shared_state.py [--quick]
    .venv/bin/python benchmarks/run.py --shared-state     # adds this section to the run

1. Per-call overhead: ``backend.chat`` against benchmarks/server.py with in-process state
   versus ``shared_state=<loopback redis>``, interleaved, next to one Redis round trip (PING)
   measured the same way. The target: shared minus local <= about one round trip.
2. Throughput: 8 processes x 200 concurrent async callers against a provider that allows 64
   requests at once (it answers 429 above that), with each process capped at 64 locally
   versus one cap of 64 shared through Redis. The figure to read is the provider's 429 count.
3. The vector store of the semantic cache (resilience/redis_cache.py) at 100k entries:
   insert rate and the p50 of a top-1 search.

Needs a redis-server (see ipfs_accelerate_py.testing.redis_server) and the redis client.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

KEY = "sk-bench-" + "0123456789abcdef" * 3
MESSAGES = [{"role": "user", "content": "Say hello."}]


def _p50_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def per_call(redis_url: str, rounds: int) -> dict[str, float]:
    """p50 of one chat call with local and with shared state, and of one Redis PING (us)."""
    import redis
    from run import loopback_server  # benchmarks/run.py

    from ipfs_accelerate_py.core import get_backend

    client = redis.Redis.from_url(redis_url)
    with loopback_server() as port:
        base = f"http://127.0.0.1:{port}/v1"
        local = get_backend("openai", api_key=KEY, base_url=base)
        shared = get_backend(
            "openai", api_key=KEY, base_url=base, shared_state=redis_url, shared_namespace="bench"
        )
        fns = {
            "local": lambda: local.chat(messages=MESSAGES, model="gpt-4o-mini"),
            "shared": lambda: shared.chat(messages=MESSAGES, model="gpt-4o-mini"),
            "ping": client.ping,
        }
        samples: dict[str, list[float]] = {name: [] for name in fns}
        for i in range(rounds + 50):
            order = list(fns)[i % 3 :] + list(fns)[: i % 3]
            for name in order:
                t0 = time.perf_counter()
                fns[name]()
                if i >= 50:
                    samples[name].append(time.perf_counter() - t0)
        local.close()
        shared.close()
    out = {name: _p50_us(values) for name, values in samples.items()}
    out["shared_minus_local"] = out["shared"] - out["local"]
    return out


# --- 2. throughput under a provider limit ---------------------------------------------


def _worker(base_url: str, redis_url: str | None, callers: int, ns: str, out: Any) -> None:
    from ipfs_accelerate_py.core import get_backend

    async def main() -> tuple[int, list[str]]:
        options: dict[str, Any] = {"max_concurrent_requests": 64, "queue_size": 10_000}
        options["max_retries"] = 0  # count every 429 the provider sends
        if redis_url:
            options.update(shared_state=redis_url, shared_namespace=ns)
        backend = get_backend("openai", api_key=KEY, base_url=base_url, **options)

        async def one() -> str:
            try:
                await backend.achat(messages=MESSAGES, model="gpt-4o-mini")
                return "ok"
            except Exception as err:
                return type(err).__name__

        results = await asyncio.gather(*(one() for _ in range(callers)))
        await backend.aclose()
        return results.count("ok"), [r for r in results if r != "ok"]

    ok, failed = asyncio.run(main())
    from ipfs_accelerate_py.resilience.shared import flush_all

    flush_all()
    out.put((ok, failed))
    os._exit(0)


def throughput(redis_url: str, processes: int, callers: int) -> dict[str, dict[str, float]]:
    """Completed calls, failures, seconds and the provider's 429 count, without and with
    shared state."""
    from ipfs_accelerate_py.testing import openai_wire
    from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

    fork = multiprocessing.get_context("fork")
    results: dict[str, dict[str, float]] = {}
    for label, url in (("local", None), ("shared", redis_url)):
        with ProtocolServer() as server:
            ok_reply = Reply.json(openai_wire.chat_completion("ok"), delay=0.02)
            limited = Reply.json({"error": {"message": "too many"}}, 429, {"retry-after": "0"})
            count = [0]

            def answer(
                _req: Any, no: Reply = limited, yes: Reply = ok_reply, n: list[int] = count
            ) -> Reply:
                if server.in_flight > 64:
                    n[0] += 1
                    return no
                return yes

            server.on("POST", "/v1/chat/completions", default=answer)
            queue = fork.SimpleQueue()
            ns = f"bench{os.getpid()}{label}"
            started = time.perf_counter()
            procs = [
                fork.Process(target=_worker, args=(server.url("/v1"), url, callers, ns, queue))
                for _ in range(processes)
            ]
            for proc in procs:
                proc.start()
            got = [queue.get() for _ in procs]
            elapsed = time.perf_counter() - started
            for proc in procs:
                proc.join(10)
            errors = [name for g in got for name in g[1]]
            results[label] = {
                "ok": sum(g[0] for g in got),
                "failed": len(errors),
                "errors": {name: errors.count(name) for name in sorted(set(errors))},
                "requests": len(server.requests_to("/v1/chat/completions")),
                "429s": count[0],
                "max_in_flight": server.max_in_flight,
                "seconds": elapsed,
            }
    return results


def vectors(redis_url: str, entries: int, dim: int = 384) -> dict[str, float]:
    """Insert ``entries`` vectors into the Redis vector store and time top-1 searches."""
    import numpy as np

    from ipfs_accelerate_py.resilience.redis_cache import RedisCacheStore

    store = RedisCacheStore(redis_url, namespace=f"benchvec{os.getpid()}")
    rng = np.random.default_rng(0)
    data = rng.standard_normal((entries, dim)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    t0 = time.perf_counter()
    for start in range(0, entries, 1000):
        store.add_vectors(
            "bench",
            [(f"k{i}", data[i], b"v") for i in range(start, min(start + 1000, entries))],
            ttl=3600,
        )
    insert = time.perf_counter() - t0
    t1 = time.perf_counter()
    store.search("bench", data[0], k=1)  # the first search loads the mirror
    load = time.perf_counter() - t1
    times = []
    hits = 0
    for i in range(50):
        t = time.perf_counter()
        found = store.search("bench", data[i * 7], k=1)
        times.append(time.perf_counter() - t)
        hits += bool(found and found[0][0] == f"k{i * 7}")
    store.clear("bench")
    return {
        "entries": entries,
        "insert_per_s": entries / insert,
        "first_search_ms": load * 1e3,
        "search_p50_ms": statistics.median(times) * 1e3,
        "exact_hits_of_50": hits,
    }


def run(quick: bool = False) -> dict[str, Any]:
    """Every measurement of this module; starts its own redis-server. 1,600 callers in 8
    processes on a small machine make event loops late: Redis commands get 1 s (not the
    default 0.25 s) before a process falls back on local state, which would over-admit."""
    os.environ.setdefault("IPFS_ACCELERATE_REDIS_TIMEOUT", "1.0")
    from ipfs_accelerate_py.testing.redis_server import RedisServer

    with RedisServer() as redis_server:
        out: dict[str, Any] = {"per_call": per_call(redis_server.url, 300 if quick else 2000)}
        out["throughput"] = throughput(redis_server.url, 8, 50 if quick else 200)
        try:
            out["vectors"] = vectors(redis_server.url, 10_000 if quick else 100_000)
        except ImportError as err:  # numpy or the cache store missing
            out["vectors"] = {"skipped": str(err)}
    return out


def report(results: dict[str, Any]) -> str:
    """The results as a markdown section."""
    pc = results["per_call"]
    lines = [
        "## Shared state in Redis (benchmarks/shared_state.py)",
        "",
        "| per call, p50 | us |",
        "| --- | ---: |",
        f"| chat, in-process state | {pc['local']:.0f} |",
        f"| chat, shared state (loopback Redis) | {pc['shared']:.0f} |",
        f"| difference | {pc['shared_minus_local']:.0f} |",
        f"| one Redis round trip (PING) | {pc['ping']:.0f} |",
        "",
        "| 8 processes x concurrent async callers, provider allows 64 | calls ok | failed "
        "| provider's 429s | max in flight | seconds | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for label, r in results["throughput"].items():
        lines.append(
            f"| {label} (cap 64 {'per process' if label == 'local' else 'cluster-wide'}) "
            f"| {r['ok']} | {r['failed']} | {r['429s']} | {r['max_in_flight']} "
            f"| {r['seconds']:.2f} | {r['errors'] or ''} |"
        )
    vec = results.get("vectors", {})
    if "entries" in vec:
        lines += [
            "",
            f"Vector store, {vec['entries']:,} entries x 384 dims (float16 in Redis, a numpy "
            f"mirror per process): insert {vec['insert_per_s']:,.0f}/s, first search (loads "
            f"the mirror) {vec['first_search_ms']:.0f} ms, then top-1 search p50 "
            f"{vec['search_p50_ms']:.2f} ms ({vec['exact_hits_of_50']}/50 exact hits).",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(report(run(parser.parse_args().quick)))
