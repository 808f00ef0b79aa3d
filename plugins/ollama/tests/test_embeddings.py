"""Embeddings on any Ollama: ``/api/embed``, and the legacy ``/api/embeddings`` fallback."""

from __future__ import annotations

import asyncio

import ollama_wire as wire
import pytest

import ipfs_accelerate_ollama
from ipfs_accelerate_ollama.guide import ollama as ollama_class
from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

EMBED, LEGACY = "/api/embed", "/api/embeddings"
VECTORS = [[0.5, -1.25, 3.0], [1.0, 2.0, -0.5]]


def _legacy(vector: list[float]) -> Reply:
    return Reply.json({"embedding": vector})


def test_new_server_uses_api_embed_once(ollama: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", EMBED, Reply.json(wire.embed(VECTORS)))
    result = ipfs_accelerate_ollama.embed(ollama, ["a", "b"], "all-minilm", keep_alive="1m")
    assert result.embeddings == VECTORS
    assert [r.path for r in protocol_server.requests] == [EMBED]
    assert protocol_server.requests[0].json() == {
        "model": "all-minilm",
        "input": ["a", "b"],
        "keep_alive": "1m",
    }


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_old_server_falls_back_to_legacy_route(
    ollama: Backend, protocol_server: ProtocolServer, mode: str
) -> None:
    protocol_server.on("POST", EMBED, wire.route_missing())
    protocol_server.on("POST", LEGACY, _legacy(VECTORS[0]), _legacy(VECTORS[1]))
    args = (ollama, ["first", "second"], "nomic-embed-text")
    kwargs = {"options": {"num_ctx": 512}, "request_id": "req_fb", "encoding_format": "float"}
    if mode == "sync":
        result = ipfs_accelerate_ollama.embed(*args, **kwargs)
    else:
        result = asyncio.run(ipfs_accelerate_ollama.aembed(*args, **kwargs))
    assert result.embeddings == VECTORS and result["embedding"] == VECTORS[0]
    assert result.model == "nomic-embed-text"
    assert [r.path for r in protocol_server.requests] == [EMBED, LEGACY, LEGACY]
    assert [r.json() for r in protocol_server.requests_to(LEGACY)] == [
        {"model": "nomic-embed-text", "prompt": "first", "options": {"num_ctx": 512}},
        {"model": "nomic-embed-text", "prompt": "second", "options": {"num_ctx": 512}},
    ]
    stats = ollama.get_usage_stats()
    assert (stats["successful_requests"], stats["failed_requests"]) == (2, 1)
    assert ollama.get_circuit_state() == "CLOSED"  # a 404 says nothing about health


@pytest.mark.parametrize("route", ["api_embed", "legacy"])
def test_numpy_output_on_either_route(
    ollama: Backend, protocol_server: ProtocolServer, route: str
) -> None:
    np = pytest.importorskip("numpy")
    if route == "api_embed":
        protocol_server.on("POST", EMBED, Reply.json(wire.embed(VECTORS)))
    else:
        protocol_server.on("POST", EMBED, wire.route_missing())
        protocol_server.on("POST", LEGACY, _legacy(VECTORS[0]), _legacy(VECTORS[1]))
    result = ipfs_accelerate_ollama.embed(ollama, ["a", "b"], "all-minilm", output="numpy")
    assert isinstance(result.embeddings, np.ndarray) and result.embeddings.dtype == np.float32
    assert np.array_equal(result.embeddings, np.asarray(VECTORS, dtype=np.float32))
    assert all("output" not in r.json() for r in protocol_server.requests)  # never sent


def test_missing_model_is_not_a_missing_route(
    ollama: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", EMBED, wire.model_missing("all-minilm"))
    with pytest.raises(errors.NotFoundError) as info:
        ipfs_accelerate_ollama.embed(ollama, "x", "all-minilm")
    assert "run `ollama pull all-minilm`" in str(info.value)
    assert [r.path for r in protocol_server.requests] == [EMBED]


def test_guide_class_embed_falls_back(protocol_server: ProtocolServer) -> None:
    client = ollama_class(metadata={"ollama_api_url": protocol_server.url("/api")})
    protocol_server.on("POST", EMBED, default=wire.route_missing())
    protocol_server.on("POST", LEGACY, default=_legacy(VECTORS[0]))
    assert client.embed("all-minilm", "hello")["embedding"] == VECTORS[0]
    assert [r.path for r in protocol_server.requests] == [EMBED, LEGACY]


@pytest.mark.parametrize("value", [True, "true"])
def test_legacy_setting_goes_straight_to_the_old_route(
    protocol_server: ProtocolServer, clock: FakeClock, value: object
) -> None:
    backend = get_backend(
        "ollama",
        base_url=protocol_server.base_url,
        metadata={"legacy_embeddings": value},
        clock=clock,
    )
    protocol_server.on("POST", LEGACY, _legacy(VECTORS[0]), _legacy(VECTORS[0]), _legacy([1.0]))
    assert backend.embed(input="one", model="m").embedding == VECTORS[0]
    assert asyncio.run(backend.aembed(input="one", model="m")).embedding == VECTORS[0]
    with pytest.raises(errors.InvalidArgumentError, match="one text per request"):
        backend.embed(input=["a", "b"], model="m")
    assert ipfs_accelerate_ollama.embed(backend, ["z"], "m").embeddings == [[1.0]]
    assert [r.path for r in protocol_server.requests] == [LEGACY] * 3
    assert protocol_server.requests[0].json() == {"model": "m", "prompt": "one"}


def test_legacy_malformed_reply(protocol_server: ProtocolServer, clock: FakeClock) -> None:
    backend = get_backend(
        "ollama",
        base_url=protocol_server.base_url,
        metadata={"legacy_embeddings": True},
        clock=clock,
    )
    protocol_server.on("POST", LEGACY, Reply.json({"embeddings": []}), Reply.raw(b"<html>"))
    with pytest.raises(errors.MalformedResponseError, match="no embedding"):
        backend.embed(input="x", model="m")
    with pytest.raises(errors.MalformedResponseError, match="not valid JSON"):
        backend.embed(input="x", model="m")


@pytest.mark.parametrize(
    ("args", "match"),
    [((["a", 3], "m"), "non-empty"), (([], "m"), "non-empty"), (("a", None), "OLLAMA_MODEL")],
)
def test_helper_checks_arguments(
    ollama: Backend, protocol_server: ProtocolServer, args: tuple, match: str
) -> None:
    with pytest.raises(errors.InvalidArgumentError, match=match):
        ipfs_accelerate_ollama.embed(ollama, *args)
    assert protocol_server.requests == []
