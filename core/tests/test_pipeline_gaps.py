"""Pipeline behaviours a second review found untested or wrong, each with a test that fails
when the behaviour breaks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from ipfs_accelerate_py import errors, fastjson
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.resilience.retry import RetryBudget
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply
from ipfs_accelerate_py.testing.waiting import await_until, wait_until

ok = wire.chat_reply

CHAT = "/v1/chat/completions"
USER = [{"role": "user", "content": "hi"}]


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


def test_successful_retry_refunds_the_budget(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    backend.default_endpoint.budget = RetryBudget(capacity=10)
    protocol_server.on("POST", CHAT, wire.error_reply(500), ok())
    backend.chat(messages=USER, model="m")
    assert backend.default_endpoint.budget.available == 10


def test_timeout_retries_cost_double(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    backend = make_backend(timeout=0.2, failure_threshold=100)
    backend.default_endpoint.budget = RetryBudget(capacity=15)
    late = Reply.json(wire.chat_completion("late"), delay=1.0)
    protocol_server.on("POST", CHAT, late, ok())
    assert backend.chat(messages=USER, model="m").text == "ok"
    assert backend.default_endpoint.budget.available == 15  # the 10 it cost came back
    protocol_server.on("POST", CHAT, late, late, late, default=ok())
    with pytest.raises(errors.TimeoutError, match="budget"):
        backend.chat(messages=USER, model="m")
    assert len(protocol_server.requests_to(CHAT)) == 2 + 2  # one retry (10 of 15), then refused


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


def test_queue_and_breaker_errors_carry_provider_and_request_id(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    backend = make_backend(
        failure_threshold=1, max_retries=0, max_concurrent_requests=1, queue_size=0
    )
    protocol_server.on("POST", CHAT, wire.error_reply(500))
    with pytest.raises(errors.ServerError):
        backend.chat(messages=USER, model="m")
    with pytest.raises(errors.CircuitOpenError) as opened:
        backend.chat(messages=USER, model="m", request_id="req_open")
    assert (opened.value.provider, opened.value.request_id) == ("loopback", "req_open")
    assert "req_open" in str(opened.value)

    clock.advance(31)
    hold = threading.Event()
    protocol_server.on("POST", CHAT, Reply.json(wire.chat_completion("x"), wait_for=hold))
    holder = threading.Thread(target=lambda: backend.chat(messages=USER, model="m"))
    holder.start()
    try:
        wait_until(lambda: protocol_server.in_flight >= 1)
        with pytest.raises(errors.QueueFullError) as full:
            backend.chat(messages=USER, model="m", request_id="req_full")
        assert (full.value.provider, full.value.request_id) == ("loopback", "req_full")
    finally:
        hold.set()
        holder.join(5)


def test_key_with_a_trailing_newline_is_cleaned_and_never_shown(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    key = "sk-proj-SECRETSECRETSECRET1234"
    backend = make_backend(api_key=key + "\n")
    protocol_server.on("POST", CHAT, ok())
    backend.chat(messages=USER, model="m")
    assert protocol_server.requests[0].headers["authorization"] == f"Bearer {key}"
    with pytest.raises(errors.ConfigurationError, match="whitespace"):
        backend.add_api_key("bad", "sk-with space-000000000")


@pytest.mark.parametrize("text", ['{"id": 18446744073709551616}', "[-9223372036854775809]"])
def test_fastjson_keeps_big_integers_exact(text: str) -> None:
    import json

    assert fastjson.loads(text) == json.loads(text)
    assert fastjson.loads(text.encode()) == json.loads(text)
