"""Cross-check with Hugging Face's own client: ``huggingface_hub.InferenceClient`` reads the
same scripted replies as this plugin and must see the same results.

``InferenceClient(base_url=server)`` posts every task to the server's root (TGI's and TEI's
``POST /`` compatibility routes); this plugin uses the named routes (``/generate``,
``/generate_stream``, ``/embed``). Both get the same reply bytes, and the request bodies must
agree apart from that routing (``"stream": true`` on the root route). Skipped when
``huggingface_hub`` is not installed.
"""

from __future__ import annotations

from typing import Any

import hf_wire as wire
import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.testing import openai_wire
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

hub = pytest.importorskip("huggingface_hub")

PROMPT = "Explain the concept of quantum computing in simple terms."


@pytest.fixture
def sdk(protocol_server: ProtocolServer, secret: str) -> Any:
    """Hugging Face's client aimed at the loopback server."""
    return hub.InferenceClient(base_url=protocol_server.base_url, api_key=secret)


def test_text_generation_agrees(sdk: Any, tgi_client: Any, protocol_server: ProtocolServer) -> None:
    reply = Reply.json(wire.generated("Qubits are...", wire.details(4, "eos_token")))
    protocol_server.on("POST", "/", reply)
    protocol_server.on("POST", "/generate", reply)
    theirs = sdk.text_generation(PROMPT, max_new_tokens=100, details=True)
    ours = tgi_client.generate_text(None, PROMPT, {"max_new_tokens": 100, "details": True})
    assert theirs.generated_text == ours["generated_text"] == "Qubits are..."
    assert theirs.details.finish_reason == ours.finish_reason == "eos_token"
    assert theirs.details.generated_tokens == ours.usage.completion_tokens == 4
    sent_by_sdk, sent_by_us = (r.json() for r in protocol_server.requests)
    assert sent_by_sdk == sent_by_us
    assert {r.headers["authorization"] for r in protocol_server.requests} == {
        f"Bearer {tgi_client.backend.settings.api_key}"
    }


def test_text_generation_stream_agrees(
    sdk: Any, tgi_client: Any, protocol_server: ProtocolServer
) -> None:
    events = wire.stream_events(["Qu", "bits ", "ré", "ign"], input_length=11)
    protocol_server.on("POST", "/", wire.sse(events, split=3))
    protocol_server.on("POST", "/generate_stream", wire.sse(events, split=3))
    theirs = list(sdk.text_generation(PROMPT, max_new_tokens=5, stream=True, details=True))
    ours = list(tgi_client.stream_generate(None, PROMPT, {"max_new_tokens": 5, "details": True}))
    assert [o.token.text for o in theirs if not o.token.special] == [c.text for c in ours[:-1]]
    assert theirs[-1].generated_text == "".join(c.text for c in ours) == "Qubits réign"
    assert theirs[-1].details.finish_reason == ours[-1].finish_reason == "eos_token"
    assert ours[-1].usage.prompt_tokens == 11
    sent_by_sdk, sent_by_us = (r.json() for r in protocol_server.requests)
    assert sent_by_sdk.pop("stream") is True
    assert sent_by_sdk == sent_by_us


def test_stream_error_event_agrees(
    sdk: Any, tgi_client: Any, protocol_server: ProtocolServer
) -> None:
    events = [wire.error("Input validation error: `inputs` must not be empty", "validation")]
    protocol_server.on("POST", "/", wire.sse(events))
    protocol_server.on("POST", "/generate_stream", wire.sse(events))
    with pytest.raises(hub.errors.ValidationError, match="must not be empty"):
        list(sdk.text_generation(PROMPT, stream=True))
    with pytest.raises(errors.InvalidRequestError, match="must not be empty"):
        list(tgi_client.stream_generate(None, PROMPT))


def test_chat_completion_agrees(sdk: Any, tgi_client: Any, protocol_server: ProtocolServer) -> None:
    reply = Reply.json(openai_wire.chat_completion("Hello there"))
    protocol_server.on("POST", "/v1/chat/completions", reply, reply)
    messages = [{"role": "user", "content": "Hi"}]
    theirs = sdk.chat_completion(messages, max_tokens=10)
    ours = tgi_client.chat(None, messages, max_tokens=10)
    assert theirs.choices[0].message.content == ours["text"] == "Hello there"
    sent_by_sdk, sent_by_us = (r.json() for r in protocol_server.requests)
    assert sent_by_sdk["messages"] == sent_by_us["messages"]
    assert sent_by_sdk["max_tokens"] == sent_by_us["max_tokens"] == 10


def test_feature_extraction_agrees(
    sdk: Any, tei_client: Any, protocol_server: ProtocolServer
) -> None:
    reply = Reply.json([[0.125, -0.5, 2.0]])
    protocol_server.on("POST", "/", reply)
    protocol_server.on("POST", "/embed", reply)
    theirs = sdk.feature_extraction("What is BERT?", normalize=True, truncate=True)
    ours = tei_client.generate_embedding(None, "What is BERT?", normalize=True, truncate=True)
    assert theirs.tolist() == [ours] == [[0.125, -0.5, 2.0]]
    sent_by_sdk, sent_by_us = (r.json() for r in protocol_server.requests)
    assert sent_by_sdk == {"inputs": "What is BERT?", "normalize": True, "truncate": True}
    assert sent_by_us == {"inputs": ["What is BERT?"], "normalize": True, "truncate": True}
