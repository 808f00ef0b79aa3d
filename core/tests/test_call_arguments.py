"""Call arguments: ``extra_body`` / ``extra_query`` are merged into the request, and an
argument a call cannot use (unencodable, nested too deeply, ``stream=True`` on ``chat``, bad
headers, request ids, timeouts or tool calls) is an InvalidArgumentError raised before anything
is sent — no slot, key lease or half-open probe is kept, nothing is retried, and the breaker
does not count it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer

user = wire.user
ok = wire.chat_reply

CHAT = "/v1/chat/completions"


def open_the_breaker(backend: Backend, server: ProtocolServer, clock: FakeClock) -> None:
    """Fail three calls (failure_threshold=3, max_retries=0), then let the reset timeout
    pass: the breaker is HALF_OPEN with one probe available."""
    server.on("POST", CHAT, default=wire.error_reply(500))
    for _ in range(3):
        with pytest.raises(errors.ServerError):
            backend.chat(messages=user(), model="m")
    assert backend.circuit_state == "OPEN"
    clock.advance(backend.reset_timeout + 1)
    assert backend.circuit_state == "HALF_OPEN"


@pytest.mark.parametrize("caller", ["chat", "stream", "achat", "astream"])
@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda: {"extra_body": {"t": datetime.now()}}, id="extra_body-datetime"),
        pytest.param(lambda: {"metadata": {"t": object()}}, id="param-object"),
    ],
)
def test_unencodable_request_is_invalid_argument_and_leaks_no_probe_or_key(
    make_backend: Callable[..., Backend],
    protocol_server: ProtocolServer,
    clock: FakeClock,
    call: Callable[..., Any],
    caller: str,
    bad: Callable[[], dict[str, Any]],
) -> None:
    backend = make_backend(failure_threshold=3, max_retries=0)
    open_the_breaker(backend, protocol_server, clock)
    sent = len(protocol_server.requests)

    with pytest.raises(errors.InvalidArgumentError) as info:
        call(caller, backend, **bad())
    assert not isinstance(info.value, TypeError)
    assert "could not be encoded" in str(info.value)
    assert len(protocol_server.requests) == sent  # nothing was sent
    assert backend.get_key_usage_stats()["default"]["in_flight"] == 0
    assert backend.get_queue_info()["active_requests"] == 0
    assert backend.circuit_state == "HALF_OPEN"

    # the half-open probe was not leaked: a good call still goes through
    protocol_server.on("POST", CHAT, default=ok("probe ok"))
    assert call("chat", backend).text == "probe ok"
    assert len(protocol_server.requests) == sent + 1
    assert backend.get_key_usage_stats()["default"]["in_flight"] == 0


def test_extra_body_and_extra_query_are_merged_into_the_request(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, default=ok())
    backend.chat(
        messages=user(),
        model="m",
        temperature=0.5,
        extra_body={"reasoning_effort": "low"},
        extra_query={"api-version": "1"},
    )
    (request,) = protocol_server.requests_to(CHAT)
    body = request.json()
    assert body["reasoning_effort"] == "low"
    assert body["temperature"] == 0.5 and body["model"] == "m"
    assert "extra_body" not in body and "extra_query" not in body
    assert request.query == {"api-version": "1"}


@pytest.mark.parametrize("caller", ["chat", "achat"])
def test_chat_with_stream_true_points_to_stream_and_sends_nothing(
    backend: Backend, protocol_server: ProtocolServer, call: Callable[..., Any], caller: str
) -> None:
    protocol_server.on("POST", CHAT, default=ok())
    with pytest.raises(errors.InvalidArgumentError) as info:
        call(caller, backend, stream=True)
    assert "stream()" in str(info.value)
    assert protocol_server.requests == []


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"extra_headers": {"X-Trace": "a\nb"}}, id="header-with-newline"),
        pytest.param({"request_id": "req\nx"}, id="request-id-with-newline"),
        pytest.param({"request_id": "abc\r\nX-Evil: 1"}, id="request-id-with-crlf"),
        pytest.param({"request_id": "r\x00"}, id="request-id-with-nul"),
        pytest.param({"request_id": "r" * 201}, id="request-id-too-long"),
        pytest.param({"request_id": ["r"]}, id="request-id-list"),
        pytest.param({"timeout": float("nan")}, id="timeout-nan"),
        pytest.param({"timeout": -1}, id="timeout-negative"),
        pytest.param({"timeout": "5"}, id="timeout-string"),
        pytest.param({"extra_body": ["x"]}, id="extra_body-list"),
        pytest.param({"extra_query": "a=b"}, id="extra_query-string"),
        pytest.param({"extra_headers": ["x"]}, id="extra_headers-list"),
    ],
)
def test_bad_call_options_are_invalid_arguments_and_never_breaker_failures(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock, options: dict[str, Any]
) -> None:
    protocol_server.on("POST", CHAT, default=ok())
    with pytest.raises(errors.InvalidArgumentError) as info:
        backend.chat(messages=user(), model="m", **options)
    assert "\r" not in str(info.value) and "\n" not in str(info.value)  # shown escaped
    assert "\x00" not in str(info.value)
    assert protocol_server.requests == []
    assert clock.sleeps == []  # a caller's bad argument is not retried...
    metrics = backend.get_circuit_metrics()  # ...nor counted against the endpoint
    assert metrics["state"] == "CLOSED" and metrics["recent_failures"] == 0
    assert backend.get_key_usage_stats()["default"]["in_flight"] == 0
    assert backend.chat(messages=user(), model="m").text == "ok"


def deeply_nested(depth: int = 200_000) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("message", "match"),
    [
        pytest.param({"tool_calls": ["x"]}, "each tool call must be a dict", id="call-str"),
        pytest.param({"tool_calls": 5}, "must be a list of tool calls", id="calls-int"),
        pytest.param({"tool_calls": "x"}, "must be a list of tool calls", id="calls-str"),
        pytest.param({"tool_calls": [{"function": 5}]}, "'function' must be a dict", id="fn-int"),
        pytest.param(
            {"tool_calls": [{"id": "c", "function": {"name": "f", "arguments": deeply_nested()}}]},
            "nested too deeply",
            id="arguments-deep",
        ),
    ],
)
def test_bad_tool_calls_in_a_message_are_invalid_arguments(
    backend: Backend, protocol_server: ProtocolServer, message: dict[str, Any], match: str
) -> None:
    protocol_server.on("POST", CHAT, default=ok())
    bad = {"role": "assistant", "content": None, **message}
    with pytest.raises(errors.InvalidArgumentError, match=match):
        backend.chat(messages=[*user(), bad], model="m")
    assert protocol_server.requests == []


def test_a_parameter_nested_too_deeply_is_an_invalid_argument(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, default=ok())
    with pytest.raises(errors.InvalidArgumentError, match="could not be encoded"):
        backend.chat(messages=user(), model="m", metadata=deeply_nested())
    assert protocol_server.requests == []
    assert backend.get_key_usage_stats()["default"]["in_flight"] == 0


def test_timeouts_the_platform_cannot_wait_are_refused(backend: Backend) -> None:
    with pytest.raises(errors.InvalidArgumentError, match="at most"):
        backend.chat(messages=user(), model="m", timeout=1e10)
    assert backend.circuit_state == "CLOSED"
