"""The pipeline's retry loop against the loopback server: Retry-After, backoff, dropped
connections, cut streams, the retry budget (refunds, timeouts at double cost) and request
ids, also on queue and breaker errors (exact attempt counts)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from email.utils import formatdate
from typing import Any

import pytest

from ipfs_accelerate_py import errors, openai_compat, plugins
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.calls import HttpCall
from ipfs_accelerate_py.config import BackendSpec, Settings
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.hookspecs import hookimpl
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.resilience.retry import RetryBudget
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply
from ipfs_accelerate_py.testing.waiting import wait_until
from ipfs_accelerate_py.types import ChatRequest

user = wire.user
ok = wire.chat_reply

CHAT = "/v1/chat/completions"
USER = [{"role": "user", "content": "hi"}]
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


# --------------------------------------------------------------------------- Retry-After


def test_retry_after_seconds_is_waited_exactly(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    protocol_server.on("POST", CHAT, wire.error_reply(429, {"retry-after": "2"}), ok())
    assert backend.chat(messages=user(), model="m").text == "ok"
    assert clock.sleeps == [2.0]  # the server's wait, not the ~1 s backoff
    assert len(protocol_server.requests_to(CHAT)) == 2


def test_retry_after_ms_wins_over_retry_after(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    headers = {"retry-after-ms": "1500", "retry-after": "9"}
    protocol_server.on("POST", CHAT, wire.error_reply(429, headers), ok())
    assert backend.chat(messages=user(), model="m").text == "ok"
    assert clock.sleeps == [1.5]
    assert len(protocol_server.requests_to(CHAT)) == 2


def test_retry_after_http_date_is_read_against_the_clock(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    when = formatdate(clock.time() + 7, usegmt=True)
    protocol_server.on("POST", CHAT, wire.error_reply(503, {"retry-after": when}), ok())
    assert backend.chat(messages=user(), model="m").text == "ok"
    assert clock.sleeps == [7.0]
    assert len(protocol_server.requests_to(CHAT)) == 2


def test_retry_after_zero_retries_at_once(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    protocol_server.on("POST", CHAT, wire.error_reply(429, {"retry-after": "0"}), ok())
    assert backend.chat(messages=user(), model="m").text == "ok"
    assert clock.sleeps == []  # at once, as the header says: no backoff, no key cooldown
    assert backend.get_key_usage_stats()["default"]["cooling_down_for"] == 0.0
    assert len(protocol_server.requests_to(CHAT)) == 2


def test_retry_after_above_max_surfaces_at_once(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    assert backend.max_retry_after == 60
    protocol_server.on("POST", CHAT, wire.error_reply(429, {"retry-after": "120"}), default=ok())
    with pytest.raises(errors.RateLimitError) as info:
        backend.chat(messages=user(), model="m")
    assert info.value.retry_after == 120.0
    assert "Rate limit" in str(info.value)
    assert len(protocol_server.requests_to(CHAT)) == 1
    assert clock.sleeps == []


# --------------------------------------------------------------------------- 5xx and faults


def test_5xx_burst_then_success_backs_off_exponentially(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    backend.default_endpoint.retry.jitter = 0
    protocol_server.on(
        "POST", CHAT, wire.error_reply(500), wire.error_reply(502), wire.error_reply(503), ok()
    )
    assert backend.chat(messages=user(), model="m").text == "ok"
    assert len(protocol_server.requests_to(CHAT)) == 4
    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert backend.get_circuit_metrics()["recent_failures"] == 3


def test_backoff_jitter_stays_within_its_range(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    backend.max_retries = 4
    protocol_server.on("POST", CHAT, default=wire.error_reply(500))
    backend.failure_threshold = 100
    with pytest.raises(errors.ServerError):
        backend.chat(messages=user(), model="m")
    assert len(protocol_server.requests_to(CHAT)) == 5  # the first attempt + max_retries
    assert len(clock.sleeps) == 4
    for n, slept in enumerate(clock.sleeps):
        assert 0.75 * 2**n <= slept <= 2**n  # default jitter shortens by up to 25%


def test_529_is_an_overloaded_error_and_is_retried(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    overloaded = Reply.json(OVERLOADED, status=529)
    backend.max_retries = 2
    protocol_server.on("POST", CHAT, default=overloaded)
    with pytest.raises(errors.OverloadedError) as info:
        backend.chat(messages=user(), model="m")
    assert info.value.status_code == 529
    assert info.value.code == "overloaded_error"
    assert "Overloaded" in str(info.value)
    assert len(protocol_server.requests_to(CHAT)) == 3

    protocol_server.reset()
    protocol_server.on("POST", CHAT, overloaded, ok("after overload"))
    assert backend.chat(messages=user(), model="m").text == "after overload"
    assert len(protocol_server.requests_to(CHAT)) == 2


def test_dropped_connection_then_success(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    protocol_server.on("POST", CHAT, Reply.drop_connection(), ok("second try"))
    assert backend.chat(messages=user(), model="m").text == "second try"
    assert len(protocol_server.requests_to(CHAT)) == 2
    assert len(clock.sleeps) == 1


def test_client_errors_are_not_retried(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    for status in (400, 401, 404, 422):
        protocol_server.reset()
        protocol_server.on("POST", CHAT, wire.error_reply(status), default=ok())
        with pytest.raises(errors.APIStatusError) as info:
            backend.chat(messages=user(), model="m")
        assert info.value.status_code == status
        assert len(protocol_server.requests_to(CHAT)) == 1
    assert clock.sleeps == []


def test_a_retry_after_close_reconnects(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    closing: list[Backend] = []

    class ClosingClock(FakeClock):
        def sleep(self, seconds: float) -> None:  # the backend is closed during the backoff
            super().sleep(seconds)
            closing[0].close()

    backend = make_backend(clock=ClosingClock())
    closing.append(backend)
    protocol_server.on("POST", CHAT, wire.error_reply(500), ok("reconnected"))
    assert backend.chat(messages=user(), model="m").text == "reconnected"
    assert len(protocol_server.requests_to(CHAT)) == 2
    assert backend.get_circuit_metrics()["recent_failures"] == 1


# --------------------------------------------------------------------------- streams


def test_stream_cut_after_the_first_chunk_is_not_retried(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    events = wire.chat_stream(["Hel", "lo", " world"])
    protocol_server.on("POST", CHAT, Reply.sse(events, cut_after=3), default=Reply.sse(events))
    got: list[str] = []
    with pytest.raises(errors.ConnectionError) as info:
        for chunk in backend.stream(messages=user(), model="m"):
            got.append(chunk.text)
    assert got == ["Hel", "lo"]  # the role chunk carries no text
    assert "cut" in str(info.value)
    assert len(protocol_server.requests_to(CHAT)) == 1
    assert clock.sleeps == []
    assert backend.get_queue_info()["active_requests"] == 0
    assert backend.get_circuit_metrics()["recent_failures"] == 1


def test_stream_cut_before_the_first_text_chunk_is_retried(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    events = wire.chat_stream(["Hel", "lo"])
    protocol_server.on("POST", CHAT, Reply.sse(events, cut_after=1), Reply.sse(events))
    chunks = list(backend.stream(messages=user(), model="m"))
    assert "".join(c.text for c in chunks) == "Hello"
    assert chunks[-1].done and chunks[-1].finish_reason == "stop"
    assert len(protocol_server.requests_to(CHAT)) == 2
    assert len(clock.sleeps) == 1


def test_stream_error_status_is_counted_once(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    backend = make_backend(max_retries=0, failure_threshold=2)
    protocol_server.on("POST", CHAT, default=wire.error_reply(500))
    with pytest.raises(errors.ServerError):
        list(backend.stream(messages=user(), model="m"))
    assert len(protocol_server.requests_to(CHAT)) == 1
    metrics = backend.get_circuit_metrics()
    assert metrics["recent_failures"] == 1 and metrics["state"] == "CLOSED"
    assert backend.get_usage_stats()["failed_requests"] == 1
    assert backend.get_key_usage_stats()["default"]["errors"] == 1


# --------------------------------------------------------------------------- retry budget


def test_exhausted_retry_budget_surfaces_the_error(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    backend.default_endpoint.budget = RetryBudget(capacity=10)  # two retries at 5 tokens each
    backend.default_endpoint.retry.jitter = 0
    backend.failure_threshold = 100
    protocol_server.on("POST", CHAT, default=wire.error_reply(500))
    with pytest.raises(errors.ServerError) as info:
        backend.chat(messages=user(), model="m")
    assert "retry budget is exhausted" in str(info.value)
    assert len(protocol_server.requests_to(CHAT)) == 3
    assert clock.sleeps == [1.0, 2.0]

    with pytest.raises(errors.ServerError) as info:
        backend.chat(messages=user(), model="m")
    assert str(info.value).count("retry budget is exhausted") == 1
    assert len(protocol_server.requests_to(CHAT)) == 4  # no retry at all
    assert clock.sleeps == [1.0, 2.0]


# --------------------------------------------------------------------------- request ids


def test_caller_request_id_is_sent_and_appears_on_the_error(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, wire.error_reply(400))
    with pytest.raises(errors.InvalidRequestError) as info:
        backend.chat(messages=user(), model="m", request_id="req_caller_42")
    (request,) = protocol_server.requests_to(CHAT)
    assert request.headers["X-Client-Request-Id"] == "req_caller_42"
    assert info.value.request_id == "req_caller_42"
    assert "req_caller_42" in str(info.value)
    assert info.value.provider_request_id == "req_server_400"


def test_generated_request_id_is_the_same_on_every_attempt(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, wire.error_reply(500), wire.error_reply(503), ok(), ok())
    backend.chat(messages=user(), model="m")
    backend.chat(messages=user(), model="m")
    ids = [r.headers["X-Client-Request-Id"] for r in protocol_server.requests_to(CHAT)]
    assert len(ids) == 4
    assert re.fullmatch(r"req_[0-9a-f]{24}", ids[0])
    assert ids[0] == ids[1] == ids[2]  # one call, three attempts
    assert ids[3] != ids[0] and re.fullmatch(r"req_[0-9a-f]{24}", ids[3])


# --------------------------------------------------------------------------- idempotency keys


class IdempotentLoopback:
    """The loopback backend under another name, declaring an idempotency header."""

    SPEC = BackendSpec(
        name="loopback_idem",
        package="ipfs-accelerate-loopback-idem-test",
        default_base_url=None,
        idempotency_header="Idempotency-Key",
    )

    @hookimpl
    def register_backends(self, register: Callable[[BackendSpec], None]) -> None:
        register(self.SPEC)

    @hookimpl
    def chat(self, backend: str, request: ChatRequest, settings: Settings) -> HttpCall | None:
        return openai_compat.chat_call(request, backend) if backend == "loopback_idem" else None


@pytest.fixture
def idempotent_backend(protocol_server: ProtocolServer, clock: FakeClock) -> Iterator[Backend]:
    plugin = IdempotentLoopback()
    plugins.register(plugin)
    backend = get_backend(
        "loopback_idem",
        api_key="sk-idem-0000000000000000",
        base_url=protocol_server.url("/v1"),
        clock=clock,
    )
    yield backend
    backend.close()
    plugins.unregister(plugin)


def test_one_idempotency_key_per_call_the_same_on_every_retry(
    idempotent_backend: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on(
        "POST", CHAT, Reply.drop_connection(), wire.error_reply(500), ok(), default=ok()
    )
    idempotent_backend.chat(messages=user(), model="m")
    idempotent_backend.chat(messages=user(), model="m", request_id="same-id")
    idempotent_backend.chat(messages=user(), model="m", request_id="same-id")
    keys = [r.headers.get("Idempotency-Key") for r in protocol_server.requests_to(CHAT)]
    assert len(keys) == 5 and all(keys)
    assert keys[0] == keys[1] == keys[2]  # one call: a dropped connection, a 500, a success
    assert len({keys[2], keys[3], keys[4]}) == 3  # each call its own, even with one request_id


def test_no_idempotency_header_unless_the_backend_declares_one(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, Reply.drop_connection(), ok())
    backend.chat(messages=user(), model="m")
    assert all("Idempotency-Key" not in r.headers for r in protocol_server.requests_to(CHAT))


# ---------------------------------------------------------- Retry-After above the limit, async too


@pytest.mark.parametrize("caller", ["chat", "achat"])
def test_long_retry_after_with_one_key_surfaces_at_once(
    backend: Backend,
    protocol_server: ProtocolServer,
    clock: FakeClock,
    call: Callable[..., Any],
    caller: str,
) -> None:
    limited = wire.error_reply(429, {"retry-after": "120"})
    protocol_server.on("POST", CHAT, limited, default=ok())
    with pytest.raises(errors.RateLimitError) as info:
        call(caller, backend)
    assert info.value.retry_after == 120.0
    assert info.value.status_code == 429
    assert len(protocol_server.requests_to(CHAT)) == 1
    assert clock.sleeps == []


# ---------------------------------------------------------- retry budget: refunds and timeout cost


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


# --------------------------------------------------------- request ids on queue and breaker errors


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
