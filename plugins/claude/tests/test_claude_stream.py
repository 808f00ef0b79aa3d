"""Streamed messages: the named SSE events, at any byte boundary, sync and async."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipfs_accelerate_claude import plugin
from ipfs_accelerate_claude import testing_wire as wire
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.pipeline import StreamState
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply
from ipfs_accelerate_py.types import ChatRequest, Message, StreamChunk

MESSAGES = "/v1/messages"
HELLO = [{"role": "user", "content": "Hello, how are you?"}]
PIECES = ["Hé", "llo, ", "wörld ", "🚀", "!"]
TOOL = ("toolu_01T", "get_weather", ['{"ci', 'ty": "Pa', 'ris"}'])
EVENTS = [
    *wire.stream_events(PIECES, tool=TOOL, stop_reason="tool_use", cache_read=11)[:-1],
    ("content_block_citation", {"type": "content_block_citation", "index": 0}),
    ("message_stop", {"type": "message_stop"}),
]
PAYLOAD = wire.sse_bytes(EVENTS)


def _summary(chunks: list[StreamChunk]) -> dict[str, Any]:
    """What a stream delivered: text, assembled tool calls, the final chunk's fields."""
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for d in chunk.tool_calls:
            call = calls.setdefault(d.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += d.id or ""
            call["name"] += d.name or ""
            call["arguments"] += d.arguments
    final = chunks[-1]
    assert final.done and not any(c.done for c in chunks[:-1])
    usage = final.usage
    assert usage is not None
    return {
        "text": "".join(c.text for c in chunks),
        "tools": calls,
        "finish": final.finish_reason,
        "model": final.model,
        "usage": (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens),
        "cache_read": usage.extra.get("cache_read_input_tokens"),
    }


EXPECTED = {
    "text": "".join(PIECES),
    "tools": {0: {"id": "toolu_01T", "name": "get_weather", "arguments": '{"city": "Paris"}'}},
    "finish": "tool_calls",
    "model": wire.MODEL,
    "usage": (25, 15, 40),
    "cache_read": 11,
}


@pytest.mark.parametrize("split", [None, 1, 3, 7, 64])
def test_stream_at_any_byte_boundary(
    claude: Backend, protocol_server: ProtocolServer, split: int | None
) -> None:
    protocol_server.on("POST", MESSAGES, Reply.sse(PAYLOAD, split=split))
    chunks = list(claude.stream(messages=HELLO, max_tokens=64))
    [req] = protocol_server.requests
    assert req.json() == {
        "model": "claude-sonnet-5-5",
        "max_tokens": 64,
        "messages": HELLO,
        "stream": True,
    }
    assert req.headers["anthropic-version"] == "2023-06-01"
    assert [c.text for c in chunks if c.text] == PIECES
    assert _summary(chunks) == EXPECTED
    assert chunks[-1]["done"] is True and chunks[-1]["text"] == ""
    stats = claude.get_usage_stats()
    assert (stats["prompt_tokens"], stats["completion_tokens"]) == (25, 15)


def test_astream(claude: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", MESSAGES, Reply.sse(PAYLOAD, split=5))

    async def collect() -> list[StreamChunk]:
        return [c async for c in claude.astream(messages=HELLO)]

    assert _summary(asyncio.run(collect())) == EXPECTED


def test_events_without_event_lines_are_read_by_their_type(
    claude: Backend, protocol_server: ProtocolServer
) -> None:
    # some proxies drop the "event:" lines; the type is in every event's data too
    events = [data for _, data in wire.stream_events(["a", "b"])]
    protocol_server.on("POST", MESSAGES, Reply.sse(events))
    chunks = list(claude.stream(messages=HELLO))
    assert "".join(c.text for c in chunks) == "ab"
    assert chunks[-1].finish_reason == "stop"


def test_server_tool_blocks_are_skipped(claude: Backend, protocol_server: ProtocolServer) -> None:
    # a server tool (web search) streams its input like a tool_use block; the API runs it
    events = wire.stream_events(["Searching. "])
    server_tool = [
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {
                    "type": "server_tool_use",
                    "id": "srvtoolu_1",
                    "name": "web_search",
                    "input": {},
                },
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"query": "x"}'},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 2,
                "delta": {"type": "thinking_delta", "thinking": "hmm"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 2}),
    ]
    at = next(i for i, e in enumerate(events) if e[0] == "message_delta")
    protocol_server.on("POST", MESSAGES, Reply.sse([*events[:at], *server_tool, *events[at:]]))
    chunks = list(claude.stream(messages=HELLO))
    assert "".join(c.text for c in chunks) == "Searching. "
    assert not any(c.tool_calls for c in chunks)
    assert chunks[-1].done and chunks[-1].finish_reason == "stop"


def test_stream_of_a_tool_without_arguments(
    claude: Backend, protocol_server: ProtocolServer
) -> None:
    events = wire.stream_events([], tool=("toolu_9", "now", []), stop_reason="tool_use")
    protocol_server.on("POST", MESSAGES, Reply.sse(events))
    chunks = list(claude.stream(messages=HELLO))
    [delta] = [d for c in chunks for d in c.tool_calls]
    assert (delta.index, delta.id, delta.name, delta.arguments) == (0, "toolu_9", "now", "")
    assert chunks[-1].finish_reason == "tool_calls"


def _state() -> StreamState:
    request = ChatRequest("claude-sonnet-5-5", (Message("user", "Hi"),), {})
    call = plugin.stream(request=request)
    assert call is not None
    return StreamState(call, "claude")


def _run(payload: bytes, cuts: list[int]) -> list[StreamChunk]:
    state = _state()
    edges = [0, *sorted(set(cuts)), len(payload)]
    chunks: list[StreamChunk] = []
    for a, b in itertools.pairwise(edges):
        chunks.extend(state.feed(payload[a:b]))
    tail, final = state.finish("req_test")
    return [*chunks, *tail, final]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(PAYLOAD) - 1), max_size=40))
def test_property_any_split_gives_the_same_stream(cuts: list[int]) -> None:
    assert _summary(_run(PAYLOAD, cuts)) == EXPECTED


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=6),
    st.lists(st.text(max_size=6), max_size=4),
    st.data(),
)
def test_property_random_streams(pieces: list[str], args: list[str], data: Any) -> None:
    events = wire.stream_events(pieces, tool=("t1", "f", args), input_tokens=3, output_tokens=9)
    payload = wire.sse_bytes(events)
    cuts = data.draw(st.lists(st.integers(1, max(1, len(payload) - 1)), max_size=30))
    summary = _summary(_run(payload, cuts))
    assert summary["text"] == "".join(pieces)
    assert summary["tools"] == {0: {"id": "t1", "name": "f", "arguments": "".join(args)}}
    assert summary["usage"] == (3, 9, 12)


class _Event:
    """A decoded server-sent event, as core hands it to the parser."""

    def __init__(self, event: str, data: str) -> None:
        self.event, self.data = event, data

    def json(self) -> Any:
        return json.loads(self.data)


def test_a_second_attempt_starts_with_a_fresh_parser() -> None:
    # the tool block numbering lives in the parser: a retry must not continue it
    call = _state().call
    assert call.new_parser is not None and call.parse_event is None
    first, second = call.new_parser(), call.new_parser()
    assert first is not second
    events = wire.stream_events([], tool=("t", "f", []))
    [tool_start] = [d for _, d in events if d.get("content_block", {}).get("type") == "tool_use"]
    event = _Event("content_block_start", json.dumps(tool_start))
    a, b = first(event), second(event)
    assert isinstance(a, StreamChunk) and isinstance(b, StreamChunk)
    assert a.tool_calls[0].index == b.tool_calls[0].index == 0
