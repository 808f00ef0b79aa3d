"""Tests for the circuit breaker, driven by a FakeClock (no real waiting)."""

from __future__ import annotations

import threading

import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.resilience.breaker import CircuitBreaker, CircuitState
from ipfs_accelerate_py.resilience.clock import FakeClock


def make(clock: FakeClock, **kwargs: object) -> CircuitBreaker:
    kwargs.setdefault("name", "openai")
    kwargs.setdefault("provider", "openai")
    return CircuitBreaker(clock=clock, **kwargs)  # type: ignore[arg-type]


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        breaker.before_call()
        breaker.on_failure()


def open_breaker(breaker: CircuitBreaker) -> None:
    fail(breaker, breaker.failure_threshold)
    assert breaker.state is CircuitState.OPEN


def test_state_str_and_value() -> None:
    assert f"{CircuitState.HALF_OPEN}" == "HALF_OPEN"
    assert str(CircuitState.CLOSED) == "CLOSED"
    assert CircuitState.OPEN == "OPEN"


def test_opens_exactly_at_threshold(clock: FakeClock) -> None:
    breaker = make(clock)
    fail(breaker, 4)
    assert breaker.state is CircuitState.CLOSED
    fail(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    assert breaker.metrics()["times_opened"] == 1


def test_success_in_closed_resets_consecutive(clock: FakeClock) -> None:
    breaker = make(clock)
    fail(breaker, 4)
    breaker.before_call()
    breaker.on_success()
    assert breaker.metrics()["consecutive_failures"] == 0
    fail(breaker, 4)
    assert breaker.state is CircuitState.CLOSED
    fail(breaker, 1)
    assert breaker.state is CircuitState.OPEN


def test_open_fails_fast_with_retry_after(clock: FakeClock) -> None:
    breaker = make(clock, reset_timeout=30.0)
    open_breaker(breaker)
    clock.advance(12.5)
    with pytest.raises(errors.CircuitOpenError) as info:
        breaker.before_call()
    err = info.value
    assert err.retry_after == pytest.approx(17.5)
    assert err.provider == "openai"
    assert not err.retryable
    assert isinstance(err, ValueError)
    text = str(err)
    assert "Circuit open" in text
    assert "17.5s" in text
    assert "5 consecutive failures" in text
    assert "openai" in text


def test_half_open_after_reset_timeout(clock: FakeClock) -> None:
    breaker = make(clock, reset_timeout=30.0)
    open_breaker(breaker)
    clock.advance(29.9)
    assert breaker.state is CircuitState.OPEN
    clock.advance(0.1)
    assert breaker.state is CircuitState.HALF_OPEN


def test_half_open_admits_only_max_probes(clock: FakeClock) -> None:
    breaker = make(clock, half_open_max_calls=2)
    open_breaker(breaker)
    clock.advance(30)
    breaker.before_call()
    breaker.before_call()
    with pytest.raises(errors.CircuitOpenError, match="probe in progress") as info:
        breaker.before_call()
    assert info.value.retry_after == 0.0
    breaker.on_success()  # one probe done: a slot frees
    breaker.before_call()
    with pytest.raises(errors.CircuitOpenError):
        breaker.before_call()


def test_probe_failure_reopens_with_fresh_timeout(clock: FakeClock) -> None:
    breaker = make(clock, reset_timeout=30.0)
    open_breaker(breaker)
    clock.advance(31)
    breaker.before_call()
    breaker.on_failure()
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(errors.CircuitOpenError, match="half-open probe") as info:
        breaker.before_call()
    assert info.value.retry_after == pytest.approx(30.0)
    clock.advance(29)
    assert breaker.state is CircuitState.OPEN
    clock.advance(1)
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.metrics()["times_opened"] == 2


def test_success_threshold_closes(clock: FakeClock) -> None:
    breaker = make(clock, success_threshold=3)
    open_breaker(breaker)
    clock.advance(30)
    for _ in range(2):
        breaker.before_call()
        breaker.on_success()
        assert breaker.state is CircuitState.HALF_OPEN
    breaker.before_call()
    breaker.on_success()
    assert breaker.state is CircuitState.CLOSED
    m = breaker.metrics()
    assert m["consecutive_failures"] == 0
    assert m["opened_at"] is None
    assert m["next_attempt_at"] is None
    # Counters were reset: it takes a full threshold of failures to open again.
    fail(breaker, 4)
    assert breaker.state is CircuitState.CLOSED


def test_on_ignored_does_not_count_and_frees_probe(clock: FakeClock) -> None:
    breaker = make(clock)
    fail(breaker, 4)
    for _ in range(10):
        breaker.before_call()
        breaker.on_ignored()
    m = breaker.metrics()
    assert m["consecutive_failures"] == 4
    assert m["total_failures"] == 4
    assert m["total_successes"] == 0
    assert m["recent_failures"] + m["recent_successes"] == 4
    fail(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    clock.advance(30)
    breaker.before_call()
    with pytest.raises(errors.CircuitOpenError):
        breaker.before_call()
    breaker.on_ignored()
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.before_call()  # the slot is free again


def test_failure_rate_opens_without_consecutive_run(clock: FakeClock) -> None:
    breaker = make(clock, failure_rate_threshold=50.0, min_calls_in_window=10)
    for i in range(9):
        breaker.before_call()
        if i % 2 == 0:
            breaker.on_failure()
        else:
            breaker.on_success()
    assert breaker.state is CircuitState.CLOSED  # 5/9 failing, but fewer than 10 calls
    breaker.before_call()
    breaker.on_success()  # 10 calls, 50%: only a failure can open it
    assert breaker.state is CircuitState.CLOSED
    breaker.before_call()
    breaker.on_failure()  # 11 calls, 6 failures
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(errors.CircuitOpenError, match="of 11 calls failing"):
        breaker.before_call()


def test_failure_rate_below_threshold_stays_closed(clock: FakeClock) -> None:
    breaker = make(clock, failure_rate_threshold=50.0, min_calls_in_window=10)
    for _ in range(30):
        breaker.on_success()
        breaker.on_success()
        breaker.on_failure()  # 33% failing
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics()["failure_rate"] == pytest.approx(100 / 3)


def test_window_pruning(clock: FakeClock) -> None:
    breaker = make(clock, window=60.0, failure_rate_threshold=50.0, min_calls_in_window=4)
    for _ in range(3):
        breaker.on_failure()
        breaker.on_success()
    assert breaker.metrics()["recent_failures"] == 3
    clock.advance(61)
    m = breaker.metrics()
    assert (m["recent_failures"], m["recent_successes"], m["failure_rate"]) == (0, 0, 0.0)
    assert (m["total_failures"], m["total_successes"]) == (3, 3)
    for _ in range(3):
        breaker.on_success()
    breaker.on_failure()  # the old failures have gone: 1 of 4
    assert breaker.state is CircuitState.CLOSED
    clock.advance(30)
    breaker.on_failure()
    assert breaker.metrics()["recent_failures"] == 2
    clock.advance(30.5)  # the first recent batch falls out, the last failure stays
    assert breaker.metrics()["recent_failures"] == 1


def test_window_is_bounded(clock: FakeClock) -> None:
    breaker = make(clock)
    for _ in range(10_050):
        breaker.on_success()
    m = breaker.metrics()
    assert m["recent_successes"] == 10_000
    assert m["total_successes"] == 10_050


def test_metrics_fields_and_values(clock: FakeClock) -> None:
    breaker = make(clock, reset_timeout=30.0)
    m = breaker.metrics()
    assert m == {
        "state": "CLOSED",
        "recent_failures": 0,
        "recent_successes": 0,
        "failure_rate": 0.0,
        "consecutive_failures": 0,
        "total_failures": 0,
        "total_successes": 0,
        "times_opened": 0,
        "opened_at": None,
        "last_failure_at": None,
        "last_success_at": None,
        "next_attempt_at": None,
    }
    wall0 = clock.time()
    breaker.on_success()
    clock.advance(1)
    fail(breaker, 5)
    clock.advance(2)
    m = breaker.metrics()
    assert m["state"] == "OPEN"
    assert (m["recent_failures"], m["recent_successes"]) == (5, 1)
    assert m["failure_rate"] == pytest.approx(500 / 6)
    assert m["consecutive_failures"] == 5
    assert (m["total_failures"], m["total_successes"], m["times_opened"]) == (5, 1, 1)
    assert m["last_success_at"] == pytest.approx(wall0)
    assert m["last_failure_at"] == pytest.approx(wall0 + 1)
    assert m["opened_at"] == pytest.approx(wall0 + 1)
    assert m["next_attempt_at"] == pytest.approx(wall0 + 31)
    clock.advance(30)
    m = breaker.metrics()
    assert m["state"] == "HALF_OPEN"
    assert m["next_attempt_at"] is None


def test_reset(clock: FakeClock) -> None:
    breaker = make(clock)
    open_breaker(breaker)
    breaker.reset()
    assert breaker.state is CircuitState.CLOSED
    breaker.before_call()
    m = breaker.metrics()
    assert m["total_failures"] == m["times_opened"] == m["recent_failures"] == 0


def test_settings_are_settable_and_validated(clock: FakeClock) -> None:
    breaker = make(clock)
    breaker.failure_threshold = 2
    fail(breaker, 2)
    assert breaker.state is CircuitState.OPEN
    breaker.reset_timeout = 0
    assert breaker.state is CircuitState.HALF_OPEN
    for name, bad in [
        ("failure_threshold", 0),
        ("failure_threshold", 2.5),
        ("reset_timeout", -1),
        ("success_threshold", 0),
        ("half_open_max_calls", 0),
        ("window", 0),
        ("failure_rate_threshold", 0),
        ("failure_rate_threshold", 101),
        ("min_calls_in_window", True),
    ]:
        with pytest.raises(errors.ConfigurationError, match=name):
            setattr(breaker, name, bad)
        with pytest.raises(errors.ConfigurationError):
            CircuitBreaker(**{name: bad})
    breaker.failure_rate_threshold = None
    assert breaker.failure_rate_threshold is None


def test_message_without_name_uses_provider(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, clock=clock, provider="groq")
    fail(breaker, 1)
    with pytest.raises(errors.CircuitOpenError, match="circuit for groq is open"):
        breaker.before_call()


def test_thread_safety_hammer(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=10**9)
    threads_n, per = 8, 1200  # stays under the 10_000-event window cap
    start = threading.Barrier(threads_n)

    def worker(k: int) -> None:
        start.wait()
        for i in range(per):
            breaker.before_call()
            if (i + k) % 3 == 0:
                breaker.on_failure()
            elif (i + k) % 3 == 1:
                breaker.on_success()
            else:
                breaker.on_ignored()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    m = breaker.metrics()
    expected_fail = sum(1 for k in range(threads_n) for i in range(per) if (i + k) % 3 == 0)
    expected_ok = sum(1 for k in range(threads_n) for i in range(per) if (i + k) % 3 == 1)
    assert m["total_failures"] == m["recent_failures"] == expected_fail
    assert m["total_successes"] == m["recent_successes"] == expected_ok


def test_thread_safety_half_open_probes(clock: FakeClock) -> None:
    breaker = make(clock, half_open_max_calls=3)
    open_breaker(breaker)
    clock.advance(30)
    admitted: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def probe() -> None:
        start.wait()
        try:
            breaker.before_call()
        except errors.CircuitOpenError:
            return
        with lock:
            admitted.append(1)

    threads = [threading.Thread(target=probe) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 3
