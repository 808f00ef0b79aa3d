"""Groq's official SDK against the same scripted server: a check of our picture of the
protocol (paths, bodies, SSE framing, x_groq usage, errors) by a client nobody here wrote."""

from __future__ import annotations

import pytest

from ipfs_accelerate_groq import wire
from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

MESSAGES = [{"role": "user", "content": "Hello, how are you?"}]


def test_official_sdk_agrees_with_the_plugin(
    groq: Backend, protocol_server: ProtocolServer, secret: str
) -> None:
    sdk = pytest.importorskip("groq")
    client = sdk.Groq(api_key=secret, base_url=protocol_server.base_url, max_retries=0)
    params = {"temperature": 0.3, "max_tokens": 50, "response_format": {"type": "json_object"}}

    # chat: the same request body, the same reading of the reply
    protocol_server.on("POST", wire.CHAT, wire.reply('{"a": 1}'), wire.reply('{"a": 1}'))
    theirs = client.chat.completions.create(model="llama3-8b-8192", messages=MESSAGES, **params)
    ours = groq.chat(messages=MESSAGES, model="llama3-8b-8192", **params)
    sdk_req, our_req = protocol_server.requests
    assert sdk_req.path == our_req.path == wire.CHAT
    assert sdk_req.json() == our_req.json()
    assert sdk_req.headers["authorization"] == our_req.headers["authorization"]
    assert theirs.choices[0].message.content == ours.text
    assert theirs.usage.total_tokens == ours.usage.total_tokens
    assert theirs.usage.queue_time == ours.usage.extra["queue_time"]
    assert theirs.x_groq.id == ours.raw["x_groq"]["id"]

    # stream: the same text, and x_groq.usage is the stream's usage for both
    protocol_server.reset()
    events = wire.stream_events(["Hi", " there"])
    protocol_server.on("POST", wire.CHAT, Reply.sse(events, split=5), Reply.sse(events, split=3))
    sdk_chunks = list(
        client.chat.completions.create(model="llama3-8b-8192", messages=MESSAGES, stream=True)
    )
    our_chunks = list(groq.stream(messages=MESSAGES, model="llama3-8b-8192"))
    sdk_body, our_body = (r.json() for r in protocol_server.requests)
    assert sdk_body == our_body == {"model": "llama3-8b-8192", "messages": MESSAGES, "stream": True}
    sdk_text = "".join(c.choices[0].delta.content or "" for c in sdk_chunks if c.choices)
    assert sdk_text == "".join(c.text for c in our_chunks) == "Hi there"
    sdk_usage = sdk_chunks[-1].x_groq.usage
    assert our_chunks[-1].usage is not None
    assert sdk_usage.completion_tokens == our_chunks[-1].usage.completion_tokens == 2
    assert sdk_usage.total_time == our_chunks[-1].usage.extra["total_time"]

    # models: the same listing
    protocol_server.on("GET", wire.MODELS, default=Reply.json(wire.LISTING))
    sdk_ids = [m.id for m in client.models.list().data if getattr(m, "active", True)]
    assert sdk_ids == [m.id for m in groq.list_models()]

    # errors: a 429 is a rate limit for both, with Groq's message and retry-after
    groq.max_retries = 0
    protocol_server.on("POST", wire.CHAT, default=wire.rate_limited("2"))
    with pytest.raises(sdk.RateLimitError) as sdk_err:
        client.chat.completions.create(model="llama3-8b-8192", messages=MESSAGES)
    with pytest.raises(errors.RateLimitError) as our_err:
        groq.chat(messages=MESSAGES, model="llama3-8b-8192")
    assert sdk_err.value.body["error"]["message"] in str(our_err.value)
    assert sdk_err.value.response.headers["retry-after"] == "2"
    assert our_err.value.retry_after == 2.0
