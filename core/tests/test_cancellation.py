"""Cancelling async calls at random points leaks nothing: afterwards every call succeeds at
once, no pool slot, gate slot or key lease is held, and the breaker is closed (the short
version of the 10,000-cancellation run in benchmarks/soak.py), on both async transports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Callable

import pytest

from ipfs_accelerate_py.aio_transport import aiohttp_available
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.direct import DirectReply
from ipfs_accelerate_py.resilience.breaker import CircuitState
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply

CANCELLATIONS = 300


@pytest.fixture(params=["httpx", "aiohttp"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which async transport the test's clients use."""
    monkeypatch.setenv("IPFS_ACCELERATE_ASYNC_TRANSPORT", request.param)
    if request.param == "aiohttp" and not aiohttp_available():
        pytest.skip("the aio extra (httpx-aiohttp) is not installed")
    return str(request.param)


def _slow(request: RecordedRequest) -> Reply:
    # slow enough that cancellations land queued, connecting, waiting and mid-body
    if request.json().get("stream"):
        return Reply.sse(wire.chat_stream(["a", "b", "c", "d"]), chunk_delay=0.002)
    body = json.dumps(wire.chat_completion("abcd")).encode()
    return Reply(
        headers={"content-type": "application/json"},
        chunks=[body[: len(body) // 2], body[len(body) // 2 :]],
        chunk_delay=0.004,
    )


@pytest.mark.parametrize("kind", ["chat", "stream"])
def test_random_cancellations_leak_no_slot(
    transport: str,
    kind: str,
    make_backend: Callable[..., Backend],
    protocol_server: ProtocolServer,
) -> None:
    protocol_server.on("POST", "/v1/chat/completions", default=_slow)
    # the pool (3 connections) and the gate (4 slots, 1,000 queued) both get full
    backend = make_backend(max_concurrent_requests=4, queue_size=1000)
    backend.default_endpoint.transport._max_connections = 3
    rng = random.Random(7)

    async def stream_all() -> str:
        if kind == "chat":  # on aiohttp's pool: the direct route, without httpx's objects
            return (await backend.achat(messages=wire.user(), model="m")).text
        return "".join([c.text async for c in backend.astream(messages=wire.user(), model="m")])

    async def main() -> tuple[int, list[str]]:
        cancelled = 0
        for _ in range(CANCELLATIONS // 20):
            tasks = [asyncio.create_task(stream_all()) for _ in range(20)]
            await asyncio.sleep(rng.uniform(0, 0.02))
            for task in tasks:
                if not task.done():
                    task.cancel()
            for task in tasks:
                try:
                    await task
                except asyncio.CancelledError:
                    cancelled += 1
        # full speed afterwards: every call gets its reply, well within the pool timeout
        texts = await asyncio.wait_for(asyncio.gather(*(stream_all() for _ in range(40))), 20)
        return cancelled, texts

    cancelled, texts = asyncio.run(main())
    assert cancelled > CANCELLATIONS // 3  # most really were cancelled somewhere mid-way
    assert texts == ["abcd"] * 40
    gate = backend.default_endpoint.gate.info()
    assert gate["size"] == 0 and gate["active_requests"] == 0
    assert [k["in_flight"] for k in backend.default_endpoint.keys.stats().values()] == [0]
    assert backend.default_endpoint.breaker.state == CircuitState.CLOSED


@pytest.mark.parametrize("kind", ["chat", "stream"])
def test_a_cancellation_while_the_reply_closes_leaks_nothing(
    transport: str,
    kind: str,
    make_backend: Callable[..., Backend],
    protocol_server: ProtocolServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The caller is cancelled just as its reply is being closed (on httpx's pool, httpcore's
    close takes a lock: a point where a cancellation lands). The pool's one connection and
    the key lease must come back: the next call gets its reply at once."""
    import httpx

    protocol_server.on("POST", "/v1/chat/completions", default=_reply)
    backend = make_backend()
    backend.default_endpoint.transport._max_connections = 1
    close = httpx.Response.aclose
    caller: list[asyncio.Task[object]] = []

    async def cancelled_while_closing(response: httpx.Response) -> None:
        if caller:
            caller.pop().cancel()  # lands at the close's first suspension point, if any
        await close(response)

    monkeypatch.setattr(httpx.Response, "aclose", cancelled_while_closing)
    direct_close = DirectReply.aclose  # on aiohttp's pool a reply is this instead

    async def direct_cancelled_while_closing(reply: DirectReply) -> None:
        if caller:
            caller.pop().cancel()
        await direct_close(reply)

    monkeypatch.setattr(DirectReply, "aclose", direct_cancelled_while_closing)

    async def one() -> str:
        if kind == "chat":
            return (await backend.achat(messages=wire.user(), model="m")).text
        return "".join([c.text async for c in backend.astream(messages=wire.user(), model="m")])

    async def main() -> list[str]:
        task = asyncio.create_task(one())
        caller.append(task)
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return await asyncio.wait_for(asyncio.gather(one(), one()), 10)

    assert asyncio.run(main()) == ["ab", "ab"]
    assert caller == []  # the cancellation was sent from inside the reply's close
    ep = backend.default_endpoint
    assert [k["in_flight"] for k in ep.keys.stats().values()] == [0]
    assert ep.gate.info()["active_requests"] == 0
    assert ep.breaker.state == CircuitState.CLOSED


def _reply(request: RecordedRequest) -> Reply:
    if request.json().get("stream"):
        return Reply.sse(wire.chat_stream(["a", "b"]))
    return Reply.json(wire.chat_completion("ab"))
