"""The quickstart guide's ``ollama`` class, and its "Using Ollama API" block run as written."""

from __future__ import annotations

import asyncio

import ollama_wire as wire
import pytest

from ipfs_accelerate_ollama.guide import ollama
from ipfs_accelerate_py import errors
from ipfs_accelerate_py.api_backends import ollama as ollama_class
from ipfs_accelerate_py.testing.guide import python_blocks, run_block
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply

GUIDE_URL = "http://localhost:11434/api"


def _chat(request: RecordedRequest) -> Reply:
    if request.json()["stream"]:
        return Reply.ndjson(wire.chat_stream(["I'm ", "fine", "!"]), split=7)
    return Reply.json(wire.chat("I'm fine, thanks!"))


def test_guide_block_runs(protocol_server: ProtocolServer) -> None:
    [block] = python_blocks("Using Ollama API")
    assert GUIDE_URL in block.code
    # The block passes metadata={"ollama_api_url": "http://localhost:11434/api"}; metadata
    # beats the environment, so no variable can point it elsewhere. It runs as written
    # except for that one URL, replaced by the loopback server's.
    code = block.code.replace(GUIDE_URL, protocol_server.url("/api"))
    assert code.count(protocol_server.base_url) == 1
    protocol_server.on("GET", "/api/tags", Reply.json(wire.tags(["llama3:latest", "mistral"])))
    protocol_server.on("POST", "/api/chat", default=_chat)
    printed = run_block(type(block)(block.language, block.headings, code, block.line))
    assert printed == "Available models: 2 found\nI'm fine, thanks!\nI'm fine!\n"
    chat, stream = protocol_server.requests_to("/api/chat")
    assert chat.json() == {
        "model": "llama3",
        "messages": [{"role": "user", "content": "Hello, how are you?"}],
        "stream": False,
    }
    assert stream.json()["stream"] is True
    assert [r.path for r in protocol_server.requests] == ["/api/tags", "/api/chat", "/api/chat"]


def test_class_is_the_guides(protocol_server: ProtocolServer) -> None:
    assert ollama_class is ollama


def test_environment_configures_the_class(
    protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_API_URL", protocol_server.url("/api"))
    monkeypatch.setenv("OLLAMA_MODEL", "llama3")
    protocol_server.on("POST", "/api/chat", default=_chat)
    client = ollama()
    assert client.chat(None, [{"role": "user", "content": "Hi"}])["text"] == "I'm fine, thanks!"
    chunks = list(client.stream_chat(prompt="Hi", system="Be kind"))
    assert "".join(c["text"] for c in chunks) == "I'm fine!"
    assert chunks[-1]["done"] is True
    assert protocol_server.requests[1].json()["messages"] == [
        {"role": "system", "content": "Be kind"},
        {"role": "user", "content": "Hi"},
    ]
    assert {r.json()["model"] for r in protocol_server.requests} == {"llama3"}
    client.max_retries = 4  # resilience settings are the backend's
    assert client.backend.max_retries == 4


def test_endpoint_handler(protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", protocol_server.base_url)
    monkeypatch.setenv("OLLAMA_MODEL", "llama3")
    protocol_server.on("POST", "/api/chat", default=_chat)
    handler = ollama().create_ollama_endpoint_handler()

    async def process_prompt(prompt: str) -> str:  # as the guide's handler section does
        result = await handler(prompt)
        return result["text"]  # type: ignore[no-any-return]

    assert asyncio.run(process_prompt("Hi")) == "I'm fine, thanks!"
    asyncio.run(handler("Hi", model="mistral", temperature=0.1))
    second = protocol_server.requests[1].json()
    assert (second["model"], second["options"]) == ("mistral", {"temperature": 0.1})


def test_generate_stream_generate_and_show(protocol_server: ProtocolServer) -> None:
    client = ollama(metadata={"ollama_api_url": protocol_server.url("/api")})
    protocol_server.on(
        "POST",
        "/api/generate",
        Reply.json(wire.generate("Blue.")),
        Reply.ndjson(wire.generate_stream(["Bl", "ue."]), split=5),
    )
    show = {"details": {"family": "llama"}, "capabilities": ["completion", "tools"]}
    protocol_server.on("POST", "/api/show", Reply.json(show))
    assert client.generate("llama3", "Why is the sky blue?")["text"] == "Blue."
    chunks = list(client.stream_generate("llama3", "Why?", max_tokens=5, request_id="r1"))
    assert [c["text"] for c in chunks] == ["Bl", "ue.", ""]
    assert chunks[-1]["done"] and chunks[-1].usage.completion_tokens == 282
    assert client.show("llama3", verbose=True)["capabilities"] == ["completion", "tools"]
    plain, streamed = protocol_server.requests_to("/api/generate")
    assert plain.json()["stream"] is False
    assert streamed.json() == {
        "model": "llama3",
        "prompt": "Why?",
        "options": {"num_predict": 5},
        "stream": True,
    }
    assert protocol_server.requests_to("/api/show")[0].json() == {
        "model": "llama3",
        "verbose": True,
    }
    assert client.get_usage_stats()["total_requests"] == 3


def test_missing_model_says_to_pull_it(protocol_server: ProtocolServer) -> None:
    client = ollama(metadata={"ollama_api_url": protocol_server.url("/api")})
    protocol_server.on("POST", "/api/chat", default=wire.model_missing("llama3"))
    protocol_server.on("POST", "/api/show", default=wire.model_missing("llama3"))
    with pytest.raises(errors.NotFoundError) as info:
        client.chat("llama3", [{"role": "user", "content": "Hi"}])
    assert "run `ollama pull llama3`" in str(info.value)
    assert 'model "llama3" not found' in str(info.value)
    with pytest.raises(errors.NotFoundError, match="ollama pull llama3"):
        list(client.stream_chat("llama3", [{"role": "user", "content": "Hi"}]))
    with pytest.raises(errors.NotFoundError, match="ollama pull llama3"):
        client.show("llama3")


def test_server_not_running_names_the_url() -> None:
    with ProtocolServer() as server:
        url = server.url("/api")
    client = ollama(metadata={"ollama_api_url": url}, resources={})
    client.max_retries = 0
    with pytest.raises(errors.ConnectionError) as info:
        client.list_models()
    assert info.value.message.startswith(f"could not connect to {url} (ConnectError: ")
    assert info.value.message.endswith(
        "is the server running and the base URL right? "
        "(is Ollama running? start it with `ollama serve`)"
    )
    with pytest.raises(errors.ConnectionError, match="ollama serve"):
        list(client.stream_chat("llama3", [{"role": "user", "content": "Hi"}]))
    handler = client.create_ollama_endpoint_handler("llama3")
    with pytest.raises(errors.ConnectionError, match="ollama serve"):
        asyncio.run(handler("Hi"))


def test_stream_closed_early_frees_the_slot(protocol_server: ProtocolServer) -> None:
    client = ollama(metadata={"ollama_api_url": protocol_server.url("/api")})
    client.max_concurrent_requests = 1
    protocol_server.on("POST", "/api/chat", default=_chat)
    with client.stream_chat("llama3", [{"role": "user", "content": "Hi"}]) as stream:
        next(stream)
    assert client.chat("llama3", [{"role": "user", "content": "Hi"}], queue_timeout=2)["text"]


def test_plugin_calls_need_a_model(protocol_server: ProtocolServer) -> None:
    client = ollama(metadata={"ollama_api_url": protocol_server.url("/api")})
    for call in (
        lambda: client.show(),
        lambda: client.stream_generate(None, "Hi"),
        lambda: client.embed(None, "Hi"),
    ):
        with pytest.raises(errors.InvalidArgumentError, match="OLLAMA_MODEL"):
            call()
    assert protocol_server.requests == []
