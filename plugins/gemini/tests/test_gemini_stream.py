"""Gemini's SSE stream: chunks at any byte boundary, async, function calls, usage events."""

from __future__ import annotations

import asyncio
import json

import gemini_wire as wire
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.testing.server import ProtocolServer

STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
MESSAGES = [{"role": "user", "content": "Hello, how are you?"}]
USER = {"role": "user", "parts": [{"text": "Hello, how are you?"}]}


PIECES = ["Hé", "llo, ", "wörld ", "🚀", "!"]


@pytest.mark.parametrize("split", [None, 1, 3, 7, 64])
def test_stream_chunks_at_any_byte_boundary(
    gemini: Backend, protocol_server: ProtocolServer, split: int | None
) -> None:
    protocol_server.on("POST", STREAM, wire.sse(wire.stream_events(PIECES), split=split))
    chunks = list(gemini.stream(messages=MESSAGES, max_tokens=50))
    [req] = protocol_server.requests
    assert req.query == {"alt": "sse"}
    assert req.json() == {"contents": [USER], "generationConfig": {"maxOutputTokens": 50}}
    assert [c.text for c in chunks[:-1]] == PIECES
    assert not any(c.done for c in chunks[:-1])
    final = chunks[-1]
    assert final["done"] is True and final.text == ""
    assert final.finish_reason == "stop"
    assert final.model == wire.MODEL_VERSION
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (8, len(PIECES))
    assert gemini.get_usage_stats()["completion_tokens"] == len(PIECES)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(cuts=st.lists(st.integers(min_value=1, max_value=600), max_size=12))
def test_stream_split_anywhere(
    gemini: Backend, protocol_server: ProtocolServer, cuts: list[int]
) -> None:
    protocol_server.reset()
    protocol_server.on("POST", STREAM, wire.sse(wire.stream_events(PIECES), split=cuts))
    chunks = list(gemini.stream(messages=MESSAGES))
    assert [c.text for c in chunks] == [*PIECES, ""]
    assert chunks[-1].done and chunks[-1].finish_reason == "stop"


def test_astream(gemini: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("POST", STREAM, wire.sse(wire.stream_events(PIECES), split=5))

    async def collect() -> list[tuple[str, bool]]:
        return [(c.text, c.done) async for c in gemini.astream(messages=MESSAGES)]

    got = asyncio.run(collect())
    assert "".join(t for t, _ in got) == "".join(PIECES)
    assert got[-1][1] is True


def test_stream_function_calls(gemini: Backend, protocol_server: ProtocolServer) -> None:
    events = [
        {"candidates": [wire.candidate([{"functionCall": {"name": "a", "args": {"x": 1}}}], None)]},
        {
            "candidates": [wire.candidate([{"functionCall": {"name": "b", "args": {}}}], "STOP")],
            "usageMetadata": wire.usage(3, 4),
        },
    ]
    protocol_server.on("POST", STREAM, wire.sse(events))
    chunks = list(gemini.stream(messages=MESSAGES, tools=wire.TOOLS))
    deltas = [d for c in chunks for d in c.tool_calls]
    assert [(d.index, d.name, json.loads(d.arguments)) for d in deltas] == [
        (0, "a", {"x": 1}),
        (1, "b", {}),
    ]
    assert chunks[-1].done and chunks[-1].finish_reason == "tool_calls"


def test_stream_with_several_candidates_follows_the_first(
    gemini: Backend, protocol_server: ProtocolServer
) -> None:
    second = {"content": {"parts": [{"text": "other"}], "role": "model"}, "index": 1}
    events = wire.stream_events(["A", "B"])
    events.insert(1, {"candidates": [second]})
    events[-1]["candidates"].append({**second, "finishReason": "STOP"})
    protocol_server.on("POST", STREAM, wire.sse(events))
    chunks = list(gemini.stream(messages=MESSAGES, n=2))
    assert [c.text for c in chunks] == ["A", "B", ""]
    assert protocol_server.requests[0].json()["generationConfig"] == {"candidateCount": 2}


def test_stream_usage_only_event(gemini: Backend, protocol_server: ProtocolServer) -> None:
    events = [
        *wire.stream_events(["Hi"]),
    ]
    events.insert(0, {"usageMetadata": {"promptTokenCount": 8}, "modelVersion": "m"})
    protocol_server.on("POST", STREAM, wire.sse(events))
    chunks = list(gemini.stream(messages=MESSAGES))
    assert [c.text for c in chunks] == ["Hi", ""]


def _growing_usage(pieces: list[str], finish_usage: bool) -> list[dict[str, object]]:
    """Gemini's events as it sends them: the usage so far on every event (here the last,
    with the finish reason, may come without it)."""
    events = wire.stream_events(pieces)
    for i, event in enumerate(events):
        event["usageMetadata"] = wire.usage(8, i + 1)
    if not finish_usage:
        del events[-1]["usageMetadata"]
    return events


@pytest.mark.parametrize("finish_usage", [True, False])
def test_the_usage_reported_last_is_the_calls(
    gemini: Backend, protocol_server: ProtocolServer, finish_usage: bool
) -> None:
    protocol_server.on("POST", STREAM, wire.sse(_growing_usage(PIECES, finish_usage)))
    final = list(gemini.stream(messages=MESSAGES))[-1]
    expected = len(PIECES) if finish_usage else len(PIECES) - 1
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (8, expected)
    assert gemini.get_usage_stats()["completion_tokens"] == expected


def test_a_stream_closed_early_records_the_usage_reported_so_far(
    gemini: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", STREAM, wire.sse(_growing_usage(PIECES, True)))
    with gemini.stream(messages=MESSAGES) as stream:
        assert [next(stream).text, next(stream).text] == PIECES[:2]
    stats = gemini.get_usage_stats()
    assert (stats["prompt_tokens"], stats["completion_tokens"]) == (8, 2)


def test_async_a_stream_closed_early_records_the_usage_reported_so_far(
    gemini: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", STREAM, wire.sse(_growing_usage(PIECES, False)))

    async def two() -> None:
        async with gemini.astream(messages=MESSAGES) as stream:
            assert [(await anext(stream)).text, (await anext(stream)).text] == PIECES[:2]

    asyncio.run(two())
    stats = gemini.get_usage_stats()
    # the async transport may read several events at once: what they reported counts (the
    # final event has no usage here, so only what the parser kept back can give these)
    assert stats["prompt_tokens"] == 8 and 2 <= stats["completion_tokens"] <= len(PIECES) - 1


def test_unreadable_usage_reports_cost_nothing_and_hold_nothing(
    gemini: Backend, protocol_server: ProtocolServer
) -> None:
    """Counts int() refuses ("²" passes str.isdigit): read as 0, and a stream closed early
    still gives its key back."""
    events = _growing_usage(PIECES, True)
    for event in events:
        event["usageMetadata"] = {"promptTokenCount": "²", "candidatesTokenCount": "9" * 5000}
    protocol_server.on("POST", STREAM, wire.sse(events), wire.sse(events))
    final = list(gemini.stream(messages=MESSAGES))[-1]
    assert final.usage is not None and final.usage.total_tokens == 0
    with gemini.stream(messages=MESSAGES) as stream:
        next(stream)
    assert all(k["in_flight"] == 0 for k in gemini.get_key_usage_stats().values())
