"""The Ollama plugin's success paths, sync and async, against a loopback Ollama."""

from __future__ import annotations

import asyncio
import json

import ollama_wire as wire
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

CHAT = "/api/chat"
MESSAGES = [{"role": "user", "content": "Hello, how are you?"}]


def test_chat_sends_ollama_body_and_reads_reply(
    ollama: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, Reply.json(wire.chat("I'm well!")))
    result = ollama.chat(
        messages=MESSAGES,
        model="llama3",
        system="You are a helpful assistant",
        temperature=0.7,
        max_tokens=100,
        top_p=0.9,
        top_k=40,
        seed=42,
        stop="\n\n",
        keep_alive="10m",
        response_format={"type": "json_object"},
    )
    [req] = protocol_server.requests
    assert (req.method, req.path) == ("POST", CHAT)
    assert "authorization" not in req.headers  # a local Ollama needs no key
    assert req.headers["content-type"] == "application/json"
    assert req.json() == {
        "model": "llama3",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant"},
            {"role": "user", "content": "Hello, how are you?"},
        ],
        "keep_alive": "10m",
        "format": "json",
        "options": {
            "temperature": 0.7,
            "num_predict": 100,
            "top_p": 0.9,
            "top_k": 40,
            "seed": 42,
            "stop": ["\n\n"],
        },
        "stream": False,
    }
    assert result.text == result["text"] == "I'm well!"
    assert (result.model, result.finish_reason, result.id) == ("llama3", "stop", None)
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (26, 282)
    assert result.usage.total_tokens == 308
    assert result.usage.extra == wire.TIMINGS
    assert result.to_dict()["usage"]["eval_duration"] == 4535599000
    stats = ollama.get_usage_stats()
    assert (stats["prompt_tokens"], stats["completion_tokens"]) == (26, 282)
    assert stats["estimated_cost_usd"] == 0.0  # self-hosted: BackendSpec.free
    assert stats["unpriced_models"] == []


def test_options_dict_keywords_and_formats(
    ollama: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, default=Reply.json(wire.chat("{}")))
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}}
    ollama.chat(
        messages=MESSAGES,
        model="llama3",
        options={"num_ctx": 4096, "temperature": 0.1},
        temperature=0.5,  # the keyword wins over the same key in options
        repeat_penalty=1.2,  # any Modelfile parameter goes to options
        max_completion_tokens=7,
        stop=["a", "b"],
        format=schema,
        think=False,
    )
    ollama.chat(
        messages=MESSAGES,
        model="llama3",
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    )
    ollama.chat(messages=MESSAGES, model="llama3", response_format={"type": "text"})
    first, second, third = (r.json() for r in protocol_server.requests)
    assert first["options"] == {
        "num_ctx": 4096,
        "temperature": 0.5,
        "repeat_penalty": 1.2,
        "num_predict": 7,
        "stop": ["a", "b"],
    }
    assert (first["format"], first["think"]) == (schema, False)
    assert second["format"] == schema and "options" not in second
    assert "format" not in third


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"response_format": {"type": "xml"}}, "response_format"),
        ({"options": [1]}, "options must be a dict"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                    }
                ]
            },
            "base64",
        ),
        (
            {
                "messages": [
                    {"role": "assistant", "content": None, "tool_calls": [wire.tool_call("f", {})]}
                ],
                "tool_args": "{not json",
            },
            "not JSON",
        ),
    ],
)
def test_bad_arguments_fail_before_sending(
    ollama: Backend, protocol_server: ProtocolServer, kwargs: dict, match: str
) -> None:
    kwargs.setdefault("messages", MESSAGES)
    bad_args = kwargs.pop("tool_args", None)
    if bad_args is not None:
        kwargs["messages"][0]["tool_calls"][0]["function"]["arguments"] = bad_args
    with pytest.raises(errors.InvalidArgumentError, match=match):
        ollama.chat(model="llama3", **kwargs)
    assert protocol_server.requests == []


def test_chat_returns_tool_calls(ollama: Backend, protocol_server: ProtocolServer) -> None:
    calls = [wire.tool_call("get_weather", {"city": "Tokyo"}), wire.tool_call("t", {}, id="c9")]
    protocol_server.on("POST", CHAT, Reply.json(wire.chat("", tool_calls=calls)))
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get the weather in a given city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    result = ollama.chat(messages=MESSAGES, model="llama3", tools=tools)
    assert protocol_server.requests[0].json()["tools"] == tools
    assert result.text == "" and result.finish_reason == "tool_calls"
    first, second = result.tool_calls
    assert (first.id, first.name, first.parsed_arguments()) == (
        "call_0",
        "get_weather",
        {"city": "Tokyo"},
    )
    assert second.id == "c9"
    assert result["tool_calls"][0]["function"]["arguments"] == '{"city": "Tokyo"}'


def test_tool_history_is_sent_in_ollama_form(
    ollama: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, Reply.json(wire.chat("11 degrees.")))
    history = [
        {"role": "user", "content": "Weather in Toronto?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_0",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Toronto"}'},
                }
            ],
        },
        {"role": "tool", "name": "get_weather", "tool_call_id": "call_0", "content": "11 C"},
        {"role": "developer", "content": "Be brief."},
    ]
    ollama.chat(messages=history, model="llama3")
    assert protocol_server.requests[0].json()["messages"] == [
        {"role": "user", "content": "Weather in Toronto?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_0",
                    "function": {"name": "get_weather", "arguments": {"city": "Toronto"}},
                }
            ],
        },
        {"role": "tool", "content": "11 C", "tool_name": "get_weather", "tool_call_id": "call_0"},
        {"role": "system", "content": "Be brief."},
    ]


def test_image_parts_become_base64_images(ollama: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHAT, Reply.json(wire.chat("A pig.")))
    content = [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    ollama.chat(messages=[{"role": "user", "content": content}], model="llava")
    assert protocol_server.requests[0].json()["messages"] == [
        {"role": "user", "content": "What is in this image?", "images": ["iVBORw0KGgo="]}
    ]


def test_achat_across_event_loops(ollama: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHAT, default=Reply.json(wire.chat("async hi")))

    async def one() -> str:
        return (await ollama.achat(messages=MESSAGES, model="llama3", temperature=0)).text

    assert asyncio.run(one()) == asyncio.run(one()) == "async hi"
    assert len(protocol_server.requests) == 2
    assert protocol_server.requests[0].json()["options"] == {"temperature": 0}


PIECES = ["Hé", "llo, ", "wörld ", "🚀", "!"]


def _payload() -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in wire.chat_stream(PIECES))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=st.lists(st.integers(min_value=1, max_value=len(_payload()) - 1), max_size=12))
def test_stream_at_any_byte_boundary(
    ollama: Backend, protocol_server: ProtocolServer, cuts: list[int]
) -> None:
    protocol_server.reset()
    protocol_server.on("POST", CHAT, Reply.ndjson(_payload(), split=cuts))
    chunks = list(ollama.stream(messages=MESSAGES, model="llama3", temperature=0.2))
    body = protocol_server.requests[0].json()
    assert body["stream"] is True and body["options"] == {"temperature": 0.2}
    assert [c.text for c in chunks[:-1]] == PIECES
    assert not any(c.done for c in chunks[:-1])
    final = chunks[-1]
    assert final.done and final["done"] and final.text == ""
    assert final.finish_reason == "stop" and final.model == "llama3"
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (26, 282)
    assert final.usage.extra == wire.TIMINGS


def test_stream_records_usage(ollama: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHAT, Reply.ndjson(wire.chat_stream(["a", "b"]), split=3))
    assert "".join(c.text for c in ollama.stream(messages=MESSAGES, model="llama3")) == "ab"
    assert ollama.get_usage_stats()["completion_tokens"] == 282


def test_stream_last_line_without_newline(ollama: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHAT, Reply.ndjson(_payload().rstrip(b"\n")))
    assert list(ollama.stream(messages=MESSAGES, model="llama3"))[-1].done


def test_astream(ollama: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHAT, Reply.ndjson(wire.chat_stream(PIECES), split=5))

    async def collect() -> list[str]:
        async with ollama.astream(messages=MESSAGES, model="llama3") as stream:
            return [c.text async for c in stream]

    assert asyncio.run(collect()) == [*PIECES, ""]


def test_stream_tool_calls(ollama: Backend, protocol_server: ProtocolServer) -> None:
    lines = wire.chat_stream([])
    calls = [wire.tool_call("get_weather", {"city": "Tokyo"})]
    first = {**lines[0], "message": {"role": "assistant", "content": "", "tool_calls": calls}}
    first["done"] = False
    for key in wire.COUNTERS:
        first.pop(key, None)
    first.pop("done_reason", None)
    second = {**first, "message": {"role": "assistant", "content": "", "tool_calls": calls}}
    protocol_server.on("POST", CHAT, Reply.ndjson([first, second, lines[0]]))
    chunks = list(ollama.stream(messages=MESSAGES, model="llama3", tools=[]))
    deltas = [d for c in chunks for d in c.tool_calls]
    assert [(d.index, d.id, d.name) for d in deltas] == [
        (0, "call_0", "get_weather"),
        (1, "call_1", "get_weather"),
    ]
    assert json.loads(deltas[0].arguments) == {"city": "Tokyo"}
    assert chunks[-1].done and chunks[-1].finish_reason == "tool_calls"


def test_generate_sync_and_async(ollama: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", "/api/generate", default=Reply.json(wire.generate()))
    result = ollama.generate(
        prompt="Why is the sky blue?", model="llama3", max_tokens=20, system="Short.", raw=False
    )
    assert protocol_server.requests[0].json() == {
        "model": "llama3",
        "prompt": "Why is the sky blue?",
        "system": "Short.",
        "raw": False,
        "options": {"num_predict": 20},
        "stream": False,
    }
    assert result["text"] == result["generated_text"] == "The sky is blue."
    assert result.finish_reason == "stop"
    assert result.usage is not None and result.usage.completion_tokens == 282
    again = asyncio.run(ollama.agenerate(prompt="x", model="llama3"))
    assert again.text == "The sky is blue."


def test_images_are_not_offered(ollama: Backend, protocol_server: ProtocolServer) -> None:
    with pytest.raises(errors.InvalidArgumentError, match="does not support images"):
        ollama.generate_image(prompt="a lake", model="x")
    assert protocol_server.requests == []


def test_embed_one_and_many(ollama: Backend, protocol_server: ProtocolServer) -> None:
    vectors = [[0.010071029, -0.0017594862, 0.05], [-0.0098027075, 0.06042469, 0.0]]
    protocol_server.on(
        "POST",
        "/api/embed",
        Reply.json(wire.embed(vectors[:1])),
        Reply.json(wire.embed(vectors)),
    )
    one = ollama.embed(input="Why is the sky blue?", model="all-minilm", keep_alive=0)
    assert one.embedding == one["embedding"] == vectors[0]
    assert protocol_server.requests[0].json() == {
        "model": "all-minilm",
        "input": ["Why is the sky blue?"],
        "keep_alive": 0,
    }
    many = asyncio.run(
        ollama.aembed(input=["a", "b"], model="all-minilm", truncate=False, dimensions=3)
    )
    assert many.embeddings == vectors
    assert protocol_server.requests[1].json() == {
        "model": "all-minilm",
        "input": ["a", "b"],
        "truncate": False,
        "dimensions": 3,
    }
    assert many.usage is not None and many.usage.prompt_tokens == 8
    assert ollama.get_usage_stats()["prompt_tokens"] == 16


def test_list_models_sync_and_async(ollama: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("GET", "/api/tags", default=Reply.json(wire.tags(["llama3:latest", "x"])))
    models = ollama.list_models()
    assert [m.id for m in models] == ["llama3:latest", "x"]
    assert models[0]["description"] == "llama 3.2B Q4_K_M"
    assert models[0].raw["size"] == 2019393189
    assert [m.id for m in asyncio.run(ollama.alist_models())] == ["llama3:latest", "x"]
    assert [r.method for r in protocol_server.requests] == ["GET", "GET"]


def test_empty_tags(ollama: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("GET", "/api/tags", Reply.json({"models": []}))
    assert ollama.list_models() == []


def test_handler(ollama: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHAT, Reply.json(wire.chat("handled")))
    handler = ollama.create_handler("chat", "llama3")
    assert asyncio.run(handler("Hi"))["text"] == "handled"
    assert protocol_server.requests[0].json()["messages"] == [{"role": "user", "content": "Hi"}]


def test_final_line_without_message(ollama: Backend, protocol_server: ProtocolServer) -> None:
    # docs/api.md "Chat request (With History)": the final line carries no message
    lines = wire.chat_stream(["The"])
    del lines[-1]["message"]
    protocol_server.on("POST", CHAT, Reply.ndjson(lines))
    chunks = list(ollama.stream(messages=MESSAGES, model="llama3"))
    assert [c.text for c in chunks] == ["The", ""] and chunks[-1].usage is not None


def test_thinking_is_kept_in_raw(ollama: Backend, protocol_server: ProtocolServer) -> None:
    body = wire.chat("42")
    body["message"]["thinking"] = "Let me think."
    protocol_server.on("POST", CHAT, Reply.json(body))
    result = ollama.chat(messages=MESSAGES, model="qwen3", think=True)
    assert protocol_server.requests[0].json()["think"] is True
    assert result.text == "42" and result.raw["message"]["thinking"] == "Let me think."
