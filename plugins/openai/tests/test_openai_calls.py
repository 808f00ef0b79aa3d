"""The OpenAI plugin's success paths, sync and async, against a loopback OpenAI server."""

from __future__ import annotations

import asyncio

import pytest

from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Hello, how are you?"}]


def test_chat_sends_openai_body_and_reads_reply(
    openai: Backend, protocol_server: ProtocolServer, secret: str
) -> None:
    protocol_server.on("POST", CHAT, Reply.json(wire.chat_completion("I'm well!")))
    result = openai.chat(
        messages=MESSAGES,
        model="gpt-4o",
        system="You are a helpful assistant",
        temperature=0.7,
        max_tokens=100,
        top_p=0.9,
        stop=["\n\n"],
        response_format={"type": "json_object"},
        request_id="req_client_1",
    )
    [req] = protocol_server.requests
    assert req.headers["authorization"] == f"Bearer {secret}"
    assert req.headers["x-client-request-id"] == "req_client_1"
    assert req.headers["content-type"] == "application/json"
    assert req.json() == {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant"},
            {"role": "user", "content": "Hello, how are you?"},
        ],
        "temperature": 0.7,
        "max_tokens": 100,
        "top_p": 0.9,
        "stop": ["\n\n"],
        "response_format": {"type": "json_object"},
    }
    assert result.text == "I'm well!"
    assert result["text"] == "I'm well!"
    assert result.model == "gpt-4o-mini-2024-07-18"
    assert result.finish_reason == "stop"
    assert result.id == "chatcmpl-abc123"
    assert result.usage is not None
    assert (
        result.usage.prompt_tokens,
        result.usage.completion_tokens,
        result.usage.total_tokens,
    ) == (9, 12, 21)
    assert result.raw["system_fingerprint"] == "fp_06737a9306"
    assert result.to_dict()["usage"]["total_tokens"] == 21


def test_chat_returns_tool_calls(openai: Backend, protocol_server: ProtocolServer) -> None:
    calls = [wire.tool_call("call_1", "get_weather", '{"city": "Paris"}')]
    protocol_server.on(
        "POST",
        CHAT,
        Reply.json(wire.chat_completion(None, tool_calls=calls, finish_reason="tool_calls")),
    )
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    result = openai.chat(messages=MESSAGES, model="gpt-4o", tools=tools, tool_choice="auto")
    assert protocol_server.requests[0].json()["tools"] == tools
    assert result.text == ""
    assert result.finish_reason == "tool_calls"
    [call] = result.tool_calls
    assert (call.id, call.name, call.parsed_arguments()) == (
        "call_1",
        "get_weather",
        {"city": "Paris"},
    )
    assert result["tool_calls"][0]["function"]["name"] == "get_weather"


def test_assistant_tool_call_messages_round_trip(
    openai: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, Reply.json(wire.chat_completion("Sunny.")))
    history = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [wire.tool_call("c1", "w", "{}")]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    openai.chat(messages=history, model="gpt-4o")
    assert protocol_server.requests[0].json()["messages"] == history


def test_other_message_fields_reach_the_server_unchanged(
    openai: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, Reply.json(wire.chat_completion("ok")))
    history = [
        {
            "role": "system",
            "content": [{"type": "text", "text": "Be brief."}],
            "cache_control": {"type": "ephemeral"},
        },
        {"role": "user", "content": "Weather?", "name": "ann"},
        {
            "role": "assistant",
            "content": None,
            "function_call": {"name": "w", "arguments": "{}"},
            "refusal": None,
        },
        {"role": "function", "name": "w", "content": "sunny"},
        {"role": "assistant", "content": "No.", "refusal": "I can't help with that."},
        {"role": "user", "content": "ok"},
    ]
    openai.chat(messages=history, model="gpt-4o")
    assert protocol_server.requests[0].json()["messages"] == history


def test_achat_across_successive_event_loops(
    openai: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, default=Reply.json(wire.chat_completion("async hi")))

    async def one() -> str:
        return (await openai.achat(messages=MESSAGES, model="gpt-4o")).text

    assert asyncio.run(one()) == "async hi"
    assert asyncio.run(one()) == "async hi"  # a second loop gets its own connections
    assert openai.chat(messages=MESSAGES, model="gpt-4o").text == "async hi"
    assert len(protocol_server.requests) == 3


PIECES = ["Hé", "llo, ", "wörld ", "🚀", "!"]


@pytest.mark.parametrize("split", [None, 1, 3, 7, 64])
def test_stream_chunks_at_any_byte_boundary(
    openai: Backend, protocol_server: ProtocolServer, split: int | None
) -> None:
    protocol_server.on("POST", CHAT, Reply.sse(wire.chat_stream(PIECES), split=split))
    chunks = list(openai.stream(messages=MESSAGES, model="gpt-4o"))
    body = protocol_server.requests[0].json()
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert [c.text for c in chunks[:-1]] == PIECES
    assert not any(c.done for c in chunks[:-1])
    final = chunks[-1]
    assert final.done and final.text == ""
    assert final.finish_reason == "stop"
    assert final.usage is not None and final.usage.completion_tokens == len(PIECES)
    assert final["done"] is True
    assert openai.get_usage_stats()["completion_tokens"] == len(PIECES)


def test_astream(openai: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHAT, Reply.sse(wire.chat_stream(PIECES), split=5))

    async def collect() -> list[str]:
        return [c.text async for c in openai.astream(messages=MESSAGES, model="gpt-4o")]

    assert "".join(asyncio.run(collect())) == "".join(PIECES)


def test_stream_tool_call_deltas(openai: Backend, protocol_server: ProtocolServer) -> None:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
    events = [
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_9",
                                "type": "function",
                                "function": {"name": "lookup", "arguments": ""},
                            }
                        ],
                    },
                    "finish_reason": None,
                }
            ],
        },
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"q": '}}]},
                    "finish_reason": None,
                }
            ],
        },
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '"x"}'}}]},
                    "finish_reason": None,
                }
            ],
        },
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        "[DONE]",
    ]
    protocol_server.on("POST", CHAT, Reply.sse(events))
    chunks = list(openai.stream(messages=MESSAGES, model="gpt-4o"))
    deltas = [d for c in chunks for d in c.tool_calls]
    assert deltas[0].id == "call_9" and deltas[0].name == "lookup"
    assert "".join(d.arguments for d in deltas) == '{"q": "x"}'
    assert chunks[-1].done and chunks[-1].finish_reason == "tool_calls"


def test_embed_one_and_many_float_and_base64_agree(
    openai: Backend, protocol_server: ProtocolServer
) -> None:
    vectors = [[0.5, -1.25, 3.0, 0.125], [1.0, 2.0, -0.5, 0.0]]
    protocol_server.on(
        "POST",
        "/v1/embeddings",
        Reply.json(wire.embeddings(vectors[:1], encoding_format="base64")),
        Reply.json(wire.embeddings(vectors, encoding_format="base64")),
        Reply.json(wire.embeddings(vectors)),
    )
    one = openai.embed(input="This is a sample text", model="text-embedding-3-small")
    assert one.embedding == vectors[0]
    assert one["embedding"] == vectors[0]
    assert protocol_server.requests[0].json() == {
        "model": "text-embedding-3-small",
        "input": ["This is a sample text"],
        "encoding_format": "base64",  # no format named: base64 on the wire, floats back
    }
    b64 = openai.embed(input=["a", "b"], model="text-embedding-3-small", encoding_format="base64")
    flt = openai.embed(input=["a", "b"], model="text-embedding-3-small", encoding_format="float")
    assert protocol_server.requests[1].json()["encoding_format"] == "base64"
    assert protocol_server.requests[2].json()["encoding_format"] == "float"
    assert b64.embeddings == flt.embeddings == vectors
    assert openai.get_usage_stats()["prompt_tokens"] == 24


def test_embed_orders_vectors_by_index(openai: Backend, protocol_server: ProtocolServer) -> None:
    body = wire.embeddings([[1.0], [2.0]])
    body["data"].reverse()
    protocol_server.on("POST", "/v1/embeddings", Reply.json(body))
    assert openai.embed(input=["a", "b"], model="m").embeddings == [[1.0], [2.0]]


def test_aembed(openai: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", "/v1/embeddings", Reply.json(wire.embeddings([[0.25, 0.75]])))
    result = asyncio.run(openai.aembed(input="x", model="text-embedding-3-small"))
    assert result.embedding == [0.25, 0.75]


def test_images_urls_and_base64(openai: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on(
        "POST",
        "/v1/images/generations",
        Reply.json(wire.images(urls=["https://img.example/1.png"], revised_prompt="A lake")),
        Reply.json(wire.images(b64=["aGVsbG8="])),
    )
    result = openai.generate_image(
        prompt="A serene lakeside sunset", model="dall-e-3", size="1024x1024", n=1
    )
    assert protocol_server.requests[0].json() == {
        "model": "dall-e-3",
        "prompt": "A serene lakeside sunset",
        "size": "1024x1024",
        "n": 1,
    }
    assert result["urls"] == ["https://img.example/1.png"]
    assert result.revised_prompts == ["A lake"]
    b64 = asyncio.run(
        openai.agenerate(prompt="x", model="gpt-image-1", kind="image", response_format="b64_json")
    )
    assert b64.image_bytes() == [b"hello"]  # type: ignore[union-attr]


def test_generate_text_uses_completions(openai: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on(
        "POST",
        "/v1/completions",
        Reply.json(
            {
                "id": "cmpl-1",
                "object": "text_completion",
                "model": "gpt-3.5-turbo-instruct",
                "choices": [{"text": " world", "index": 0, "finish_reason": "length"}],
                "usage": wire.usage(2, 1),
            }
        ),
    )
    result = openai.generate(prompt="Hello", model="gpt-3.5-turbo-instruct", max_tokens=1)
    assert result["generated_text"] == " world"
    assert result.finish_reason == "length"


def test_list_models_sync_and_async(
    openai: Backend, protocol_server: ProtocolServer, secret: str
) -> None:
    protocol_server.on("GET", "/v1/models", default=Reply.json(wire.models(["gpt-4o", "dall-e-3"])))
    models = openai.list_models()
    assert [m.id for m in models] == ["gpt-4o", "dall-e-3"]
    assert models[0].owned_by == "openai"
    assert [m.id for m in asyncio.run(openai.alist_models())] == ["gpt-4o", "dall-e-3"]
    assert protocol_server.requests[0].headers["authorization"] == f"Bearer {secret}"


def test_base_url_with_path_prefix(protocol_server: ProtocolServer) -> None:
    from ipfs_accelerate_py.core import get_backend

    protocol_server.on(
        "POST", "/proxy/openai/v1/chat/completions", Reply.json(wire.chat_completion())
    )
    backend = get_backend(
        "openai", api_key="k" * 20, base_url=protocol_server.url("/proxy/openai/v1/")
    )
    assert backend.chat(messages=MESSAGES, model="gpt-4o").text
    backend.close()


def test_env_base_url_and_key(
    protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ipfs_accelerate_py.core import get_backend

    monkeypatch.setenv("OPENAI_BASE_URL", protocol_server.url("/v1"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-000000001111")
    protocol_server.on("POST", CHAT, Reply.json(wire.chat_completion()))
    backend = get_backend("openai")
    backend.chat(messages=MESSAGES, model="gpt-4o")
    assert protocol_server.requests[0].headers["authorization"] == "Bearer sk-from-env-000000001111"
    backend.close()


def test_handler(openai: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHAT, Reply.json(wire.chat_completion("handled")))
    handler = openai.create_handler("chat", "gpt-3.5-turbo")
    assert asyncio.run(handler("Hi"))["text"] == "handled"
    assert protocol_server.requests[0].json()["model"] == "gpt-3.5-turbo"
