"""``llvm`` / ``vllm``: a self-hosted OpenAI-compatible server, sync and async."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Hello"}]
SERVED = "meta-llama/Llama-3.1-8B-Instruct"

# vLLM's error body (vllm/entrypoints/openai/protocol.py ErrorResponse, wrapped in "error"
# since 0.10) and the older flat form; llama.cpp's server uses OpenAI's shape
VLLM_404 = {
    "error": {
        "message": "The model `gpt-4o` does not exist.",
        "type": "NotFoundError",
        "param": None,
        "code": 404,
    }
}
VLLM_400_FLAT = {
    "object": "error",
    "message": "max_tokens must be at least 1, got 0.",
    "type": "BadRequestError",
    "param": None,
    "code": 400,
}


def test_chat_without_model_sends_none(llvm: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHAT, Reply.json(wire.chat_completion("Hi!", model=SERVED)))
    result = llvm.chat(messages=MESSAGES, temperature=0.2)
    [req] = protocol_server.requests
    assert req.json() == {"messages": MESSAGES, "temperature": 0.2}
    assert "authorization" not in req.headers
    assert result.text == "Hi!" and result.model == SERVED
    stats = llvm.get_usage_stats()
    assert stats["estimated_cost_usd"] == 0
    assert stats["unpriced_models"] == []  # self-hosted: BackendSpec.free


def test_chat_with_model_and_optional_key(
    make: Callable[..., Backend], protocol_server: ProtocolServer, secret: str
) -> None:
    backend = make("llvm", "/v1", api_key=secret)
    protocol_server.on("POST", CHAT, Reply.json(wire.chat_completion("ok", model=SERVED)))
    backend.chat(messages=MESSAGES, model=SERVED, system="Be brief")
    [req] = protocol_server.requests
    assert req.headers["authorization"] == f"Bearer {secret}"
    assert req.json()["model"] == SERVED
    assert req.json()["messages"][0] == {"role": "system", "content": "Be brief"}
    assert secret not in repr(backend) and secret not in json.dumps(backend.get_usage_stats())


def test_achat(llvm: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHAT, default=Reply.json(wire.chat_completion("async")))
    assert asyncio.run(llvm.achat(messages=MESSAGES)).text == "async"
    assert asyncio.run(llvm.achat(messages=MESSAGES, model="m")).text == "async"
    assert [("model" in r.json()) for r in protocol_server.requests] == [False, True]


PIECES = ["Hé", "llo ", "wörld ", "🚀"]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=st.lists(st.integers(min_value=1, max_value=1500), max_size=12))
def test_stream_any_byte_boundaries(
    llvm: Backend, protocol_server: ProtocolServer, cuts: list[int]
) -> None:
    protocol_server.on("POST", CHAT, Reply.sse(wire.chat_stream(PIECES, model=SERVED), split=cuts))
    chunks = list(llvm.stream(messages=MESSAGES))
    assert "".join(c.text for c in chunks) == "".join(PIECES)
    assert chunks[-1].done and chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len(PIECES)
    body = protocol_server.requests[-1].json()
    assert body["stream"] is True and "model" not in body


def test_astream(llvm: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHAT, Reply.sse(wire.chat_stream(PIECES), split=3))

    async def collect() -> list[str]:
        return [c.text async for c in llvm.astream(messages=MESSAGES, model="m")]

    assert "".join(asyncio.run(collect())) == "".join(PIECES)


def test_embeddings_completions_models_sync_and_async(
    llvm: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on(
        "POST", "/v1/embeddings", default=Reply.json(wire.embeddings([[0.5, -1.0]], model=SERVED))
    )
    completion = {
        "id": "cmpl-1",
        "object": "text_completion",
        "model": SERVED,
        "choices": [{"index": 0, "text": " world", "finish_reason": "length", "logprobs": None}],
        "usage": wire.usage(2, 1),
    }
    protocol_server.on("POST", "/v1/completions", default=Reply.json(completion))
    models = {
        "object": "list",
        "data": [
            {"id": SERVED, "object": "model", "owned_by": "vllm", "max_model_len": 8192},
        ],
    }
    protocol_server.on("GET", "/v1/models", default=Reply.json(models))
    assert llvm.embed(input="x").embedding == [0.5, -1.0]
    assert asyncio.run(llvm.aembed(input=["x"])).embeddings == [[0.5, -1.0]]
    assert llvm.generate(prompt="Hello", max_tokens=1)["text"] == " world"
    assert asyncio.run(llvm.agenerate(prompt="Hello", model=SERVED)).text == " world"
    [info] = llvm.list_models()
    assert (info.id, info.owned_by, info.context_window) == (SERVED, "vllm", 8192)
    assert [m.id for m in asyncio.run(llvm.alist_models())] == [SERVED]
    sent = [r.json() for r in protocol_server.requests if r.method == "POST"]
    assert sent[0] == {"input": ["x"], "encoding_format": "base64"}  # floats came back: read
    assert sent[2] == {"prompt": "Hello", "max_tokens": 1}
    assert sent[3]["model"] == SERVED
    assert llvm.get_usage_stats()["estimated_cost_usd"] == 0


def test_vllm_alias_reads_its_own_environment(
    protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_BASE_URL", protocol_server.url(""))  # /v1 is appended
    monkeypatch.setenv("VLLM_API_KEY", "vllm-token-000000000000")
    protocol_server.on("POST", CHAT, Reply.json(wire.chat_completion("ok")))
    backend = get_backend("vllm")
    assert backend.settings.base_url.endswith("/v1")
    assert backend.chat(messages=MESSAGES).text == "ok"
    assert protocol_server.requests[0].headers["authorization"] == "Bearer vllm-token-000000000000"
    backend.close()


def test_llvm_metadata_base_url(protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHAT, Reply.json(wire.chat_completion("meta")))
    backend = get_backend("llvm", metadata={"llvm_base_url": protocol_server.url("/v1")})
    assert backend.chat(messages=MESSAGES).text == "meta"
    backend.close()


@pytest.mark.parametrize(
    ("status", "body", "cls", "message"),
    [
        (404, VLLM_404, errors.NotFoundError, "does not exist"),
        (400, VLLM_400_FLAT, errors.InvalidRequestError, "max_tokens must be at least 1"),
        (401, {"error": "Unauthorized"}, errors.AuthenticationError, "Unauthorized"),
    ],
)
def test_error_bodies(
    llvm: Backend, protocol_server: ProtocolServer, status: int, body: dict, cls: type, message: str
) -> None:
    protocol_server.on("POST", CHAT, default=Reply.json(body, status=status))
    with pytest.raises(cls, match=message) as info:
        llvm.chat(messages=MESSAGES, model="gpt-4o")
    assert info.value.status_code == status and info.value.provider == "llvm"
    assert len(protocol_server.requests) == 1


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_statuses_are_retried(
    llvm: Backend, protocol_server: ProtocolServer, clock: FakeClock, status: int
) -> None:
    headers = {"retry-after": "3"} if status == 429 else None
    protocol_server.on(
        "POST",
        CHAT,
        Reply.json({"error": {"message": "busy", "code": status}}, status=status, headers=headers),
        Reply.json(wire.chat_completion("ok")),
    )
    assert llvm.chat(messages=MESSAGES).text == "ok"
    assert len(protocol_server.requests) == 2
    if status == 429:
        assert clock.sleeps == [3.0]


@pytest.mark.parametrize(
    "reply",
    [
        Reply.text("<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
        Reply.raw(b'{"choices": [{"message": {"content": "tru'),
        Reply.json({"object": "chat.completion"}),
        Reply.json({"choices": ["x"]}),
    ],
    ids=["html-proxy-page", "truncated", "no-choices", "choice-not-object"],
)
def test_malformed_200(llvm: Backend, protocol_server: ProtocolServer, reply: Reply) -> None:
    protocol_server.on("POST", CHAT, default=reply)
    with pytest.raises(errors.MalformedResponseError):
        llvm.chat(messages=MESSAGES)
    with pytest.raises(errors.MalformedResponseError):
        asyncio.run(llvm.achat(messages=MESSAGES))
    assert len(protocol_server.requests) == 2


def test_stream_cut_is_a_connection_error(llvm: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHAT, default=Reply.sse(wire.chat_stream(["a", "b"]), cut_after=2))
    with pytest.raises(errors.ConnectionError):
        list(llvm.stream(messages=MESSAGES))


def test_key_echoed_by_the_server_is_masked(
    make: Callable[..., Backend], protocol_server: ProtocolServer, secret: str
) -> None:
    backend = make("llvm", "/v1", api_key=secret)
    body = {"error": {"message": f"invalid token {secret}", "type": "Unauthorized", "code": 401}}
    protocol_server.on("POST", CHAT, Reply.json(body, status=401))
    with pytest.raises(errors.AuthenticationError) as info:
        backend.chat(messages=MESSAGES)
    assert secret not in str(info.value) and secret not in repr(info.value)
    assert secret not in repr(backend.settings)
