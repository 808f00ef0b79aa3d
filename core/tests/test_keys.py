"""Tests for the API-key pool: rotation, load, cooldowns, rate-limit headers, masking."""

from __future__ import annotations

import threading

import httpx
import pytest

from ipfs_accelerate_py.errors import ConfigurationError
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.resilience.keys import ApiKey, KeyLease, KeyPool, parse_duration

SECRETS = {
    "a": "sk-proj-AAAAAAAAAAAAAAAAAAAAaaaa1111",
    "b": "sk-proj-BBBBBBBBBBBBBBBBBBBBbbbb2222",
    "c": "sk-proj-CCCCCCCCCCCCCCCCCCCCcccc3333",
}


def make_pool(strategy: str = "round-robin", clock: FakeClock | None = None) -> KeyPool:
    pool = KeyPool(strategy, clock=clock or FakeClock(), provider="openai")
    for name, secret in SECRETS.items():
        pool.add(name, secret)
    return pool


def take(pool: KeyPool, n: int, **kwargs: object) -> list[str]:
    """Acquire and release ``n`` times; the names chosen."""
    names = []
    for _ in range(n):
        lease = pool.acquire(**kwargs)  # type: ignore[arg-type]
        names.append(lease.key.name)
        pool.release(lease, ok=True)
    return names


def test_round_robin_rotates_over_three_keys() -> None:
    pool = make_pool()
    assert take(pool, 7) == ["a", "b", "c", "a", "b", "c", "a"]


def test_membership_names_and_len() -> None:
    pool = make_pool()
    assert pool.names() == ["a", "b", "c"]
    assert len(pool) == 3
    assert "b" in pool
    assert "z" not in pool
    pool.remove("b")
    assert pool.names() == ["a", "c"]
    assert take(pool, 3) == ["a", "c", "a"]


def test_add_existing_name_replaces_secret_and_keeps_counters() -> None:
    pool = make_pool()
    pool.release(pool.acquire("a"), ok=False)
    pool.add("a", "sk-new-secret-value-0000")
    assert len(pool) == 3
    lease = pool.acquire("a")
    assert lease.key.secret == "sk-new-secret-value-0000"
    assert lease.key.errors == 1


@pytest.mark.parametrize(("name", "secret"), [("", "sk-x"), ("x", ""), ("x", "   ")])
def test_add_rejects_empty_name_or_secret(name: str, secret: str) -> None:
    with pytest.raises(ConfigurationError):
        KeyPool().add(name, secret)


def test_unknown_strategy_lists_valid_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"round-robin.*least-loaded"):
        KeyPool("random")
    assert KeyPool("least_loaded").strategy == "least-loaded"
    assert KeyPool().strategy == "round-robin"


def test_least_loaded_picks_fewest_in_flight() -> None:
    pool = make_pool("least-loaded")
    held = [pool.acquire(), pool.acquire(), pool.acquire()]  # one each, in rotation order
    assert [lease.key.name for lease in held] == ["a", "b", "c"]
    pool.release(held[1], ok=True)  # b now has 0 in flight
    assert pool.acquire().key.name == "b"
    pool.release(held[0], ok=True)  # a has 0; b and c have 1
    assert pool.acquire().key.name == "a"


def test_least_loaded_ties_prefer_more_remaining_requests_unknown_in_middle() -> None:
    pool = make_pool("least-loaded")
    pool.observe_headers("a", {"x-ratelimit-remaining-requests": "10"})
    pool.observe_headers("c", {"x-ratelimit-remaining-requests": "1000"})
    # All idle: c (1000) before b (unknown: ranks as the known average, 505) before a (10).
    held = [pool.acquire(), pool.acquire(), pool.acquire()]
    assert [lease.key.name for lease in held] == ["c", "b", "a"]
    for lease in held:
        pool.release(lease, ok=True)
    pool.observe_headers("c", {"x-ratelimit-remaining-requests": "1"})
    assert pool.acquire().key.name == "a"  # now a (10) beats b (5.5) beats c (1)


def test_least_loaded_equal_load_rotates() -> None:
    pool = make_pool("least-loaded")
    assert take(pool, 4) == ["a", "b", "c", "a"]


def test_pin_by_name() -> None:
    pool = make_pool()
    lease = pool.acquire("b")
    assert lease.key.name == "b"
    assert lease.wait == 0.0
    assert lease.key.in_flight == 1
    assert lease.key.requests == 1


def test_unknown_name_error_lists_names_and_no_secret() -> None:
    pool = make_pool()
    with pytest.raises(ConfigurationError) as info:
        pool.acquire("nope")
    message = str(info.value)
    assert "nope" in message
    for name, secret in SECRETS.items():
        assert repr(name) in message
        assert secret not in message
    with pytest.raises(ConfigurationError, match="nope"):
        pool.remove("nope")


def test_empty_pool_error_names_provider() -> None:
    pool = KeyPool(provider="groq")
    with pytest.raises(ConfigurationError, match="no API key configured for groq"):
        pool.acquire()


def test_cooled_key_is_skipped_until_its_time_passes() -> None:
    clock = FakeClock()
    pool = make_pool(clock=clock)
    pool.cool_down("b", 30.0)
    assert take(pool, 4) == ["a", "c", "a", "c"]
    assert pool.stats()["b"]["cooling_down_for"] == pytest.approx(30.0)
    assert pool.stats()["b"]["rate_limited"] == 1
    clock.advance(30.0)
    assert "b" in take(pool, 3)
    assert pool.stats()["b"]["cooling_down_for"] == 0.0


def test_all_cooled_returns_earliest_with_wait() -> None:
    clock = FakeClock()
    pool = make_pool(clock=clock)
    pool.cool_down("a", 20.0)
    pool.cool_down("b", 5.0)
    pool.cool_down("c", 10.0)
    lease = pool.acquire()
    assert lease.key.name == "b"
    assert lease.wait == pytest.approx(5.0)
    clock.advance(2.0)
    assert pool.acquire().wait == pytest.approx(3.0)


def test_pinned_key_waits_out_its_cooldown() -> None:
    clock = FakeClock()
    pool = make_pool(clock=clock)
    pool.cool_down("a", 7.0)
    lease = pool.acquire("a")
    assert lease.key.name == "a"
    assert lease.wait == pytest.approx(7.0)


def test_cool_down_extends_never_shortens() -> None:
    clock = FakeClock()
    pool = make_pool(clock=clock)
    pool.cool_down("a", 60.0)
    pool.cool_down("a", 5.0)
    assert pool.stats()["a"]["cooling_down_for"] == pytest.approx(60.0)
    assert pool.stats()["a"]["rate_limited"] == 2
    pool.cool_down("a", 90.0)
    assert pool.stats()["a"]["cooling_down_for"] == pytest.approx(90.0)
    pool.cool_down("gone", 5.0)  # a key removed meanwhile: ignored


def test_avoid_skips_keys_and_is_ignored_when_it_excludes_all() -> None:
    pool = make_pool()
    assert take(pool, 3, avoid={"a"}) == ["b", "c", "b"]
    assert take(pool, 2, avoid=("a", "c")) == ["b", "b"]
    assert take(pool, 3, avoid={"a", "b", "c"}) == ["c", "a", "b"]  # rotation goes on


def test_avoid_with_remaining_keys_cooling_picks_earliest_of_those() -> None:
    clock = FakeClock()
    pool = make_pool(clock=clock)
    pool.cool_down("b", 4.0)
    pool.cool_down("c", 2.0)
    lease = pool.acquire(avoid={"a"})
    assert (lease.key.name, lease.wait) == ("c", pytest.approx(2.0))


def test_observe_openai_headers_and_reset_cooldown() -> None:
    clock = FakeClock()
    pool = make_pool(clock=clock)
    headers = httpx.Headers(
        {
            "X-RateLimit-Remaining-Requests": "59",
            "X-RateLimit-Remaining-Tokens": "149984",
            "X-RateLimit-Reset-Requests": "1s",
            "X-RateLimit-Reset-Tokens": "6m0s",
        }
    )
    pool.observe_headers("a", headers)
    stats = pool.stats()["a"]
    assert (stats["remaining_requests"], stats["remaining_tokens"]) == (59, 149984)
    assert stats["cooling_down_for"] == 0.0

    pool.observe_headers(
        "a",
        {
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-remaining-tokens": "1000",
            "x-ratelimit-reset-requests": "1m30.5s",
        },
    )
    assert pool.stats()["a"]["remaining_requests"] == 0
    assert pool.stats()["a"]["cooling_down_for"] == pytest.approx(90.5)
    assert pool.stats()["a"]["rate_limited"] == 0  # a header-driven pause is not a 429
    assert take(pool, 2) == ["b", "c"]


def test_observe_groq_tokens_spent_cools_until_token_reset() -> None:
    clock = FakeClock()
    pool = make_pool(clock=clock)
    pool.observe_headers(
        "b",
        {
            "x-ratelimit-remaining-requests": "14370",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-requests": "2m59.56s",
            "x-ratelimit-reset-tokens": "7.66s",
        },
    )
    assert pool.stats()["b"]["cooling_down_for"] == pytest.approx(7.66)


def test_observe_anthropic_headers_and_rfc3339_reset() -> None:
    clock = FakeClock(wall=1_712_318_400.0)  # 2024-04-05T12:00:00Z
    pool = make_pool(clock=clock)
    pool.observe_headers(
        "c",
        httpx.Headers(
            {
                "anthropic-ratelimit-requests-remaining": "0",
                "anthropic-ratelimit-requests-reset": "2024-04-05T12:00:42Z",
                "anthropic-ratelimit-tokens-remaining": "80000",
                "anthropic-ratelimit-input-tokens-remaining": "30000",
                "anthropic-ratelimit-output-tokens-remaining": "16000",
                "anthropic-ratelimit-tokens-reset": "2024-04-05T12:01:00Z",
            }
        ),
    )
    stats = pool.stats()["c"]
    assert stats["remaining_requests"] == 0
    assert stats["remaining_tokens"] == 16000  # the tightest of the token limits
    assert stats["cooling_down_for"] == pytest.approx(42.0)


def test_observe_anthropic_output_tokens_spent_with_offset_timestamp() -> None:
    clock = FakeClock(wall=1_712_318_400.0)
    pool = make_pool(clock=clock)
    pool.observe_headers(
        "a",
        {
            "Anthropic-RateLimit-Requests-Remaining": "49",
            "Anthropic-RateLimit-Output-Tokens-Remaining": "0",
            "Anthropic-RateLimit-Output-Tokens-Reset": "2024-04-05T14:00:10.5+02:00",
        },
    )
    assert pool.stats()["a"]["remaining_tokens"] == 0
    assert pool.stats()["a"]["cooling_down_for"] == pytest.approx(10.5)


def test_cooldowns_are_capped_whatever_a_reply_asks() -> None:
    clock = FakeClock()
    pool = make_pool(clock=clock)
    assert pool.max_cooldown == 300.0
    pool.cool_down("a", 100_000_000)  # retry-after: 100000000 -- three years
    spent = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "99999h"}
    pool.observe_headers("b", spent)
    pool.cool_down("c", float("inf"))
    assert [pool.stats()[n]["cooling_down_for"] for n in "abc"] == [300.0, 300.0, 300.0]
    clock.advance(300)
    assert take(pool, 3) == ["a", "b", "c"]

    pool.max_cooldown = 20
    pool.cool_down("a", 1e9)
    assert pool.stats()["a"]["cooling_down_for"] == 20.0
    pool.cool_down("b", 5)
    assert pool.stats()["b"]["cooling_down_for"] == 5.0
    pool.max_cooldown = 2  # lowering the cap shortens cooldowns under way
    assert pool.stats()["a"]["cooling_down_for"] == 2.0
    for bad in (0, -1, float("nan"), float("inf"), "300", True):
        with pytest.raises(ConfigurationError, match="max_key_cooldown"):
            pool.max_cooldown = bad  # type: ignore[assignment]
    with pytest.raises(ConfigurationError):
        KeyPool(max_cooldown=0)


@pytest.mark.parametrize(
    ("status", "cools"), [(200, True), (429, True), (400, False), (500, False), (None, False)]
)
def test_reset_headers_count_only_on_success_or_429(status: int | None, cools: bool) -> None:
    pool = make_pool()
    spent = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "30s",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "45s",
    }
    pool.observe_headers("a", spent, status=status)
    stats = pool.stats()["a"]
    assert stats["cooling_down_for"] == (45.0 if cools else 0.0)
    assert stats["remaining_requests"] == 0  # what remains is recorded either way


def test_reset_and_adding_again_clear_a_keys_cooldown() -> None:
    clock = FakeClock()
    pool = make_pool(clock=clock)
    pool.cool_down("a", 250)
    pool.observe_headers(
        "b", {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "4m"}
    )
    take(pool, 1)
    pool.reset("a")
    stats = pool.stats()["a"]
    assert stats["cooling_down_for"] == 0.0 and stats["remaining_requests"] is None
    assert stats["rate_limited"] == 1  # its history is kept
    pool.add("b", SECRETS["b"])  # re-adding the key clears it too
    assert pool.stats()["b"]["cooling_down_for"] == 0.0
    assert pool.stats()["b"]["remaining_requests"] is None
    assert take(pool, 3, avoid={"c"}) == ["a", "b", "a"]
    with pytest.raises(ConfigurationError, match="unknown API key name 'zz'"):
        pool.reset("zz")


def test_observe_headers_ignores_junk_and_unknown_keys() -> None:
    pool = make_pool()
    pool.observe_headers("a", {"content-type": "application/json"})
    pool.observe_headers("a", {"x-ratelimit-remaining-requests": "lots"})
    pool.observe_headers(
        "a", {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "soon"}
    )
    pool.observe_headers("gone", {"x-ratelimit-remaining-requests": "0"})
    stats = pool.stats()["a"]
    assert stats["remaining_requests"] == 0
    assert stats["cooling_down_for"] == 0.0  # no parsable reset: no cooldown


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("0.5s", 0.5),
        ("20ms", 0.02),
        ("6m0s", 360.0),
        ("1h2m3.5s", 3723.5),
        ("2m59.56s", 179.56),
        ("1m", 60.0),
        ("100us", 1e-4),
        ("3", 3.0),
        (" 7s ", 7.0),
        ("", None),
        ("s", None),
        ("1x", None),
        ("-1s", None),
        ("1m5", None),
        ("nan", None),
        ("2024-04-05T12:00:00Z", None),
    ],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    result = parse_duration(text)
    if seconds is None:
        assert result is None
    else:
        assert result == pytest.approx(seconds)


def test_secrets_appear_only_masked() -> None:
    clock = FakeClock()
    pool = make_pool(clock=clock)
    lease = pool.acquire()
    pool.cool_down("b", 3.0)
    stats = pool.stats()
    texts = [repr(pool), str(pool), repr(lease), str(lease), str(stats), repr(lease.key)]
    texts += [str(key) for key in (lease.key, ApiKey("x", SECRETS["c"]))]
    for text in texts:
        for secret in SECRETS.values():
            assert secret not in text
    assert stats["a"]["key"] == "sk-...1111"
    assert "sk-...1111" in repr(lease.key)


def test_secrets_are_available_for_redaction_only() -> None:
    assert make_pool().secrets() == list(SECRETS.values())


def test_lease_is_immutable() -> None:
    lease = make_pool().acquire()
    assert isinstance(lease, KeyLease)
    with pytest.raises(AttributeError):
        lease.wait = 5.0  # type: ignore[misc]


def test_release_counts_errors_tokens_and_cost() -> None:
    pool = make_pool()
    first = pool.acquire("a")
    second = pool.acquire("a")
    assert pool.stats()["a"]["in_flight"] == 2
    pool.release(first, ok=True, prompt_tokens=100, completion_tokens=20, cost=0.5)
    pool.release(second.key, ok=False)
    stats = pool.stats()["a"]
    assert stats["in_flight"] == 0
    assert stats["requests"] == 2
    assert stats["errors"] == 1
    assert (stats["prompt_tokens"], stats["completion_tokens"], stats["tokens"]) == (100, 20, 120)
    assert stats["cost"] == 0.5
    pool.release(first, ok=True)  # a double release never drives in_flight negative
    assert pool.stats()["a"]["in_flight"] == 0


def test_stats_shape() -> None:
    stats = make_pool().stats()
    assert list(stats) == ["a", "b", "c"]
    assert set(stats["a"]) == {
        "key",
        "requests",
        "in_flight",
        "errors",
        "rate_limited",
        "prompt_tokens",
        "completion_tokens",
        "tokens",
        "cost",
        "cooling_down_for",
        "remaining_requests",
        "remaining_tokens",
    }


@pytest.mark.parametrize("strategy", ["round-robin", "least-loaded"])
def test_concurrent_hammer_leaves_counts_exact(strategy: str) -> None:
    pool = make_pool(strategy)
    threads, per_thread = 8, 2000
    start = threading.Barrier(threads)

    def work(index: int) -> None:
        start.wait()
        for i in range(per_thread):
            lease = pool.acquire(avoid={"c"} if i % 5 == 0 else ())
            pool.release(lease, ok=i % 3 != 0, prompt_tokens=2, completion_tokens=1)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stats = pool.stats()
    total = threads * per_thread
    assert all(s["in_flight"] == 0 for s in stats.values())
    assert sum(s["requests"] for s in stats.values()) == total
    assert sum(s["prompt_tokens"] for s in stats.values()) == 2 * total
    assert sum(s["tokens"] for s in stats.values()) == 3 * total
    failures = threads * sum(1 for i in range(per_thread) if i % 3 == 0)
    assert sum(s["errors"] for s in stats.values()) == failures
    assert all(s["requests"] > 0 for s in stats.values())
