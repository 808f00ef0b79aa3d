"""Tests for the incremental SSE and NDJSON decoders (WHATWG server-sent events rules)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipfs_accelerate_py.decoders import (
    NDJSONDecoder,
    ServerSentEvent,
    SSEDecoder,
    aiter_ndjson,
    aiter_sse,
    iter_ndjson,
    iter_sse,
)
from ipfs_accelerate_py.errors import MalformedResponseError

E = ServerSentEvent


def sse(*chunks: bytes) -> list[ServerSentEvent]:
    """Feed ``chunks`` to a fresh decoder and return every event, close included."""
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.close()


def split_every(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# --- line endings -------------------------------------------------------------------------


def test_lf_line_endings() -> None:
    assert sse(b"data: a\n\ndata: b\n\n") == [E(data="a"), E(data="b")]


def test_crlf_line_endings() -> None:
    assert sse(b"data: a\r\n\r\ndata: b\r\n\r\n") == [E(data="a"), E(data="b")]


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    # Were the split CRLF two line ends, the LF would be a blank line dispatching "a" alone.
    assert sse(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == [E(data="a\nb")]


def test_crlf_split_across_chunks_with_empty_chunk_between() -> None:
    assert sse(b"data: a\r", b"", b"\ndata: b\r\n\r\n") == [E(data="a\nb")]


def test_cr_at_chunk_end_followed_by_non_lf_keeps_next_byte() -> None:
    assert sse(b"data: a\r", b"data: b\r", b"\r") == [E(data="a\nb")]


def test_lone_cr_line_endings() -> None:
    assert sse(b"data: a\rdata: b\r\revent: x\rdata: c\r\r") == [
        E(data="a\nb"),
        E(event="x", data="c"),
    ]


def test_mixed_line_endings() -> None:
    stream = b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r\ndata: e\n\n"
    # "\r\r\n" is a CR line end then a CRLF one: "d" is dispatched by the blank line between.
    assert sse(stream) == [E(data="a\nb\nc"), E(data="d"), E(data="e")]


def test_cr_cr_is_two_line_ends_even_when_split() -> None:
    assert sse(b"data: a\r", b"\r", b"data: b\r\r") == [E(data="a"), E(data="b")]


def test_many_tiny_chunks() -> None:
    stream = b'data: {"x": "' + b"y" * 5000 + b'"}\r\n\r\n'
    assert sse(*split_every(stream, 1)) == sse(stream) == [E(data='{"x": "' + "y" * 5000 + '"}')]


# --- BOM and UTF-8 ------------------------------------------------------------------------


def test_bom_at_start_is_skipped() -> None:
    assert sse(b"\xef\xbb\xbfdata: a\n\n") == [E(data="a")]


def test_bom_split_across_chunks_is_skipped() -> None:
    assert sse(b"\xef", b"\xbb", b"\xbfdata: a\n\n") == [E(data="a")]
    assert sse(b"\xef\xbb", b"\xbfdata: a\n\n") == [E(data="a")]


def test_only_one_leading_bom_is_skipped() -> None:
    # The second BOM is part of the field name "\ufeffdata", which is ignored.
    assert sse(b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\ndata: b\n\n") == [E(data="b")]


def test_bom_after_start_is_not_skipped() -> None:
    assert sse(b"data: a\n", b"\xef\xbb\xbfdata: b\n\n") == [E(data="a")]
    assert sse(b"data: \xef\xbb\xbfb\n\n") == [E(data="\ufeffb")]


def test_partial_bom_prefix_that_is_not_a_bom() -> None:
    assert sse(b"\xef", b"data: a\n\n") == []  # "\ufffddata" is an unknown field


def test_multibyte_character_split_across_chunks() -> None:
    stream = "data: héllo €𝄞\n\n".encode()
    for size in range(1, 6):
        assert sse(*split_every(stream, size)) == [E(data="héllo €𝄞")]


def test_invalid_utf8_is_replaced() -> None:
    assert sse(b"data: a\xffb\xe2\n\n") == [E(data="a\ufffdb\ufffd")]


# --- fields -------------------------------------------------------------------------------


def test_comments_are_ignored() -> None:
    assert sse(b": ping\n\n:\n\n") == []
    assert sse(b": hello\ndata: a\n:data: b\n\n") == [E(data="a")]


def test_multiline_data_is_joined_with_lf() -> None:
    assert sse(b"data: a\ndata:\ndata: b\n\n") == [E(data="a\n\nb")]


def test_data_with_and_without_space() -> None:
    assert sse(b"data:x\n\n", b"data: x\n\n", b"data:  x\n\n") == [
        E(data="x"),
        E(data="x"),
        E(data=" x"),
    ]


def test_value_keeps_later_colons() -> None:
    assert sse(b'data: {"a": 1}\n\n') == [E(data='{"a": 1}')]


def test_field_without_colon_has_empty_value() -> None:
    assert sse(b"data\n\n") == [E(data="")]
    assert sse(b"data\ndata\n\n") == [E(data="\n")]
    assert sse(b"event: x\nevent\ndata: a\n\n") == [E(event="message", data="a")]


def test_empty_data_value_is_still_dispatched() -> None:
    assert sse(b"data:\n\n", b"data: \n\n") == [E(data=""), E(data="")]


def test_event_type() -> None:
    assert sse(b"event: delta\ndata: a\n\n") == [E(event="delta", data="a")]


def test_event_type_resets_after_dispatch() -> None:
    assert sse(b"event: delta\ndata: a\n\ndata: b\n\n") == [
        E(event="delta", data="a"),
        E(event="message", data="b"),
    ]


def test_blank_line_without_data_dispatches_nothing_and_resets_type() -> None:
    assert sse(b"event: ping\n\n") == []
    assert sse(b"event: ping\n\ndata: a\n\n") == [E(event="message", data="a")]
    assert sse(b"\n\n\n\ndata: a\n\n\n\n") == [E(data="a")]


def test_unknown_fields_are_ignored() -> None:
    assert sse(b"foo: bar\nDATA: x\ndata : y\ndata: a\n\n") == [E(data="a")]


def test_id_persists_across_events() -> None:
    stream = b"id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\n"
    assert sse(stream) == [E(data="a", id="1"), E(data="b", id="1"), E(data="c", id="2")]


def test_id_is_none_until_set_and_empty_id_resets_it() -> None:
    assert sse(b"data: a\n\nid: 7\ndata: b\n\nid\ndata: c\n\n") == [
        E(data="a", id=None),
        E(data="b", id="7"),
        E(data="c", id=""),
    ]


def test_id_set_by_an_event_without_data_persists() -> None:
    assert sse(b"id: 5\n\ndata: a\n\n") == [E(data="a", id="5")]


def test_id_containing_nul_is_ignored() -> None:
    assert sse(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n") == [
        E(data="a", id="1"),
        E(data="b", id="1"),
    ]


def test_retry_valid() -> None:
    assert sse(b"retry: 3000\ndata: a\n\n") == [E(data="a", retry=3000)]
    assert sse(b"retry:0\ndata: a\n\n") == [E(data="a", retry=0)]


@pytest.mark.parametrize("value", [b"3s", b"-1", b"1.5", b"", b" 5", b"\xd9\xa3", b"\xc2\xb2"])
def test_retry_invalid_is_ignored(value: bytes) -> None:
    assert sse(b"retry: " + value + b"\ndata: a\n\n") == [E(data="a", retry=None)]


def test_retry_belongs_to_its_event_only() -> None:
    assert sse(b"retry: 10\ndata: a\n\ndata: b\n\n") == [E(data="a", retry=10), E(data="b")]


def test_done_sentinel_is_a_normal_event() -> None:
    assert sse(b"data: [DONE]\n\n") == [E(data="[DONE]")]


def test_feed_returns_events_completed_by_each_chunk() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"\ndata: b\n\ndata: c") == [E(data="a"), E(data="b")]
    assert decoder.feed(b"\n\n") == [E(data="c")]


# --- end of stream ------------------------------------------------------------------------


def test_close_after_complete_stream_is_not_truncated() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: a\n\n: trailing comment\n")
    assert decoder.close() == []
    assert decoder.truncated is False


def test_close_with_partial_line_is_truncated() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: b") == [E(data="a")]
    assert decoder.close() == []
    assert decoder.truncated is True


def test_close_with_undispatched_data_is_truncated() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.close() == []  # WHATWG: an incomplete event at EOF is not dispatched
    assert decoder.truncated is True


def test_close_after_cr_is_not_truncated() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\r") == [E(data="a")]
    decoder.close()
    assert decoder.truncated is False


# --- ServerSentEvent ----------------------------------------------------------------------


def test_event_defaults_and_repr() -> None:
    event = ServerSentEvent()
    assert (event.event, event.data, event.id, event.retry) == ("message", "", None, None)
    assert repr(E(data="x", id="1")) == (
        "ServerSentEvent(event='message', data='x', id='1', retry=None)"
    )
    assert E(data="x") != E(data="y")
    assert E(data="x") != "x"


def test_event_json() -> None:
    assert sse(b'data: {"a": [1, 2]}\n\n')[0].json() == {"a": [1, 2]}


def test_event_json_error_names_data_and_provider() -> None:
    decoder = SSEDecoder(provider="openai")
    (event,) = decoder.feed(b"data: {not json\n\n")
    with pytest.raises(MalformedResponseError) as info:
        event.json()
    assert info.value.provider == "openai"
    assert "{not json" in str(info.value)
    assert "openai" in str(info.value)


def test_event_json_error_truncates_long_data() -> None:
    event = E(data="x" * 10_000)
    with pytest.raises(MalformedResponseError) as info:
        event.json()
    assert len(str(info.value)) < 400


# --- property: arbitrary chunking ---------------------------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12)
_field_events = st.lists(
    st.tuples(
        st.one_of(st.none(), st.sampled_from(["delta", "ping", "héllo"])),  # event
        st.lists(_text, min_size=1, max_size=3),  # data lines
        st.one_of(st.none(), _text.filter(lambda s: "\0" not in s)),  # id
        st.one_of(st.none(), st.integers(0, 10**6)),  # retry
        st.booleans(),  # a comment line
    ),
    max_size=8,
)
_line_end = st.sampled_from(["\n", "\r", "\r\n"])


def _serialise(events: list[Any], ends: Any) -> tuple[bytes, list[ServerSentEvent]]:
    lines: list[str] = []
    expected: list[ServerSentEvent] = []
    last_id = None
    for event_type, data, event_id, retry, comment in events:
        if comment:
            lines.append(": keep-alive")
        if event_type is not None:
            lines.append(f"event: {event_type}")
        if event_id is not None:
            lines.append(f"id: {event_id}")
            last_id = event_id
        if retry is not None:
            lines.append(f"retry: {retry}")
        lines.extend(f"data: {value}" for value in data)
        lines.append("")
        expected.append(E(event_type or "message", "\n".join(data), last_id, retry))
    text = ""
    for line in lines:
        end = ends.draw(_line_end)
        if not line and text.endswith("\r") and end.startswith("\n"):
            end = "\r"  # else that CR and this LF would make one CRLF line end
        text += line + end
    return b"\xef\xbb\xbf" + text.encode(), expected


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=300, deadline=None)
@given(events=_field_events, ends=st.data(), cuts=st.lists(st.integers(0, 400), max_size=40))
def test_sse_chunking_does_not_change_events(events: list[Any], ends: Any, cuts: list[int]) -> None:
    stream, expected = _serialise(events, ends)
    assert sse(stream) == expected
    assert sse(*_split(stream, cuts)) == expected
    assert sse(*split_every(stream, 1)) == expected


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.tuples(_json, st.sampled_from(["\n", "\r\n", "\n\n", " \n"])), max_size=10),
    final_newline=st.booleans(),
    cuts=st.lists(st.integers(0, 400), max_size=40),
)
def test_ndjson_chunking_does_not_change_values(
    values: list[tuple[Any, str]], final_newline: bool, cuts: list[int]
) -> None:
    text = "".join(json.dumps(value, ensure_ascii=False) + end for value, end in values)
    if not final_newline:
        text = text.rstrip("\r\n ")
    stream = text.encode()
    expected = [value for value, _ in values]
    assert list(iter_ndjson([stream])) == expected
    assert list(iter_ndjson(_split(stream, cuts))) == expected
    assert list(iter_ndjson(split_every(stream, 1))) == expected


# --- NDJSON -------------------------------------------------------------------------------


def test_ndjson_lines_blank_lines_and_crlf() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"a": 1}\n\n  \r\n[2]\r\n"thr') == [{"a": 1}, [2]]
    assert decoder.feed(b'ee"\n') == ["three"]
    assert decoder.close() == []


def test_ndjson_close_parses_final_line_without_newline() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"done": false}\n{"done": tr') == [{"done": False}]
    assert decoder.feed(b"ue}") == []
    assert decoder.close() == [{"done": True}]


def test_ndjson_close_skips_blank_tail() -> None:
    decoder = NDJSONDecoder()
    decoder.feed(b"1\n  ")
    assert decoder.close() == []


def test_ndjson_multibyte_split() -> None:
    stream = '{"t": "€𝄞"}\n'.encode()
    assert list(iter_ndjson(split_every(stream, 1))) == [{"t": "€𝄞"}]


def test_ndjson_malformed_line_raises_quoting_it() -> None:
    decoder = NDJSONDecoder(provider="ollama")
    with pytest.raises(MalformedResponseError) as info:
        decoder.feed(b'{"ok": 1}\n{"oops": \n')
    assert info.value.provider == "ollama"
    assert '{"oops":' in str(info.value)
    assert "ollama" in str(info.value)


def test_ndjson_malformed_final_line_raises_on_close() -> None:
    decoder = NDJSONDecoder()
    decoder.feed(b"1\n<html>")
    with pytest.raises(MalformedResponseError, match="<html>"):
        decoder.close()


def test_ndjson_malformed_long_line_is_truncated() -> None:
    with pytest.raises(MalformedResponseError) as info:
        NDJSONDecoder().feed(b"x" * 10_000 + b"\n")
    assert len(str(info.value)) < 400


# --- iterator helpers ---------------------------------------------------------------------

_STREAM = [b"id: 1\nda", b"ta: a\n\n", b"data: [DONE]\r", b"\n\r\n", b"data: cut"]


async def _agen(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        await asyncio.sleep(0)
        yield chunk


def test_iter_sse() -> None:
    assert list(iter_sse(_STREAM)) == [E(data="a", id="1"), E(data="[DONE]", id="1")]


def test_aiter_sse() -> None:
    async def collect() -> list[ServerSentEvent]:
        return [event async for event in aiter_sse(_agen(_STREAM))]

    assert asyncio.run(collect()) == [E(data="a", id="1"), E(data="[DONE]", id="1")]


def test_iter_ndjson() -> None:
    assert list(iter_ndjson([b'{"a"', b": 1}\n[", b"2]"])) == [{"a": 1}, [2]]


def test_aiter_ndjson() -> None:
    async def collect() -> list[Any]:
        return [value async for value in aiter_ndjson(_agen([b'{"a"', b": 1}\n[", b"2]"]))]

    assert asyncio.run(collect()) == [{"a": 1}, [2]]


def test_aiter_ndjson_raises_with_provider() -> None:
    async def collect() -> list[Any]:
        return [value async for value in aiter_ndjson(_agen([b"nope\n"]), provider="tgi")]

    with pytest.raises(MalformedResponseError, match="tgi"):
        asyncio.run(collect())
