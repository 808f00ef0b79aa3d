"""The Groq plugin's success paths, sync and async, against a loopback Groq server."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipfs_accelerate_groq import wire
from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

MESSAGES = [{"role": "user", "content": "Hello, how are you?"}]
TIMINGS = {"queue_time", "prompt_time", "completion_time", "total_time"}


def test_chat_sends_openai_body_under_openai_v1(
    groq: Backend, protocol_server: ProtocolServer, secret: str
) -> None:
    protocol_server.on("POST", wire.CHAT, wire.reply("I'm well!"))
    result = groq.chat(
        messages=MESSAGES,
        model="llama-3.3-70b-versatile",
        system="Be brief",
        temperature=0.3,
        max_tokens=500,
        top_p=0.9,
        frequency_penalty=0.5,
        presence_penalty=0.2,
        stop=["\n\n"],
        seed=7,
    )
    [req] = protocol_server.requests
    assert req.path == wire.CHAT
    assert req.headers["authorization"] == f"Bearer {secret}"
    assert req.json() == {
        "model": "llama-3.3-70b-versatile",
        "messages": [{"role": "system", "content": "Be brief"}, *MESSAGES],
        "temperature": 0.3,
        "max_tokens": 500,
        "top_p": 0.9,
        "frequency_penalty": 0.5,
        "presence_penalty": 0.2,
        "stop": ["\n\n"],
        "seed": 7,
    }
    assert result["text"] == "I'm well!"
    assert result.finish_reason == "stop"
    assert result.model == "llama3-8b-8192"
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (18, 12)
    assert result.usage.total_tokens == 30
    assert set(result.usage.extra) == TIMINGS
    assert result.get("usage")["queue_time"] == pytest.approx(0.037493756)
    assert result.raw["x_groq"]["id"] == wire.REQUEST_ID


def test_json_mode_passes_response_format(groq: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", wire.CHAT, wire.reply('{"planets": ["Mercury", "Venus"]}'))
    result = groq.chat(
        messages=MESSAGES, model="llama3-8b-8192", response_format={"type": "json_object"}
    )
    assert protocol_server.requests[0].json()["response_format"] == {"type": "json_object"}
    assert result.text == '{"planets": ["Mercury", "Venus"]}'


def test_tools_round_trip(groq: Backend, protocol_server: ProtocolServer) -> None:
    call = {
        "id": "call_d5wg",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    protocol_server.on(
        "POST",
        wire.CHAT,
        wire.reply(None, tool_calls=[call], finish_reason="tool_calls"),
        wire.reply("Sunny in Paris."),
    )
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    first = groq.chat(
        messages=MESSAGES, model="llama-3.3-70b-versatile", tools=tools, tool_choice="auto"
    )
    body = protocol_server.requests[0].json()
    assert (body["tools"], body["tool_choice"]) == (tools, "auto")
    [tool_call] = first.tool_calls
    assert first.finish_reason == "tool_calls"
    assert tool_call.parsed_arguments() == {"city": "Paris"}
    history = [
        *MESSAGES,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_d5wg", "content": "sunny"},
    ]
    second = groq.chat(messages=history, model="llama-3.3-70b-versatile", tools=tools)
    assert protocol_server.requests[1].json()["messages"] == history
    assert second.text == "Sunny in Paris."


def test_achat(groq: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", wire.CHAT, default=wire.reply("async hi"))

    async def one() -> str:
        return (await groq.achat(messages=MESSAGES, model="llama3-8b-8192")).text

    assert asyncio.run(one()) == "async hi"
    assert asyncio.run(one()) == "async hi"
    assert len(protocol_server.requests) == 2


PIECES = ["Hé", "llo, ", "wörld ", "🚀", "!"]


def _check_stream(chunks: list, server: ProtocolServer) -> None:
    body = server.requests[-1].json()
    assert body["stream"] is True
    assert "stream_options" not in body  # Groq reports usage in x_groq without it
    assert [c["text"] for c in chunks[:-1]] == PIECES
    assert not any(c["done"] for c in chunks[:-1])
    final = chunks[-1]
    assert final["done"] is True and final.text == ""
    assert final.finish_reason == "stop"
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (18, len(PIECES))
    assert set(final.usage.extra) == TIMINGS
    assert final["usage"]["total_time"] == pytest.approx(0.047013927)


@pytest.mark.parametrize("split", [None, 1, 2, 5, 64])
def test_stream_usage_from_x_groq(
    groq: Backend, protocol_server: ProtocolServer, split: int | None
) -> None:
    protocol_server.on("POST", wire.CHAT, Reply.sse(wire.stream_events(PIECES), split=split))
    chunks = list(groq.stream(messages=MESSAGES, model="llama3-8b-8192"))
    _check_stream(chunks, protocol_server)
    stats = groq.get_usage_stats()
    assert (stats["prompt_tokens"], stats["completion_tokens"]) == (18, len(PIECES))


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=st.lists(st.integers(min_value=1, max_value=2000), max_size=12))
def test_stream_split_anywhere(
    groq: Backend, protocol_server: ProtocolServer, cuts: list[int]
) -> None:
    protocol_server.on("POST", wire.CHAT, Reply.sse(wire.stream_events(PIECES), split=cuts))
    _check_stream(list(groq.stream(messages=MESSAGES, model="llama3-8b-8192")), protocol_server)


def test_astream(groq: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", wire.CHAT, Reply.sse(wire.stream_events(PIECES), split=3))

    async def collect() -> list:
        return [c async for c in groq.astream(messages=MESSAGES, model="llama3-8b-8192")]

    _check_stream(asyncio.run(collect()), protocol_server)


def test_stream_with_callers_stream_options_merges_both_usages(
    groq: Backend, protocol_server: ProtocolServer
) -> None:
    events = wire.stream_events(["a"], done=False)
    usage_chunk = {**events[-1], "choices": [], "usage": wire.usage(18, 1)}
    del usage_chunk["x_groq"]
    protocol_server.on("POST", wire.CHAT, Reply.sse([*events, usage_chunk, "[DONE]"]))
    chunks = list(
        groq.stream(
            messages=MESSAGES, model="llama3-8b-8192", stream_options={"include_usage": True}
        )
    )
    assert protocol_server.requests[0].json()["stream_options"] == {"include_usage": True}
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 1


def test_stream_x_groq_only_final_event(groq: Backend, protocol_server: ProtocolServer) -> None:
    events = wire.stream_events(["a", "b"], done=False)
    final = events.pop()
    protocol_server.on(
        "POST",
        wire.CHAT,
        Reply.sse([*events, {**final, "choices": []}, "[DONE]"]),
    )
    chunks = list(groq.stream(messages=MESSAGES, model="llama3-8b-8192"))
    assert "".join(c.text for c in chunks) == "ab"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 2


def test_stream_tool_call_deltas(groq: Backend, protocol_server: ProtocolServer) -> None:
    events = wire.stream_events([], finish_reason="tool_calls", done=False)
    call = {
        "index": 0,
        "id": "call_9",
        "type": "function",
        "function": {"name": "lookup", "arguments": '{"q": "x"}'},
    }
    tool_chunk = {**events[0], "choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}
    del tool_chunk["x_groq"]
    protocol_server.on("POST", wire.CHAT, Reply.sse([events[0], tool_chunk, events[1], "[DONE]"]))
    chunks = list(groq.stream(messages=MESSAGES, model="llama-3.3-70b-versatile"))
    [delta] = [d for c in chunks for d in c.tool_calls]
    assert (delta.id, delta.name, delta.arguments) == ("call_9", "lookup", '{"q": "x"}')
    assert chunks[-1].done and chunks[-1].finish_reason == "tool_calls"


def test_env_base_url_host_gets_suffix_and_key_from_env(
    protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROQ_BASE_URL", protocol_server.base_url)
    monkeypatch.setenv("GROQ_API_KEY", "gsk_from_env_000000001111")
    protocol_server.on("POST", wire.CHAT, wire.reply())
    backend = get_backend("groq")
    assert backend.settings.base_url == protocol_server.url("/openai/v1")
    backend.chat(messages=MESSAGES, model="llama3-8b-8192")
    req = protocol_server.requests[0]
    assert req.path == wire.CHAT
    assert req.headers["authorization"] == "Bearer gsk_from_env_000000001111"
    backend.close()


def test_base_url_with_suffix_is_kept(protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", wire.CHAT, wire.reply())
    backend = get_backend(
        "groq",
        metadata={
            "groq_api_key": "gsk_meta_00000000",
            "groq_base_url": protocol_server.url("/openai/v1/"),
        },
    )
    backend.chat(messages=MESSAGES, model="llama3-8b-8192")
    assert protocol_server.requests[0].path == wire.CHAT
    assert protocol_server.requests[0].headers["authorization"] == "Bearer gsk_meta_00000000"
    backend.close()


def test_default_base_url_and_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GROQ_BASE_URL", raising=False)
    monkeypatch.delenv("GROQ_MODEL", raising=False)
    backend = get_backend("groq", api_key="gsk_x")
    assert backend.settings.base_url == "https://api.groq.com/openai/v1"
    assert backend.settings.default_model == "llama-3.3-70b-versatile"


def test_handler(groq: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", wire.CHAT, wire.reply("handled"))
    handler = groq.create_handler("chat", "llama-3.1-8b-instant")
    assert asyncio.run(handler("Hi"))["text"] == "handled"
    assert protocol_server.requests[0].json()["model"] == "llama-3.1-8b-instant"


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"top_k": 40}, "top_k"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"n": 2}, "n must be 1"),
    ],
)
def test_parameters_groq_rejects_fail_before_sending(
    groq: Backend, protocol_server: ProtocolServer, params: dict, match: str
) -> None:
    with pytest.raises(errors.InvalidArgumentError, match=match):
        groq.chat(messages=MESSAGES, model="llama3-8b-8192", **params)
    with pytest.raises(errors.InvalidArgumentError, match=match):
        groq.stream(messages=MESSAGES, model="llama3-8b-8192", **params)
    assert protocol_server.requests == []


def test_n_1_and_message_name(groq: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", wire.CHAT, wire.reply())
    groq.chat(messages=MESSAGES, model="llama3-8b-8192", n=1)
    assert protocol_server.requests[0].json()["n"] == 1
    named = [{"role": "user", "content": "Hi", "name": "ann"}]
    with pytest.raises(errors.InvalidArgumentError, match=r"messages\[\]\.name"):
        groq.chat(messages=named, model="llama3-8b-8192")
    assert len(protocol_server.requests) == 1


def test_no_embeddings_or_completions(groq: Backend, protocol_server: ProtocolServer) -> None:
    with pytest.raises(errors.InvalidArgumentError, match="does not support embed"):
        groq.embed(input="x", model="m")
    with pytest.raises(errors.InvalidArgumentError, match="does not support generate"):
        groq.generate(prompt="x", model="m")
    assert protocol_server.requests == []
