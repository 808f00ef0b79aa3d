"""The quickstart guide's Claude code, run as written against the loopback server."""

from __future__ import annotations

import asyncio

import pytest

from ipfs_accelerate_claude import testing_wire as wire
from ipfs_accelerate_py.testing.guide import python_blocks, run_block
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply

MESSAGES = "/v1/messages"


def _reply(request: RecordedRequest) -> Reply:
    """A streamed or plain message, as the request asks."""
    if request.json().get("stream"):
        return Reply.sse(wire.stream_events(["I'm ", "doing ", "well."]), split=9)
    return Reply.json(wire.message("I'm well, thanks!"))


@pytest.fixture
def guide_env(protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch) -> ProtocolServer:
    """Credentials and the base URL through the environment, as a user would set them."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", protocol_server.url("/"))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env-key-000000000000")
    protocol_server.on("POST", MESSAGES, default=_reply)
    return protocol_server


def test_using_claude_api_block_runs_as_written(guide_env: ProtocolServer) -> None:
    [block] = python_blocks("Using Claude API")
    printed = run_block(block)
    assert printed == "I'm well, thanks!\nI'm doing well.\n"
    plain, streamed = guide_env.requests
    expected = {
        "model": "claude-sonnet-5-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hello, how are you?"}],
    }
    assert plain.json() == expected
    assert streamed.json() == {**expected, "stream": True}
    for req in (plain, streamed):
        assert req.headers["x-api-key"] == "your-key-here"  # the block's metadata wins
        assert req.headers["anthropic-version"] == "2023-06-01"


def test_guide_class_methods(guide_env: ProtocolServer) -> None:
    from ipfs_accelerate_py.api_backends import claude

    client = claude()  # the key from ANTHROPIC_API_KEY
    result = client.chat(
        [{"role": "user", "content": "Hi"}],
        model="claude-opus-4-1",
        system="Be brief",
        temperature=0.3,
        max_tokens=20,
    )
    assert result["text"] == "I'm well, thanks!"
    chunks = list(client.stream_chat([{"role": "user", "content": "Hi"}], model="claude-haiku-4-5"))
    assert "".join(c["text"] for c in chunks) == "I'm doing well."
    assert [c["done"] for c in chunks] == [False] * (len(chunks) - 1) + [True]
    first, second = (r.json() for r in guide_env.requests)
    assert first == {
        "model": "claude-opus-4-1",
        "max_tokens": 20,
        "system": "Be brief",
        "messages": [{"role": "user", "content": "Hi"}],
        "temperature": 0.3,
    }
    assert second["model"] == "claude-haiku-4-5" and second["stream"] is True
    assert guide_env.requests[0].headers["x-api-key"] == "sk-ant-env-key-000000000000"
    client.max_retries = 3  # a resilience setting of the backend, as the guide sets it
    assert client.backend.max_retries == 3
    client.close()


def test_create_claude_endpoint_handler(guide_env: ProtocolServer) -> None:
    from ipfs_accelerate_py.api_backends import claude

    # the lines of the guide's "Creating Endpoint Handlers" block that concern Claude
    claude_client = claude()
    claude_handler = claude_client.create_claude_endpoint_handler()

    async def process_prompt(prompt: str, handler: object) -> str:
        result = await handler(prompt)  # type: ignore[operator]
        return result["text"]  # type: ignore[no-any-return]

    assert asyncio.run(process_prompt("Hello", claude_handler)) == "I'm well, thanks!"
    assert guide_env.requests[0].json()["messages"] == [{"role": "user", "content": "Hello"}]
    claude_client.close()


def test_handlers_block_names_our_method() -> None:
    [block] = python_blocks("Creating Endpoint Handlers")
    assert "claude_client.create_claude_endpoint_handler()" in block.code
