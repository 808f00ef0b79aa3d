"""Routed streams: fallback before the first chunk, stalls, and both mid-stream modes."""

from __future__ import annotations

import asyncio
import json

import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

CHAT = "/v1/chat/completions"
user = wire.user


def counts(servers: list[ProtocolServer]) -> list[int]:
    return [len(s.requests_to(CHAT)) for s in servers]


def sse(pieces: list[str], **kw: object) -> Reply:
    return Reply.sse(wire.chat_stream(pieces), **kw)


def test_failure_before_the_first_chunk_falls_back(route, servers) -> None:
    servers[0].on("POST", CHAT, default=wire.error_reply(529))
    servers[1].on("POST", CHAT, default=Reply.drop_connection())
    servers[2].on("POST", CHAT, default=sse(["Hel", "lo"]))
    router = route({"smart": [0, 1, 2]})
    with router.stream(model="smart", messages=user()) as stream:
        chunks = list(stream)
    assert [c.text for c in chunks] == ["Hel", "lo", ""]
    assert chunks[-1].done and chunks[-1].usage.completion_tokens == 2
    assert [(a.deployment, a.error) for a in stream.attempts] == [
        ("d0", "OverloadedError"),
        ("d1", "ConnectionError"),
        ("d2", None),
    ]
    assert stream.deployment == "d2" and stream.text == "Hello"
    assert counts(servers) == [1, 1, 1, 0]


def test_stall_before_the_first_chunk_is_a_failure(route, servers) -> None:
    servers[0].on("POST", CHAT, default=sse(["late"], delay=3.0))
    servers[1].on("POST", CHAT, default=sse(["on time"]))
    router = route({"smart": [0, 1]}, stream_idle_timeout=0.2)
    with router.stream(model="smart", messages=user()) as stream:
        text = "".join(c.text for c in stream)
    assert text == "on time"
    assert [a.error for a in stream.attempts] == ["TimeoutError", None]


def test_mid_stream_failure_raises_with_the_partial_text(route, servers) -> None:
    servers[0].on("POST", CHAT, default=sse(["one ", "two ", "three"], cut_after=3))
    servers[1].on("POST", CHAT, default=sse(["never"]))
    router = route({"smart": [0, 1]})
    seen = []
    with (
        pytest.raises(errors.ConnectionError) as info,
        router.stream(model="smart", messages=user()) as stream,
    ):
        for chunk in stream:
            seen.append(chunk.text)
    assert seen == ["one ", "two "]
    assert info.value.partial_text == "one two "
    assert [a.error for a in info.value.attempts] == ["ConnectionError"]
    assert counts(servers) == [1, 0, 0, 0]  # no fallback in the default "raise" mode


def test_mid_stream_stall_raises_with_the_partial_text(route, servers) -> None:
    events = wire.chat_stream(["a", "b", "c"])
    head = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events[:2])
    servers[0].on("POST", CHAT, default=Reply.sse([head, *events[2:]], chunk_delay=2.0))
    router = route({"smart": [0, 1]}, stream_idle_timeout=0.3)
    seen = []
    with (
        pytest.raises(errors.TimeoutError) as info,
        router.stream(model="smart", messages=user()) as stream,
    ):
        for chunk in stream:
            seen.append(chunk.text)
    assert seen == ["a"] and info.value.partial_text == "a"
    assert counts(servers)[:2] == [1, 0]


def test_mid_stream_failure_continues_on_the_fallback_when_asked(route, servers) -> None:
    servers[0].on("POST", CHAT, default=sse(["The answer ", "is "], cut_after=3))
    servers[1].on("POST", CHAT, default=sse(["forty-two."]))
    router = route(
        {"smart": [0], "backup": [1]}, fallbacks={"smart": ["backup"]}, stream_resume="continue"
    )
    with router.stream(model="smart", messages=user("Question?"), system="Be brief.") as stream:
        chunks = list(stream)
    assert "".join(c.text for c in chunks) == "The answer is forty-two."
    sent = servers[1].requests_to(CHAT)[0].json()["messages"]
    assert sent == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Question?"},
        {"role": "assistant", "content": "The answer is"},
    ]
    assert [(a.error, a.reason) for a in stream.attempts] == [
        ("ConnectionError", "primary"),
        (None, "stream_resume"),
    ]


def test_closing_a_routed_stream_frees_the_deployment(route, servers) -> None:
    servers[0].on("POST", CHAT, default=sse(["a", "b", "c"]))
    router = route({"smart": [0]})
    stream = router.stream(model="smart", messages=user())
    assert next(stream).text == "a"
    stream.close()
    dep = router.deployments("smart")[0]
    assert dep.in_flight == 0 and dep.backend.get_queue_info()["active_requests"] == 0


def test_async_stream_falls_back_and_resumes(route, servers) -> None:
    servers[0].on("POST", CHAT, default=wire.error_reply(503))
    servers[1].on("POST", CHAT, default=sse(["x", "y"], cut_after=2))
    servers[2].on("POST", CHAT, default=sse(["z"]))
    router = route({"smart": [0, 1, 2]}, stream_resume="continue")

    async def main() -> tuple[str, object]:
        async with router.astream(model="smart", messages=user()) as stream:
            text = "".join([c.text async for c in stream])
        return text, stream.attempts

    text, attempts = asyncio.run(main())
    assert text == "xz"
    assert [a.error for a in attempts] == ["ServerError", "ConnectionError", None]
    assert counts(servers) == [1, 1, 1, 0]


def test_async_mid_stream_raise_mode(route, servers) -> None:
    servers[0].on("POST", CHAT, default=sse(["p", "q", "r"], cut_after=2))
    router = route({"smart": [0, 1]})

    async def main() -> list[str]:
        got: list[str] = []
        with pytest.raises(errors.ConnectionError) as info:
            async with router.astream(model="smart", messages=user()) as stream:
                async for chunk in stream:
                    got.append(chunk.text)
        assert info.value.partial_text == "p"
        return got

    assert asyncio.run(main()) == ["p"]
    assert counts(servers)[:2] == [1, 0]
