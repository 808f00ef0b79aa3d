"""The official ``anthropic`` SDK against the same scripted replies: a check of our picture of
the protocol by a client nobody here wrote (skipped when the SDK is not installed)."""

from __future__ import annotations

from typing import Any

import pytest

from ipfs_accelerate_claude import testing_wire as wire
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

anthropic = pytest.importorskip("anthropic")

MESSAGES = "/v1/messages"
HISTORY_OURS: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
]
HISTORY_SDK: list[dict[str, Any]] = [
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
        ],
    },
    {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}],
    },
]
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOL_OURS = {"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}}
TOOL_SDK = {"name": "get_weather", "input_schema": SCHEMA}


@pytest.fixture
def sdk(protocol_server: ProtocolServer, secret: str) -> Any:
    """The SDK's client aimed at the loopback server, without retries of its own."""
    client = anthropic.Anthropic(base_url=protocol_server.url(""), api_key=secret, max_retries=0)
    yield client
    client.close()


def test_create_sends_what_we_send_and_reads_what_we_read(
    claude: Backend, protocol_server: ProtocolServer, sdk: Any, secret: str
) -> None:
    reply = wire.message(
        "Sunny.",
        tool_uses=[("toolu_2", "get_weather", {"city": "Lyon"})],
        stop_reason="tool_use",
        cache_read=4,
    )
    protocol_server.on("POST", MESSAGES, default=Reply.json(reply))
    ours = claude.chat(
        messages=HISTORY_OURS,
        model="claude-sonnet-5-5",
        max_tokens=300,
        tools=[TOOL_OURS],
        tool_choice="auto",
        temperature=0.5,
        stop="END",
    )
    theirs = sdk.messages.create(
        model="claude-sonnet-5-5",
        max_tokens=300,
        system="Be brief.",
        messages=HISTORY_SDK,
        tools=[TOOL_SDK],
        tool_choice={"type": "auto"},
        stop_sequences=["END"],
        extra_body={"temperature": 0.5},  # a keyword of its own in older SDK versions
    )
    ours_req, sdk_req = protocol_server.requests
    assert ours_req.json() == sdk_req.json()
    assert ours_req.path == sdk_req.path == MESSAGES
    assert ours_req.headers["content-type"] == sdk_req.headers["content-type"]
    assert ours_req.headers["x-api-key"] == secret
    # SDK releases up to 0.x send X-Api-Key and anthropic-version 2023-06-01 (as we do);
    # later ones may send the key as a bearer token with a newer version date
    sdk_auth = sdk_req.headers.get("x-api-key") or sdk_req.headers["authorization"]
    assert sdk_auth in (secret, f"Bearer {secret}")
    assert sdk_req.headers["anthropic-version"] >= ours_req.headers["anthropic-version"]
    text = "".join(b.text for b in theirs.content if b.type == "text")
    [tool_use] = [b for b in theirs.content if b.type == "tool_use"]
    assert ours.text == text == "Sunny."
    assert ours.tool_calls[0].parsed_arguments() == tool_use.input == {"city": "Lyon"}
    assert ours.tool_calls[0].id == tool_use.id
    assert theirs.stop_reason == "tool_use" and ours.finish_reason == "tool_calls"
    assert ours.usage is not None
    assert (ours.usage.prompt_tokens, ours.usage.completion_tokens) == (
        theirs.usage.input_tokens,
        theirs.usage.output_tokens,
    )
    assert ours.usage.extra["cache_read_input_tokens"] == theirs.usage.cache_read_input_tokens


@pytest.mark.parametrize("split", [None, 7])
def test_stream_reads_the_same_events(
    claude: Backend, protocol_server: ProtocolServer, sdk: Any, split: int | None
) -> None:
    events = wire.stream_events(
        ["Hé", "llo ", "🚀"],
        tool=("toolu_3", "get_weather", ['{"city"', ': "Oslo"}']),
        stop_reason="tool_use",
        cache_read=6,
    )
    protocol_server.on("POST", MESSAGES, default=Reply.sse(events, split=split))
    chunks = list(claude.stream(messages=[{"role": "user", "content": "Hi"}], max_tokens=50))
    with sdk.messages.stream(
        model="claude-sonnet-5-5", max_tokens=50, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        sdk_text = "".join(stream.text_stream)
        final = stream.get_final_message()
    ours_req, sdk_req = protocol_server.requests
    assert ours_req.json() == sdk_req.json()
    assert "".join(c.text for c in chunks) == sdk_text == "Héllo 🚀"
    arguments = "".join(d.arguments for c in chunks for d in c.tool_calls)
    [tool_use] = [b for b in final.content if b.type == "tool_use"]
    assert tool_use.input == {"city": "Oslo"} and arguments == '{"city": "Oslo"}'
    done = chunks[-1]
    assert done.usage is not None
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (
        final.usage.input_tokens,
        final.usage.output_tokens,
    )
    assert done.usage.extra["cache_read_input_tokens"] == final.usage.cache_read_input_tokens == 6
    assert done.model == final.model


def test_error_bodies_mean_the_same_to_both(
    claude: Backend, protocol_server: ProtocolServer, sdk: Any
) -> None:
    from ipfs_accelerate_py import errors

    protocol_server.on("POST", MESSAGES, default=wire.error_reply(529))
    claude.max_retries = 0
    with pytest.raises(errors.OverloadedError) as ours:
        claude.chat(messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(anthropic.APIStatusError) as theirs:
        sdk.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "Hi"}])
    assert theirs.value.status_code == ours.value.status_code == 529
    assert theirs.value.request_id == ours.value.provider_request_id == "req_server_529"
    assert type(theirs.value).__name__ == "OverloadedError"
