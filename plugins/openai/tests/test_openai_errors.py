"""The OpenAI plugin's failure paths: error statuses, retries, malformed and cut replies."""

from __future__ import annotations

import asyncio
import json

import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Hello"}]


@pytest.mark.parametrize(
    ("status", "cls", "label"),
    [
        (400, errors.InvalidRequestError, "Invalid request"),
        (401, errors.AuthenticationError, "Authentication error"),
        (403, errors.PermissionDeniedError, "Authentication error"),
        (404, errors.NotFoundError, "Not found"),
        (422, errors.InvalidRequestError, "Invalid request"),
    ],
)
def test_client_errors_are_not_retried(
    openai: Backend,
    protocol_server: ProtocolServer,
    status: int,
    cls: type,
    label: str,
    secret: str,
) -> None:
    protocol_server.on("POST", CHAT, default=wire.error_reply(status))
    with pytest.raises(cls) as info:
        openai.chat(messages=MESSAGES, model="gpt-4o", request_id="req_mine")
    err = info.value
    assert isinstance(err, ValueError)  # the quickstart guide catches ValueError
    assert len(protocol_server.requests) == 1
    assert err.status_code == status
    assert err.provider == "openai"
    assert err.request_id == "req_mine"
    assert err.provider_request_id == f"req_server_{status}"
    text = str(err)
    assert label in text and "openai" in text and str(status) in text
    assert "req_mine" in text and f"req_server_{status}" in text
    assert wire._ERRORS[status][0] in text
    assert secret not in text and secret not in repr(err)
    assert openai.get_circuit_state() == "CLOSED"
    assert openai.get_circuit_metrics()["recent_failures"] == 0


def test_error_code_is_carried(openai: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHAT, wire.error_reply(404))
    with pytest.raises(errors.NotFoundError) as info:
        openai.chat(messages=MESSAGES, model="gpt-9")
    assert info.value.code == "model_not_found"


def test_key_echoed_by_provider_is_masked(
    openai: Backend, protocol_server: ProtocolServer, secret: str
) -> None:
    body = wire.error(f"Incorrect API key provided: {secret}.", code="invalid_api_key")
    protocol_server.on("POST", CHAT, Reply.json(body, status=401))
    with pytest.raises(errors.AuthenticationError) as info:
        openai.chat(messages=MESSAGES, model="gpt-4o")
    assert secret not in str(info.value)
    assert secret[-4:] in str(info.value)
    assert secret not in repr(openai) and secret not in repr(openai.settings)
    assert secret not in json.dumps(openai.get_key_usage_stats())


@pytest.mark.parametrize("status", [429, 500, 502, 503, 529, 408, 409])
def test_transient_statuses_are_retried(
    openai: Backend, protocol_server: ProtocolServer, clock: FakeClock, status: int
) -> None:
    protocol_server.on(
        "POST",
        CHAT,
        wire.error_reply(status),
        wire.error_reply(status),
        Reply.json(wire.chat_completion("ok")),
    )
    assert openai.chat(messages=MESSAGES, model="gpt-4o").text == "ok"
    assert len(protocol_server.requests) == 3
    assert len(clock.sleeps) == 2


def test_retry_after_is_honoured(
    openai: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    protocol_server.on(
        "POST",
        CHAT,
        wire.error_reply(429, headers={"retry-after": "2"}),
        Reply.json(wire.chat_completion("ok")),
    )
    assert openai.chat(messages=MESSAGES, model="gpt-4o").text == "ok"
    assert clock.sleeps == [2.0]


def test_retries_exhausted_raise_the_last_error(
    openai: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    openai.max_retries = 2
    protocol_server.on("POST", CHAT, default=wire.error_reply(500))
    with pytest.raises(errors.ServerError) as info:
        openai.chat(messages=MESSAGES, model="gpt-4o")
    assert len(protocol_server.requests) == 3
    assert "Server error" in str(info.value)


def test_x_should_retry_false_stops_retries(
    openai: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on(
        "POST", CHAT, default=wire.error_reply(503, headers={"x-should-retry": "false"})
    )
    with pytest.raises(errors.ServerError):
        openai.chat(messages=MESSAGES, model="gpt-4o")
    assert len(protocol_server.requests) == 1


@pytest.mark.parametrize(
    "reply",
    [
        Reply.raw(b"not json at all"),
        Reply.raw(b'{"id": "chatcmpl-1", "choices": [{"index": 0, "mess'),
        Reply.json({"id": "x", "object": "chat.completion"}),
        Reply.json({"choices": [{"index": 0}]}),
        Reply.json([1, 2, 3]),
    ],
    ids=["not-json", "truncated", "no-choices", "no-message", "not-object"],
)
def test_malformed_replies_raise_clearly(
    openai: Backend, protocol_server: ProtocolServer, reply: Reply
) -> None:
    protocol_server.on("POST", CHAT, default=reply)
    with pytest.raises(errors.MalformedResponseError) as info:
        openai.chat(messages=MESSAGES, model="gpt-4o")
    assert "openai" in str(info.value)
    assert len(protocol_server.requests) == 1


def test_malformed_embeddings(openai: Backend, protocol_server: ProtocolServer) -> None:
    body = wire.embeddings([[1.0]])
    protocol_server.on(
        "POST",
        "/v1/embeddings",
        Reply.json(body),
        Reply.json({"data": [{"index": 0, "embedding": "!!notbase64"}]}),
        Reply.json({"data": [{"index": 0, "embedding": "AAAA"}]}),  # 3 bytes
    )
    with pytest.raises(errors.MalformedResponseError, match="asked for 2 embeddings, got 1"):
        openai.embed(input=["a", "b"], model="m")
    with pytest.raises(errors.MalformedResponseError, match="base64"):
        openai.embed(input="a", model="m", encoding_format="base64")
    with pytest.raises(errors.MalformedResponseError, match="float32"):
        openai.embed(input="a", model="m", encoding_format="base64")


def test_dropped_connection_is_retried(openai: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on(
        "POST", CHAT, Reply.drop_connection(), Reply.json(wire.chat_completion("ok"))
    )
    assert openai.chat(messages=MESSAGES, model="gpt-4o").text == "ok"
    assert len(protocol_server.requests) == 2


def test_connection_refused_is_a_connection_error(clock: FakeClock, secret: str) -> None:
    with ProtocolServer() as server:
        url = server.url("/v1")
    backend = get_backend("openai", api_key=secret, base_url=url, clock=clock, max_retries=1)
    with pytest.raises(errors.ConnectionError) as info:
        backend.chat(messages=MESSAGES, model="gpt-4o")
    assert isinstance(info.value, ConnectionError)
    assert len(clock.sleeps) == 1


def test_read_timeout_is_a_timeout_error(openai: Backend, protocol_server: ProtocolServer) -> None:
    openai.max_retries = 0
    protocol_server.on("POST", CHAT, Reply.json(wire.chat_completion(), delay=1.0))
    with pytest.raises(errors.TimeoutError, match="waiting for the reply"):
        openai.chat(messages=MESSAGES, model="gpt-4o", timeout=0.2)


def test_stream_cut_after_first_chunk_is_not_retried(
    openai: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on(
        "POST", CHAT, default=Reply.sse(wire.chat_stream(["a", "b", "c"]), cut_after=2)
    )
    got = []
    with pytest.raises(errors.ConnectionError, match="stream"):
        for chunk in openai.stream(messages=MESSAGES, model="gpt-4o"):
            got.append(chunk.text)
    assert got == ["a"]
    assert len(protocol_server.requests) == 1


def test_stream_cut_before_first_chunk_is_retried(
    openai: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on(
        "POST",
        CHAT,
        Reply.sse(wire.chat_stream(["a", "b"]), cut_after=1),  # only the empty role chunk arrived
        Reply.sse(wire.chat_stream(["a", "b"])),
    )
    assert "".join(c.text for c in openai.stream(messages=MESSAGES, model="gpt-4o")) == "ab"
    assert len(protocol_server.requests) == 2


def test_stream_without_done_marker_is_an_error(
    openai: Backend, protocol_server: ProtocolServer
) -> None:
    openai.max_retries = 0
    protocol_server.on("POST", CHAT, Reply.sse(wire.chat_stream(["a"], done=False)))
    with pytest.raises(errors.ConnectionError, match="end marker"):
        list(openai.stream(messages=MESSAGES, model="gpt-4o"))


def test_stream_error_event(openai: Backend, protocol_server: ProtocolServer) -> None:
    events = [
        *wire.chat_stream(["a"], done=False)[:2],
        wire.error("Rate limit hit", "rate_limit_error"),
    ]
    protocol_server.on("POST", CHAT, Reply.sse(events))
    with pytest.raises(errors.RateLimitError, match="Rate limit hit"):
        list(openai.stream(messages=MESSAGES, model="gpt-4o"))


def test_stream_malformed_event(openai: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHAT, Reply.sse(["{not json"]))
    with pytest.raises(errors.MalformedResponseError):
        list(openai.stream(messages=MESSAGES, model="gpt-4o"))


def test_stream_error_status_is_retried(openai: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHAT, wire.error_reply(503), Reply.sse(wire.chat_stream(["x"])))
    assert [c.text for c in openai.stream(messages=MESSAGES, model="gpt-4o")] == ["x", ""]


def test_async_stream_cut(openai: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHAT, Reply.sse(wire.chat_stream(["a", "b", "c"]), cut_after=3))

    async def consume() -> list[str]:
        out = []
        async for chunk in openai.astream(messages=MESSAGES, model="gpt-4o"):
            out.append(chunk.text)
        return out

    with pytest.raises(errors.ConnectionError):
        asyncio.run(consume())


def test_async_errors_match_sync(openai: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHAT, default=wire.error_reply(401))
    with pytest.raises(errors.AuthenticationError):
        asyncio.run(openai.achat(messages=MESSAGES, model="gpt-4o"))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"messages": "hello"}, "messages must be a list"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "role"),
        ({"messages": [{"role": "user", "content": 5}]}, "content"),
        ({"messages": []}, "must not be empty"),
        ({"messages": MESSAGES, "temperature": "hot"}, "temperature"),
        ({"messages": MESSAGES, "max_tokens": 1.5}, "max_tokens"),
        ({"messages": MESSAGES, "stop": [1]}, "stop"),
        ({"messages": MESSAGES, "priority": "URGENT"}, "URGENT"),
        ({"messages": MESSAGES, "model": None}, "needs a model"),
        ({"messages": MESSAGES, "max_retries": 0}, "endpoint setting"),
        ({"messages": MESSAGES, "circuit_reset_timeout": 5}, "endpoint setting"),
    ],
)
def test_bad_arguments_fail_before_sending(
    openai: Backend, protocol_server: ProtocolServer, kwargs: dict, match: str
) -> None:
    kwargs.setdefault("model", "gpt-4o")
    with pytest.raises(errors.BackendError, match=match):
        openai.chat(**kwargs)
    assert protocol_server.requests == []


def test_missing_key_fails_before_sending(
    protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    backend = get_backend("openai", base_url=protocol_server.url("/v1"))
    with pytest.raises(errors.ConfigurationError, match="OPENAI_API_KEY"):
        backend.chat(messages=MESSAGES, model="gpt-4o")
    assert protocol_server.requests == []


def test_endpoint_setting_passed_to_embed_is_refused(
    openai: Backend, protocol_server: ProtocolServer
) -> None:
    with pytest.raises(errors.InvalidArgumentError, match="endpoint setting"):
        openai.embed(input="x", model="text-embedding-3-small", max_retries=1)
    assert protocol_server.requests == []
