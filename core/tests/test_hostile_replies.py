"""Replies meant to hurt: bodies that never end or end too slowly, redirects, a JSON page
where a stream was asked for, bodies and stream events that break the parser, replies nested
too deeply. Each gives a clear error from core's classes, the attempt's reservations (slot,
key, half-open probe) are given back, and a request the server received is accounted even
when the caller walks away."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply
from ipfs_accelerate_py.testing.waiting import await_until, wait_until

user = wire.user

CHAT = "/v1/chat/completions"
USER = [{"role": "user", "content": "hi"}]


def idle(backend: Backend) -> None:
    """Nothing is held: no slot, no key lease, the breaker closed with no probe out."""
    assert backend.get_queue_info()["active_requests"] == 0
    assert all(k["in_flight"] == 0 for k in backend.get_key_usage_stats().values())


def test_a_trickled_body_is_bounded_by_the_call_timeout(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    body = b'{"choices": [{"message": {"content": "slow"}}], "padding": "' + b"x" * 200 + b'"}'
    protocol_server.on(
        "POST",
        CHAT,
        Reply(
            headers={"content-type": "application/json"},
            chunks=[body[i : i + 1] for i in range(len(body))],
            chunk_delay=0.05,
        ),
    )
    backend.max_retries = 0
    start = time.monotonic()
    with pytest.raises(errors.TimeoutError, match="deadline"):
        backend.chat(messages=USER, model="m", timeout=1)
    assert time.monotonic() - start < 3  # not the ~12 s the trickle would take
    idle(backend)


def test_an_oversized_reply_is_refused_before_it_is_read(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    ep = backend.default_endpoint
    ep.transport.max_body = 1000
    protocol_server.on("POST", CHAT, Reply.json({"x": "y" * 5000}))
    with pytest.raises(errors.MalformedResponseError, match="larger than the 1,000 byte limit"):
        backend.chat(messages=USER, model="m")
    protocol_server.on(
        "POST", CHAT, Reply(headers={"content-type": "application/json"}, chunks=[b"z" * 600] * 5)
    )
    with pytest.raises(errors.MalformedResponseError, match="limit"):  # chunked, no length
        backend.chat(messages=USER, model="m")
    idle(backend)


def test_an_endless_error_body_is_cut_at_the_error_limit(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    backend.default_endpoint.transport.max_error_body = 100
    backend.max_retries = 0
    protocol_server.on("POST", CHAT, Reply.raw(b"e" * 5000, status=500))
    with pytest.raises(errors.MalformedResponseError, match="error reply body"):
        backend.chat(messages=USER, model="m")


def test_a_stream_line_without_end_is_refused(
    backend: Backend, protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ipfs_accelerate_py import decoders

    monkeypatch.setattr(decoders, "MAX_LINE", 1000)
    protocol_server.on("POST", CHAT, Reply.sse([b"data: " + b"a" * 5000], split=100))
    with pytest.raises(errors.MalformedResponseError, match="longer than"):
        list(backend.stream(messages=USER, model="m"))
    idle(backend)


@pytest.mark.parametrize("status", [301, 302, 307])
def test_a_redirect_is_an_error_naming_the_location_and_no_breaker_failure(
    backend: Backend, protocol_server: ProtocolServer, status: int
) -> None:
    backend.failure_threshold = 1
    protocol_server.on(
        "POST",
        CHAT,
        Reply.json(
            wire.chat_completion("from the redirect page"),
            status=status,
            headers={"location": "https://elsewhere.invalid/v1/chat"},
        ),
    )
    with pytest.raises(errors.InvalidRequestError, match=r"elsewhere\.invalid") as info:
        backend.chat(messages=USER, model="m")
    assert info.value.status_code == status
    assert len(protocol_server.requests_to(CHAT)) == 1  # not followed, not retried
    assert backend.circuit_state == "CLOSED"


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (Reply.json({"error": {"message": "model not found", "type": "x"}}), "application/json"),
        (Reply.text("<html>proxy login</html>", content_type="text/html"), "text/html"),
    ],
)
def test_a_stream_answered_with_a_page_is_sent_once(
    backend: Backend, protocol_server: ProtocolServer, reply: Reply, kind: str
) -> None:
    protocol_server.on("POST", CHAT, default=reply)
    with pytest.raises(
        errors.MalformedResponseError, match=f"asked for a stream, got a 200 {kind}"
    ):
        list(backend.stream(messages=USER, model="m"))
    assert len(protocol_server.requests_to(CHAT)) == 1
    assert backend.circuit_state == "CLOSED"

    async def main() -> None:
        async for _ in backend.astream(messages=USER, model="m"):
            pass

    with pytest.raises(errors.MalformedResponseError, match="asked for a stream"):
        asyncio.run(main())
    assert len(protocol_server.requests_to(CHAT)) == 2
    idle(backend)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,  # RecursionError in the decoder
        b'{"choices": {"message": "x"}}',
    ],
)
def test_unparseable_replies_are_malformed_and_release_the_probe(
    make_backend: Callable[..., Backend],
    protocol_server: ProtocolServer,
    clock: FakeClock,
    body: bytes,
) -> None:
    backend = make_backend(failure_threshold=1, max_retries=0)
    protocol_server.on("POST", CHAT, wire.error_reply(500))
    with pytest.raises(errors.ServerError):
        backend.chat(messages=USER, model="m")
    clock.advance(31)
    assert backend.circuit_state == "HALF_OPEN"
    protocol_server.on("POST", CHAT, Reply.raw(body), default=wire.chat_reply("fine"))
    with pytest.raises(errors.MalformedResponseError):
        backend.chat(messages=USER, model="m")
    clock.advance(31)
    assert backend.chat(messages=USER, model="m").text == "fine"  # a probe was free again
    idle(backend)


def test_keep_alive_comments_do_not_keep_a_stalled_stream_alive(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    first = wire.chat_stream(["first "])[:2]
    comments = [b": keep-alive\n\n"] * 40
    protocol_server.on("POST", CHAT, Reply.sse([*first, *comments], chunk_delay=0.05))
    backend.max_retries = 0
    start = time.monotonic()
    stream = backend.stream(messages=USER, model="m", timeout=0.5)
    with pytest.raises(errors.TimeoutError, match="idle timeout"):
        list(stream)
    assert time.monotonic() - start < 1.8
    idle(backend)


def test_close_from_another_thread_stops_a_blocked_reader(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on(
        "POST",
        CHAT,
        Reply(
            headers={"content-type": "text/event-stream"},
            chunks=[b'data: {"choices":[{"delta":{"content":"one "}}]}\n\n'] + [b": x\n\n"] * 200,
            chunk_delay=0.05,
        ),
    )
    stream = backend.stream(messages=USER, model="m")
    got: list[str] = []
    done = threading.Event()

    def read() -> None:
        for chunk in stream:
            got.append(chunk.text)
        done.set()

    reader = threading.Thread(target=read)
    reader.start()
    wait_until(lambda: got == ["one "])
    stream.close()  # the reader is blocked in another thread
    assert done.wait(2), "the blocked reader did not stop"
    reader.join(2)
    idle(backend)
    assert backend.get_usage_stats()["total_requests"] == 1  # the server did the work


def test_a_stream_left_early_is_still_accounted(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, Reply.sse(wire.chat_stream(["a ", "b ", "c"])))
    with backend.stream(messages=USER, model="m") as stream:
        next(stream)
    assert backend.get_usage_stats()["total_requests"] == 1
    idle(backend)


def test_a_cancelled_async_call_is_still_accounted(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    hold = threading.Event()
    protocol_server.on("POST", CHAT, Reply.json(wire.chat_completion("x"), wait_for=hold))

    async def main() -> None:
        task = asyncio.create_task(backend.achat(messages=USER, model="m"))
        await await_until(lambda: protocol_server.in_flight >= 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await backend.aclose()

    asyncio.run(main())
    hold.set()
    assert backend.get_usage_stats()["total_requests"] == 1
    idle(backend)


# --------------------------------------------------------- malformed and too deeply nested replies


MALFORMED_CHOICES: dict[str, Any] = {  # the only choice of a chunk event
    "choice-not-object": "oops",
    "tool-call-index-null": {
        "index": 0,
        "delta": {
            "tool_calls": [
                {
                    "index": None,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": ""},
                }
            ]
        },
        "finish_reason": None,
    },
}


@pytest.mark.parametrize("caller", ["stream", "astream"])
@pytest.mark.parametrize("event", MALFORMED_CHOICES)
def test_malformed_stream_event_is_malformed_response_and_not_retried(
    backend: Backend,
    protocol_server: ProtocolServer,
    clock: FakeClock,
    call: Callable[..., Any],
    chunk_event: Callable[..., dict[str, Any]],
    caller: str,
    event: str,
) -> None:
    # the bad event comes before any text chunk reached the caller, where a retry is allowed
    bad = chunk_event(MALFORMED_CHOICES[event])
    reply = Reply.sse([chunk_event(), bad, "[DONE]"])
    protocol_server.on("POST", CHAT, default=reply)
    with pytest.raises(errors.MalformedResponseError) as info:
        call(caller, backend)
    assert "stream event" in str(info.value)
    assert len(protocol_server.requests_to(CHAT)) == 1
    assert clock.sleeps == []
    assert backend.get_queue_info()["active_requests"] == 0
    assert backend.get_key_usage_stats()["default"]["in_flight"] == 0


@pytest.mark.parametrize("status", [200, 500])
def test_a_reply_nested_too_deeply_is_malformed_not_a_recursion_error(
    make_backend: Callable[..., Backend], protocol_server: ProtocolServer, status: int
) -> None:
    backend = make_backend(max_retries=0)
    deep = b"[" * 200_000 + b"]" * 200_000
    protocol_server.on("POST", CHAT, default=Reply.raw(deep, status=status))
    expected = errors.MalformedResponseError if status == 200 else errors.ServerError
    with pytest.raises(expected):
        backend.chat(messages=user(), model="m")
    protocol_server.on("POST", CHAT, default=Reply.sse([deep.decode(), "[DONE]"]))
    with pytest.raises(errors.MalformedResponseError):
        list(backend.stream(messages=user(), model="m"))
