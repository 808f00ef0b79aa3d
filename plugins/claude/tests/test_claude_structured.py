"""``response_format`` on Claude: sent as one forced tool call (the Messages API has no such
field); the reply's text is the call's JSON input, plain and streamed."""

from __future__ import annotations

import json

from ipfs_accelerate_claude import testing_wire as wire
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

MESSAGES = "/v1/messages"
ASK = [{"role": "user", "content": "Which planets have rings?"}]
SCHEMA = {
    "type": "object",
    "properties": {"planets": {"type": "array", "items": {"type": "string"}}},
    "required": ["planets"],
}
FORMAT = {"type": "json_schema", "json_schema": {"name": "rings", "schema": SCHEMA}}


def test_a_json_schema_becomes_a_forced_tool_and_the_reply_its_input(
    claude: Backend, protocol_server: ProtocolServer
) -> None:
    answer = {"planets": ["Saturn", "Jupiter"]}
    protocol_server.on(
        "POST",
        MESSAGES,
        Reply.json(
            wire.message(None, tool_uses=[("toolu_1", "rings", answer)], stop_reason="tool_use")
        ),
    )
    reply = claude.chat(messages=ASK, response_format=FORMAT)
    assert json.loads(reply.text) == answer
    assert reply.finish_reason == "stop" and reply.tool_calls == ()
    body = protocol_server.requests_to(MESSAGES)[0].json()
    assert "response_format" not in body
    assert body["tools"] == [
        {
            "name": "rings",
            "description": "Return the answer as this function's arguments.",
            "input_schema": SCHEMA,
        }
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "rings"}


def test_a_streamed_json_reply_arrives_as_text(
    claude: Backend, protocol_server: ProtocolServer
) -> None:
    pieces = ['{"planets": ', '["Saturn"]}']
    protocol_server.on(
        "POST",
        MESSAGES,
        Reply.sse(
            wire.stream_events([], tool=("toolu_1", "rings", pieces), stop_reason="tool_use")
        ),
    )
    chunks = list(claude.stream(messages=ASK, response_format=FORMAT))
    assert json.loads("".join(c.text for c in chunks)) == {"planets": ["Saturn"]}
    assert chunks[-1].finish_reason == "stop"


def test_json_object_and_text_formats(claude: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", MESSAGES, default=Reply.json(wire.message("plain")))
    assert claude.chat(messages=ASK, response_format={"type": "text"}).text == "plain"
    claude.chat(messages=ASK, response_format={"type": "json_object"})
    first, second = (r.json() for r in protocol_server.requests_to(MESSAGES))
    assert "response_format" not in first and "tools" not in first
    assert second["tools"][0]["input_schema"] == {"type": "object"}
