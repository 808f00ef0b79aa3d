"""The guide's "Creating Endpoint Handlers" block with every plugin installed, and the branches
of its "Error Handling" block, run as written against the loopback servers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from guide_world import (
    CLAUDE_TEXT,
    GEMINI_TEXT,
    GROQ_TEXT,
    OLLAMA_TEXT,
    OPENAI_TEXT,
    TGI_TEXT,
    GuideWorld,
)

from ipfs_accelerate_groq import wire as groq_wire
from ipfs_accelerate_py.resilience import clock as clock_module
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing import openai_wire
from ipfs_accelerate_py.testing.guide import python_blocks, run_block
from ipfs_accelerate_py.testing.server import Reply
from ipfs_accelerate_py.testing.waiting import await_until

HANDLERS = {
    "openai_handler": ("openai", OPENAI_TEXT),
    "claude_handler": ("claude", CLAUDE_TEXT),
    "groq_handler": ("groq", GROQ_TEXT),
    "ollama_handler": ("ollama", OLLAMA_TEXT),
    "hf_tgi_handler": ("tgi", TGI_TEXT),
    "hf_tei_handler": ("tei", None),  # an embedding handler: "text" is the text embedded
    "gemini_handler": ("gemini", GEMINI_TEXT),
}


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[GuideWorld]:
    """Every provider's loopback server, with the environment pointing at them."""
    world = GuideWorld().start(monkeypatch)
    yield world
    world.stop()


def _block(heading: str) -> Any:
    [block] = python_blocks(heading)
    return block


def _handlers_block(world: GuideWorld) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    assert run_block(_block("Creating Endpoint Handlers"), namespace) == ""
    return namespace


def test_every_handler_through_process_prompt(world: GuideWorld) -> None:
    ns = _handlers_block(world)
    process_prompt = ns["process_prompt"]

    async def everyone() -> list[str]:
        return await asyncio.gather(*(process_prompt("Hello", ns[name]) for name in HANDLERS))

    texts = dict(zip(HANDLERS, asyncio.run(everyone()), strict=True))
    for name, (_, expected) in HANDLERS.items():
        assert texts[name] == (expected if expected is not None else "Hello"), name
    for server in world.servers.values():
        assert len(server.requests) == 1, server  # one request each, nothing retried
    assert world.openai.requests[0].json()["model"] == "gpt-3.5-turbo"  # the block's model
    assert world.tei.requests[0].json() == {"inputs": ["Hello"]}
    assert world.unexpected() == {}


def test_embedding_handler_result(world: GuideWorld) -> None:
    ns = _handlers_block(world)
    result = asyncio.run(ns["hf_tei_handler"]("First sentence"))
    assert result["text"] == "First sentence"
    assert result["embedding"] == [1.0, 0.0] * 192 and result["embeddings"] == [result["embedding"]]


def test_handlers_run_concurrently_on_one_loop(world: GuideWorld) -> None:
    """Many calls of several handlers at once on one event loop: the requests overlap at the
    servers (each backend's queue admits up to 5 at a time), and every caller gets its reply."""
    ns = _handlers_block(world)
    release = threading.Event()  # OpenAI replies are held until five requests are in flight
    held = Reply.json(openai_wire.chat_completion("slow"), wait_for=release)
    world.openai.on("POST", "/v1/chat/completions", default=held)

    async def many() -> list[str]:
        calls = [ns["process_prompt"](f"p{i}", ns["openai_handler"]) for i in range(8)]
        calls += [ns["process_prompt"](f"q{i}", ns["groq_handler"]) for i in range(3)]
        gathered = asyncio.gather(*calls)
        try:  # Groq's three calls get through while OpenAI's five are held
            await await_until(lambda: world.openai.in_flight == 5 and len(world.groq.requests) == 3)
        finally:
            release.set()
        return await gathered

    texts = asyncio.run(many())
    assert texts == ["slow"] * 8 + [GROQ_TEXT] * 3
    assert len(world.openai.requests) == 8 and len(world.groq.requests) == 3
    assert world.openai.max_in_flight == 5  # the default max_concurrent_requests
    prompts = sorted(r.json()["messages"][0]["content"] for r in world.openai.requests)
    assert prompts == [f"p{i}" for i in range(8)]


def test_error_handling_invalid_key(world: GuideWorld) -> None:
    world.groq.on("POST", groq_wire.CHAT, default=groq_wire.error_reply(401))
    assert run_block(_block("Error Handling")) == "API key is invalid or expired\n"
    assert len(world.groq.requests) == 1  # a 401 is not retried


def test_error_handling_rate_limit_beyond_the_retry_cap(world: GuideWorld) -> None:
    # a quota reset an hour away: not worth blocking the caller, the error surfaces at once
    world.groq.on("POST", groq_wire.CHAT, default=groq_wire.rate_limited("3600"))
    assert run_block(_block("Error Handling")) == "Rate limit exceeded, please try again later\n"
    assert len(world.groq.requests) == 1


def test_error_handling_rate_limit_after_retries(
    world: GuideWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeClock()
    monkeypatch.setattr(clock_module, "SYSTEM_CLOCK", fake)  # the backoff waits take no time
    world.groq.on("POST", groq_wire.CHAT, default=groq_wire.rate_limited("1"))
    assert run_block(_block("Error Handling")) == "Rate limit exceeded, please try again later\n"
    assert len(world.groq.requests) == 6  # the first try and max_retries=5 retries


def test_error_handling_rate_limit_then_success(
    world: GuideWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clock_module, "SYSTEM_CLOCK", FakeClock())
    world.groq.on(
        "POST", groq_wire.CHAT, groq_wire.rate_limited("1"), default=groq_wire.reply(GROQ_TEXT)
    )
    assert run_block(_block("Error Handling")) == f"{GROQ_TEXT}\n"
    assert len(world.groq.requests) == 2
