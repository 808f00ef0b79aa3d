"""``opea``: ChatQnA (``/v1/chatqna``, bytes-literal stream) and the OpenAI microservices."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

CHATQNA = "/v1/chatqna"
MESSAGES = [{"role": "user", "content": "What is the revenue of Nike in 2023?"}]


def chatqna_completion(text: str) -> dict:
    """ChatQnA's non-streamed reply (GenAIExamples ChatQnA/chatqna.py handle_request)."""
    return {
        "id": "chatcmpl-3PdTGyRM8sG3CGMDxMpfCh",
        "object": "chat.completion",
        "created": 1736233018,
        "model": "chatqna",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "audio": None},
                "finish_reason": "stop",
                "metrics": None,
            }
        ],
        "usage": {"prompt_tokens": 0, "total_tokens": 0, "completion_tokens": 0},
    }


def token_lines(tokens: list[str]) -> bytes:
    """ChatQnA's stream as align_generator / token_generator write it: ``repr`` of each
    token's UTF-8 bytes, then ``[DONE]``."""
    out = b"".join(f"data: {token.encode('utf-8')!r}\n\n".encode("ascii") for token in tokens)
    return out + b"data: [DONE]\n\n"


TOKENS = [" Nike", "'s", ' "revenue"', " was\n", " $51.2B", " — ", "über ", "日本", " 🚀", "\\o/"]


def test_chatqna_plain_call_sends_stream_false_and_no_model(
    opea: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHATQNA, Reply.json(chatqna_completion("About $51.2 billion.")))
    result = opea.chat(messages=MESSAGES, max_tokens=64)
    [req] = protocol_server.requests
    assert req.json() == {"messages": MESSAGES, "max_tokens": 64, "stream": False}
    assert result.text == "About $51.2 billion." and result.model == "chatqna"
    stats = opea.get_usage_stats()
    assert (stats["estimated_cost_usd"], stats["unpriced_models"]) == (0, [])


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=15))
def test_chatqna_stream_at_any_byte_boundary(
    opea: Backend, protocol_server: ProtocolServer, cuts: list[int]
) -> None:
    protocol_server.on("POST", CHATQNA, Reply.sse(token_lines(TOKENS), split=cuts))
    chunks = list(opea.stream(messages=MESSAGES))
    assert "".join(c.text for c in chunks) == "".join(TOKENS)
    assert chunks[-1].done and not any(c.done for c in chunks[:-1])
    body = protocol_server.requests[-1].json()
    assert body["stream"] is True and "model" not in body


def test_chatqna_stream_joins_a_character_split_between_tokens(
    opea: Backend, protocol_server: ProtocolServer
) -> None:
    raw = "é🚀".encode()
    lines = [f"data: {raw[:1]!r}\n\n", f"data: {raw[1:4]!r}\n\n", f"data: {raw[4:]!r}\n\n"]
    protocol_server.on("POST", CHATQNA, Reply.sse("".join(lines).encode() + b"data: [DONE]\n\n"))
    assert "".join(c.text for c in opea.stream(messages=MESSAGES)) == "é🚀"


def test_chatqna_fake_stream_line_unescaped(opea: Backend, protocol_server: ProtocolServer) -> None:
    # GenAIComps orchestrator's fake_stream writes "data: b'" + text + "'" without escaping
    protocol_server.on(
        "POST", CHATQNA, Reply.sse("data: b'It's blocked — sorry'\n\ndata: [DONE]\n\n".encode())
    )
    assert "".join(c.text for c in opea.stream(messages=MESSAGES)) == "It's blocked — sorry"


def test_chatqna_astream(opea: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", CHATQNA, Reply.sse(token_lines(TOKENS), split=7))

    async def collect() -> list[str]:
        return [c.text async for c in opea.astream(messages=MESSAGES)]

    assert "".join(asyncio.run(collect())) == "".join(TOKENS)


@pytest.mark.parametrize(
    "line",
    [
        b'data: {"choices": []}\n\n',
        b"data: hello\n\n",
        b"data: b'unterminated\n\n",
        b"data: b'bad \\x4'\n\n",
        b"data: __import__('os').system('echo pwned')\n\n",
    ],
)
def test_a_line_that_is_not_a_bytes_literal_is_malformed(
    opea: Backend, protocol_server: ProtocolServer, line: bytes
) -> None:
    protocol_server.on("POST", CHATQNA, default=Reply.sse(line + b"data: [DONE]\n\n"))
    with pytest.raises(errors.MalformedResponseError, match="bytes literal"):
        list(opea.stream(messages=MESSAGES))
    assert len(protocol_server.requests) == 1


def test_chatqna_stream_without_done_is_cut(opea: Backend, protocol_server: ProtocolServer) -> None:
    opea.max_retries = 0
    protocol_server.on("POST", CHATQNA, Reply.sse(b"data: b'partial'\n\n"))
    with pytest.raises(errors.ConnectionError, match="end marker"):
        list(opea.stream(messages=MESSAGES))


def test_other_models_go_to_the_llm_microservice(
    opea: Backend, protocol_server: ProtocolServer
) -> None:
    model = "Intel/neural-chat-7b-v3-3"
    protocol_server.on(
        "POST", "/v1/chat/completions", Reply.json(wire.chat_completion("llm", model=model))
    )
    assert opea.chat(messages=MESSAGES, model=model).text == "llm"
    assert protocol_server.requests[0].json()["model"] == model
    protocol_server.on(
        "POST", "/v1/chat/completions", Reply.sse(wire.chat_stream(["a", "b"], model=model))
    )

    async def collect() -> str:
        return "".join([c.text async for c in opea.astream(messages=MESSAGES, model=model)])

    assert asyncio.run(collect()) == "ab"
    assert protocol_server.requests[1].json()["stream"] is True


def test_embeddings_microservice(opea: Backend, protocol_server: ProtocolServer) -> None:
    # GenAIComps EmbeddingResponse: OpenAI's list of embeddings, usage optional
    body = {
        "object": "list",
        "model": None,
        "data": [{"index": 0, "object": "embedding", "embedding": [0.25, -0.5]}],
        "usage": None,
    }
    protocol_server.on("POST", "/v1/embeddings", default=Reply.json(body))
    assert opea.embed(input="hello").embedding == [0.25, -0.5]
    assert asyncio.run(opea.aembed(input=["hello"], model="BAAI/bge-base-en-v1.5")).embeddings == [
        [0.25, -0.5]
    ]
    sent = [r.json() for r in protocol_server.requests]
    assert sent[0] == {"input": ["hello"], "encoding_format": "float"}
    assert sent[1]["model"] == "BAAI/bge-base-en-v1.5"


@pytest.mark.parametrize("status", [500, 503])
def test_megaservice_errors_are_retried(
    opea: Backend, protocol_server: ProtocolServer, status: int
) -> None:
    protocol_server.on(
        "POST",
        CHATQNA,
        Reply.json({"detail": "Internal Server Error"}, status=status),
        Reply.json(chatqna_completion("ok")),
    )
    assert opea.chat(messages=MESSAGES).text == "ok"
    assert len(protocol_server.requests) == 2


def test_fastapi_validation_error(opea: Backend, protocol_server: ProtocolServer) -> None:
    detail = [{"type": "missing", "loc": ["body", "messages"], "msg": "Field required"}]
    protocol_server.on("POST", CHATQNA, Reply.json({"detail": detail}, status=422))
    with pytest.raises(errors.InvalidRequestError, match="Field required"):
        opea.chat(messages=MESSAGES)


@pytest.mark.parametrize(
    "reply",
    [
        Reply.text("<html><h1>504 Gateway Time-out</h1></html>", content_type="text/html"),
        Reply.json({"text": "not a chat completion"}),
    ],
)
def test_chatqna_malformed_200(
    opea: Backend, protocol_server: ProtocolServer, reply: Reply
) -> None:
    protocol_server.on("POST", CHATQNA, default=reply)
    with pytest.raises(errors.MalformedResponseError):
        opea.chat(messages=MESSAGES)
    with pytest.raises(errors.MalformedResponseError):
        asyncio.run(opea.achat(messages=MESSAGES))
