"""Async parity: the key pipeline cases through ``achat``/``astream`` with ``asyncio.run``,
and one backend used from successive event loops and threads."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import warnings
from collections.abc import Callable

import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply

user = wire.user
ok = wire.chat_reply

CHAT = "/v1/chat/completions"
WAIT = 10.0


def echo(request: RecordedRequest) -> Reply:
    return Reply.json(wire.chat_completion("echo:" + request.json()["messages"][-1]["content"]))


def test_async_retry_after_is_waited_exactly(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    protocol_server.on("POST", CHAT, wire.error_reply(429, {"retry-after": "2"}), ok("async ok"))

    async def call() -> str:
        try:
            return (await backend.achat(messages=user(), model="m")).text
        finally:
            await backend.aclose()

    assert asyncio.run(call()) == "async ok"
    assert clock.sleeps == [2.0]
    assert len(protocol_server.requests_to(CHAT)) == 2


def test_async_retry_after_above_max_surfaces_at_once(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    protocol_server.on("POST", CHAT, wire.error_reply(429, {"retry-after": "61"}), default=ok())
    with pytest.raises(errors.RateLimitError) as info:
        asyncio.run(backend.achat(messages=user(), model="m"))
    assert info.value.retry_after == 61.0
    assert len(protocol_server.requests_to(CHAT)) == 1 and clock.sleeps == []


def test_async_breaker_fails_fast(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    backend = make_backend(failure_threshold=3, max_retries=0)
    protocol_server.on("POST", CHAT, default=wire.error_reply(502))

    async def scenario() -> errors.CircuitOpenError:
        for _ in range(3):
            with pytest.raises(errors.ServerError):
                await backend.achat(messages=user(), model="m")
        with pytest.raises(errors.CircuitOpenError) as info:
            await backend.achat(messages=user(), model="m")
        await backend.aclose()
        return info.value

    err = asyncio.run(scenario())
    assert len(protocol_server.requests_to(CHAT)) == 3
    assert err.retry_after == 30.0 and "next probe in 30.0s" in str(err)
    assert backend.circuit_state == "OPEN"
    clock.advance(30)
    protocol_server.on("POST", CHAT, default=ok("recovered"))
    assert asyncio.run(backend.achat(messages=user(), model="m")).text == "recovered"
    assert backend.circuit_state == "HALF_OPEN"  # success_threshold defaults to 3


def test_async_malformed_reply_counts_as_a_failure(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    backend = make_backend(failure_threshold=1, max_retries=0)
    protocol_server.on("POST", CHAT, Reply.raw(b"<html>oops</html>"))
    with pytest.raises(errors.MalformedResponseError):
        asyncio.run(backend.achat(messages=user(), model="m"))
    assert backend.circuit_state == "OPEN"
    assert backend.get_key_usage_stats()["default"]["in_flight"] == 0


def test_async_stream_cut_mid_way_is_not_retried(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    events = wire.chat_stream(["Hel", "lo", " world"])
    protocol_server.on("POST", CHAT, Reply.sse(events, cut_after=2), default=Reply.sse(events))
    got: list[str] = []

    async def consume() -> None:
        async for chunk in backend.astream(messages=user(), model="m"):
            got.append(chunk.text)

    with pytest.raises(errors.ConnectionError):
        asyncio.run(consume())
    assert got == ["Hel"]
    assert len(protocol_server.requests_to(CHAT)) == 1 and clock.sleeps == []
    assert backend.get_queue_info()["active_requests"] == 0


def test_async_stream_cut_before_the_first_chunk_is_retried(
    backend: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    events = wire.chat_stream(["Hel", "lo"])
    protocol_server.on("POST", CHAT, Reply.sse(events, cut_after=1), Reply.sse(events))

    async def consume() -> str:
        return "".join([c.text async for c in backend.astream(messages=user(), model="m")])

    assert asyncio.run(consume()) == "Hello"
    assert len(protocol_server.requests_to(CHAT)) == 2 and len(clock.sleeps) == 1


def test_async_stream_error_status_is_counted_once(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    backend = make_backend(max_retries=0, failure_threshold=2)
    protocol_server.on("POST", CHAT, default=wire.error_reply(503))

    async def consume() -> None:
        async for _ in backend.astream(messages=user(), model="m"):
            pass

    with pytest.raises(errors.ServerError):
        asyncio.run(consume())
    assert backend.get_circuit_metrics()["recent_failures"] == 1
    assert backend.circuit_state == "CLOSED"
    assert backend.get_usage_stats()["failed_requests"] == 1


def test_one_backend_serves_successive_loops_and_threads(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, default=echo)

    async def batch(tag: str) -> list[str]:
        calls = [backend.achat(messages=user(f"{tag}-{i}"), model="m") for i in range(10)]
        return [r.text for r in await asyncio.gather(*calls)]

    texts: dict[str, str] = {}

    def sync_call(i: int) -> None:
        texts[f"thread-{i}"] = backend.chat(messages=user(f"thread-{i}"), model="m").text

    first = asyncio.run(batch("loop1"))
    threads = [threading.Thread(target=sync_call, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    second = asyncio.run(batch("loop2"))  # a new loop while the threads run
    for thread in threads:
        thread.join(WAIT)

    assert first == [f"echo:loop1-{i}" for i in range(10)]
    assert second == [f"echo:loop2-{i}" for i in range(10)]
    assert texts == {f"thread-{i}": f"echo:thread-{i}" for i in range(10)}
    assert len(protocol_server.requests_to(CHAT)) == 30
    assert backend.get_usage_stats()["successful_requests"] == 30
    assert backend.get_queue_info()["active_requests"] == 0


def test_a_new_event_loop_does_not_block_on_client_setup(
    backend: Backend, protocol_server: ProtocolServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Each event loop gets its own client; building one must not load CA certificates on
    the loop: asyncio's debug mode reports any callback slower than a threshold.

    The threshold is half of what loading the certificates takes here and now, so it scales
    with the machine's load; a round of three new loops is tried up to three times, because a
    busy machine can stall any callback once — loading on the loop would stall every one."""
    import time

    import httpx

    protocol_server.on("POST", CHAT, default=ok())
    costs = []
    for _ in range(3):
        start = time.perf_counter()
        httpx.create_ssl_context()
        costs.append(time.perf_counter() - start)
    threshold = max(0.02, sorted(costs)[1] / 2)

    async def one_call() -> None:
        asyncio.get_running_loop().slow_callback_duration = threshold
        await backend.achat(messages=user(), model="m")

    asyncio.run(one_call(), debug=True)  # first loop: pays one-time imports
    rounds = []
    for _ in range(3):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            for _ in range(3):
                asyncio.run(one_call(), debug=True)
        slow = [r.getMessage() for r in caplog.records if "took" in r.getMessage()]
        rounds.append(slow)
        if not slow:
            break
    assert rounds[-1] == [], rounds


# ---------------------------------------------------------------- async clients across asyncio.run


def test_successive_asyncio_runs_keep_no_async_client_alive(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, default=ok("async ok"))
    transport = backend.default_endpoint.transport

    async def one() -> str:
        return (await backend.achat(messages=user(), model="m")).text

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for run in range(1, 31):
            assert asyncio.run(one()) == "async ok"
            assert len(transport._aclients) == 0, f"an async client outlived run {run}"
            assert protocol_server.connections == run
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []
    assert len(protocol_server.requests_to(CHAT)) == 30
