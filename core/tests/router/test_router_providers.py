"""Cross-provider fallback with the real plugins: a Claude request answered by OpenAI or
Gemini keeps its system prompt, images, tools, parameters and structured-output contract."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

pytest.importorskip("ipfs_accelerate_claude")
pytest.importorskip("ipfs_accelerate_openai")
pytest.importorskip("ipfs_accelerate_gemini")

from ipfs_accelerate_claude import testing_wire as claude_wire
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.router import Router
from ipfs_accelerate_py.testing import openai_wire
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

MESSAGES = "/v1/messages"
CHAT = "/v1/chat/completions"
GEMINI = "/v1beta/models/gemini-2.5-flash:generateContent"
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="  # noqa: E501
TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "rain": {"type": "boolean"}},
    "required": ["city", "rain"],
}
FORMAT = {"type": "json_schema", "json_schema": {"name": "forecast", "schema": SCHEMA}}


@pytest.fixture(autouse=True)
def _no_ambient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPFS_ACCELERATE_NO_DOTENV", "1")
    for name in (
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "ANTHROPIC_BASE_URL",
        "OPENAI_BASE_URL",
        "GEMINI_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def three() -> Iterator[tuple[ProtocolServer, ProtocolServer, ProtocolServer]]:
    servers = (ProtocolServer().start(), ProtocolServer().start(), ProtocolServer().start())
    yield servers
    for s in servers:
        s.stop()


@pytest.fixture
def router(three, clock: FakeClock) -> Iterator[Router]:
    claude, openai, gemini = three
    with Router(clock=clock, fallbacks={"smart": ["gpt", "flash"]}) as r:
        r.add_deployment(
            "smart",
            "claude",
            "claude-sonnet-4-5",
            api_key="sk-ant-test-1",
            base_url=claude.url("/"),
            structured_output="tools",
            deployment_id="claude",
        )
        r.add_deployment(
            "gpt",
            "openai",
            "gpt-4o",
            api_key="sk-openai-test-1",
            base_url=openai.url("/v1"),
            deployment_id="openai",
        )
        r.add_deployment(
            "flash",
            "gemini",
            "gemini-2.5-flash",
            api_key="gemini-test-key",
            base_url=gemini.url("/"),
            deployment_id="gemini",
        )
        yield r


def test_claude_request_falls_back_to_openai_intact(router: Router, three) -> None:
    claude, openai, _ = three
    claude.on("POST", MESSAGES, default=claude_wire.error_reply(529))
    openai.on("POST", CHAT, default=openai_wire.chat_reply("It is sunny."))
    parts = [
        {"type": "text", "text": "What is in this picture, and the weather in Paris?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
    ]
    reply = router.chat(
        model="smart",
        system="Be terse.",
        messages=[{"role": "user", "content": parts}],
        tools=[TOOL],
        temperature=0.2,
        max_tokens=100,
    )
    assert reply.text == "It is sunny."
    assert [(a.backend, a.error) for a in reply.attempts] == [
        ("claude", "OverloadedError"),
        ("openai", None),
    ]
    sent_claude = claude.requests_to(MESSAGES)[0].json()
    assert sent_claude["system"] == "Be terse."
    assert sent_claude["messages"][0]["content"][1]["type"] == "image"
    assert (
        sent_claude["tools"][0]["name"] == "weather" and "input_schema" in sent_claude["tools"][0]
    )
    assert sent_claude["temperature"] == 0.2 and sent_claude["max_tokens"] == 100
    sent_openai = openai.requests_to(CHAT)[0].json()
    assert sent_openai["model"] == "gpt-4o"
    assert sent_openai["messages"][0] == {"role": "system", "content": "Be terse."}
    assert sent_openai["messages"][1]["content"] == parts
    assert sent_openai["tools"] == [TOOL]
    assert sent_openai["temperature"] == 0.2 and sent_openai["max_tokens"] == 100


def test_structured_contract_holds_across_claude_tools_and_gemini(router: Router, three) -> None:
    claude, _, gemini = three
    good = {"city": "Paris", "rain": False}
    claude.on(
        "POST",
        MESSAGES,
        Reply.json(
            claude_wire.message(
                None, tool_uses=[("tu_1", "forecast", {"city": "Paris"})], stop_reason="tool_use"
            )
        ),
        default=Reply.json(
            claude_wire.message(
                None, tool_uses=[("tu_2", "forecast", good)], stop_reason="tool_use"
            )
        ),
    )
    reply = router.chat(
        model="smart", messages=[{"role": "user", "content": "Paris?"}], response_format=FORMAT
    )
    assert reply.parsed == good and reply.deployment == "claude"
    first, second = (r.json() for r in claude.requests_to(MESSAGES))
    assert "response_format" not in first
    assert first["tools"][0]["name"] == "forecast" and first["tools"][0]["input_schema"] == SCHEMA
    assert first["tool_choice"]["type"] == "tool" and first["tool_choice"]["name"] == "forecast"
    assert "missing required property 'rain'" in json.dumps(second["messages"][-1])

    # Claude now fails outright: Gemini answers through responseJsonSchema, same contract
    claude.on("POST", MESSAGES, default=claude_wire.error_reply(529))
    gemini_reply = {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": json.dumps(good)}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 6, "totalTokenCount": 14},
        "modelVersion": "gemini-2.5-flash",
    }
    gemini.on("POST", GEMINI, default=Reply.json(gemini_reply))
    router.cooldown = 0.0
    # the openai deployment is not scripted: its 500 is one more fallback on the way
    reply = router.chat(
        model="smart", messages=[{"role": "user", "content": "Paris?"}], response_format=FORMAT
    )
    assert reply.parsed == good and reply.deployment == "gemini"
    assert [a.backend for a in reply.attempts] == ["claude", "openai", "gemini"]
    config = gemini.requests_to(GEMINI)[0].json()["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == SCHEMA


def test_claude_stream_falls_back_to_openai(router: Router, three) -> None:
    claude, openai, _ = three
    claude.on("POST", MESSAGES, default=claude_wire.error_reply(529))
    openai.on("POST", CHAT, default=Reply.sse(openai_wire.chat_stream(["Bon", "jour"])))
    with router.stream(
        model="smart", messages=[{"role": "user", "content": "Hi"}], max_tokens=50
    ) as stream:
        text = "".join(c.text for c in stream)
    assert text == "Bonjour"
    assert [(a.backend, a.error) for a in stream.attempts] == [
        ("claude", "OverloadedError"),
        ("openai", None),
    ]
    assert openai.requests_to(CHAT)[0].json()["stream"] is True
