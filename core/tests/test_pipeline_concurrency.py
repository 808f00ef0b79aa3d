"""The pipeline's gate under real concurrency: threads and asyncio tasks through one backend,
priorities, a full queue, and callers that go away (cancelled, or closing a stream early)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply
from ipfs_accelerate_py.testing.waiting import wait_until
from ipfs_accelerate_py.types import ChatResponse

user = wire.user

CHAT = "/v1/chat/completions"
WAIT = 10.0  # upper bound for every blocking wait: a bug fails the test instead of hanging it


def content(request: RecordedRequest) -> str:
    text: str = request.json()["messages"][-1]["content"]
    return text


def echo(hold: threading.Event | None = None) -> Callable[..., Reply]:
    """A reply that answers each request with its own message ("hold" waits for ``hold``)."""

    def reply(request: RecordedRequest) -> Reply:
        text = content(request)
        wait_for = hold if text == "hold" else None
        return Reply.json(wire.chat_completion(f"echo:{text}"), wait_for=wait_for)

    return reply


def in_thread(fn: Callable[..., Any], **kwargs: Any) -> tuple[threading.Thread, list[Any]]:
    """Run ``fn(**kwargs)`` in a daemon thread; the list receives its result or exception."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn(**kwargs))
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


# --------------------------------------------------------------------------- concurrency


def test_200_threads_and_200_tasks_share_five_slots(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    backend = make_backend(max_concurrent_requests=5, queue_size=400)
    n = 200
    everyone_in = threading.Event()  # the server holds its first replies until all 400 wait

    def reply(request: RecordedRequest) -> Reply:
        body = wire.chat_completion(f"echo:{content(request)}")
        return Reply.json(body, delay=0.01, wait_for=everyone_in)

    protocol_server.on("POST", CHAT, default=reply)
    start = threading.Barrier(n + 1, timeout=WAIT)
    thread_results: dict[int, ChatResponse | BaseException] = {}

    def call_sync(i: int) -> None:
        start.wait()
        try:
            thread_results[i] = backend.chat(messages=user(f"thread-{i}"), model="m")
        except BaseException as exc:
            thread_results[i] = exc

    async def call_async() -> list[ChatResponse | BaseException]:
        start.wait()  # release every caller at once, then schedule the tasks
        calls = [backend.achat(messages=user(f"task-{i}"), model="m") for i in range(n)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        await backend.aclose()  # closes this loop's client only; the threads keep theirs
        return results

    task_results: list[list[ChatResponse | BaseException]] = []
    loop_thread = threading.Thread(target=lambda: task_results.append(asyncio.run(call_async())))
    threads = [threading.Thread(target=call_sync, args=(i,), daemon=True) for i in range(n)]
    loop_thread.start()
    for thread in threads:
        thread.start()
    try:
        # 5 calls at the server and 395 waiting: threads and tasks are in the gate together
        wait_until(lambda: backend.get_queue_info()["size"] == 2 * n - 5)
        assert backend.get_queue_info()["active_requests"] == 5
        wait_until(lambda: protocol_server.in_flight == 5)
    finally:
        everyone_in.set()
    for thread in [*threads, loop_thread]:
        thread.join(WAIT * 3)
        assert not thread.is_alive()

    for i in range(n):
        result = thread_results[i]
        assert isinstance(result, ChatResponse), result
        assert result.text == f"echo:thread-{i}"
    (results,) = task_results
    for i, result in enumerate(results):
        assert isinstance(result, ChatResponse), result
        assert result.text == f"echo:task-{i}"
    assert len(protocol_server.requests_to(CHAT)) == 2 * n
    assert protocol_server.max_in_flight == 5
    assert protocol_server.errors == [] and protocol_server.unexpected == []
    info = backend.get_queue_info()
    assert info == {"size": 0, "active_requests": 0, "capacity": 400, "max_concurrent": 5}
    assert backend.get_usage_stats()["total_requests"] == 2 * n
    assert backend.get_key_usage_stats()["default"]["in_flight"] == 0


def test_waiters_are_served_by_priority(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    backend = make_backend(max_concurrent_requests=1)
    hold = threading.Event()
    protocol_server.on("POST", CHAT, default=echo(hold=hold))
    callers = [in_thread(backend.chat, messages=user("hold"), model="m")]
    try:
        wait_until(lambda: protocol_server.in_flight == 1)
        for priority in ("LOW", "NORMAL", "HIGH"):
            callers.append(
                in_thread(backend.chat, messages=user(priority), model="m", priority=priority)
            )
            key = f"{priority.lower()}_priority"
            wait_until(lambda key=key: backend.get_queue_status()[key] == 1)  # type: ignore[misc]
        assert backend.get_queue_status()["size"] == 3
        assert len(protocol_server.requests_to(CHAT)) == 1
    finally:
        hold.set()
        for thread, _ in callers:
            thread.join(WAIT)
    assert [content(r) for r in protocol_server.requests_to(CHAT)] == [
        "hold",
        "HIGH",
        "NORMAL",
        "LOW",
    ]
    assert [out[0].text for _, out in callers] == [
        "echo:hold",
        "echo:LOW",
        "echo:NORMAL",
        "echo:HIGH",
    ]
    assert backend.get_queue_info()["active_requests"] == 0


def test_full_queue_refuses_at_once(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    backend = make_backend(max_concurrent_requests=1, queue_size=1)
    hold = threading.Event()
    protocol_server.on("POST", CHAT, default=echo(hold=hold))
    held = in_thread(backend.chat, messages=user("hold"), model="m")
    waiting: tuple[threading.Thread, list[Any]] | None = None
    try:
        wait_until(lambda: protocol_server.in_flight == 1)
        waiting = in_thread(backend.chat, messages=user("waiting"), model="m")
        wait_until(lambda: backend.get_queue_info()["size"] == 1)
        began = time.monotonic()
        with pytest.raises(errors.QueueFullError) as info:
            backend.chat(messages=user("refused"), model="m")
        assert time.monotonic() - began < 1.0
        assert "queue_size 1" in str(info.value)
    finally:
        hold.set()
        for thread, _ in (held, waiting or held):
            thread.join(WAIT)
    assert waiting is not None and waiting[1][0].text == "echo:waiting"
    assert [content(r) for r in protocol_server.requests_to(CHAT)] == ["hold", "waiting"]
    assert backend.get_queue_info()["active_requests"] == 0


# --------------------------------------------------------------------------- callers that leave


def test_cancelled_queued_call_leaves_the_queue_and_leaks_no_slot(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    backend = make_backend(max_concurrent_requests=1)
    hold = threading.Event()
    protocol_server.on("POST", CHAT, default=echo(hold=hold))

    async def scenario() -> None:
        held = asyncio.create_task(backend.achat(messages=user("hold"), model="m"))
        await asyncio.to_thread(wait_until, lambda: protocol_server.in_flight == 1)
        queued = asyncio.create_task(backend.achat(messages=user("cancelled"), model="m"))
        await asyncio.to_thread(wait_until, lambda: backend.get_queue_status()["size"] == 1)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert backend.get_queue_status()["size"] == 0
        assert backend.get_queue_info()["active_requests"] == 1  # only the held call
        hold.set()
        assert (await held).text == "echo:hold"
        assert (await backend.achat(messages=user("after"), model="m")).text == "echo:after"
        await backend.aclose()

    asyncio.run(asyncio.wait_for(scenario(), WAIT))
    assert [content(r) for r in protocol_server.requests_to(CHAT)] == ["hold", "after"]
    assert backend.get_queue_info() == {
        "size": 0,
        "active_requests": 0,
        "capacity": 100,
        "max_concurrent": 1,
    }


def test_stream_closed_early_releases_its_slot_and_is_no_failure(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    backend = make_backend(max_concurrent_requests=1, failure_threshold=1)
    events = wire.chat_stream(["a", "b", "c", "d"])
    protocol_server.on("POST", CHAT, default=Reply.sse(events, chunk_delay=0.01))
    gen = backend.stream(messages=user(), model="m")
    for chunk in gen:
        assert chunk.text == "a"
        break
    assert backend.get_queue_info()["active_requests"] == 1  # a live stream holds its slot
    gen.close()  # type: ignore[attr-defined]
    assert backend.get_queue_info()["active_requests"] == 0
    assert backend.get_key_usage_stats()["default"]["in_flight"] == 0
    metrics = backend.get_circuit_metrics()
    assert metrics["state"] == "CLOSED" and metrics["recent_failures"] == 0
    # the slot really is free: the next stream (max_concurrent 1) runs to its end
    assert "".join(c.text for c in backend.stream(messages=user(), model="m")) == "abcd"


def test_async_stream_closed_early_releases_its_slot(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    backend = make_backend(max_concurrent_requests=1, failure_threshold=1)
    events = wire.chat_stream(["a", "b", "c"])
    protocol_server.on("POST", CHAT, default=Reply.sse(events, chunk_delay=0.01))

    async def scenario() -> None:
        gen = backend.astream(messages=user(), model="m")
        async for chunk in gen:
            assert chunk.text == "a"
            break
        assert backend.get_queue_info()["active_requests"] == 1
        await gen.aclose()  # type: ignore[attr-defined]
        assert backend.get_queue_info()["active_requests"] == 0
        await backend.aclose()

    asyncio.run(asyncio.wait_for(scenario(), WAIT))
    assert backend.get_circuit_metrics()["recent_failures"] == 0
    assert backend.circuit_state == "CLOSED"
