"""hf_tgi / hf_tei failure paths: error bodies, retries, malformed and cut replies, secrets."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import hf_wire as wire
import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

BAD = errors.InvalidRequestError
HTML = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body></body></html>"


@pytest.mark.parametrize(
    ("status", "message", "error_type", "cls"),
    [
        (400, "Batch is empty", "Empty", errors.InvalidRequestError),
        (401, "Invalid credentials in Authorization header", None, errors.AuthenticationError),
        (404, "Model not found", None, errors.NotFoundError),
        (422, "batch size 64 > maximum allowed batch size 32", "Validation", BAD),
        (422, "Input validation error: `inputs` must have < 512 tokens", "Tokenizer", BAD),
        (424, "Inference failed", "Backend", errors.ServerError),  # refine_error
        (429, "Model is overloaded", "Overloaded", errors.RateLimitError),
        (503, "unhealthy", "Unhealthy", errors.ServerError),
    ],
)  # fmt: skip
def test_tei_error_bodies_map_to_core_errors(
    tei_backend: Backend,
    protocol_server: ProtocolServer,
    secret: str,
    status: int,
    message: str,
    error_type: str | None,
    cls: type,
) -> None:
    tei_backend.max_retries = 0
    body = {"error": message} if error_type is None else wire.error(message, error_type)
    reply = Reply.json(body, status=status, headers={"x-request-id": f"srv-{status}"})
    protocol_server.on("POST", "/embed", default=reply)
    with pytest.raises(cls) as info:
        tei_backend.embed(input="x", request_id="req_mine")
    err = info.value
    assert type(err) is cls
    assert (err.status_code, err.code, err.provider) == (status, error_type, "hf_tei")
    assert (err.request_id, err.provider_request_id) == ("req_mine", f"srv-{status}")
    assert message in str(err) and "req_mine" in str(err)
    assert secret not in str(err) and secret not in repr(err)
    assert len(protocol_server.requests) == 1


@pytest.mark.parametrize("route", ["/generate", "/embed"])
def test_424_the_model_failed_is_a_retried_server_error(
    tgi_backend: Backend,
    tei_backend: Backend,
    protocol_server: ProtocolServer,
    clock: FakeClock,
    route: str,
) -> None:
    """Both servers answer 424 when the model itself failed: the refine_error hook makes
    core's status-built InvalidRequestError a retryable ServerError."""
    failed = (
        wire.error_reply(424, "Request failed during generation: CUDA OOM", "generation")
        if route == "/generate"
        else wire.error_reply(424, "Inference failed", "Backend")
    )
    ok = Reply.json(wire.generated("ok")) if route == "/generate" else Reply.json([[1.0]])
    protocol_server.on("POST", route, failed, ok)
    if route == "/generate":
        assert tgi_backend.generate(prompt="x").text == "ok"
    else:
        assert tei_backend.embed(input="x").embedding == [1.0]
    assert len(protocol_server.requests) == 2 and len(clock.sleeps) == 1
    backend = tgi_backend if route == "/generate" else tei_backend
    backend.max_retries = 0
    protocol_server.on("POST", route, failed)
    with pytest.raises(errors.ServerError) as info:
        backend.generate(prompt="x") if route == "/generate" else backend.embed(input="x")
    err = info.value
    assert type(err) is errors.ServerError and err.retryable
    assert err.status_code == 424 and err.body == json.loads(failed.body)
    assert str(err).startswith(f"Server error from {backend.name} (HTTP 424): ")


def test_tei_413_plain_text(tei_backend: Backend, protocol_server: ProtocolServer) -> None:
    body = "Failed to buffer the request body: length limit exceeded"
    protocol_server.on("POST", "/embed", Reply.text(body, status=413))
    with pytest.raises(errors.InvalidRequestError, match="length limit exceeded") as info:
        tei_backend.embed(input=["x"])
    assert info.value.status_code == 413
    assert len(protocol_server.requests) == 1


@pytest.mark.parametrize(
    ("status", "message", "error_type", "cls", "retried"),
    [
        (422, "Input validation error: `temperature` must be > 0", "validation", BAD, False),
        (424, "Request failed during generation: CUDA OOM", "generation", errors.ServerError, True),
        (429, "Model is overloaded", "overloaded", errors.RateLimitError, True),
        (500, "Incomplete generation", "incomplete_generation", errors.ServerError, True),
    ],
)  # fmt: skip
def test_tgi_error_bodies(
    tgi_backend: Backend,
    protocol_server: ProtocolServer,
    clock: FakeClock,
    status: int,
    message: str,
    error_type: str,
    cls: type,
    retried: bool,
) -> None:
    tgi_backend.max_retries = 2
    protocol_server.on("POST", "/generate", default=wire.error_reply(status, message, error_type))
    with pytest.raises(cls, match=r"Incomplete|overloaded|> 0|CUDA") as info:
        tgi_backend.generate(prompt="Hi")
    assert info.value.code == error_type
    assert len(protocol_server.requests) == (3 if retried else 1)


@pytest.mark.parametrize("route", ["/generate", "/embed"])
def test_overloaded_429_is_retried_after_retry_after(
    tgi_backend: Backend,
    tei_backend: Backend,
    protocol_server: ProtocolServer,
    clock: FakeClock,
    route: str,
) -> None:
    ok = Reply.json(wire.generated("ok")) if route == "/generate" else Reply.json([[1.0]])
    protocol_server.on(
        "POST",
        route,
        wire.error_reply(429, "Model is overloaded", "overloaded", headers={"retry-after": "2"}),
        wire.error_reply(503, "unhealthy", "unhealthy"),
        ok,
    )
    if route == "/generate":
        assert tgi_backend.generate(prompt="x").text == "ok"
    else:
        assert tei_backend.embed(input="x").embedding == [1.0]
    assert len(protocol_server.requests) == 3
    assert clock.sleeps[0] == 2.0 and len(clock.sleeps) == 2


@pytest.mark.parametrize(
    "reply",
    [
        Reply.text(HTML, content_type="text/html"),
        Reply.raw(b'{"generated_text": "Qubits ar'),
        Reply.json({"generated_text": 5}),
        Reply.json({"error_message": "weird"}),
        Reply.json([]),
        Reply.json([{"generated_text": "a"}, {"generated_text": "b"}]),
    ],
    ids=["html", "truncated", "not-text", "no-text", "empty-list", "two-results"],
)
def test_malformed_generate_replies(
    tgi_backend: Backend, protocol_server: ProtocolServer, reply: Reply
) -> None:
    protocol_server.on("POST", "/generate", default=reply)
    with pytest.raises(errors.MalformedResponseError) as info:
        tgi_backend.generate(prompt="x")
    assert "hf_tgi" in str(info.value)
    with pytest.raises(errors.MalformedResponseError):
        asyncio.run(tgi_backend.agenerate(prompt="x"))
    assert len(protocol_server.requests) == 2


@pytest.mark.parametrize(
    "reply",
    [
        Reply.text(HTML, content_type="text/html"),
        Reply.raw(b"[[0.1, 0.2"),
        Reply.json({"embeddings": [[0.1]]}),
        Reply.json([[0.1, "x"]]),
        Reply.json([[[0.1, 0.2], [0.3, 0.4]]]),  # one vector per token: no pooling
        Reply.json([[0.1], [0.2]]),  # two vectors for one input
        Reply.json([[]]),
    ],
    ids=["html", "truncated", "object", "not-numbers", "token-level", "count", "empty"],
)
def test_malformed_embed_replies(
    tei_backend: Backend, protocol_server: ProtocolServer, reply: Reply
) -> None:
    protocol_server.on("POST", "/embed", default=reply)
    with pytest.raises(errors.MalformedResponseError) as info:
        tei_backend.embed(input="x")
    assert "hf_tei" in str(info.value)
    with pytest.raises(errors.MalformedResponseError):
        asyncio.run(tei_backend.aembed(input="x"))


@pytest.mark.parametrize(
    ("route", "reply", "call"),
    [
        ("/rerank", [{"score": 0.5}], lambda c: c.rerank("q", ["a"])),
        ("/rerank", [{"index": 3, "score": 0.5}], lambda c: c.rerank("q", ["a"])),
        ("/rerank", {"ranks": []}, lambda c: c.rerank("q", ["a"])),
        ("/embed_sparse", [[{"value": 1.0}]], lambda c: c.embed_sparse(["a"])),
        ("/embed_sparse", [], lambda c: c.embed_sparse(["a"])),
        ("/info", ["not", "an", "object"], lambda c: c.get_model_info()),
    ],
)
def test_malformed_tei_extras(
    tei_client: Any, protocol_server: ProtocolServer, route: str, reply: Any, call: Any
) -> None:
    protocol_server.on("GET" if route == "/info" else "POST", route, Reply.json(reply))
    with pytest.raises(errors.MalformedResponseError):
        call(tei_client)


def test_stream_malformed_events(tgi_client: Any, protocol_server: ProtocolServer) -> None:
    protocol_server.on(
        "POST",
        "/generate_stream",
        wire.sse([b"data:{not json"]),
        wire.sse([{"index": 1, "generated_text": None}]),
    )
    for _ in range(2):
        with pytest.raises(errors.MalformedResponseError):
            list(tgi_client.stream_generate(None, "x"))


def test_stream_error_event_mid_stream(tgi_client: Any, protocol_server: ProtocolServer) -> None:
    events = [*wire.stream_events(["a", "b"])[:2], wire.error("CUDA OOM", "generation")]
    protocol_server.on("POST", "/generate_stream", default=wire.sse(events))
    got = []
    with pytest.raises(errors.ServerError, match="CUDA OOM") as info:
        for chunk in tgi_client.stream_generate(None, "x"):
            got.append(chunk.text)
    assert got == ["a", "b"] and info.value.code == "generation"
    assert len(protocol_server.requests) == 1  # chunks were delivered: not retried


def test_stream_overloaded_first_event_is_retried(
    tgi_client: Any, protocol_server: ProtocolServer
) -> None:
    protocol_server.on(
        "POST",
        "/generate_stream",
        wire.sse([wire.error("Model is overloaded", "overloaded")]),
        wire.sse(wire.stream_events(["ok"])),
    )
    assert "".join(c.text for c in tgi_client.stream_generate(None, "x")) == "ok"
    assert len(protocol_server.requests) == 2


def test_stream_validation_event_is_not_retried(
    tgi_client: Any, protocol_server: ProtocolServer
) -> None:
    message = "Input validation error: `best_of` != 1 is not supported when streaming tokens"
    protocol_server.on(
        "POST", "/generate_stream", default=wire.sse([wire.error(message, "validation")])
    )
    with pytest.raises(errors.InvalidRequestError, match="best_of"):
        list(tgi_client.stream_generate(None, "x", {"best_of": 2}))
    assert len(protocol_server.requests) == 1


def test_stream_cut_before_generated_text(
    tgi_client: Any, tgi_backend: Backend, protocol_server: ProtocolServer
) -> None:
    tgi_backend.max_retries = 0
    events = wire.stream_events(["a", "b"])[:2]  # the final event never came
    protocol_server.on("POST", "/generate_stream", default=wire.sse(events))
    with pytest.raises(errors.ConnectionError, match="end marker"):
        list(tgi_client.stream_generate(None, "x"))

    async def consume() -> list[str]:
        return [c.text async for c in tgi_client.astream_generate(None, "x")]

    with pytest.raises(errors.ConnectionError):
        asyncio.run(consume())


def test_stream_error_status(tgi_client: Any, protocol_server: ProtocolServer) -> None:
    protocol_server.on(
        "POST",
        "/generate_stream",
        wire.error_reply(429, "Model is overloaded", "overloaded"),
        wire.sse(wire.stream_events(["x"])),
    )
    assert [c.text for c in tgi_client.stream_generate(None, "x")] == ["x", ""]


def test_connection_refused_is_a_connection_error(clock: FakeClock) -> None:
    with ProtocolServer() as server:
        url = server.base_url
    backend = get_backend("hf_tei", base_url=url, clock=clock, max_retries=1)
    with pytest.raises(errors.ConnectionError) as info:
        backend.embed(input="x")
    assert isinstance(info.value, ConnectionError)
    assert len(clock.sleeps) == 1


@pytest.mark.parametrize("name", ["hf_tgi", "hf_tei"])
def test_connection_refused_names_the_server(name: str, clock: FakeClock) -> None:
    with ProtocolServer() as server:
        url = server.base_url
    backend = get_backend(name, base_url=url, clock=clock, max_retries=0)
    with pytest.raises(errors.ConnectionError) as info:
        if name == "hf_tgi":
            backend.generate(prompt="x")
        else:
            backend.embed(input="x")
    message = info.value.message
    assert message.startswith(f"could not connect to {url} (ConnectError: ")
    assert message.endswith("; is the server running and the base URL right?")
    backend.close()


def test_secret_never_leaks(
    tgi_backend: Backend, protocol_server: ProtocolServer, secret: str
) -> None:
    body = wire.error(f"Authorization header is invalid: Bearer {secret}", "unauthorized")
    protocol_server.on("POST", "/generate", Reply.json(body, status=401))
    with pytest.raises(errors.AuthenticationError) as info:
        tgi_backend.generate(prompt="x")
    assert secret not in str(info.value) and secret not in repr(info.value)
    assert secret not in json.dumps(info.value.body)
    assert secret not in repr(tgi_backend) and secret not in repr(tgi_backend.settings)
    assert secret not in json.dumps(tgi_backend.get_key_usage_stats())
    assert secret not in json.dumps(tgi_backend.get_usage_stats())
