"""The Groq plugin's failure paths: Groq's error bodies, retries, malformed and cut replies."""

from __future__ import annotations

import asyncio
import json

import pytest

from ipfs_accelerate_groq import wire
from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

MESSAGES = [{"role": "user", "content": "Hello"}]
MODEL = "llama3-8b-8192"


@pytest.mark.parametrize(
    ("status", "cls", "label"),
    [
        (400, errors.InvalidRequestError, "Invalid request"),
        (401, errors.AuthenticationError, "Authentication error"),
        (403, errors.PermissionDeniedError, "Authentication error"),
        (404, errors.NotFoundError, "Not found"),
        (413, errors.InvalidRequestError, "Invalid request"),
        (422, errors.InvalidRequestError, "Invalid request"),
    ],
)
def test_client_errors_carry_groqs_message_and_are_not_retried(
    groq: Backend,
    protocol_server: ProtocolServer,
    status: int,
    cls: type,
    label: str,
    secret: str,
) -> None:
    protocol_server.on("POST", wire.CHAT, default=wire.error_reply(status))
    with pytest.raises(cls) as info:
        groq.chat(messages=MESSAGES, model=MODEL, request_id="req_mine")
    err = info.value
    assert isinstance(err, ValueError)  # the guide catches ValueError
    assert len(protocol_server.requests) == 1
    assert (err.status_code, err.provider) == (status, "groq")
    assert err.request_id == "req_mine"
    assert err.provider_request_id == f"req_server_{status}"
    text = str(err)
    assert label in text and "groq" in text and str(status) in text
    assert wire.ERRORS[status][0] in text
    assert f"req_server_{status}" in text
    assert secret not in text and secret not in repr(err)
    assert groq.get_circuit_state() == "CLOSED"


def test_error_code_or_type_is_carried(groq: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", wire.CHAT, wire.error_reply(404), wire.error_reply(400))
    with pytest.raises(errors.NotFoundError) as info:
        groq.chat(messages=MESSAGES, model="llama-9")
    assert info.value.code == "model_not_found"
    with pytest.raises(errors.InvalidRequestError) as bad:
        groq.chat(messages=MESSAGES, model=MODEL)
    assert bad.value.code == "invalid_request_error"  # Groq's 400s have a type, no code
    assert bad.value.body == wire.error(wire.ERRORS[400][0])


def test_key_echoed_by_groq_is_masked(
    groq: Backend, protocol_server: ProtocolServer, secret: str
) -> None:
    body = wire.error(f"Invalid API Key: {secret}", code="invalid_api_key")
    protocol_server.on("POST", wire.CHAT, Reply.json(body, status=401))
    with pytest.raises(errors.AuthenticationError) as info:
        groq.chat(messages=MESSAGES, model=MODEL)
    assert secret not in str(info.value)
    assert secret not in repr(groq) and secret not in repr(groq.settings)
    assert secret not in json.dumps(groq.get_key_usage_stats())
    assert secret not in json.dumps(groq.get_usage_stats())


def test_429_honours_retry_after_and_records_rate_limits(
    groq: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    protocol_server.on("POST", wire.CHAT, wire.rate_limited("2"), wire.reply("ok"))
    assert groq.chat(messages=MESSAGES, model=MODEL).text == "ok"
    assert len(protocol_server.requests) == 2
    assert clock.sleeps == [2.0]
    [key] = groq.get_key_usage_stats().values()
    assert "gsk_test0123456789SECRET" not in json.dumps(key)


def test_429_exhausted_raises_rate_limit_error(
    groq: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    groq.max_retries = 2
    protocol_server.on("POST", wire.CHAT, default=wire.rate_limited("1"))
    with pytest.raises(errors.RateLimitError) as info:
        groq.chat(messages=MESSAGES, model=MODEL)
    assert len(protocol_server.requests) == 3
    # the key waits out x-ratelimit-reset-tokens (1.2s), longer than retry-after (1s)
    assert clock.sleeps == pytest.approx([1.2, 1.2])
    assert "Rate limit" in str(info.value) and "tokens per minute" in str(info.value)
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.retry_after == 1.0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried(
    groq: Backend, protocol_server: ProtocolServer, clock: FakeClock, status: int
) -> None:
    protocol_server.on(
        "POST", wire.CHAT, wire.error_reply(status), wire.error_reply(status), wire.reply("ok")
    )
    assert groq.chat(messages=MESSAGES, model=MODEL).text == "ok"
    assert len(protocol_server.requests) == 3
    assert len(clock.sleeps) == 2


def test_cloudflare_html_502_is_a_retried_server_error(
    groq: Backend, protocol_server: ProtocolServer
) -> None:
    page = "<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>"
    protocol_server.on(
        "POST", wire.CHAT, Reply.text(page, status=502, content_type="text/html"), wire.reply()
    )
    assert groq.chat(messages=MESSAGES, model=MODEL).text
    groq.max_retries = 0
    protocol_server.on("POST", wire.CHAT, Reply.text(page, status=502, content_type="text/html"))
    with pytest.raises(errors.ServerError, match="502 Bad Gateway"):
        groq.chat(messages=MESSAGES, model=MODEL)


def test_flex_tier_498_is_overloaded_and_retried(
    groq: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    # Groq's own status: the flex tier is at capacity, try again later
    protocol_server.on(
        "POST", wire.CHAT, wire.error_reply(498), wire.error_reply(498), wire.reply("ok")
    )
    assert groq.chat(messages=MESSAGES, model=MODEL, service_tier="flex").text == "ok"
    assert len(protocol_server.requests) == 3 and len(clock.sleeps) == 2
    assert protocol_server.requests[0].json()["service_tier"] == "flex"
    groq.max_retries = 1
    protocol_server.on("POST", wire.CHAT, default=wire.error_reply(498))
    with pytest.raises(errors.OverloadedError) as info:
        asyncio.run(groq.achat(messages=MESSAGES, model=MODEL, service_tier="flex"))
    err = info.value
    assert (err.status_code, err.code, err.provider) == (498, "capacity_exceeded", "groq")
    assert err.provider_request_id == "req_server_498"
    assert "Flex tier capacity exceeded" in str(err)
    assert groq.get_circuit_state() == "CLOSED"


@pytest.mark.parametrize(
    "reply",
    [
        Reply.raw(b"not json at all"),
        Reply.raw(b'{"id": "chatcmpl-1", "choices": [{"index": 0, "mess'),
        Reply.text("<html><body>Welcome to nginx</body></html>", content_type="text/html"),
        Reply.json({"id": "x", "object": "chat.completion"}),
        Reply.json({"choices": [{"index": 0}]}),
        Reply.json({"choices": "nope"}),
        Reply.json([1, 2, 3]),
    ],
    ids=["not-json", "truncated", "html", "no-choices", "no-message", "bad-choices", "list"],
)
def test_malformed_replies_raise_malformed_response(
    groq: Backend, protocol_server: ProtocolServer, reply: Reply
) -> None:
    protocol_server.on("POST", wire.CHAT, default=reply)
    with pytest.raises(errors.MalformedResponseError) as info:
        groq.chat(messages=MESSAGES, model=MODEL)
    assert "groq" in str(info.value)
    assert len(protocol_server.requests) == 1


def test_async_errors_match_sync(groq: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", wire.CHAT, default=wire.error_reply(401))
    with pytest.raises(errors.AuthenticationError, match="Invalid API Key"):
        asyncio.run(groq.achat(messages=MESSAGES, model=MODEL))


def test_async_retry_after(
    groq: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    protocol_server.on("POST", wire.CHAT, wire.rate_limited("3"), wire.reply("ok"))
    assert asyncio.run(groq.achat(messages=MESSAGES, model=MODEL)).text == "ok"
    assert clock.sleeps == [3.0]


def test_dropped_connection_is_retried(groq: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", wire.CHAT, Reply.drop_connection(), wire.reply("ok"))
    assert groq.chat(messages=MESSAGES, model=MODEL).text == "ok"
    assert len(protocol_server.requests) == 2


def test_missing_key_fails_before_sending(
    protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    backend = get_backend("groq", base_url=protocol_server.base_url)
    with pytest.raises(errors.ConfigurationError, match="GROQ_API_KEY"):
        backend.chat(messages=MESSAGES, model=MODEL)
    assert protocol_server.requests == []


# --- streams ------------------------------------------------------------------------------


def test_stream_error_status_is_retried_before_first_chunk(
    groq: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    protocol_server.on(
        "POST", wire.CHAT, wire.rate_limited("2"), Reply.sse(wire.stream_events(["x"]))
    )
    assert [c.text for c in groq.stream(messages=MESSAGES, model=MODEL)] == ["x", ""]
    assert clock.sleeps == [2.0]


def test_stream_cut_after_first_chunk_is_not_retried(
    groq: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on(
        "POST", wire.CHAT, default=Reply.sse(wire.stream_events(["a", "b", "c"]), cut_after=2)
    )
    got = []
    with pytest.raises(errors.ConnectionError, match="stream"):
        for chunk in groq.stream(messages=MESSAGES, model=MODEL):
            got.append(chunk.text)
    assert got == ["a"]
    assert len(protocol_server.requests) == 1


def test_stream_without_done_marker_is_an_error(
    groq: Backend, protocol_server: ProtocolServer
) -> None:
    groq.max_retries = 0
    protocol_server.on("POST", wire.CHAT, Reply.sse(wire.stream_events(["a"], done=False)))
    with pytest.raises(errors.ConnectionError, match="end marker"):
        list(groq.stream(messages=MESSAGES, model=MODEL))


def test_stream_stopped_by_x_groq_error(groq: Backend, protocol_server: ProtocolServer) -> None:
    events = wire.stream_events(["a"], done=False)[:2]
    stop = {**events[1], "choices": [], "x_groq": {"id": wire.REQUEST_ID, "error": "over capacity"}}
    protocol_server.on("POST", wire.CHAT, Reply.sse([*events, stop, "[DONE]"]))
    with pytest.raises(errors.ServerError, match="over capacity"):
        list(groq.stream(messages=MESSAGES, model=MODEL))


def test_stream_invalid_request_event_is_not_retried(
    groq: Backend, protocol_server: ProtocolServer
) -> None:
    failed = wire.error(
        "Failed to call a function. Please adjust your prompt.",
        "invalid_request_error",
        "tool_use_failed",
    )
    protocol_server.on("POST", wire.CHAT, default=Reply.sse([("error", failed)]))
    with pytest.raises(errors.InvalidRequestError, match="Failed to call a function") as info:
        list(groq.stream(messages=MESSAGES, model=MODEL))
    assert info.value.code == "tool_use_failed"
    assert len(protocol_server.requests) == 1


def test_stream_error_event(groq: Backend, protocol_server: ProtocolServer) -> None:
    events = wire.stream_events(["a"], done=False)[:2]
    err = wire.error("Rate limit reached for model", "tokens", "rate_limit_exceeded")
    protocol_server.on("POST", wire.CHAT, Reply.sse([*events, ("error", err)]))
    with pytest.raises(errors.RateLimitError, match="Rate limit reached"):
        list(groq.stream(messages=MESSAGES, model=MODEL))


@pytest.mark.parametrize(
    "event", ["{not json", '["a list"]', '{"choices": [{"delta": "text"}]}', '{"x_groq": 5}']
)
def test_stream_malformed_event(groq: Backend, protocol_server: ProtocolServer, event: str) -> None:
    groq.max_retries = 0
    protocol_server.on("POST", wire.CHAT, Reply.sse([event, "[DONE]"]))
    with pytest.raises(errors.MalformedResponseError):
        list(groq.stream(messages=MESSAGES, model=MODEL))


def test_stream_html_200_is_malformed(groq: Backend, protocol_server: ProtocolServer) -> None:
    page = "<html><body>Just a moment...</body></html>"
    protocol_server.on("POST", wire.CHAT, default=Reply.text(page, content_type="text/html"))
    with pytest.raises(errors.MalformedResponseError):
        list(groq.stream(messages=MESSAGES, model=MODEL))
    assert len(protocol_server.requests) == 1


def test_async_stream_cut(groq: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on(
        "POST", wire.CHAT, Reply.sse(wire.stream_events(["a", "b", "c"]), cut_after=3)
    )

    async def consume() -> list[str]:
        return [chunk.text async for chunk in groq.astream(messages=MESSAGES, model=MODEL)]

    with pytest.raises(errors.ConnectionError):
        asyncio.run(consume())


def test_async_stream_x_groq_error(groq: Backend, protocol_server: ProtocolServer) -> None:
    events = wire.stream_events(["a"], done=False)[:2]
    stop = {**events[1], "x_groq": {"error": "stopped"}}
    protocol_server.on("POST", wire.CHAT, Reply.sse([*events, stop]))

    async def consume() -> list[str]:
        return [chunk.text async for chunk in groq.astream(messages=MESSAGES, model=MODEL)]

    with pytest.raises(errors.ServerError, match="stopped"):
        asyncio.run(consume())


def test_429_moves_to_another_key_at_once(
    groq: Backend, protocol_server: ProtocolServer, clock: FakeClock, secret: str
) -> None:
    groq.add_api_key("second", "gsk_second_key_000000000000")
    protocol_server.on("POST", wire.CHAT, wire.rate_limited("30"), wire.reply("ok"))
    assert groq.chat(messages=MESSAGES, model=MODEL).text == "ok"
    first, second = (r.headers["authorization"] for r in protocol_server.requests)
    assert first != second and {first, second} == {
        f"Bearer {secret}",
        "Bearer gsk_second_key_000000000000",
    }
    assert clock.sleeps == []  # the limited key cools down; the other one is free now
    stats = json.dumps(groq.get_key_usage_stats())
    assert secret not in stats and "gsk_second_key_000000000000" not in stats
