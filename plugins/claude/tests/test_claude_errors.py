"""The Claude plugin's failure paths: error bodies, retries, stream errors, malformed replies."""

from __future__ import annotations

import asyncio
import json

import pytest

from ipfs_accelerate_claude import testing_wire as wire
from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

MESSAGES = "/v1/messages"
HELLO = [{"role": "user", "content": "Hello"}]
HTML = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


@pytest.mark.parametrize(
    ("status", "cls", "label"),
    [
        (400, errors.InvalidRequestError, "Invalid request"),
        (401, errors.AuthenticationError, "Authentication error"),
        (402, errors.InvalidRequestError, "Invalid request"),
        (403, errors.PermissionDeniedError, "Authentication error"),
        (404, errors.NotFoundError, "Not found"),
        (413, errors.InvalidRequestError, "Invalid request"),
    ],
)
def test_client_errors_are_not_retried(
    claude: Backend,
    protocol_server: ProtocolServer,
    status: int,
    cls: type,
    label: str,
    secret: str,
) -> None:
    protocol_server.on("POST", MESSAGES, default=wire.error_reply(status))
    with pytest.raises(cls) as info:
        claude.chat(messages=HELLO, request_id="req_mine")
    err = info.value
    assert type(err) is cls and isinstance(err, ValueError)
    assert len(protocol_server.requests) == 1
    assert (err.status_code, err.provider, err.code) == (status, "claude", wire.ERRORS[status][0])
    assert (err.request_id, err.provider_request_id) == ("req_mine", f"req_server_{status}")
    text = str(err)
    assert label in text and "claude" in text and str(status) in text
    assert f"req_server_{status}" in text and wire.ERRORS[status][1] in text
    assert secret not in text and secret not in repr(err)
    assert claude.get_circuit_state() == "CLOSED"


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (429, errors.RateLimitError),
        (500, errors.ServerError),
        (504, errors.ServerError),
        (529, errors.OverloadedError),
    ],
)
def test_transient_errors_are_retried_then_raised(
    claude: Backend, protocol_server: ProtocolServer, clock: FakeClock, status: int, cls: type
) -> None:
    protocol_server.on(
        "POST", MESSAGES, wire.error_reply(status), Reply.json(wire.message("after retry"))
    )
    assert claude.chat(messages=HELLO).text == "after retry"
    assert len(protocol_server.requests) == 2 and len(clock.sleeps) == 1
    claude.max_retries = 2
    protocol_server.on("POST", MESSAGES, default=wire.error_reply(status))
    with pytest.raises(cls) as info:
        claude.chat(messages=HELLO)
    assert type(info.value) is cls and info.value.code == wire.ERRORS[status][0]
    assert len(protocol_server.requests) == 2 + 3


def test_retry_after_is_honoured(
    claude: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    protocol_server.on(
        "POST",
        MESSAGES,
        wire.error_reply(429, headers={"retry-after": "7"}),
        wire.error_reply(529, headers={"retry-after": "2"}),
        Reply.json(wire.message("ok")),
    )
    assert claude.chat(messages=HELLO).text == "ok"
    assert clock.sleeps == [7.0, 2.0]


def test_x_should_retry_false_stops_retries(
    claude: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", MESSAGES, default=wire.error_reply(529, {"x-should-retry": "false"}))
    with pytest.raises(errors.OverloadedError):
        claude.chat(messages=HELLO)
    assert len(protocol_server.requests) == 1


def test_anthropic_ratelimit_headers_move_calls_to_another_key(
    claude: Backend, protocol_server: ProtocolServer, secret: str
) -> None:
    claude.add_api_key("second", "sk-ant-second-key-000000000000")
    spent = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2099-01-01T00:00:00Z",
    }
    protocol_server.on(
        "POST",
        MESSAGES,
        Reply.json(wire.message("one"), headers=spent),
        default=Reply.json(wire.message("two")),
    )
    claude.chat(messages=HELLO)
    claude.chat(messages=HELLO)
    claude.chat(messages=HELLO)
    keys = [r.headers["x-api-key"] for r in protocol_server.requests]
    assert keys[1] == keys[2] != keys[0]  # the key with no requests left rests till its reset


def test_a_key_echoed_by_the_provider_is_masked(
    claude: Backend, protocol_server: ProtocolServer, secret: str
) -> None:
    body = wire.error("authentication_error", f"invalid x-api-key: {secret}")
    protocol_server.on("POST", MESSAGES, Reply.json(body, status=401))
    with pytest.raises(errors.AuthenticationError) as info:
        claude.chat(messages=HELLO)
    assert secret not in str(info.value) and secret not in repr(info.value.body)
    assert secret not in repr(claude) and secret not in repr(claude.settings)
    assert secret not in json.dumps(claude.get_key_usage_stats())
    assert secret not in json.dumps(claude.get_usage_stats())


def test_missing_key_is_a_configuration_error(
    protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = get_backend("claude", base_url=protocol_server.url("/"))
    with pytest.raises(errors.ConfigurationError, match="ANTHROPIC_API_KEY"):
        backend.chat(messages=HELLO)
    assert protocol_server.requests == []
    backend.close()


@pytest.mark.parametrize(
    "reply",
    [
        Reply.raw(b"not json at all"),
        Reply.raw(b'{"id": "msg_1", "type": "message", "content": [{"type": "te'),
        Reply.text(HTML, content_type="text/html"),
        Reply.json({"id": "msg_1", "type": "message", "role": "assistant"}),
        Reply.json({"type": "message", "content": [{"type": "text"}]}),
        Reply.json({"type": "message", "content": ["text"]}),
        Reply.json({"type": "message", "content": [{"type": "tool_use", "input": {}}]}),
        Reply.json({"type": "message", "content": [], "usage": {"input_tokens": "9"}}),
        Reply.json([1, 2, 3]),
        Reply.raw(b""),
    ],
    ids=[
        "not-json",
        "truncated",
        "html-page",
        "no-content",
        "text-block-without-text",
        "block-not-object",
        "tool-use-without-id",
        "usage-not-number",
        "not-object",
        "empty",
    ],
)
def test_malformed_replies_raise_clearly(
    claude: Backend, protocol_server: ProtocolServer, reply: Reply
) -> None:
    protocol_server.on("POST", MESSAGES, default=reply)
    with pytest.raises(errors.MalformedResponseError) as info:
        claude.chat(messages=HELLO)
    assert "claude" in str(info.value)
    assert len(protocol_server.requests) == 1
    with pytest.raises(errors.MalformedResponseError):
        asyncio.run(claude.achat(messages=HELLO))


def test_an_html_error_page_from_a_proxy(
    claude: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    claude.max_retries = 1
    protocol_server.on("POST", MESSAGES, default=Reply.text(HTML, 502, content_type="text/html"))
    with pytest.raises(errors.ServerError) as info:
        claude.chat(messages=HELLO)
    assert "502 Bad Gateway" in str(info.value)
    assert len(protocol_server.requests) == 2


def test_an_error_body_sent_with_200_raises_its_error(
    claude: Backend, protocol_server: ProtocolServer
) -> None:
    body = wire.error("invalid_request_error", "max_tokens: too large", request_id="req_b")
    protocol_server.on("POST", MESSAGES, Reply.json(body))
    with pytest.raises(errors.InvalidRequestError, match="max_tokens: too large") as info:
        claude.chat(messages=HELLO)
    assert info.value.provider_request_id == "req_b"


# --- streams --------------------------------------------------------------------------------


def _events_with_error(kind: str, after_text: bool) -> list[tuple[str, object]]:
    events = wire.stream_events(["Hi"] if after_text else [])
    cut = 3 if after_text else 1  # after message_start (+ block start and a text delta)
    events = [e for e in events if e[0] != "ping"]
    return [*events[:cut], ("error", wire.error(kind, f"{kind} mid-stream"))]


@pytest.mark.parametrize(
    ("kind", "cls"),
    [
        ("overloaded_error", errors.OverloadedError),
        ("rate_limit_error", errors.RateLimitError),
        ("api_error", errors.ServerError),
        ("timeout_error", errors.TimeoutError),
        ("invalid_request_error", errors.InvalidRequestError),
        ("brand_new_error", errors.ServerError),
    ],
)
def test_an_error_event_after_text_raises_without_retry(
    claude: Backend, protocol_server: ProtocolServer, kind: str, cls: type
) -> None:
    protocol_server.on("POST", MESSAGES, default=Reply.sse(_events_with_error(kind, True)))
    texts = []
    with pytest.raises(cls) as info:
        for chunk in claude.stream(messages=HELLO):
            texts.append(chunk.text)
    assert type(info.value) is cls
    assert texts == ["Hi"]
    assert info.value.code == kind and f"{kind} mid-stream" in str(info.value)
    assert len(protocol_server.requests) == 1


def test_an_error_event_before_any_chunk_is_retried(
    claude: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    protocol_server.on(
        "POST",
        MESSAGES,
        Reply.sse(_events_with_error("overloaded_error", False)),
        Reply.sse(wire.stream_events(["fine"])),
    )
    chunks = list(claude.stream(messages=HELLO))
    assert "".join(c.text for c in chunks) == "fine"
    assert len(protocol_server.requests) == 2 and len(clock.sleeps) == 1


def test_astream_error_event(claude: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on(
        "POST", MESSAGES, default=Reply.sse(_events_with_error("overloaded_error", True))
    )

    async def read() -> None:
        async for _ in claude.astream(messages=HELLO):
            pass

    with pytest.raises(errors.OverloadedError):
        asyncio.run(read())
    assert len(protocol_server.requests) == 1


def test_stream_error_status_is_retried(
    claude: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    protocol_server.on(
        "POST",
        MESSAGES,
        wire.error_reply(529, headers={"retry-after": "3"}),
        Reply.sse(wire.stream_events(["ok"])),
    )
    assert "".join(c.text for c in claude.stream(messages=HELLO)) == "ok"
    assert clock.sleeps == [3.0]


def test_a_stream_cut_before_message_stop(claude: Backend, protocol_server: ProtocolServer) -> None:
    events = wire.stream_events(["partial"])[:-1]  # no message_stop
    protocol_server.on("POST", MESSAGES, default=Reply.sse(events))
    texts = []
    with pytest.raises(errors.ConnectionError, match="end marker"):
        for chunk in claude.stream(messages=HELLO):
            texts.append(chunk.text)
    assert texts == ["partial"]
    assert len(protocol_server.requests) == 1


@pytest.mark.parametrize(
    "event",
    [
        ("content_block_delta", "{not json"),
        ("message_start", {"type": "message_start"}),
        ("content_block_start", {"type": "content_block_start", "index": 0}),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta"}},
        ),
        ("message_delta", {"type": "message_delta", "delta": "end_turn"}),
        ("message_delta", {"type": "message_delta", "delta": {}, "usage": {"output_tokens": [1]}}),
        ("content_block_delta", [1, 2]),
    ],
    ids=[
        "not-json",
        "start-without-message",
        "block-without-block",
        "text-delta-without-text",
        "delta-not-object",
        "usage-not-number",
        "not-object",
    ],
)
def test_malformed_stream_events(
    claude: Backend, protocol_server: ProtocolServer, event: tuple[str, object]
) -> None:
    events = wire.stream_events(["ok"])
    protocol_server.on("POST", MESSAGES, default=Reply.sse([*events[:1], event, *events[1:]]))
    with pytest.raises(errors.MalformedResponseError) as info:
        list(claude.stream(messages=HELLO))
    assert "claude" in str(info.value)
    assert len(protocol_server.requests) == 1


def test_a_stream_answered_with_html_is_an_error(
    claude: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", MESSAGES, default=Reply.text(HTML, content_type="text/html"))
    with pytest.raises(errors.BackendError):
        list(claude.stream(messages=HELLO))


def test_a_stream_answered_with_html_is_malformed(
    claude: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", MESSAGES, default=Reply.text(HTML, content_type="text/html"))
    with pytest.raises(errors.MalformedResponseError, match="502 Bad Gateway"):
        list(claude.stream(messages=HELLO))
    assert len(protocol_server.requests) == 1


def test_a_stream_cut_before_any_chunk_is_retried(
    claude: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    protocol_server.on(
        "POST",
        MESSAGES,
        Reply.sse(wire.stream_events(["lost"]), cut_after=1),  # only message_start arrives
        Reply.sse(wire.stream_events(["kept"])),
    )
    assert "".join(c.text for c in claude.stream(messages=HELLO)) == "kept"
    assert len(protocol_server.requests) == 2 and len(clock.sleeps) == 1
