"""The official ``openai`` SDK against the same scripted server as the plugin: the same request
bodies, the same answers, the same stream, the same error, so our picture of OpenAI's protocol
is checked by a client nobody here wrote."""

from __future__ import annotations

import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

sdk_module = pytest.importorskip("openai")
CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def sdk(protocol_server: ProtocolServer, secret: str) -> object:
    client = sdk_module.OpenAI(base_url=protocol_server.url("/v1"), api_key=secret, max_retries=0)
    yield client
    client.close()


def test_chat_same_body_same_answer(
    openai: Backend, sdk: object, protocol_server: ProtocolServer
) -> None:
    reply = Reply.json(wire.chat_completion("Hi there"))
    protocol_server.on("POST", CHAT, reply, reply)
    ours = openai.chat(messages=MESSAGES, model="gpt-4o-mini", max_tokens=5, temperature=0)
    theirs = sdk.chat.completions.create(  # type: ignore[attr-defined]
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=5, temperature=0
    )
    a, b = (r.json() for r in protocol_server.requests_to(CHAT))
    assert a == b
    assert ours.text == theirs.choices[0].message.content == "Hi there"
    assert ours.usage is not None
    assert (ours.usage.prompt_tokens, ours.usage.total_tokens) == (
        theirs.usage.prompt_tokens,
        theirs.usage.total_tokens,
    )


def test_stream_same_text_same_usage(
    openai: Backend, sdk: object, protocol_server: ProtocolServer
) -> None:
    events = wire.chat_stream(["Hé", "llo", ", wörld"])
    protocol_server.on("POST", CHAT, Reply.sse(events, split=5), Reply.sse(events, split=5))
    chunks = list(openai.stream(messages=MESSAGES, model="gpt-4o-mini"))
    sdk_chunks = list(
        sdk.chat.completions.create(  # type: ignore[attr-defined]
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in sdk_chunks if c.choices)
    assert "".join(c.text for c in chunks) == text == "Héllo, wörld"
    sdk_usage = next(c.usage for c in sdk_chunks if c.usage is not None)
    final = chunks[-1]
    assert final.done and final.usage is not None
    assert final.usage.completion_tokens == sdk_usage.completion_tokens == 3
    a, b = (r.json() for r in protocol_server.requests_to(CHAT))
    assert a == b


def test_rate_limit_error_read_alike(
    openai: Backend, sdk: object, protocol_server: ProtocolServer
) -> None:
    refused = wire.error_reply(429, {"retry-after": "0"})
    protocol_server.on("POST", CHAT, default=refused)
    with pytest.raises(sdk_module.RateLimitError) as theirs:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[attr-defined]
    openai.max_retries = 0
    with pytest.raises(errors.RateLimitError) as ours:
        openai.chat(messages=MESSAGES, model="gpt-4o-mini")
    assert theirs.value.status_code == ours.value.status_code == 429
    assert ours.value.code == theirs.value.code == "rate_limit_exceeded"
    assert theirs.value.request_id == ours.value.provider_request_id == "req_server_429"
