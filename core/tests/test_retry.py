"""Tests for Retry-After parsing, the retry policy and the shared retry budget."""

from __future__ import annotations

import email.utils
import random
import threading

import httpx
import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.resilience.retry import (
    RetryBudget,
    RetryPolicy,
    parse_retry_after,
    should_retry_header,
)

NOW = FakeClock().time()


def http_date(epoch: float) -> str:
    return email.utils.formatdate(epoch, usegmt=True)


# --- parse_retry_after ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250.5"}, 0.2505),
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after": " 3 "}, 3.0),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "-4"}, 0.0),
        ({"retry-after-ms": "-10"}, 0.0),
        ({"retry-after-ms": "2000", "retry-after": "9"}, 2.0),  # ms wins
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),  # bad ms falls through
        ({"retry-after": "garbage"}, None),
        ({"retry-after": ""}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after-ms": "soon"}, None),
        ({}, None),
        ({"content-type": "application/json"}, None),
    ],
)
def test_parse_retry_after_numbers(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=NOW) == expected
    assert parse_retry_after(httpx.Headers(headers), now=NOW) == expected


def test_parse_retry_after_http_date_relative_to_now() -> None:
    assert parse_retry_after({"retry-after": http_date(NOW + 30)}, now=NOW) == 30.0
    clock = FakeClock()
    clock.advance(10)
    assert parse_retry_after({"retry-after": http_date(NOW + 30)}, now=clock.time()) == 20.0


def test_parse_retry_after_http_date_forms() -> None:
    # Zone "-0000" parses naive; it is still read as UTC.
    naive = http_date(NOW + 45).replace("GMT", "-0000")
    assert parse_retry_after({"retry-after": naive}, now=NOW) == 45.0
    offset = email.utils.formatdate(NOW + 60, localtime=False).replace("-0000", "+0000")
    assert parse_retry_after({"retry-after": offset}, now=NOW) == 60.0


def test_parse_retry_after_past_date_is_zero() -> None:
    assert parse_retry_after({"retry-after": http_date(NOW - 3600)}, now=NOW) == 0.0


def test_parse_retry_after_bad_date_is_none() -> None:
    assert parse_retry_after({"retry-after": "Wed, 41 Foo 2015 07:28:00 GMT"}, now=NOW) is None
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 99999 07:28:00 GMT"}, now=NOW) is None


def test_parse_retry_after_defaults_now_to_wall_clock() -> None:
    import time

    wait = parse_retry_after({"retry-after": http_date(time.time() + 100)})
    assert wait is not None
    assert 98 <= wait <= 100


@pytest.mark.parametrize("name", ["Retry-After", "RETRY-AFTER", "retry-after"])
def test_parse_retry_after_case_insensitive(name: str) -> None:
    assert parse_retry_after({name: "4"}, now=NOW) == 4.0
    assert parse_retry_after(httpx.Headers({name: "4"}), now=NOW) == 4.0
    ms_name = name + "-Ms"
    assert parse_retry_after({ms_name: "4000"}, now=NOW) == 4.0
    assert parse_retry_after(httpx.Headers({ms_name: "4000"}), now=NOW) == 4.0


# --- should_retry_header ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-should-retry": "true"}, True),
        ({"x-should-retry": "false"}, False),
        ({"X-Should-Retry": "TRUE"}, True),
        ({"X-Should-Retry": " False "}, False),
        ({"x-should-retry": "maybe"}, None),
        ({"x-should-retry": ""}, None),
        ({}, None),
    ],
)
def test_should_retry_header(headers: dict[str, str], expected: bool | None) -> None:
    assert should_retry_header(headers) is expected
    assert should_retry_header(httpx.Headers(headers)) is expected


# --- RetryPolicy ------------------------------------------------------------------------------


def test_backoff_without_jitter_doubles_then_caps() -> None:
    policy = RetryPolicy(jitter=0.0, max_retry_delay=10.0)
    assert [policy.backoff(n) for n in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    default = RetryPolicy(jitter=0.0)
    assert [default.backoff(n) for n in range(5)] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert default.backoff(10_000) == 60.0  # no OverflowError


def test_backoff_jitter_stays_in_range() -> None:
    policy = RetryPolicy(jitter=0.25)
    for n in range(8):
        full = min(2.0**n, 60.0)
        samples = [policy.backoff(n) for _ in range(200)]
        assert all(0.75 * full <= s <= full for s in samples)
        assert len(set(samples)) > 1


def test_backoff_jitter_extremes(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = RetryPolicy(jitter=0.5)
    monkeypatch.setattr(random, "random", lambda: 0.0)
    assert policy.backoff(2) == 4.0
    monkeypatch.setattr(random, "random", lambda: 0.999999)
    assert policy.backoff(2) == pytest.approx(2.0, abs=1e-5)


@pytest.mark.parametrize(
    "error",
    [
        errors.InvalidRequestError("bad", status_code=400),
        errors.AuthenticationError("no key", status_code=401),
        errors.PermissionDeniedError("nope", status_code=403),
        errors.NotFoundError("gone", status_code=404),
        errors.MalformedResponseError("junk"),
        errors.CircuitOpenError("open", retry_after=1.0),
        errors.ConfigurationError("missing key"),
    ],
)
def test_delay_for_non_retryable_is_none(error: errors.BackendError) -> None:
    assert RetryPolicy().delay_for(error, 0) is None


def test_delay_for_honours_short_retry_after_exactly() -> None:
    policy = RetryPolicy()
    assert policy.delay_for(errors.RateLimitError("slow", retry_after=2), 0) == 2.0
    assert policy.delay_for(errors.RateLimitError("slow", retry_after=0.25), 3) == 0.25
    assert policy.delay_for(errors.RateLimitError("slow", retry_after=60.0), 0) == 60.0
    assert policy.delay_for(errors.ServerError("busy", retry_after=0), 0) == 0.0


def test_key_cooldown_obeys_retry_after_zero() -> None:
    policy = RetryPolicy(jitter=0.0)
    # retry-after: 0 means "retry at once": no rest for the key, not a backoff
    assert policy.key_cooldown(errors.RateLimitError("x", retry_after=0.0), 0.0, 0) == 0.0
    assert policy.key_cooldown(errors.RateLimitError("x", retry_after=3.0), 3.0, 0) == 3.0
    # no server wait: the retry delay, else the backoff (a long wait gave no delay)
    assert policy.key_cooldown(errors.RateLimitError("x"), 2.0, 1) == 2.0
    assert policy.key_cooldown(errors.RateLimitError("x"), None, 1) == 2.0


def test_delay_for_long_retry_after_surfaces_error() -> None:
    policy = RetryPolicy()
    assert policy.delay_for(errors.RateLimitError("slow", retry_after=120), 0) is None
    policy.max_retry_after = 300
    assert policy.delay_for(errors.RateLimitError("slow", retry_after=120), 0) == 120.0


def test_delay_for_server_error_uses_backoff() -> None:
    policy = RetryPolicy(jitter=0.0)
    delays = [policy.delay_for(errors.ServerError("boom", status_code=503), n) for n in range(5)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0]
    for cls in (errors.TimeoutError, errors.ConnectionError, errors.OverloadedError):
        assert policy.delay_for(cls("x"), 1) == 2.0


def test_delay_for_stops_at_max_retries() -> None:
    policy = RetryPolicy(max_retries=2, jitter=0.0)
    error = errors.ServerError("boom")
    assert policy.delay_for(error, 1) == 2.0
    assert policy.delay_for(error, 2) is None
    assert policy.delay_for(errors.RateLimitError("x", retry_after=1), 2) is None
    assert RetryPolicy(max_retries=0).delay_for(error, 0) is None


def test_delay_for_retryable_override() -> None:
    policy = RetryPolicy()
    assert policy.delay_for(errors.ServerError("boom", retryable=False), 0) is None
    assert policy.delay_for(errors.InvalidRequestError("x", retryable=True), 0) is not None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_retries", -1),
        ("max_retries", 1.5),
        ("initial_retry_delay", -0.1),
        ("backoff_factor", 0.5),
        ("max_retry_delay", -1),
        ("max_retry_after", -1),
        ("jitter", -0.1),
        ("jitter", 1.5),
        ("initial_retry_delay", float("nan")),
        ("max_retries", True),
    ],
)
def test_policy_validation(field: str, value: object) -> None:
    with pytest.raises(errors.ConfigurationError, match=field):
        RetryPolicy(**{field: value})  # type: ignore[arg-type]
    policy = RetryPolicy()
    with pytest.raises(errors.ConfigurationError, match=field):
        setattr(policy, field, value)


def test_policy_accepts_edges() -> None:
    policy = RetryPolicy(max_retries=0, initial_retry_delay=0, backoff_factor=1, jitter=1)
    policy.max_retry_delay = 0
    assert policy.backoff(3) == 0.0


# --- RetryBudget ------------------------------------------------------------------------------


def test_budget_drains_by_cost_and_refuses_when_empty() -> None:
    budget = RetryBudget(capacity=20)
    assert budget.available == 20
    assert budget.try_acquire() == 5
    assert budget.available == 15
    assert budget.try_acquire(timeout=True) == 10
    assert budget.available == 5
    assert budget.try_acquire(timeout=True) == 0  # cannot pay 10
    assert budget.available == 5
    assert budget.try_acquire() == 5
    assert budget.try_acquire() == 0
    assert budget.available == 0


def test_budget_refills() -> None:
    budget = RetryBudget(capacity=20)
    taken = budget.try_acquire() + budget.try_acquire(timeout=True)
    assert budget.available == 5
    budget.on_success()  # a call that needed no retry
    assert budget.available == 6
    budget.on_success(taken)  # a call that succeeded after its retries: refund them
    assert budget.available == 20
    budget.on_success()
    budget.on_success(15)
    assert budget.available == 20  # never above capacity


def test_budget_capacity_settable() -> None:
    budget = RetryBudget()
    assert (budget.capacity, budget.available) == (500, 500)
    budget.capacity = 100
    assert (budget.capacity, budget.available) == (100, 100)
    budget.capacity = 200
    assert budget.available == 100
    budget.on_success(150)
    assert budget.available == 200
    with pytest.raises(errors.ConfigurationError):
        budget.capacity = -1


@pytest.mark.parametrize(
    "kwargs",
    [{"capacity": -1}, {"retry_cost": 0}, {"timeout_retry_cost": 0}, {"success_refill": -1}],
)
def test_budget_validation(kwargs: dict[str, int]) -> None:
    with pytest.raises(errors.ConfigurationError):
        RetryBudget(**kwargs)


def test_budget_outage_allows_capacity_over_cost_retries() -> None:
    budget = RetryBudget()
    granted = 0
    while budget.try_acquire():
        granted += 1
    assert granted == 100


def test_budget_threaded_hammering_is_consistent() -> None:
    budget = RetryBudget(capacity=1_000_000)
    budget_lock = threading.Lock()
    withdrawn_total = [0]
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        mine = 0
        for i in range(2000):
            got = budget.try_acquire(timeout=i % 3 == 0)
            mine += got
            if i % 2 == 0:
                budget.on_success(got)
                mine -= got
        with budget_lock:
            withdrawn_total[0] += mine

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert budget.available == 1_000_000 - withdrawn_total[0]

    small = RetryBudget(capacity=100)
    grants: list[int] = []

    def grab() -> None:
        start.wait()
        for _ in range(50):
            got = small.try_acquire()
            if got:
                with budget_lock:
                    grants.append(got)

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(grants) == 20
    assert small.available == 0
