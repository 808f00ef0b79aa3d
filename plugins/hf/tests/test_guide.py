"""The quickstart guide's Hugging Face blocks, run as written against the loopback server."""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import hf_wire as wire
import pytest

from ipfs_accelerate_py.testing import openai_wire
from ipfs_accelerate_py.testing.guide import CodeBlock, python_blocks, run_block
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply

needs_numpy = pytest.mark.skipif(
    importlib.util.find_spec("numpy") is None,
    reason="calculate_similarity needs numpy, which this plugin does not install",
)


GUIDE_MODEL = "mistralai/Mistral-7B-Instruct-v0.2"


def test_tgi_block(protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch) -> None:
    [block] = python_blocks("Using Hugging Face TGI")
    monkeypatch.setenv("HF_TGI_BASE_URL", protocol_server.base_url)
    monkeypatch.setenv("HF_API_TOKEN", "hf_env_token_not_used_00")
    protocol_server.on(
        "POST", "/generate", Reply.json(wire.generated("Quantum computers use qubits."))
    )
    protocol_server.on(
        "POST",
        "/v1/chat/completions",
        Reply.json(openai_wire.chat_completion("I'm doing well, thanks!")),
    )
    out = run_block(block)
    assert out == "Quantum computers use qubits.\nI'm doing well, thanks!\n"
    generate, chat = protocol_server.requests
    assert generate.json() == {
        "inputs": "Explain the concept of quantum computing in simple terms.",
        "parameters": {"max_new_tokens": 100},
    }
    assert chat.json() == {
        "model": GUIDE_MODEL,
        "messages": [{"role": "user", "content": "Hello, how are you?"}],
    }
    # the block's metadata token wins over the environment's, as the guide's precedence says
    assert {r.headers["authorization"] for r in protocol_server.requests} == {
        "Bearer your-token-here"
    }


@needs_numpy
def test_tei_block(protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch) -> None:
    [block] = python_blocks("Using Hugging Face TEI")
    monkeypatch.setenv("HF_TEI_BASE_URL", protocol_server.base_url)
    monkeypatch.setenv("HF_API_TOKEN", "hf_env_token_not_used_00")

    def embed(request: RecordedRequest) -> Reply:
        vectors = {
            "This is a text to create an embedding from.": [0.1] * 384,
            "First sentence to embed.": [1.0, 0.0] * 192,
            "Second sentence to embed.": [1.0, 1.0] * 192,
        }
        return Reply.json([vectors[t] for t in request.json()["inputs"]])

    protocol_server.on("POST", "/embed", default=embed)
    protocol_server.on("GET", "/info", Reply.json(wire.tei_info(32)))
    out = run_block(block)
    lines = out.splitlines()
    assert lines[:2] == ["Embedding dimensionality: 384", "Generated 2 embeddings"]
    label, value = lines[2].split(": ")
    assert label == "Similarity between texts" and float(value) == pytest.approx(0.5**0.5)
    assert [r.path for r in protocol_server.requests] == ["/embed", "/info", "/embed"]
    assert protocol_server.requests[2].json() == {
        "inputs": ["First sentence to embed.", "Second sentence to embed."]
    }


def _handler_lines() -> CodeBlock:
    """The endpoint-handler block's Hugging Face lines (the block also imports backends this
    plugin does not provide)."""
    [block] = python_blocks("Creating Endpoint Handlers")
    keep = [
        line
        for line in block.code.splitlines()
        if ("hf_t" in line and "import" not in line)
        or "process_prompt" in line
        or "await" in line
        or "return" in line
    ]
    code = "from ipfs_accelerate_py.api_backends import hf_tgi, hf_tei\n" + "\n".join(keep) + "\n"
    assert "create_remote_text_generation_endpoint_handler()" in code
    assert "create_remote_text_embedding_endpoint_handler()" in code
    return CodeBlock("python", block.headings, code, block.line)


def test_endpoint_handler_lines(
    protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TGI_BASE_URL", protocol_server.base_url)
    monkeypatch.setenv("HF_TEI_BASE_URL", protocol_server.base_url)
    protocol_server.on("POST", "/generate", Reply.json(wire.generated("generated!")))
    protocol_server.on("POST", "/embed", Reply.json([[0.25, 0.5]]))
    scope: dict[str, Any] = {}
    run_block(_handler_lines(), scope)
    text = asyncio.run(scope["process_prompt"]("Hi", scope["hf_tgi_handler"]))
    assert text == "generated!"
    result = asyncio.run(scope["hf_tei_handler"]("Hi"))
    assert result["embedding"] == [0.25, 0.5]
    assert [r.path for r in protocol_server.requests] == ["/generate", "/embed"]
    assert "authorization" not in protocol_server.requests[0].headers
