"""The quickstart guide's Groq blocks, run as written against the loopback Groq server.

Only the base URL comes from the environment (GROQ_BASE_URL, a bare host: the plugin adds
/openai/v1); the key is the guide's own ``"your-key-here"`` from its metadata.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ipfs_accelerate_groq import wire
from ipfs_accelerate_groq.guide import GroqParameterWarning
from ipfs_accelerate_py.resilience import clock as clock_module
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing.guide import python_blocks, run_block
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply

GUIDE_KEY = "Bearer your-key-here"
STREAMED = ["Quantum ", "computing ", "uses qubits."]


def _chat(request: RecordedRequest) -> Reply:
    body = request.json()
    if request.headers.get("authorization") != GUIDE_KEY:
        return wire.error_reply(401)
    if body.get("stream"):
        return Reply.sse(wire.stream_events(STREAMED, model=body["model"]), split=7)
    if body.get("response_format") == {"type": "json_object"}:
        return wire.reply('{"planets": ["Mercury", "Venus", "Earth"]}', model=body["model"])
    if body["model"] == "llama3-70b-8192":
        return wire.reply("- Qubits\n- Superposition", model=body["model"], completion_tokens=40)
    return wire.reply("I'm doing well, thank you!", model=body["model"])


@pytest.fixture
def guide_env(protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch) -> ProtocolServer:
    """The guide's server: chat (plain, JSON mode, streamed) and the model listing."""
    monkeypatch.setenv("GROQ_BASE_URL", protocol_server.base_url)
    monkeypatch.setenv("IPFS_ACCELERATE_NO_DOTENV", "1")
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    fake = FakeClock()
    monkeypatch.setattr(clock_module, "SYSTEM_CLOCK", fake)  # retries take no real time
    protocol_server.on("POST", wire.CHAT, default=_chat)
    protocol_server.on("GET", wire.MODELS, default=Reply.json(wire.LISTING))
    return protocol_server


def _block(heading: str) -> Any:
    [block] = python_blocks(heading)
    return block


def _run_using_groq(namespace: dict[str, Any]) -> str:
    with pytest.warns(GroqParameterWarning, match="top_k=40 was not sent"):
        return run_block(_block("Using Groq API"), namespace)


def test_using_groq_api_block(guide_env: ProtocolServer) -> None:
    out = _run_using_groq({})
    lines = out.splitlines()
    assert lines[0] == "I'm doing well, thank you!"
    assert lines[1:3] == ["- Qubits", "- Superposition"]
    assert lines[3].startswith("Usage statistics: {'prompt_tokens': 18, 'completion_tokens': 40")
    assert "'queue_time': 0.037493756" in lines[3]
    assert lines[4] == '{"planets": ["Mercury", "Venus", "Earth"]}'
    assert "Streaming response: " + "".join(STREAMED) in out
    assert out.rstrip().endswith("Done!")

    plain, advanced, json_mode, streamed = (r.json() for r in guide_env.requests)
    assert plain == {
        "model": "llama3-8b-8192",
        "messages": [{"role": "user", "content": "Hello, how are you?"}],
    }
    assert advanced == {
        "model": "llama3-70b-8192",
        "messages": [
            {
                "role": "system",
                "content": "You are a concise assistant who always responds in bullet points",
            },
            {"role": "user", "content": "Explain quantum computing"},
        ],
        "temperature": 0.3,
        "max_tokens": 500,
        "top_p": 0.9,
        "frequency_penalty": 0.5,
        "presence_penalty": 0.2,
    }  # top_k is not a Groq parameter: not sent, with a warning
    assert json_mode["response_format"] == {"type": "json_object"}
    assert streamed["stream"] is True and streamed["messages"] == advanced["messages"]
    assert all(r.headers["authorization"] == GUIDE_KEY for r in guide_env.requests)


def test_models_and_capabilities_block(guide_env: ProtocolServer) -> None:
    out = run_block(_block("Groq API Models and Capabilities"))
    lines = out.splitlines()
    assert lines[:4] == [
        "Total models available: 8",
        "Chat models available: 6",
        "Vision models available: 1",
        "Audio models available: 2",
    ]
    assert lines[4] == "Is mistral-saba-24b compatible with chat: True"
    assert lines[5:9] == [
        "Model: llama-3.1-8b-instant",
        "  Description: Meta Llama 3.1 8B: fast, low-cost general chat with a 128K context.",
        "  Context window: 131072",
        "  Category: chat",
    ]
    assert len(lines) == 5 + 3 * 4
    assert [r.path for r in guide_env.requests] == [wire.MODELS] * 4


def test_usage_tracking_block_after_using_groq(guide_env: ProtocolServer) -> None:
    namespace: dict[str, Any] = {}
    _run_using_groq(namespace)  # the usage block reuses its `messages`
    out = run_block(_block("1. Usage Tracking and Statistics"), namespace)
    # a fresh client: one chat with llama3-8b-8192, 18 + 12 tokens at $0.05/$0.08 per M
    assert out.splitlines() == [
        "Total tokens used: 30",
        "Estimated cost: $2e-06",  # 1.86e-06 rounded to 6 places by core
        "Total requests: 1",
    ]
    assert namespace["groq_api"].get_usage_stats()["total_requests"] == 0  # reset


def test_error_handling_block_success(guide_env: ProtocolServer) -> None:
    assert run_block(_block("Error Handling")) == "I'm doing well, thank you!\n"


def test_error_handling_block_invalid_key(guide_env: ProtocolServer) -> None:
    guide_env.on("POST", wire.CHAT, default=wire.error_reply(401))
    assert run_block(_block("Error Handling")) == "API key is invalid or expired\n"
    assert len(guide_env.requests) == 1


def test_error_handling_block_rate_limited(guide_env: ProtocolServer) -> None:
    guide_env.on("POST", wire.CHAT, default=wire.rate_limited("1"))
    out = run_block(_block("Error Handling"))
    assert out == "Rate limit exceeded, please try again later\n"
    assert len(guide_env.requests) == 6  # the first try and max_retries=5 retries


def test_error_handling_block_server_error(guide_env: ProtocolServer) -> None:
    guide_env.on("POST", wire.CHAT, default=wire.error_reply(400))
    out = run_block(_block("Error Handling"))
    assert out.startswith("API error: Invalid request from groq (HTTP 400): property 'top_k'")


def test_endpoint_handler_as_in_the_guide(
    guide_env: ProtocolServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ipfs_accelerate_py.api_backends import groq

    monkeypatch.setenv("GROQ_API_KEY", "your-key-here")
    groq_client = groq()
    groq_handler = groq_client.create_groq_endpoint_handler()
    assert asyncio.run(groq_handler("Hello"))["text"] == "I'm doing well, thank you!"
    assert guide_env.requests[-1].json()["model"] == "llama-3.3-70b-versatile"  # the default


def test_guide_stream_chat_chunks(guide_env: ProtocolServer) -> None:
    from ipfs_accelerate_py.api_backends import groq

    client = groq(metadata={"groq_api_key": "your-key-here"})
    chunks = list(client.stream_chat("llama-3.1-8b-instant", [{"role": "user", "content": "Hi"}]))
    assert [c["text"] for c in chunks] == [*STREAMED, ""]
    assert [c["done"] for c in chunks] == [False] * len(STREAMED) + [True]
    assert chunks[-1]["usage"]["completion_tokens"] == len(STREAMED)
    assert client.get_usage_stats()["completion_tokens"] == len(STREAMED)
    client.reset_usage_stats()
    assert client.get_usage_stats()["total_tokens"] == 0


def test_guide_top_k_warns_only_when_given(guide_env: ProtocolServer) -> None:
    import warnings

    from ipfs_accelerate_py.api_backends import groq

    client = groq(metadata={"groq_api_key": "your-key-here"})
    hi = [{"role": "user", "content": "Hi"}]
    with warnings.catch_warnings():
        warnings.simplefilter("error", GroqParameterWarning)  # not a stray ResourceWarning
        client.chat("llama3-8b-8192", hi, temperature=0.5)
        list(client.stream_chat("llama3-8b-8192", hi, top_p=0.5))
    with pytest.warns(GroqParameterWarning):
        list(client.stream_chat("llama3-8b-8192", hi, top_k=5))
    bodies = [r.json() for r in guide_env.requests]
    assert [b.get("temperature") for b in bodies] == [0.5, None, None]
    assert [b.get("top_p") for b in bodies] == [None, 0.5, None]
    assert not any("top_k" in b for b in bodies)
