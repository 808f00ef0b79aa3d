"""Budgets: checked before the call on an estimate, settled from usage, exact under load."""

from __future__ import annotations

import asyncio
import threading

import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.budgets import Budget, BudgetExceededError, MemoryBudgetStore
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import Reply

CHAT = "/v1/chat/completions"
# 40 characters: the estimate is 40 // 4 + 1 + 4 = 15 prompt tokens; max_tokens=12
PROMPT = [{"role": "user", "content": "x" * 40}]
EXACT = wire.chat_completion("ok", prompt_tokens=15, completion_tokens=12)  # = the estimate


def priced(route, **options):
    router = route({"smart": [0]}, **options)
    backend = router.deployments("smart")[0].backend
    backend.usage.pricing.set_price("loopback", "model-0", 1_000.0, 2_000.0)  # $/M tokens
    router.deployments("smart")[0].price = 3_000.0
    return router


def test_budget_error_names_the_budget_and_nothing_is_sent(route, servers) -> None:
    servers[0].on("POST", CHAT, default=Reply.json(EXACT))
    router = priced(
        route,
        budgets=[
            {
                "name": "alice-daily",
                "scope": "user",
                "match": "alice",
                "max_tokens": 60,
                "period": "day",
            }
        ],
    )
    for _ in range(2):
        router.chat(model="smart", messages=PROMPT, max_tokens=12, user="alice")
    with pytest.raises(BudgetExceededError) as info:
        router.chat(model="smart", messages=PROMPT, max_tokens=12, user="alice")
    err = info.value
    assert isinstance(err, errors.BackendError) and err.budget == "alice-daily"
    assert "alice-daily" in str(err) and 0 < err.retry_after <= 86_400
    assert len(servers[0].requests_to(CHAT)) == 2
    assert router.budget_spent("alice-daily", "alice") == (pytest.approx(0.078), 54)
    router.chat(model="smart", messages=PROMPT, max_tokens=12, user="bob")  # another user
    # "user" is still sent to the provider, as OpenAI's field
    assert servers[0].requests_to(CHAT)[-1].json()["user"] == "bob"


def test_settled_from_the_reply_usage(route, servers) -> None:
    servers[0].on(
        "POST",
        CHAT,
        default=Reply.json(wire.chat_completion("ok", prompt_tokens=5, completion_tokens=3)),
    )
    router = priced(route, budgets=[Budget("team-cost", "team", max_cost=1.0)])
    router.chat(model="smart", messages=PROMPT, max_tokens=12, team="core")
    cost, tokens = router.budget_spent("team-cost", "core")
    assert tokens == 8 and cost == pytest.approx((5 * 1_000 + 3 * 2_000) / 1e6)


def test_failed_call_releases_its_reservation(route, servers) -> None:
    servers[0].on("POST", CHAT, default=wire.error_reply(500))
    router = priced(route, budgets=[Budget("k", "api_key", max_tokens=100)])
    with pytest.raises(errors.ServerError):
        router.chat(model="smart", messages=PROMPT, max_tokens=12, api_key_id="key-1")
    assert router.budget_spent("k", "key-1") == (0.0, 0)


def test_tags_and_rolling_window(route, servers, clock) -> None:
    servers[0].on("POST", CHAT, default=Reply.json(EXACT))
    router = priced(
        route, budgets=[Budget("batch", "tag", match="batch", max_tokens=27, period=60)]
    )
    router.chat(model="smart", messages=PROMPT, max_tokens=12, tags=["batch", "x"])
    with pytest.raises(BudgetExceededError) as info:
        router.chat(model="smart", messages=PROMPT, max_tokens=12, tags=["batch"])
    assert info.value.retry_after == pytest.approx(60.0)
    router.chat(model="smart", messages=PROMPT, max_tokens=12, tags=["other"])
    clock.advance(61)
    router.chat(model="smart", messages=PROMPT, max_tokens=12, tags=["batch"])
    assert len(servers[0].requests_to(CHAT)) == 3


def test_200_concurrent_threads_never_overspend(route, servers) -> None:
    """A 50-call budget, 200 callers at once: exactly 50 calls reach the server."""
    servers[0].on("POST", CHAT, default=Reply.json(EXACT, delay=0.01))
    router = priced(
        route,
        budgets=[Budget("cap", "user", max_tokens=27 * 50, max_cost=10.0)],
        backend_options={0: {"max_concurrent_requests": 200, "queue_size": 400}},
    )
    outcomes: list[object] = []
    lock = threading.Lock()
    gate = threading.Barrier(200)

    def call() -> None:
        gate.wait()
        try:
            result: object = router.chat(model="smart", messages=PROMPT, max_tokens=12, user="u")
        except BudgetExceededError as exc:
            result = exc
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=call) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(outcomes) == 200
    assert sum(not isinstance(o, BudgetExceededError) for o in outcomes) == 50
    assert len(servers[0].requests_to(CHAT)) == 50
    assert router.budget_spent("cap", "u")[1] == 27 * 50


def test_200_concurrent_tasks_overspend_at_most_one_estimate(route, servers) -> None:
    """Replies cost less than estimated (9 prompt tokens, estimate 15): more calls fit, and
    what is spent never passes the cap."""
    servers[0].on(
        "POST",
        CHAT,
        default=Reply.json(wire.chat_completion("ok", prompt_tokens=9, completion_tokens=12)),
    )
    cap = 27 * 40
    router = priced(
        route,
        budgets=[Budget("cap", "user", max_tokens=cap)],
        backend_options={0: {"max_concurrent_requests": 200, "queue_size": 400}},
    )

    async def main() -> list[object]:
        async def one() -> object:
            try:
                return await router.achat(model="smart", messages=PROMPT, max_tokens=12, user="u")
            except BudgetExceededError as exc:
                return exc

        return await asyncio.gather(*(one() for _ in range(200)))

    results = asyncio.run(main())
    ok = sum(not isinstance(r, BudgetExceededError) for r in results)
    spent = router.budget_spent("cap", "u")[1]
    assert ok == len(servers[0].requests_to(CHAT)) and ok >= 40
    assert spent == 21 * ok and spent <= cap


def test_store_is_an_interface(route, servers) -> None:
    class Recording(MemoryBudgetStore):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[str] = []

        def reserve(self, budgets, cost, tokens, now):  # type: ignore[no-untyped-def]
            self.calls.append("reserve")
            return super().reserve(budgets, cost, tokens, now)

        def settle(self, reservation, cost, tokens):  # type: ignore[no-untyped-def]
            self.calls.append("settle")
            super().settle(reservation, cost, tokens)

    servers[0].on("POST", CHAT, default=Reply.json(EXACT))
    store = Recording()
    router = priced(route, budgets=[Budget("b", "user", max_tokens=1000)], budget_store=store)
    router.chat(model="smart", messages=PROMPT, max_tokens=12, user="u")
    router.chat(model="smart", messages=PROMPT, max_tokens=12)  # no user: no budget applies
    assert store.calls == ["reserve", "settle"]


def test_bad_budgets_are_configuration_errors() -> None:
    with pytest.raises(errors.ConfigurationError, match="scope"):
        Budget("x", "planet", max_cost=1)
    with pytest.raises(errors.ConfigurationError, match="max_cost or max_tokens"):
        Budget("x", "user")
    with pytest.raises(errors.ConfigurationError, match="period"):
        Budget("x", "user", max_cost=1, period="week")
    with pytest.raises(errors.ConfigurationError, match="unknown budget fields"):
        Budget.from_dict({"name": "x", "scope": "user", "max_cost": 1, "limit": 3})


def test_embeddings_are_estimated_from_their_input(route, servers) -> None:
    servers[0].on(
        "POST", "/v1/embeddings", default=Reply.json(wire.embeddings([[0.1]], prompt_tokens=11))
    )
    router = route({"emb": [0]}, budgets=[Budget("b", "user", max_tokens=20)])
    router.embed(model="emb", input="y" * 40, user="u")  # estimate 15 tokens, no completion
    assert router.budget_spent("b", "u") == (0.0, 11)
    with pytest.raises(BudgetExceededError):
        router.embed(model="emb", input="y" * 40, user="u")
    stats = router.get_deployment_stats()["d0"]
    assert stats["prompt_tokens"] == 11 and stats["successes"] == 1


def test_a_timeout_is_charged_its_estimate(route, servers) -> None:
    servers[0].on("POST", CHAT, default=Reply.json(EXACT, delay=1.0))
    router = priced(route, budgets=[Budget("t", "user", max_tokens=1000)])
    with pytest.raises(errors.TimeoutError):
        router.chat(model="smart", messages=PROMPT, max_tokens=12, user="u", timeout=0.1)
    assert router.budget_spent("t", "u")[1] == 27  # it may have been processed and billed


# --- budgets shared by every process (Redis) -------------------------------------------------


@pytest.fixture(scope="module")
def redis_url():
    from ipfs_accelerate_py.testing.redis_server import MISSING, RedisServer, find_redis_server

    pytest.importorskip("redis")
    if find_redis_server() is None:
        pytest.skip(MISSING)
    with RedisServer() as server:
        yield server.url


def _budget_worker(route, url, namespace, results, index) -> None:
    import os

    outcomes = []
    try:
        router = priced(
            route,
            budgets=[Budget("shared-cap", "user", max_tokens=27 * 12, period="day")],
            shared_state=url,
            shared_namespace=namespace,
            backend_options={0: {"max_concurrent_requests": 20}},
        )
        lock = threading.Lock()

        def call() -> None:
            try:
                router.chat(model="smart", messages=PROMPT, max_tokens=12, user="u")
                result = "ok"
            except BudgetExceededError:
                result = "refused"
            with lock:
                outcomes.append(result)

        threads = [threading.Thread(target=call) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        results.put((index, outcomes.count("ok")))
    except BaseException as exc:  # reported to the parent
        results.put((index, f"error: {exc!r}"))
    finally:
        os._exit(0)


def test_budgets_are_shared_by_every_process(route, servers, redis_url) -> None:
    """4 processes x 10 callers against a 12-call budget kept in Redis: exactly 12 calls reach
    the server, whichever processes they come from."""
    import multiprocessing
    import uuid

    from ipfs_accelerate_py.budgets_redis import RedisBudgetStore

    servers[0].on("POST", CHAT, default=Reply.json(EXACT, delay=0.01))
    namespace = f"b{uuid.uuid4().hex[:8]}"
    fork = multiprocessing.get_context("fork")
    results = fork.SimpleQueue()
    procs = [
        fork.Process(target=_budget_worker, args=(route, redis_url, namespace, results, i))
        for i in range(4)
    ]
    for proc in procs:
        proc.start()
    allowed = dict(results.get() for _ in procs)
    for proc in procs:
        proc.join(30)
    assert all(isinstance(n, int) for n in allowed.values()), allowed
    assert sum(allowed.values()) == 12
    assert len(servers[0].requests_to(CHAT)) == 12
    reader = priced(
        route,
        budgets=[Budget("shared-cap", "user", max_tokens=27 * 12, period="day")],
        shared_state=redis_url,
        shared_namespace=namespace,
    )
    assert isinstance(reader.budget_store, RedisBudgetStore)
    assert reader.budget_spent("shared-cap", "u")[1] == 27 * 12


def test_a_shared_rolling_window_settles_from_usage(route, servers, redis_url, clock) -> None:
    import uuid

    servers[0].on(
        "POST",
        CHAT,
        default=Reply.json(wire.chat_completion("ok", prompt_tokens=5, completion_tokens=3)),
    )
    namespace = f"w{uuid.uuid4().hex[:8]}"
    budget = Budget("window", "team", max_tokens=100, period=60)
    first, second = (
        priced(route, budgets=[budget], shared_state=redis_url, shared_namespace=namespace)
        for _ in range(2)
    )
    first.chat(model="smart", messages=PROMPT, max_tokens=12, team="core")
    assert second.budget_spent("window", "core")[1] == 8  # settled from usage, seen by the other
    second.chat(model="smart", messages=PROMPT, max_tokens=12, team="core")
    assert first.budget_spent("window", "core")[1] == 16
