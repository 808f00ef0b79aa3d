"""The guide's classes ``llvm``, ``ovms`` and ``opea``, end to end, configured as a user
would (environment variables only)."""

from __future__ import annotations

import asyncio

import pytest

from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.guide import python_blocks
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

np = pytest.importorskip("numpy")
MESSAGES = [{"role": "user", "content": "Hello"}]


def test_the_guide_has_no_blocks_for_these_backends() -> None:
    # the quickstart only lists LLVM, OVMS and OPEA in its table; if it gains examples,
    # they must be run here as written
    for block in python_blocks():
        assert not any(name in block.code for name in ("llvm(", "ovms(", "opea(")), block.line


def test_llvm_class(protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from ipfs_accelerate_py.api_backends import llvm

    monkeypatch.setenv("LLVM_BASE_URL", protocol_server.url("/v1"))
    client = llvm()
    protocol_server.on(
        "POST",
        "/v1/chat/completions",
        Reply.json(wire.chat_completion("Hi!")),
        Reply.sse(wire.chat_stream(["A", "B"])),
        Reply.json(wire.chat_completion("handled")),
    )
    protocol_server.on("POST", "/v1/embeddings", Reply.json(wire.embeddings([[0.5]])))
    protocol_server.on(
        "POST",
        "/v1/completions",
        Reply.json({"choices": [{"index": 0, "text": "!", "finish_reason": "stop"}]}),
    )
    assert client.chat(None, MESSAGES, system="Be brief")["text"] == "Hi!"
    chunks = list(client.stream_chat(prompt="Hi"))
    assert "".join(c["text"] for c in chunks) == "AB" and chunks[-1]["done"] is True
    assert client.embedding(None, "text")["embedding"] == [0.5]
    assert client.generate(None, "Hello")["text"] == "!"
    handler = client.create_llvm_endpoint_handler()
    assert asyncio.run(handler("Hi"))["text"] == "handled"
    assert all("model" not in r.json() for r in protocol_server.requests)
    assert client.get_usage_stats()["estimated_cost_usd"] == 0
    client.close()


def test_ovms_class(protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from ipfs_accelerate_py.api_backends import ovms

    monkeypatch.setenv("OVMS_BASE_URL", protocol_server.url("/"))
    protocol_server.on("GET", "/v2/health/ready", Reply.raw(b"{}"))
    protocol_server.on("GET", "/v2/models/resnet/ready", Reply.raw(b"{}"))
    metadata = {
        "name": "resnet",
        "versions": ["1"],
        "platform": "OpenVINO",
        "inputs": [{"name": "0", "datatype": "FP32", "shape": [1, 2]}],
        "outputs": [{"name": "1463", "datatype": "FP32", "shape": [1, 2]}],
    }
    protocol_server.on("GET", "/v2/models/resnet", default=Reply.json(metadata))
    protocol_server.on(
        "POST",
        "/v2/models/resnet/infer",
        Reply.json(
            {
                "model_name": "resnet",
                "model_version": "1",
                "outputs": [{"name": "1463", "datatype": "FP32", "shape": [1, 2], "data": [1, 0]}],
            }
        ),
    )
    protocol_server.on(
        "POST", "/v1/models/resnet:predict", Reply.json({"predictions": [[1.0, 0.0]]})
    )
    protocol_server.on(
        "POST", "/v3/chat/completions", Reply.json(wire.chat_completion("ov", model="llama3"))
    )
    client = ovms()
    assert client.is_server_ready() and client.is_model_ready("resnet")
    assert client.get_model_metadata("resnet")["inputs"][0]["name"] == "0"
    result = client.infer("resnet", np.zeros((1, 2), dtype=np.float32))
    assert result.tolist() == [[1.0, 0.0]] and result.dtype == np.float32
    assert client.predict("resnet", [[0.0, 0.0]]) == [[1.0, 0.0]]
    assert client.chat("llama3", MESSAGES)["text"] == "ov"
    client.close()


def test_opea_class(protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from ipfs_accelerate_py.api_backends import opea

    monkeypatch.setenv("OPEA_BASE_URL", protocol_server.url("/"))
    completion = wire.chat_completion("RAG answer", model="chatqna")
    stream = b"data: b'RAG'\n\ndata: b' \\xc3\\xa9'\n\ndata: [DONE]\n\n"
    protocol_server.on(
        "POST", "/v1/chatqna", Reply.json(completion), Reply.sse(stream), Reply.json(completion)
    )
    protocol_server.on("POST", "/v1/embeddings", Reply.json(wire.embeddings([[0.1, 0.2]])))
    client = opea()
    assert client.chat(messages=MESSAGES)["text"] == "RAG answer"
    chunks = list(client.stream_chat(messages=MESSAGES))
    assert [c["text"] for c in chunks] == ["RAG", " é", ""] and chunks[-1]["done"]
    assert client.embedding(None, "doc")["embedding"] == [0.1, 0.2]
    handler = client.create_opea_endpoint_handler()
    assert asyncio.run(handler("What is OPEA?"))["text"] == "RAG answer"
    assert [r.json().get("stream") for r in protocol_server.requests_to("/v1/chatqna")] == [
        False,
        True,
        False,
    ]
    client.close()
