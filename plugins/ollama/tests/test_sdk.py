"""Our picture of the protocol checked against the official ``ollama`` Python client.

The SDK and our backend make the same calls against the same scripted replies: the SDK must
parse every reply we script (its pydantic models validate the shapes), read the same text,
vectors and counters we read, and send the same request bodies we send.
"""

from __future__ import annotations

from typing import Any

import ollama_wire as wire
import pytest

from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply

sdk = pytest.importorskip("ollama")

HISTORY: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Toronto?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Toronto"}}}],
    },
    {"role": "tool", "content": "11 C", "tool_name": "get_weather"},
]
OURS = [  # the same history in the OpenAI form our callers use
    *HISTORY[:2],
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "", "function": {"name": "get_weather", "arguments": '{"city": "Toronto"}'}}
        ],
    },
    {"role": "tool", "content": "11 C", "name": "get_weather"},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the weather in a given city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "The city"}},
                "required": ["city"],
            },
        },
    }
]


def _chat(request: RecordedRequest) -> Reply:
    if request.json()["stream"]:
        return Reply.ndjson(wire.chat_stream(["It is ", "11 C."]), split=9)
    return Reply.json(wire.chat("", tool_calls=[wire.tool_call("get_weather", {"city": "Oslo"})]))


def _bodies(server: ProtocolServer) -> list[dict[str, Any]]:
    out = []
    for request in server.requests:
        body = request.json() if request.body else {}
        if body.get("tools") == []:  # the SDK always sends a tools list; we omit an empty one
            del body["tools"]
        if isinstance(body.get("input"), str):  # one text: the SDK sends it bare
            body["input"] = [body["input"]]
        for message in body.get("messages", []):
            if message.get("content") == "":  # the SDK leaves an empty content out
                del message["content"]
        out.append({"path": request.path, "method": request.method, **body})
    return out


def test_official_sdk_agrees(protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", "/api/chat", default=_chat)
    protocol_server.on("POST", "/api/embed", default=Reply.json(wire.embed([[0.25, -0.5]])))
    protocol_server.on("GET", "/api/tags", default=Reply.json(wire.tags(["llama3:latest", "x"])))
    options = {"temperature": 0.5, "num_predict": 64}

    client = sdk.Client(host=protocol_server.base_url)
    sdk_chat = client.chat(
        "llama3", HISTORY, tools=TOOLS, options=options, format="json", keep_alive="5m"
    )
    sdk_text = "".join(c.message.content for c in client.chat("llama3", HISTORY, stream=True))
    sdk_embed = client.embed("all-minilm", "hello")
    sdk_models = client.list()
    sdk_bodies = _bodies(protocol_server)

    protocol_server.reset()
    protocol_server.on("POST", "/api/chat", default=_chat)
    protocol_server.on("POST", "/api/embed", default=Reply.json(wire.embed([[0.25, -0.5]])))
    protocol_server.on("GET", "/api/tags", default=Reply.json(wire.tags(["llama3:latest", "x"])))
    backend = get_backend("ollama", base_url=protocol_server.base_url)
    ours = backend.chat(
        messages=OURS,
        model="llama3",
        tools=TOOLS,
        temperature=0.5,
        max_tokens=64,
        response_format={"type": "json_object"},
        keep_alive="5m",
    )
    chunks = list(backend.stream(messages=OURS, model="llama3"))
    embedded = backend.embed(input="hello", model="all-minilm")
    models = backend.list_models()
    backend.close()

    for mine, theirs in zip(_bodies(protocol_server), sdk_bodies, strict=True):
        assert mine == theirs  # the same requests, field for field
    call = sdk_chat.message.tool_calls[0].function
    assert (ours.tool_calls[0].name, ours.tool_calls[0].parsed_arguments()) == (
        call.name,
        dict(call.arguments),
    )
    assert ours.usage is not None
    assert (ours.usage.prompt_tokens, ours.usage.completion_tokens) == (
        sdk_chat.prompt_eval_count,
        sdk_chat.eval_count,
    )
    assert ours.usage.extra["eval_duration"] == sdk_chat.eval_duration
    assert "".join(c.text for c in chunks) == sdk_text == "It is 11 C."
    assert embedded.embeddings == [list(v) for v in sdk_embed.embeddings]
    assert [m.id for m in models] == [m.model for m in sdk_models.models]
