"""Failures inside Gemini's SSE streams: error events, cut streams, a page instead of a stream."""

from __future__ import annotations

import asyncio

import gemini_wire as wire
import pytest

from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.errors import (
    BackendError,
    ConnectionError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
)
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

GEN = "/v1beta/models/gemini-2.5-flash:generateContent"
STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
MESSAGES = [{"role": "user", "content": "Hello"}]


def test_stream_error_event_mid_stream(gemini: Backend, protocol_server: ProtocolServer) -> None:
    events = [
        *wire.stream_events(["Hello"], finish=None),
        wire.error(500, "INTERNAL", "An internal error has occurred."),
    ]
    protocol_server.on("POST", STREAM, wire.sse(events))
    got: list[str] = []
    with pytest.raises(ServerError) as info:
        for chunk in gemini.stream(messages=MESSAGES):
            got.append(chunk.text)
    assert got == ["Hello"]
    assert "An internal error has occurred" in str(info.value)
    assert info.value.code == "INTERNAL" and info.value.status_code == 500
    assert len(protocol_server.requests) == 1  # text already reached the caller


def test_stream_error_event_first_is_retried(
    gemini: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on(
        "POST",
        STREAM,
        wire.sse([wire.error(503, "UNAVAILABLE", "overloaded")]),
        wire.sse(wire.stream_events(["ok"])),
    )
    assert [c.text for c in gemini.stream(messages=MESSAGES)] == ["ok", ""]
    assert len(protocol_server.requests) == 2


def test_stream_quota_error_event_waits_for_retry_info(
    gemini: Backend, protocol_server: ProtocolServer, clock: FakeClock
) -> None:
    protocol_server.on(
        "POST", STREAM, wire.sse([wire.QUOTA]), wire.sse(wire.stream_events(["later"]))
    )
    assert [c.text for c in gemini.stream(messages=MESSAGES)] == ["later", ""]
    assert len(protocol_server.requests) == 2
    assert sum(clock.sleeps) >= 7.0  # google.rpc.RetryInfo retryDelay "7s"


def test_stream_error_status_is_retried(gemini: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on(
        "POST",
        STREAM,
        wire.error_reply(503, "UNAVAILABLE", "busy"),
        wire.sse(wire.stream_events(["fine"])),
    )
    assert [c.text for c in gemini.stream(messages=MESSAGES)] == ["fine", ""]


def test_stream_cut_after_first_chunk_is_not_retried(
    gemini: Backend, protocol_server: ProtocolServer
) -> None:
    events = wire.stream_events(["one ", "two ", "three"])
    protocol_server.on("POST", STREAM, default=wire.sse(events, cut_after=1))
    got: list[str] = []
    with pytest.raises(ConnectionError):
        for chunk in gemini.stream(messages=MESSAGES):
            got.append(chunk.text)
    assert got == ["one "]
    assert len(protocol_server.requests) == 1


def test_stream_without_finish_reason_is_cut(
    gemini: Backend, protocol_server: ProtocolServer
) -> None:
    events = wire.stream_events(["one ", "two"])
    events[-1]["candidates"][0].pop("finishReason")
    protocol_server.on("POST", STREAM, default=wire.sse(events))
    with pytest.raises(ConnectionError) as info:
        list(gemini.stream(messages=MESSAGES))
    assert "end marker" in str(info.value)


def test_stream_cut_mid_event(gemini: Backend, protocol_server: ProtocolServer) -> None:
    reply = wire.sse(wire.stream_events(["abc"]))
    payload = b"".join(reply.chunks or [])
    protocol_server.on("POST", STREAM, default=Reply.sse(payload[:-10]))
    with pytest.raises(ConnectionError, match="middle of an event"):
        list(gemini.stream(messages=MESSAGES))


def test_stream_malformed_event(gemini: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", STREAM, default=wire.sse([b"data: {not json\r\n\r\n"]))
    with pytest.raises(MalformedResponseError):
        list(gemini.stream(messages=MESSAGES))


def test_async_errors_match_sync(gemini: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", GEN, default=wire.error_reply(404, "NOT_FOUND", "no such model"))
    protocol_server.on("POST", STREAM, default=wire.error_reply(403, "PERMISSION_DENIED", "no"))

    async def both() -> tuple[BackendError, BackendError]:
        errors: list[BackendError] = []
        try:
            await gemini.achat(messages=MESSAGES)
        except BackendError as exc:
            errors.append(exc)
        try:
            async with gemini.astream(messages=MESSAGES) as stream:
                async for _ in stream:
                    pass
        except BackendError as exc:
            errors.append(exc)
        return errors[0], errors[1]

    chat_err, stream_err = asyncio.run(both())
    assert type(chat_err) is NotFoundError and "no such model" in str(chat_err)
    assert type(stream_err) is PermissionDeniedError


def test_async_stream_cut(gemini: Backend, protocol_server: ProtocolServer) -> None:
    events = wire.stream_events(["one ", "two"])
    protocol_server.on("POST", STREAM, default=wire.sse(events, cut_after=1))

    async def read() -> list[str]:
        return [c.text async for c in gemini.astream(messages=MESSAGES)]

    with pytest.raises(ConnectionError):
        asyncio.run(read())


def test_stream_invalid_argument_event_is_a_client_error(
    gemini: Backend, protocol_server: ProtocolServer
) -> None:
    bad = wire.error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.")
    protocol_server.on("POST", STREAM, default=wire.sse([bad]))
    for _ in range(6):  # client errors never open the breaker
        with pytest.raises(InvalidRequestError) as info:
            list(gemini.stream(messages=MESSAGES))
        assert info.value.status_code == 400
    assert len(protocol_server.requests) == 6


def test_html_page_instead_of_a_stream(gemini: Backend, protocol_server: ProtocolServer) -> None:
    page = Reply.text("<html><body>502 Bad Gateway</body></html>", content_type="text/html")
    protocol_server.on("POST", STREAM, default=page)
    with pytest.raises(MalformedResponseError) as info:
        list(gemini.stream(messages=MESSAGES, request_id="req_1"))
    assert str(info.value) == (
        "Malformed response from gemini (HTTP 200): asked for a stream, got a 200 text/html "
        "body instead: <html><body>502 Bad Gateway</body></html> [request id: req_1]"
    )
    assert len(protocol_server.requests) == 1  # sent once: not retried
