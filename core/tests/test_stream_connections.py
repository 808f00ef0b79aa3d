"""A stream's connection after its end marker: read to the end of the body, it goes back to
the pool (no new connection, and no new TLS handshake, per streamed call); a server that holds
the body open after the end marker delays the end of the stream by at most the idle timeout;
and what follows the end marker is never handed to the caller."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import Callable

import httpx
import pytest

from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

CHAT = "/v1/chat/completions"


def _texts(backend: Backend) -> list[str]:
    return [c.text for c in backend.stream(messages=wire.user(), model="m")]


async def _atexts(backend: Backend) -> list[str]:
    return [c.text async for c in backend.astream(messages=wire.user(), model="m")]


def test_streams_read_to_the_end_reuse_one_connection(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, default=Reply.sse(wire.chat_stream(["a", "b"])))
    for _ in range(3):
        assert _texts(backend) == ["a", "b", ""]
    assert protocol_server.connections == 1


def test_async_streams_read_to_the_end_reuse_one_connection(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, default=Reply.sse(wire.chat_stream(["a", "b"])))

    async def three() -> None:
        for _ in range(3):
            assert await _atexts(backend) == ["a", "b", ""]

    asyncio.run(three())
    assert protocol_server.connections == 1


def _held_open(hold: float) -> Reply:
    """The whole stream in one chunk, then ``hold`` seconds before the body's last chunk."""
    payload = Reply.sse([*wire.chat_stream(["a", "b"]), "after the end"], split=10**6)
    return Reply(headers=payload.headers, chunks=payload.chunks, chunk_delay=hold)


def test_a_body_held_open_after_the_end_marker_costs_at_most_the_idle_timeout(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    backend = make_backend(timeout=0.5)
    protocol_server.on("POST", CHAT, _held_open(hold=5.0))
    started = time.monotonic()
    chunks = list(backend.stream(messages=wire.user(), model="m"))
    assert time.monotonic() - started < 3.0
    assert [c.text for c in chunks] == ["a", "b", ""]  # nothing after [DONE] is handed out
    assert chunks[-1].done and chunks[-1].usage is not None


def test_async_a_body_held_open_after_the_end_marker_costs_at_most_the_idle_timeout(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    backend = make_backend(timeout=0.5)
    protocol_server.on("POST", CHAT, _held_open(hold=5.0))
    started = time.monotonic()
    texts = asyncio.run(_atexts(backend))
    assert time.monotonic() - started < 3.0
    assert texts == ["a", "b", ""]


def test_a_trickle_after_the_end_marker_is_not_read_for_long(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    """A server that goes on sending a comment every 50 ms after [DONE]: the stream stops
    reading about a second after its end marker, not when the server stops (10 s here)."""
    payload = Reply.sse(wire.chat_stream(["a", "b"]), split=10**6)
    keepalives = [b": still here\n"] * 200
    protocol_server.on(
        "POST",
        CHAT,
        Reply(headers=payload.headers, chunks=[*payload.chunks, *keepalives], chunk_delay=0.05),
    )
    backend = make_backend(timeout=5.0)
    started = time.monotonic()
    assert _texts(backend) == ["a", "b", ""]
    assert time.monotonic() - started < 4.0


def test_a_reply_already_in_memory_streams_too(backend: Backend) -> None:
    """httpx.MockTransport (as users' own tests use it) hands over a body already read."""
    body = b"".join(
        f"data: {json.dumps(e) if not isinstance(e, str) else e}\n\n".encode()
        for e in wire.chat_stream(["a", "b"])
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    backend.default_endpoint.transport.client()._transport = httpx.MockTransport(handler)
    assert _texts(backend) == ["a", "b", ""]


def test_async_streams_on_httpx_pool_reuse_one_connection(
    make_backend: Callable[..., Backend],
    protocol_server: ProtocolServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """httpx's own async pool, with the body's last chunk arriving late (so it is not in a
    buffer already when the end marker is read): the drain is what keeps the connection."""
    monkeypatch.setenv("IPFS_ACCELERATE_ASYNC_TRANSPORT", "httpx")
    backend = make_backend()
    payload = Reply.sse(wire.chat_stream(["a", "b"]))
    late = Reply(headers=payload.headers, chunks=payload.chunks, chunk_delay=0.02)
    protocol_server.on("POST", CHAT, default=late)

    async def three() -> None:
        for _ in range(3):
            assert await _atexts(backend) == ["a", "b", ""]

    asyncio.run(three())
    assert protocol_server.connections == 1


def test_a_gzip_encoded_stream_is_decoded(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    """A content-encoded body is read through httpx's decoders, not raw."""
    body = b"".join(Reply.sse(wire.chat_stream(["a", "b"])).chunks or [])
    packed = gzip.compress(body)
    headers = {"content-type": "text/event-stream", "content-encoding": "gzip"}
    half = len(packed) // 2
    protocol_server.on(
        "POST", CHAT, default=Reply(headers=headers, chunks=[packed[:half], packed[half:]])
    )
    assert _texts(backend) == ["a", "b", ""]
    assert asyncio.run(_atexts(backend)) == ["a", "b", ""]
