"""The official ``openai`` SDK (what vLLM, llama.cpp and OVMS document as their client) against
the same scripted server: our picture of the protocol checked by a client nobody here wrote."""

from __future__ import annotations

import pytest

from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

openai = pytest.importorskip("openai")
MESSAGES = [{"role": "user", "content": "Hello"}]


@pytest.mark.parametrize(("name", "prefix"), [("llvm", "/v1"), ("ovms", "/v3")])
def test_sdk_and_plugin_agree(
    make, protocol_server: ProtocolServer, name: str, prefix: str
) -> None:
    backend: Backend = make(name, "/v1" if name == "llvm" else "")
    sdk = openai.OpenAI(base_url=protocol_server.url(prefix), api_key="unused", max_retries=0)
    chat = f"{prefix}/chat/completions"
    reply = Reply.json(wire.chat_completion("Hi there", model="llama3"))
    protocol_server.on("POST", chat, reply, reply)
    ours = backend.chat(messages=MESSAGES, model="llama3", max_tokens=5)
    theirs = sdk.chat.completions.create(model="llama3", messages=MESSAGES, max_tokens=5)
    a, b = (r.json() for r in protocol_server.requests_to(chat))
    assert a == b
    assert ours.text == theirs.choices[0].message.content
    assert ours.usage is not None and theirs.usage is not None
    assert ours.usage.total_tokens == theirs.usage.total_tokens

    events = wire.chat_stream(["Hé", "llo"], model="llama3")
    protocol_server.on("POST", chat, Reply.sse(events, split=4), Reply.sse(events, split=4))
    text = "".join(c.text for c in backend.stream(messages=MESSAGES, model="llama3"))
    sdk_text = "".join(
        (c.choices[0].delta.content or "") if c.choices else ""
        for c in sdk.chat.completions.create(
            model="llama3", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert text == sdk_text == "Héllo"
    a, b = (r.json() for r in protocol_server.requests_to(chat)[2:])
    assert a == b

    embeddings = f"{prefix}/embeddings"
    protocol_server.on("POST", embeddings, default=wire.embeddings_reply([[0.25, -1.5]]))
    ours_vec = backend.embed(input=["x"], model="gte").embedding
    theirs_vec = sdk.embeddings.create(input=["x"], model="gte").data[0].embedding
    assert ours_vec == theirs_vec == [0.25, -1.5]
    a, b = (r.json() for r in protocol_server.requests_to(embeddings))
    assert a == b and a["encoding_format"] == "base64"  # neither named one: both ask base64
    sdk.close()
