"""The pipeline's gate under real concurrency: threads and asyncio tasks through one backend,
priorities, a full queue, and callers that go away (cancelled, or closing a stream early)."""

from __future__ import annotations

import asyncio
import json
import os
import select
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply
from ipfs_accelerate_py.testing.waiting import wait_until
from ipfs_accelerate_py.types import ChatResponse

user = wire.user
ok = wire.chat_reply

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


# --------------------------------------------------------------------------- fork


def run_in_child(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Fork; run ``work`` in the child and return what it returned (or raised), via a pipe."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():  # 3.12+: "use of fork() may lead to deadlocks"
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read_end)
            try:
                result = work()
            except BaseException as exc:
                result = {"raised": f"{type(exc).__name__}: {exc}"}
            os.write(write_end, json.dumps(result).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    data = b""
    try:
        while select.select([read_end], [], [], WAIT)[0]:
            piece = os.read(read_end, 65536)
            if not piece:
                break
            data += piece
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, data
    return json.loads(data)  # type: ignore[no-any-return]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_child_forked_mid_call_starts_clean_and_answers_do_not_cross(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    backend = make_backend(max_concurrent_requests=2, max_retries=0, failure_threshold=1)

    def chat(text: str, **options: Any) -> str:
        return backend.chat(messages=user(text), model="m", **options).text

    # two pooled connections, then an open breaker turned half-open
    hold = threading.Event()
    protocol_server.on("POST", CHAT, default=echo(hold))
    warming = [in_thread(chat, text="hold") for _ in range(2)]
    wait_until(lambda: protocol_server.in_flight == 2)
    hold.set()
    for thread, out in warming:
        thread.join(WAIT)
        assert out == ["echo:hold"]
    hold.clear()
    protocol_server.on("POST", CHAT, wire.error_reply(500), default=echo(hold))
    with pytest.raises(errors.ServerError):
        chat("fails")
    clock.advance(31)
    assert backend.circuit_state == "HALF_OPEN"
    assert protocol_server.connections == 2

    # the parent's probe is in flight: a gate slot, a key lease, the probe, a connection
    parent, answer = in_thread(chat, text="hold")
    wait_until(lambda: protocol_server.in_flight == 1)

    def child() -> dict[str, Any]:
        state = {
            "active": backend.get_queue_info()["active_requests"],
            "in_flight": backend.get_key_usage_stats()["default"]["in_flight"],
        }
        texts = [chat(f"child {n}", queue_timeout=3) for n in range(2)]
        reply = asyncio.run(backend.achat(messages=user("child async"), model="m"))
        return {**state, "texts": [*texts, reply.text]}

    got = run_in_child(child)
    texts = ["echo:child 0", "echo:child 1", "echo:child async"]
    assert got == {"active": 0, "in_flight": 0, "texts": texts}
    # the child opened its own connections (sync, async), never the parent's idle one
    assert protocol_server.connections == 4
    hold.set()
    parent.join(WAIT)
    assert answer == ["echo:hold"]
    assert chat("again") == "echo:again"  # the parent's pooled connections still serve it
    assert protocol_server.connections == 4
    assert backend.get_queue_info()["active_requests"] == 0
    assert backend.get_key_usage_stats()["default"]["in_flight"] == 0


# ------------------------------------------------------ streams left early free their slot at once


def _long_stream() -> Reply:
    # still sending when the caller leaves: the early exit must not wait for the rest
    return Reply.sse(wire.chat_stream(["a", "b", "c", "d", "e"]), chunk_delay=0.05)


def test_stream_left_early_frees_its_slot_at_once(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    backend = make_backend(max_concurrent_requests=1)
    protocol_server.on("POST", CHAT, _long_stream(), default=ok("next"))

    seen = []
    with backend.stream(messages=user(), model="m") as s:
        for chunk in s:
            seen.append(chunk.text)
            break
    assert seen == ["a"]
    assert backend.get_queue_info()["active_requests"] == 0
    assert backend.chat(messages=user(), model="m", queue_timeout=WAIT).text == "next"

    metrics = backend.get_circuit_metrics()
    assert metrics["state"] == "CLOSED" and metrics["recent_failures"] == 0
    assert backend.get_key_usage_stats()["default"]["in_flight"] == 0
    assert backend.get_key_usage_stats()["default"]["errors"] == 0
    assert clock.sleeps == []


def test_async_stream_left_early_frees_its_slot_at_once(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    backend = make_backend(max_concurrent_requests=1)
    protocol_server.on("POST", CHAT, _long_stream(), default=ok("next"))

    async def scenario() -> tuple[list[str], int, str]:
        seen = []
        try:
            async with backend.astream(messages=user(), model="m") as s:
                async for chunk in s:
                    seen.append(chunk.text)
                    break
            active = backend.get_queue_info()["active_requests"]
            reply = await backend.achat(messages=user(), model="m", queue_timeout=WAIT)
            return seen, active, reply.text
        finally:
            await backend.aclose()

    assert asyncio.run(scenario()) == (["a"], 0, "next")
    metrics = backend.get_circuit_metrics()
    assert metrics["state"] == "CLOSED" and metrics["recent_failures"] == 0
    assert backend.get_key_usage_stats()["default"]["in_flight"] == 0
    assert backend.get_key_usage_stats()["default"]["errors"] == 0
    assert clock.sleeps == []
