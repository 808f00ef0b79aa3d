"""hf_tgi success paths, sync and async, against a loopback TGI (and a stand-in router)."""

from __future__ import annotations

import asyncio
import json

import hf_wire as wire
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipfs_accelerate_hf.guide import hf_tgi
from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.testing import openai_wire
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

MODEL = "mistralai/Mistral-7B-Instruct-v0.2"
PROMPT = "Explain the concept of quantum computing in simple terms."
PIECES = ["Qu", "antum ", "cömputing ", "🚀", " uses qubits."]


def test_generate_sends_tgi_body_and_reads_reply(
    tgi_backend: Backend, protocol_server: ProtocolServer, secret: str
) -> None:
    protocol_server.on("POST", "/generate", Reply.json(wire.generated("Qubits are...")))
    result = tgi_backend.generate(prompt=PROMPT, parameters={"max_new_tokens": 100})
    [req] = protocol_server.requests
    assert req.json() == {"inputs": PROMPT, "parameters": {"max_new_tokens": 100}}
    assert req.headers["authorization"] == f"Bearer {secret}"
    assert req.headers["content-type"] == "application/json"
    assert result["generated_text"] == result.text == "Qubits are..."
    assert "details" not in result.to_dict() and result.usage is None


def test_generate_usage_from_tgi_headers(
    tgi_backend: Backend, protocol_server: ProtocolServer
) -> None:
    """Without details the body has no counts; TGI's x-prompt-tokens / x-generated-tokens
    headers are what the usage stats count (HttpCall.usage_headers)."""
    counted = {
        "x-prompt-tokens": "11",
        "x-generated-tokens": "4",
        "x-compute-type": "1-nvidia-a10g",
    }
    protocol_server.on(
        "POST",
        "/generate",
        Reply.json(wire.generated("Qubits are..."), headers=counted),
        Reply.json(
            wire.generated("x", wire.details(generated_tokens=3, prefill=5)), headers=counted
        ),
        Reply.json(wire.generated("no headers")),
    )
    assert tgi_backend.generate(prompt=PROMPT).usage is None  # the result keeps the body's
    stats = tgi_backend.get_usage_stats()
    assert (stats["prompt_tokens"], stats["completion_tokens"], stats["total_tokens"]) == (
        11,
        4,
        15,
    )
    tgi_backend.generate(prompt=PROMPT, parameters={"details": True})  # the body wins
    tgi_backend.generate(prompt=PROMPT)  # neither: nothing counted
    stats = tgi_backend.get_usage_stats()
    assert (stats["prompt_tokens"], stats["completion_tokens"]) == (16, 7)
    assert stats["total_requests"] == 3
    # not declared free (hosted calls cost money) and no prices known: unpriced, cost 0
    assert (stats["estimated_cost_usd"], stats["unpriced_models"]) == (0, ["(no model)"])


def test_generate_loose_keywords_become_parameters(
    tgi_backend: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", "/generate", Reply.json(wire.generated("x")))
    tgi_backend.generate(
        prompt="Hi", max_tokens=5, temperature=0.5, parameters={"top_k": 10, "do_sample": True}
    )
    assert protocol_server.requests[0].json()["parameters"] == {
        "top_k": 10,
        "do_sample": True,
        "max_new_tokens": 5,
        "temperature": 0.5,
    }


def test_generate_details_when_asked(tgi_backend: Backend, protocol_server: ProtocolServer) -> None:
    details = wire.details(generated_tokens=3, finish_reason="eos_token", prefill=5)
    protocol_server.on("POST", "/generate", Reply.json(wire.generated("abc", details)))
    client = hf_tgi(backend=tgi_backend)
    result = client.generate_text(
        MODEL, "Hi", parameters={"details": True, "decoder_input_details": True}
    )
    assert protocol_server.requests[0].json()["parameters"]["details"] is True
    assert result["details"] == details
    assert result.finish_reason == "eos_token"
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (5, 3)
    assert tgi_backend.get_usage_stats()["completion_tokens"] == 3


def test_agenerate_across_event_loops(
    tgi_backend: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", "/generate", default=Reply.json(wire.generated("async")))

    async def one() -> str:
        return (await tgi_backend.agenerate(prompt="Hi")).text

    assert asyncio.run(one()) == asyncio.run(one()) == "async"
    assert len(protocol_server.requests) == 2


def _stream(backend: Backend, **kw: object) -> list:
    client = hf_tgi(backend=backend)
    return list(client.stream_generate(MODEL, PROMPT, {"max_new_tokens": 20}, **kw))


@pytest.mark.parametrize("split", [None, 1, 2, 5, 13, 64])
def test_generate_stream_at_any_byte_boundary(
    tgi_backend: Backend, protocol_server: ProtocolServer, split: int | None
) -> None:
    protocol_server.on("POST", "/generate_stream", wire.sse(wire.stream_events(PIECES), split))
    chunks = _stream(tgi_backend)
    assert protocol_server.requests[0].json() == {
        "inputs": PROMPT,
        "parameters": {"max_new_tokens": 20},
    }
    assert [c["text"] for c in chunks[:-1]] == PIECES  # the special </s> carries no text
    assert not any(c["done"] for c in chunks[:-1])
    final = chunks[-1]
    assert final["done"] and final.text == "" and final.finish_reason == "eos_token"
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (7, len(PIECES) + 1)
    # the final chunk keeps TGI's last event: the whole text and the details
    assert final.raw == wire.stream_events(PIECES)[-1]
    assert final.raw["generated_text"] == "".join(PIECES)
    assert final.raw["details"]["input_length"] == 7


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=st.lists(st.integers(min_value=1, max_value=2000), max_size=12))
def test_generate_stream_split_anywhere(
    tgi_backend: Backend, protocol_server: ProtocolServer, cuts: list[int]
) -> None:
    payload = wire.sse_payload([b": keep-alive", *wire.stream_events(PIECES)])
    protocol_server.on("POST", "/generate_stream", Reply.sse(payload, split=cuts))
    chunks = _stream(tgi_backend)
    assert "".join(c.text for c in chunks) == "".join(PIECES)
    assert chunks[-1].done and chunks[-1].finish_reason == "eos_token"


def test_astream_generate(tgi_backend: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", "/generate_stream", wire.sse(wire.stream_events(PIECES), 3))
    client = hf_tgi(backend=tgi_backend)

    async def collect() -> list:
        return [c async for c in client.astream_generate(None, PROMPT, {"max_new_tokens": 2})]

    chunks = asyncio.run(collect())
    assert "".join(c.text for c in chunks) == "".join(PIECES) and chunks[-1].done


def test_chat_uses_messages_api(tgi_backend: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on(
        "POST", "/v1/chat/completions", default=Reply.json(openai_wire.chat_completion("Hi!"))
    )
    messages = [{"role": "user", "content": "Hello"}]
    assert tgi_backend.chat(messages=messages, max_tokens=20).text == "Hi!"
    assert tgi_backend.chat(messages=messages, model=MODEL).text == "Hi!"
    first, second = (r.json() for r in protocol_server.requests)
    assert first == {"model": "tgi", "messages": messages, "max_tokens": 20}
    assert second["model"] == MODEL
    assert asyncio.run(tgi_backend.achat(messages=messages)).text == "Hi!"


def test_chat_stream_uses_messages_api(
    tgi_backend: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on(
        "POST", "/v1/chat/completions", Reply.sse(openai_wire.chat_stream(["a", "b"]), split=4)
    )
    chunks = list(tgi_backend.stream(messages=[{"role": "user", "content": "x"}]))
    assert [c.text for c in chunks] == ["a", "b", ""] and chunks[-1].done
    body = protocol_server.requests[0].json()
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_list_models(tgi_backend: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on(
        "GET", "/v1/models", default=Reply.json(openai_wire.models([MODEL], owned_by="tgi"))
    )
    assert [m.id for m in tgi_backend.list_models()] == [MODEL]
    assert [m.id for m in asyncio.run(tgi_backend.alist_models())] == [MODEL]


def test_info_and_health(tgi_backend: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("GET", "/info", default=Reply.json(wire.tgi_info()))
    protocol_server.on("GET", "/health", default=Reply(status=200))
    client = hf_tgi(backend=tgi_backend)
    assert client.get_model_info()["model_id"] == MODEL
    assert client.health_check() is True
    tgi_backend.max_retries = 0
    protocol_server.on("GET", "/health", wire.error_reply(503, "unhealthy", "healthcheck"))
    with pytest.raises(errors.ServerError, match="unhealthy"):
        client.health_check()


def test_handler_returns_text(tgi_backend: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", "/generate", Reply.json(wire.generated("handled")))
    client = hf_tgi(backend=tgi_backend)
    handler = client.create_remote_text_generation_endpoint_handler()
    assert asyncio.run(handler("Hi"))["text"] == "handled"
    assert protocol_server.requests[0].json() == {"inputs": "Hi", "parameters": {}}


def test_hosted_generate_and_chat_paths(
    protocol_server: ProtocolServer, hosted: str, secret: str
) -> None:
    protocol_server.on(
        "POST",
        f"/hf-inference/models/{MODEL}",
        Reply.json([wire.generated("hosted")]),
        wire.sse(wire.stream_events(["a", "b"])),
    )
    protocol_server.on(
        "POST", "/v1/chat/completions", Reply.json(openai_wire.chat_completion("routed"))
    )
    backend = get_backend("hf_tgi", api_key=secret, base_url=hosted)
    assert backend.generate(prompt="Hi", model=MODEL, max_tokens=3).text == "hosted"
    assert backend.chat(messages=[{"role": "user", "content": "x"}], model=MODEL).text == "routed"
    client = hf_tgi(backend=backend)
    assert "".join(c.text for c in client.stream_generate(MODEL, "Hi")) == "ab"
    gen, chat, stream = protocol_server.requests
    assert gen.json() == {"inputs": "Hi", "parameters": {"max_new_tokens": 3}, "stream": False}
    assert stream.json() == {"inputs": "Hi", "parameters": {}, "stream": True}
    assert chat.json()["model"] == MODEL
    assert {r.headers["authorization"] for r in protocol_server.requests} == {f"Bearer {secret}"}
    with pytest.raises(errors.InvalidArgumentError, match="model id"):
        backend.generate(prompt="Hi")
    with pytest.raises(errors.InvalidArgumentError, match="model id"):
        backend.chat(messages=[{"role": "user", "content": "x"}])
    with pytest.raises(errors.InvalidArgumentError, match="self-hosted"):
        client.get_model_info()
    assert len(protocol_server.requests) == 3
    backend.close()


def test_default_is_the_hosted_router() -> None:
    backend = get_backend("hf_tgi")
    assert backend.settings.base_url == "https://router.huggingface.co"
    assert backend.settings.api_key is None


def test_env_and_metadata_configuration(
    protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    protocol_server.on("POST", "/generate", default=Reply.json(wire.generated("ok")))
    monkeypatch.setenv("HF_TGI_BASE_URL", protocol_server.base_url)
    monkeypatch.setenv("HF_API_TOKEN", "hf_from_env_000000000001")
    get_backend("hf_tgi").generate(prompt="a")
    monkeypatch.delenv("HF_TGI_BASE_URL")
    meta = {"hf_tgi_base_url": protocol_server.base_url, "hf_api_token": "hf_meta_0000000002"}
    get_backend("hf_tgi", metadata=meta).generate(prompt="b")
    assert [r.headers["authorization"] for r in protocol_server.requests] == [
        "Bearer hf_from_env_000000000001",
        "Bearer hf_meta_0000000002",
    ]


def test_no_token_sends_no_authorization(protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", "/generate", Reply.json(wire.generated("ok")))
    get_backend("hf_tgi", base_url=protocol_server.base_url).generate(prompt="a")
    assert "authorization" not in protocol_server.requests[0].headers


def test_generate_parameters_must_be_a_dict(
    tgi_backend: Backend, protocol_server: ProtocolServer
) -> None:
    with pytest.raises(errors.InvalidArgumentError, match="parameters must be a dict"):
        tgi_backend.generate(prompt="a", parameters=json.dumps({"x": 1}))
    with pytest.raises(errors.InvalidArgumentError, match="does not support images"):
        tgi_backend.generate(prompt="a", kind="image")
    assert protocol_server.requests == []


def test_astream_chat(tgi_backend: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on(
        "POST", "/v1/chat/completions", Reply.sse(openai_wire.chat_stream(["x", "y"]), split=2)
    )

    async def collect() -> list[str]:
        stream = tgi_backend.astream(messages=[{"role": "user", "content": "q"}])
        return [c.text async for c in stream]

    assert asyncio.run(collect()) == ["x", "y", ""]
    assert protocol_server.requests[0].json()["model"] == "tgi"
