"""Each routing strategy delivers the distribution it promises, under concurrency too."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import pytest

from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.router_types import NoDeploymentAvailableError
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

CHAT = "/v1/chat/completions"
user = wire.user
ok = wire.chat_reply


def counts(servers: list[ProtocolServer]) -> list[int]:
    return [len(s.requests_to(CHAT)) for s in servers]


def run_threads(n: int, target, *args) -> list[object]:
    results: list[object] = [None] * n

    def work(i: int) -> None:
        try:
            results[i] = target(*args)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_least_busy_spreads_held_calls_exactly(route, servers) -> None:
    """30 calls held in flight at once over 3 deployments: exactly 10 each (the choice and
    its reservation are one step, so concurrent callers see each other)."""
    release = threading.Event()
    for s in servers[:3]:
        s.on("POST", CHAT, default=Reply.json(wire.chat_completion("x"), wait_for=release))
    router = route(
        {"smart": [0, 1, 2]},
        strategy="least-busy",
        backend_options={i: {"max_concurrent_requests": 50} for i in range(3)},
    )
    done: list[object] = []
    t = threading.Thread(
        target=lambda: done.extend(
            run_threads(30, lambda: router.chat(model="smart", messages=user()))
        )
    )
    t.start()
    for _ in range(200):
        if sum(s.in_flight for s in servers[:3]) == 30:
            break
        threading.Event().wait(0.02)
    assert [s.in_flight for s in servers[:3]] == [10, 10, 10]
    release.set()
    t.join(30)
    assert all(getattr(r, "text", None) == "x" for r in done)
    assert counts(servers)[:3] == [10, 10, 10]
    assert all(d.in_flight == 0 for d in router.deployments())


def wait_until(predicate, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        threading.Event().wait(0.01)
    raise AssertionError("condition not reached")


def test_least_busy_counts_calls_made_outside_the_router(route, servers) -> None:
    """Four calls held on d0's backend directly (not through the router): the router's next
    six held calls go five to d1 and then one to d0, evening out the in-flight counts."""
    release = threading.Event()
    for s in servers[:2]:
        s.on("POST", CHAT, default=Reply.json(wire.chat_completion("x"), wait_for=release))
    router = route(
        {"smart": [0, 1]}, backend_options={i: {"max_concurrent_requests": 20} for i in range(2)}
    )
    direct = router.deployments("smart")[0].backend
    threads = [
        threading.Thread(target=direct.chat, kwargs={"messages": user(), "model": "m"})
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    wait_until(lambda: servers[0].in_flight == 4)
    for n in range(1, 7):
        t = threading.Thread(target=router.chat, kwargs={"model": "smart", "messages": user()})
        t.start()
        threads.append(t)
        wait_until(lambda n=n: servers[0].in_flight + servers[1].in_flight == 4 + n)
    assert [servers[0].in_flight, servers[1].in_flight] == [5, 5]
    assert counts(servers)[:2] == [5, 5]
    release.set()
    for t in threads:
        t.join(10)


def test_weighted_gives_exact_shares(route, servers) -> None:
    for s in servers[:3]:
        s.on("POST", CHAT, default=ok())
    router = route({"smart": [0, 1, 2]}, strategy="weighted")
    for dep, weight in zip(router.deployments("smart"), (3, 1, 2), strict=True):
        dep.weight = float(weight)
    for _ in range(60):
        router.chat(model="smart", messages=user())
    assert counts(servers)[:3] == [30, 10, 20]
    # under concurrency: 120 more calls from 24 threads keep exact shares
    results = run_threads(
        24, lambda: [router.chat(model="smart", messages=user()) for _ in range(5)]
    )
    assert not [r for r in results if isinstance(r, Exception)]
    assert counts(servers)[:3] == [90, 30, 60]


def test_lowest_latency_prefers_the_fast_deployment(route, servers) -> None:
    servers[0].on("POST", CHAT, default=Reply.json(wire.chat_completion("slow"), delay=0.08))
    servers[1].on("POST", CHAT, default=ok("fast"))
    router = route({"smart": [0, 1]}, strategy="lowest-latency")
    texts = Counter(router.chat(model="smart", messages=user()).text for _ in range(50))
    # each is measured twice, then the fast one gets all but a re-measurement every 25 calls
    # (tolerance: one more, should a sample of the fast one be slow by chance)
    assert texts["slow"] <= 5 and counts(servers)[0] == texts["slow"], [
        (k, v["latency"], v["requests"]) for k, v in router.get_deployment_stats().items()
    ]
    stats = router.get_deployment_stats()
    assert stats["d0"]["latency"] > stats["d1"]["latency"]


def test_usage_based_rpm_is_exact_and_then_waits(route, servers, clock: FakeClock) -> None:
    """rpm=10 and rpm=5: 15 calls in one minute go 10/5 (not 11/4: the off-by-one of
    LiteLLM#33032); the 16th waits for the window, or fails with the retry time."""
    for s in servers[:2]:
        s.on("POST", CHAT, default=ok())
    router = route({"smart": [0, 1]}, strategy="usage-based", wait_timeout=120)
    a, b = router.deployments("smart")
    a.rpm, b.rpm = 10, 5
    for _ in range(15):
        router.chat(model="smart", messages=user())
    assert counts(servers)[:2] == [10, 5]
    with pytest.raises(NoDeploymentAvailableError) as info:
        router.chat(model="smart", messages=user(), deadline=1)
    assert info.value.retry_after == pytest.approx(60.0)
    assert counts(servers)[:2] == [10, 5]
    router.chat(model="smart", messages=user())  # waits out the minute on the fake clock
    assert clock.sleeps == [pytest.approx(60.0)]
    assert sum(counts(servers)[:2]) == 16


def test_usage_based_prefers_headroom_under_concurrency(route, servers) -> None:
    for s in servers[:2]:
        s.on("POST", CHAT, default=Reply.json(wire.chat_completion(), delay=0.01))
    router = route(
        {"smart": [0, 1]},
        strategy="usage-based",
        backend_options={i: {"max_concurrent_requests": 40} for i in range(2)},
    )
    a, b = router.deployments("smart")
    a.rpm, b.rpm = 30, 10
    results = run_threads(40, lambda: router.chat(model="smart", messages=user()))
    assert not [r for r in results if isinstance(r, Exception)]
    assert counts(servers)[:2] == [30, 10]


def test_usage_based_follows_rate_limit_headers(route, servers) -> None:
    """With several keys the key pool reads x-ratelimit-remaining-requests; the deployment
    with more requests left gets the calls."""
    low = {"x-ratelimit-remaining-requests": "3", "x-ratelimit-limit-requests": "100"}
    high = {"x-ratelimit-remaining-requests": "90", "x-ratelimit-limit-requests": "100"}
    servers[0].on("POST", CHAT, default=Reply.json(wire.chat_completion("low"), headers=low))
    servers[1].on("POST", CHAT, default=Reply.json(wire.chat_completion("high"), headers=high))
    router = route({"smart": [0, 1]}, strategy="usage-based")
    for dep in router.deployments("smart"):
        dep.backend.add_api_key("second", "sk-second-0123456789")
    first = [router.chat(model="smart", messages=user()).text for _ in range(2)]
    assert sorted(first) == ["high", "low"]  # one each, then both keys of each are known
    for dep in router.deployments("smart"):
        dep.backend.chat(messages=user(), model="m")  # the other key reports too
    texts = Counter(router.chat(model="smart", messages=user()).text for _ in range(10))
    assert texts == {"high": 10}


def test_cheapest_takes_all_then_falls_back_by_price(route, deploy, servers, clock) -> None:
    from ipfs_accelerate_py.router import Router

    router = Router(strategy="cheapest", clock=clock)
    prices = {0: (5.0, 15.0), 1: (0.1, 0.4), 2: (1.0, 2.0)}
    for i, (p_in, p_out) in prices.items():
        backend = deploy(i)
        backend.usage.pricing.set_price("loopback", f"model-{i}", p_in, p_out)
        router.add_deployment("smart", backend, f"model-{i}", deployment_id=f"d{i}")
    for s in servers[:3]:
        s.on("POST", CHAT, default=ok())
    for _ in range(5):
        router.chat(model="smart", messages=user())
    assert counts(servers)[:3] == [0, 5, 0]
    servers[1].on("POST", CHAT, default=wire.error_reply(503))
    reply = router.chat(model="smart", messages=user())
    assert [a.deployment for a in reply.attempts] == ["d1", "d2"]


def test_async_least_busy_spreads_tasks(route, servers) -> None:
    for s in servers[:2]:
        s.on("POST", CHAT, default=Reply.json(wire.chat_completion(), delay=0.05))
    router = route(
        {"smart": [0, 1]}, backend_options={i: {"max_concurrent_requests": 20} for i in range(2)}
    )

    async def main() -> list[object]:
        return await asyncio.gather(
            *(router.achat(model="smart", messages=user()) for _ in range(20))
        )

    asyncio.run(main())
    assert counts(servers)[:2] == [10, 10]


def test_tpm_limit_moves_calls_to_the_next_deployment(route, servers) -> None:
    for s in servers[:2]:
        s.on("POST", CHAT, default=ok())  # 21 tokens per reply
    router = route({"smart": [0, 1]}, strategy="usage-based")
    a, b = router.deployments("smart")
    a.tpm, b.weight = 50, 1.0
    b.tpm = 10_000
    texts = [router.chat(model="smart", messages=user()).deployment for _ in range(8)]
    # d0 takes calls while it has the most headroom and is under 50 tokens; then d1
    assert texts.count("d0") <= 3 and counts(servers)[0] == texts.count("d0")
    stats = router.get_deployment_stats()
    assert stats["d0"]["prompt_tokens"] + stats["d1"]["prompt_tokens"] == 9 * 8
