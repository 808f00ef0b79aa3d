"""Router overhead over a direct backend call (target: ≤ 20 µs p50), for benchmarks/run.py.

Both sides call the same backend, whose httpx client sends through ``httpx.MockTransport``
(no socket), interleaved round by round, so the difference is the router's own work:
choosing a deployment under the lock, the attempt record and the routed reply. Measured
with one deployment, with three (least-busy), and with the async twins.

    .venv/bin/python benchmarks/router_overhead.py [--quick]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

TARGET_ROUTER_US = 20.0
MESSAGES = [{"role": "user", "content": "Say hello."}]
MODEL = "gpt-4o-mini"


def bench_router(
    mock_backend: Callable[..., Any],
    interleave: Callable[..., dict[str, list[int]]],
    ainterleave: Callable[..., Any],
    rounds: int,
    warmup: int,
) -> dict[str, Any]:
    """Samples (ns) of direct, routed (1 deployment) and routed (3 deployments) calls."""
    from ipfs_accelerate_py.router import Router

    backend = mock_backend()
    one = Router()
    one.add_deployment("fast", backend, MODEL)
    three = Router()
    for _ in range(3):
        three.add_deployment("fast", backend, MODEL)
    fns = {
        "direct": lambda: backend.chat(messages=MESSAGES, model=MODEL),
        "router": lambda: one.chat(messages=MESSAGES, model="fast"),
        "router3": lambda: three.chat(messages=MESSAGES, model="fast"),
    }
    sync = interleave(fns, rounds, warmup)

    async def amain() -> dict[str, list[int]]:
        from clients import mock_async

        await mock_async(backend, backend.default_endpoint.transport.client()._transport.handler)
        return await ainterleave(  # type: ignore[no-any-return]
            {
                "direct": lambda: backend.achat(messages=MESSAGES, model=MODEL),
                "router": lambda: one.achat(messages=MESSAGES, model="fast"),
            },
            rounds,
            warmup,
        )

    return {"sync": sync, "async": asyncio.run(amain())}


def _paired(ours: list[int], raw: list[int]) -> float:
    return statistics.median(o - r for o, r in zip(ours, raw, strict=False)) / 1000


def summarize(samples: dict[str, Any]) -> tuple[tuple[str, str, bool], str]:
    """The summary row for run.py and a markdown section."""
    sync, asy = samples["sync"], samples["async"]
    one = _paired(sync["router"], sync["direct"])
    three = _paired(sync["router3"], sync["direct"])
    aone = _paired(asy["router"], asy["direct"])
    direct = statistics.median(sync["direct"]) / 1000
    row = (
        f"Router ≤ {TARGET_ROUTER_US:.0f} µs p50 over a direct backend call",
        f"sync {one:+.1f} µs (3 deployments {three:+.1f} µs), async {aone:+.1f} µs; "
        f"direct call {direct:.0f} µs",
        max(one, three, aone) <= TARGET_ROUTER_US,
    )
    section = "\n".join(
        [
            "## Router overhead",
            "",
            "`Router.chat` over one backend vs. `backend.chat` on the same backend, "
            "httpx.MockTransport (no socket), interleaved; paired median difference.",
            "",
            "| variant | overhead p50 |",
            "|---|---|",
            f"| sync, 1 deployment | {one:+.1f} µs |",
            f"| sync, 3 deployments (least-busy) | {three:+.1f} µs |",
            f"| async, 1 deployment | {aone:+.1f} µs |",
            "",
        ]
    )
    return row, section


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run

    quick = "--quick" in sys.argv
    samples = bench_router(
        run.mock_backend, run.interleave, run.ainterleave, 1000 if quick else 8000, 200
    )
    row, section = summarize(samples)
    print(section)
    print(f"{'ok  ' if row[2] else 'MISS'} {row[0]}: {row[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
