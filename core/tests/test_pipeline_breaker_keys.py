"""The pipeline's circuit breaker and API-key multiplexing against the loopback server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.pytest_plugin import DEFAULT_SECRET
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply
from ipfs_accelerate_py.testing.waiting import await_until, wait_until

user = wire.user
ok = wire.chat_reply

CHAT = "/v1/chat/completions"
USER = [{"role": "user", "content": "hi"}]
WALL = 1_700_000_000.0  # FakeClock's wall time at start
DEFAULT_KEY = DEFAULT_SECRET  # the ``secret`` fixture
KEYS = {
    "k1": "sk-key1-AAAAAAAAAAAAAAAA1111",
    "k2": "sk-key2-BBBBBBBBBBBBBBBB2222",
    "k3": "sk-key3-CCCCCCCCCCCCCCCC3333",
}
NAME_OF = {DEFAULT_KEY: "default", **{v: k for k, v in KEYS.items()}}


def key_name(request: RecordedRequest) -> str:
    return NAME_OF[request.headers["Authorization"].removeprefix("Bearer ")]


def keys_seen(server: ProtocolServer) -> list[str]:
    return [key_name(r) for r in server.requests_to(CHAT)]


def with_keys(backend: Backend, *names: str) -> Backend:
    for name in names:
        backend.add_api_key(name, KEYS[name])
    return backend


# --------------------------------------------------------------------------- breaker


def test_breaker_opens_and_fails_fast_without_a_request(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    backend = make_backend(failure_threshold=3, max_retries=0)
    protocol_server.on("POST", CHAT, ok(), default=wire.error_reply(500))
    backend.chat(messages=user(), model="m")
    clock.advance(5)
    states = []
    for _ in range(3):
        with pytest.raises(errors.ServerError):
            backend.chat(messages=user(), model="m")
        states.append(backend.circuit_state)
    assert states == ["CLOSED", "CLOSED", "OPEN"]
    assert len(protocol_server.requests_to(CHAT)) == 4

    with pytest.raises(errors.CircuitOpenError) as info:
        backend.chat(messages=user(), model="m")
    assert len(protocol_server.requests_to(CHAT)) == 4  # failed fast: nothing was sent
    assert info.value.retry_after == 30.0
    assert "next probe in 30.0s" in str(info.value)
    assert "3 consecutive failures" in str(info.value)
    clock.advance(10)
    with pytest.raises(errors.CircuitOpenError) as info:
        backend.chat(messages=user(), model="m")
    assert info.value.retry_after == 20.0
    assert len(protocol_server.requests_to(CHAT)) == 4

    metrics = backend.get_circuit_metrics()
    assert metrics["state"] == "OPEN"
    assert metrics["recent_failures"] == 3 and metrics["recent_successes"] == 1
    assert metrics["failure_rate"] == 75.0
    assert metrics["times_opened"] == 1
    assert metrics["last_success_at"] == WALL
    assert metrics["opened_at"] == metrics["last_failure_at"] == WALL + 5
    assert metrics["next_attempt_at"] == WALL + 35


def test_half_open_probes_close_after_success_threshold_or_reopen_on_failure(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    backend = make_backend(failure_threshold=3, max_retries=0, circuit_success_threshold=2)
    protocol_server.on("POST", CHAT, default=wire.error_reply(500))
    for _ in range(3):
        with pytest.raises(errors.ServerError):
            backend.chat(messages=user(), model="m")
    assert backend.circuit_state == "OPEN"
    clock.advance(30)
    assert backend.circuit_state == "HALF_OPEN"
    protocol_server.on("POST", CHAT, default=ok())
    backend.chat(messages=user(), model="m")
    assert backend.circuit_state == "HALF_OPEN"  # one probe is not enough
    backend.chat(messages=user(), model="m")
    assert backend.circuit_state == "CLOSED"
    assert len(protocol_server.requests_to(CHAT)) == 5

    protocol_server.on("POST", CHAT, default=wire.error_reply(500))
    for _ in range(3):
        with pytest.raises(errors.ServerError):
            backend.chat(messages=user(), model="m")
    clock.advance(30)
    assert backend.circuit_state == "HALF_OPEN"
    with pytest.raises(errors.ServerError):
        backend.chat(messages=user(), model="m")
    assert backend.circuit_state == "OPEN"  # a failed probe reopens at once
    assert backend.get_circuit_metrics()["times_opened"] == 3
    with pytest.raises(errors.CircuitOpenError):
        backend.chat(messages=user(), model="m")
    assert len(protocol_server.requests_to(CHAT)) == 9


def test_client_errors_and_429_do_not_open_the_breaker(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    backend = make_backend(failure_threshold=3, max_retries=0)
    statuses = [400, 401, 404, 422, 429, 429, 429]
    protocol_server.on("POST", CHAT, *[wire.error_reply(s) for s in statuses])
    for status in statuses:
        with pytest.raises(errors.APIStatusError) as info:
            backend.chat(messages=user(), model="m")
        assert info.value.status_code == status
    metrics = backend.get_circuit_metrics()
    assert metrics["state"] == "CLOSED"
    assert metrics["recent_failures"] == 0 and metrics["consecutive_failures"] == 0
    assert len(protocol_server.requests_to(CHAT)) == len(statuses)


def test_5xx_that_must_not_be_retried_still_counts_as_a_failure(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    backend = make_backend(failure_threshold=2)
    protocol_server.on("POST", CHAT, default=wire.error_reply(503, {"x-should-retry": "false"}))
    for _ in range(2):
        with pytest.raises(errors.ServerError):
            backend.chat(messages=user(), model="m")
    assert len(protocol_server.requests_to(CHAT)) == 2  # x-should-retry: false
    assert backend.circuit_state == "OPEN"


def test_malformed_reply_is_a_breaker_failure_and_frees_the_probe(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    backend = make_backend(failure_threshold=1, max_retries=0, circuit_success_threshold=1)
    protocol_server.on("POST", CHAT, wire.error_reply(500), Reply.raw(b"not json"), ok())
    with pytest.raises(errors.ServerError):
        backend.chat(messages=user(), model="m")
    clock.advance(30)
    with pytest.raises(errors.MalformedResponseError):
        backend.chat(messages=user(), model="m")
    assert backend.circuit_state == "OPEN"  # the failed probe reopened the circuit
    stats = backend.get_key_usage_stats()["default"]
    assert stats["in_flight"] == 0 and stats["errors"] == 2
    assert backend.get_usage_stats()["failed_requests"] == 2
    clock.advance(30)
    assert backend.chat(messages=user(), model="m").text == "ok"
    assert backend.circuit_state == "CLOSED"


# --------------------------------------------------------------------------- keys


def test_round_robin_order_is_exact(backend: Backend, protocol_server: ProtocolServer) -> None:
    with_keys(backend, "k1", "k2", "k3")
    protocol_server.on("POST", CHAT, default=ok())
    for _ in range(8):
        backend.chat(messages=user(), model="m")
    assert keys_seen(protocol_server) == ["default", "k1", "k2", "k3"] * 2


def test_api_key_name_pins_a_key(backend: Backend, protocol_server: ProtocolServer) -> None:
    with_keys(backend, "k1", "k2", "k3")
    protocol_server.on("POST", CHAT, default=ok())
    for _ in range(3):
        backend.chat(messages=user(), model="m", api_key_name="k2")
    assert keys_seen(protocol_server) == ["k2", "k2", "k2"]
    with pytest.raises(errors.ConfigurationError, match="unknown API key name 'k9'"):
        backend.chat(messages=user(), model="m", api_key_name="k9")
    assert len(protocol_server.requests_to(CHAT)) == 3
    assert backend.get_queue_info()["active_requests"] == 0


def test_least_loaded_prefers_idle_keys_then_the_most_remaining(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    backend = with_keys(make_backend(key_selection_strategy="least-loaded"), "k1", "k2")
    remaining = {"default": 10, "k1": 30, "k2": 20}
    release = threading.Event()

    def reply(request: RecordedRequest) -> Reply:
        held = request.json()["messages"][0]["content"] == "hold"
        headers = {"x-ratelimit-remaining-requests": str(remaining[key_name(request)])}
        body = wire.chat_completion("ok")
        return Reply.json(body, headers=headers, wait_for=release if held else None)

    protocol_server.on("POST", CHAT, default=reply)
    for name in ("default", "k1", "k2"):  # learn every key's remaining requests
        backend.chat(messages=user(), model="m", api_key_name=name)
    backend.chat(messages=user(), model="m")
    backend.chat(messages=user(), model="m")
    holder = threading.Thread(target=backend.chat, kwargs={"messages": user("hold"), "model": "m"})
    holder.start()
    try:
        wait_until(lambda: protocol_server.in_flight == 1)
        backend.chat(messages=user(), model="m")  # k1 is busy: the idle key with most left
    finally:
        release.set()
        holder.join(5)
    assert keys_seen(protocol_server) == ["default", "k1", "k2", "k1", "k1", "k1", "k2"]
    assert backend.get_key_usage_stats()["k1"]["remaining_requests"] == 30


def test_429_moves_to_another_key_at_once_and_cools_the_limited_one(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    with_keys(backend, "k1", "k2", "k3")
    protocol_server.on("POST", CHAT, wire.error_reply(429, {"retry-after": "10"}), default=ok())
    backend.chat(messages=user(), model="m")
    assert clock.sleeps == []  # no wait: another key was free
    assert keys_seen(protocol_server) == ["default", "k1"]
    for _ in range(5):
        backend.chat(messages=user(), model="m")
    assert keys_seen(protocol_server)[2:] == ["k2", "k3", "k1", "k2", "k3"]
    stats = backend.get_key_usage_stats()["default"]
    assert stats["cooling_down_for"] == 10.0
    assert stats["rate_limited"] == 1 and stats["errors"] == 1
    clock.advance(10)
    backend.chat(messages=user(), model="m")
    assert keys_seen(protocol_server)[-1] == "default"
    assert clock.sleeps == []


def test_rate_limit_headers_on_a_success_cool_that_key(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    with_keys(backend, "k1")
    spent = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s"}
    protocol_server.on(
        "POST", CHAT, Reply.json(wire.chat_completion("ok"), headers=spent), default=ok()
    )
    for _ in range(3):
        backend.chat(messages=user(), model="m")
    assert keys_seen(protocol_server) == ["default", "k1", "k1"]
    stats = backend.get_key_usage_stats()["default"]
    assert stats["cooling_down_for"] == 1.0 and stats["remaining_requests"] == 0
    clock.advance(1)
    backend.chat(messages=user(), model="m")
    assert keys_seen(protocol_server)[-1] == "default"
    assert clock.sleeps == []


def test_a_huge_retry_after_rests_a_key_for_max_key_cooldown_at_most(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    backend = with_keys(make_backend(), "k1")
    assert backend.max_key_cooldown == 300.0
    protocol_server.on(
        "POST", CHAT, wire.error_reply(429, {"retry-after": "100000000"}), default=ok()
    )
    backend.chat(messages=user(), model="m")
    assert keys_seen(protocol_server) == ["default", "k1"]
    assert backend.get_key_usage_stats()["default"]["cooling_down_for"] == 300.0
    backend.reset_api_key("default")  # the user's way out
    assert backend.get_key_usage_stats()["default"]["cooling_down_for"] == 0.0
    backend.chat(messages=user(), model="m")
    assert keys_seen(protocol_server)[-1] == "default"

    backend.max_key_cooldown = 30
    protocol_server.on(
        "POST", CHAT, wire.error_reply(429, {"retry-after": "100000000"}), default=ok()
    )
    backend.chat(messages=user(), model="m")
    assert backend.get_key_usage_stats()["k1"]["cooling_down_for"] == 30.0
    backend.add_api_key("k1", KEYS["k1"])  # adding the key again clears it too
    assert backend.get_key_usage_stats()["k1"]["cooling_down_for"] == 0.0
    eid = backend.create_endpoint(max_key_cooldown=5)
    assert backend.default_endpoint.policy()["max_key_cooldown"] == 30.0
    assert backend.endpoints[eid].keys.max_cooldown == 5.0
    assert clock.sleeps == []
    with pytest.raises(errors.ConfigurationError, match="max_key_cooldown"):
        make_backend(max_key_cooldown=-1)


@pytest.mark.parametrize("status", [400, 500])
def test_rate_limit_headers_on_an_error_reply_do_not_cool_the_key(
    make_backend: Callable[..., Backend],
    protocol_server: ProtocolServer,
    clock: FakeClock,
    status: int,
) -> None:
    backend = with_keys(make_backend(max_retries=0), "k1")
    spent = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2m"}
    protocol_server.on("POST", CHAT, wire.error_reply(status, spent), default=ok())
    with pytest.raises(errors.APIStatusError):
        backend.chat(messages=user(), model="m")
    assert backend.get_key_usage_stats()["default"]["cooling_down_for"] == 0.0


def test_key_usage_stats_count_per_key_and_show_only_masked_keys(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    with_keys(backend, "k1")
    protocol_server.on(
        "POST",
        CHAT,
        ok(prompt_tokens=9, completion_tokens=12),
        wire.error_reply(500),
        ok(prompt_tokens=5, completion_tokens=7),
    )
    backend.chat(messages=user(), model="m")
    backend.chat(messages=user(), model="m")  # k1 fails with a 500, the retry goes to default
    assert keys_seen(protocol_server) == ["default", "k1", "default"]
    stats = backend.get_key_usage_stats()
    assert stats["default"]["requests"] == 2 and stats["default"]["errors"] == 0
    assert stats["default"]["prompt_tokens"] == 14
    assert stats["default"]["completion_tokens"] == 19
    assert stats["default"]["tokens"] == 33
    assert stats["k1"]["requests"] == 1 and stats["k1"]["errors"] == 1
    assert stats["k1"]["tokens"] == 0
    assert all(s["in_flight"] == 0 for s in stats.values())
    assert stats["default"]["key"] == "sk-...abcd" and stats["k1"]["key"] == "sk-...1111"
    shown = repr(stats) + repr(backend.default_endpoint.keys) + repr(backend)
    for secret in (DEFAULT_KEY, KEYS["k1"]):
        assert secret not in shown


# ------------------------------------------------------- breaker: half-open probes given back once


def open_then_half_open(backend: Backend, server: ProtocolServer, clock: FakeClock) -> None:
    server.on("POST", CHAT, wire.error_reply(500))
    with pytest.raises(errors.ServerError):
        backend.chat(messages=USER, model="m")
    assert backend.get_circuit_state() == "OPEN"
    clock.advance(31)
    assert backend.get_circuit_state() == "HALF_OPEN"


def test_cancelled_in_flight_async_probe_is_given_back(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    backend = make_backend(failure_threshold=1, max_retries=0)
    open_then_half_open(backend, protocol_server, clock)
    hold = threading.Event()
    protocol_server.on(
        "POST", CHAT, Reply.json(wire.chat_completion("x"), wait_for=hold), default=ok()
    )

    async def scenario() -> None:
        task = asyncio.create_task(backend.achat(messages=USER, model="m"))
        await await_until(lambda: protocol_server.in_flight >= 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await backend.aclose()

    asyncio.run(scenario())
    hold.set()
    assert backend.get_key_usage_stats()["default"]["in_flight"] == 0
    assert backend.chat(messages=USER, model="m").text == "ok"  # the probe slot came back


def test_stream_closed_after_its_final_chunk_does_not_free_a_second_probe(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    backend = make_backend(failure_threshold=1, max_retries=0, circuit_success_threshold=2)
    open_then_half_open(backend, protocol_server, clock)
    hold = threading.Event()
    protocol_server.on(
        "POST",
        CHAT,
        Reply.sse(wire.chat_stream(["a"])),
        Reply.sse(wire.chat_stream(["b"]), wait_for=hold),
        default=ok(),
    )
    first = backend.stream(messages=USER, model="m")
    for chunk in first:  # read up to the final chunk, and stop there (probe 1 succeeded)
        if chunk.done:
            break
    second = backend.stream(messages=USER, model="m")  # probe 2: held at the server

    def read_second() -> None:
        list(second)

    reader = threading.Thread(target=read_second)
    reader.start()
    try:
        wait_until(lambda: protocol_server.in_flight >= 1)
        first.close()  # after the final chunk: must not free probe 2's slot
        with pytest.raises(errors.CircuitOpenError, match="probe"):
            backend.chat(messages=USER, model="m")
    finally:
        hold.set()
        reader.join(5)


# -------------------------------------------------------- breaker: opening during a call's retries


@pytest.mark.parametrize("caller", ["chat", "achat"])
def test_breaker_opening_during_retries_surfaces_the_server_error(
    make_backend: Callable[..., Backend],
    protocol_server: ProtocolServer,
    clock: FakeClock,
    call: Callable[..., Any],
    caller: str,
) -> None:
    backend = make_backend(failure_threshold=3, max_retries=5)
    protocol_server.on("POST", CHAT, default=wire.error_reply(503))

    with pytest.raises(errors.ServerError) as info:
        call(caller, backend)
    err = info.value
    assert not isinstance(err, errors.CircuitOpenError)
    assert err.status_code == 503
    assert err.provider_request_id == "req_server_503"
    assert "not retried" in str(err) and "open" in str(err)
    assert len(protocol_server.requests_to(CHAT)) == 3
    assert backend.circuit_state == "OPEN"

    with pytest.raises(errors.CircuitOpenError):
        call(caller, backend)
    assert len(protocol_server.requests_to(CHAT)) == 3


def test_breaker_opened_by_other_calls_during_backoff_surfaces_the_real_error(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    backends: list[Backend] = []

    class OpeningClock(FakeClock):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            for _ in range(5):  # other callers' failures while this one backs off
                backends[0].default_endpoint.breaker.on_failure()

    backend = make_backend(clock=OpeningClock(), failure_threshold=5)
    backends.append(backend)
    protocol_server.on("POST", CHAT, default=wire.error_reply(503))
    with pytest.raises(errors.ServerError) as info:
        backend.chat(messages=USER, model="m", request_id="req_backoff")
    assert not isinstance(info.value, errors.CircuitOpenError)
    assert info.value.status_code == 503
    assert "not retried" in str(info.value)
    assert info.value.request_id == "req_backoff"


# --------------------------------------------------------------------------- keys: 429s


KEY_B = "sk-keyB-BBBBBBBBBBBBBBBB2222"


@pytest.mark.parametrize("caller", ["chat", "achat"])
def test_long_retry_after_on_one_key_moves_to_the_other_key_at_once(
    backend: Backend,
    protocol_server: ProtocolServer,
    clock: FakeClock,
    secret: str,
    call: Callable[..., Any],
    caller: str,
) -> None:
    backend.add_api_key("B", KEY_B)
    limited = wire.error_reply(429, {"retry-after": "120"})
    protocol_server.on("POST", CHAT, limited, default=ok("from B"))

    assert call(caller, backend).text == "from B"
    sent = [r.headers["Authorization"] for r in protocol_server.requests_to(CHAT)]
    assert sent == [f"Bearer {secret}", f"Bearer {KEY_B}"]
    assert clock.sleeps == []
    stats = backend.get_key_usage_stats()
    assert stats["default"]["rate_limited"] == 1
    assert stats["default"]["cooling_down_for"] == 120.0
    assert stats["default"]["in_flight"] == stats["B"]["in_flight"] == 0


def test_rate_limit_headers_on_a_429_are_read(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    backend.add_api_key("k2", "sk-k2-BBBBBBBBBBBBBBBB2222")
    spent = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "7s"}
    protocol_server.on("POST", CHAT, wire.error_reply(429, spent), default=ok())
    backend.chat(messages=USER, model="m")
    stats = backend.get_key_usage_stats()["default"]
    assert stats["remaining_requests"] == 0
    assert stats["cooling_down_for"] == 7.0


def test_429_that_must_not_be_retried_is_not_moved_to_another_key(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    backend.add_api_key("k2", "sk-k2-BBBBBBBBBBBBBBBB2222")
    protocol_server.on(
        "POST", CHAT, wire.error_reply(429, {"x-should-retry": "false"}), default=ok()
    )
    with pytest.raises(errors.RateLimitError):
        backend.chat(messages=USER, model="m")
    assert len(protocol_server.requests_to(CHAT)) == 1
