"""The Together plugin against a loopback server speaking Together's API (core's
``protocol_server`` fixture), configured as a user would: environment variables."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ipfs_accelerate_py import errors, get_backend
from ipfs_accelerate_py.api_backends import guide_class
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing import openai_wire
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply
from ipfs_accelerate_together.testing_wire import MODEL, models_listing

KEY = "tgp_v1_test0123456789SECRETabcd"
CHAT = "/v1/chat/completions"


@pytest.fixture
def env(protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch) -> ProtocolServer:
    """TOGETHER_API_KEY and TOGETHER_BASE_URL pointing at the loopback server."""
    monkeypatch.setenv("TOGETHER_API_KEY", KEY)
    monkeypatch.setenv("TOGETHER_BASE_URL", protocol_server.url("/v1"))
    monkeypatch.setenv("IPFS_ACCELERATE_NO_DOTENV", "1")
    monkeypatch.delenv("TOGETHER_MODEL", raising=False)
    return protocol_server


def _chat(request: RecordedRequest) -> Reply:
    if request.json().get("stream"):
        return Reply.sse(openai_wire.chat_stream(["To", "gether"], model=MODEL), split=11)
    return openai_wire.chat_reply("Hello!", model=MODEL)


def test_chat_stream_and_embed(env: ProtocolServer) -> None:
    env.on("POST", CHAT, default=_chat)
    env.on("POST", "/v1/embeddings", Reply.json(openai_wire.embeddings([[0.5, 0.25]])))
    with get_backend("together") as backend:
        reply = backend.chat(messages=[{"role": "user", "content": "Hi"}], temperature=0.2)
        assert reply.text == "Hello!" and reply.usage is not None
        chunks = list(backend.stream(messages=[{"role": "user", "content": "Hi"}]))
        assert "".join(c.text for c in chunks) == "Together" and chunks[-1].done
        vector = backend.embed(input="x", model="BAAI/bge-base-en-v1.5").embedding
        assert vector == [0.5, 0.25]
    plain, streamed, embedded = env.requests
    assert plain.json() == {
        "model": MODEL,  # the default model
        "messages": [{"role": "user", "content": "Hi"}],
        "temperature": 0.2,
    }
    assert streamed.json()["stream"] is True
    assert embedded.path == "/v1/embeddings"
    assert {r.headers["authorization"] for r in env.requests} == {f"Bearer {KEY}"}


def test_models_listing_is_togethers_own_shape(env: ProtocolServer) -> None:
    env.on("GET", "/v1/models", Reply.json(models_listing()))
    models = get_backend("together").list_models()
    assert [(m.id, m.category, m.context_window) for m in models] == [
        (MODEL, "chat", 131072),
        ("mistralai/Mixtral-8x7B-v0.1", "chat", 32768),
        ("BAAI/bge-base-en-v1.5", "embedding", 512),
        ("black-forest-labs/FLUX.1-schnell", "image", 0),
    ]
    env.on("GET", "/v1/models", Reply.json({"unexpected": True}))
    with pytest.raises(errors.MalformedResponseError, match="not a list"):
        get_backend("together").list_models()


def test_errors_and_retries(env: ProtocolServer) -> None:
    clock = FakeClock()
    env.on(
        "POST",
        CHAT,
        openai_wire.error_reply(429, headers={"retry-after": "3"}),
        openai_wire.error_reply(503),
        openai_wire.chat_reply("after two failures", model=MODEL),
        openai_wire.error_reply(401),
    )
    backend = get_backend("together", clock=clock)
    hi = [{"role": "user", "content": "Hi"}]
    assert backend.chat(messages=hi).text == "after two failures"
    assert clock.sleeps[0] == 3.0  # Retry-After obeyed
    with pytest.raises(errors.AuthenticationError) as info:
        backend.chat(messages=hi)
    assert KEY not in str(info.value)
    assert len(env.requests) == 4  # the 401 was not retried


def test_async_and_the_guide_style_handler(env: ProtocolServer) -> None:
    env.on("POST", CHAT, default=_chat)
    client = guide_class("together")()
    handler = client.create_together_endpoint_handler()

    async def main() -> list[str]:
        results = await asyncio.gather(*(handler(f"q{i}") for i in range(4)))
        direct = await client.backend.achat(messages=[{"role": "user", "content": "x"}])
        return [r["text"] for r in results] + [direct.text]

    assert asyncio.run(main()) == ["Hello!"] * 5
    assert len(env.requests) == 5
    assert client.chat(None, [{"role": "user", "content": "y"}])["text"] == "Hello!"


def test_demo_scenario_passes() -> None:
    import io

    from ipfs_accelerate_py.demo import run_demos

    steps = run_demos(["together"], out=io.StringIO())
    assert [s.name for s in steps] == ["chat (after a 429)", "stream", "embed", "list models"]
    assert all(s.ok for s in steps), steps


def test_command_line_lists_and_uses_the_backend(env: ProtocolServer) -> None:
    env.on("POST", CHAT, default=_chat)
    script = Path(sys.executable).with_name("ipfs-accelerate")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "ipfs_accelerate_py.cli"]
    run_env = {**os.environ, "NO_PROXY": "127.0.0.1"}
    listed = subprocess.run(
        [*base, "backends", "together"], capture_output=True, text=True, env=run_env, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    row = listed.stdout.splitlines()[1].split()
    assert row[:3] == ["together", "0.1.0", "TOGETHER_API_KEY"] and KEY not in listed.stdout
    chatted = subprocess.run(
        [*base, "chat", "-m", f"together:{MODEL}", "Hi"],
        capture_output=True,
        text=True,
        env=run_env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert (chatted.returncode, chatted.stdout) == (0, "Together\n")
