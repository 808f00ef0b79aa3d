"""The decoders' fast paths (one event per chunk, several whole events in one read) give
exactly what the general path gives: the same events, fed one byte at a time (which never
takes a fast path) or cut at random places."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipfs_accelerate_py.decoders import NDJSONDecoder, SSEDecoder
from ipfs_accelerate_py.errors import MalformedResponseError

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
_field = st.sampled_from(["data", "event", "id", "retry", ": comment", "data:", "event:"])
_line = st.tuples(_field, _text).map(lambda p: f"{p[0]}: {p[1]}" if p[0][0] != ":" else p[0])
_event = st.lists(_line, min_size=0, max_size=3).map(lambda ls: "".join(x + "\n" for x in ls))
_end = st.sampled_from(["\n", "\r\n"])


def _sse(chunks: list[bytes]) -> list[tuple[str, str, str | None, int | None]]:
    decoder = SSEDecoder()
    out = [e for c in chunks for e in decoder.feed(c)]
    return [(e.event, e.data, e.id, e.retry) for e in out]


@given(st.lists(st.tuples(_event, _end), max_size=6))
def test_sse_event_chunks_match_one_buffer(events: list[tuple[str, str]]) -> None:
    chunks = [(body + "\n").replace("\n", end).encode() for body, end in events]
    chunks.insert(0, b": start\n\n")
    assert _sse(chunks) == _sse([b"".join(chunks)])


def test_sse_fast_path_shapes() -> None:
    chunks = [
        b": hi\n\n",
        b'data: {"a": 1}\n\n',
        b"event: delta\ndata: x\n\n",
        b"data: y\r\n\r\n",
        b"event: e2\r\ndata: z\r\n\r\n",
        b"data: \n\n",
        b"retry: 5\n",
        b"data: after-retry\n\n",
        b"data: a\nb\n",  # ends with LF but not with a blank line: no event yet
        b"\n",
        b"data: c\r\ndata: d\r\n",
        b"\r\n",
    ]
    events = _sse(chunks)
    assert events == _sse([b"".join(chunks)])
    assert events == [
        ("message", '{"a": 1}', None, None),
        ("delta", "x", None, None),
        ("message", "y", None, None),
        ("e2", "z", None, None),
        ("message", "", None, None),
        ("message", "after-retry", None, 5),
        ("message", "a", None, None),
        ("message", "c\nd", None, None),
    ]


_data_event = _text.filter(lambda t: "\r" not in t and "\n" not in t).map(lambda t: f"data: {t}\n")


@given(
    st.lists(st.tuples(st.one_of(_data_event, _event), _end), max_size=8),
    st.lists(st.integers(min_value=1, max_value=400), max_size=6),
)
def test_sse_reads_of_several_events_match_byte_by_byte(
    events: list[tuple[str, str]], cuts: list[int]
) -> None:
    start = b": start\n\n"  # read first, so that the next read may take a fast path
    body = b"".join((text + "\n").replace("\n", end).encode() for text, end in events)
    whole = start + body
    reference = _sse([whole[i : i + 1] for i in range(len(whole))])
    assert _sse([start, body]) == reference
    offsets = [0, *sorted({c for c in cuts if c < len(body)}), len(body)]
    assert _sse([start] + [body[a:b] for a, b in itertools.pairwise(offsets) if b > a]) == reference


def test_sse_several_events_in_one_read() -> None:
    body = b'data: {"a": 1}\n\ndata: two\n\ndata: th'
    decoder = SSEDecoder()
    decoder.feed(b": start\n\n")
    assert [e.data for e in decoder.feed(body)] == ['{"a": 1}', "two"]
    assert [e.data for e in decoder.feed(b"ree\n\n")] == ["three"]
    crlf = b"data: a\r\n\r\ndata: b\r\n\r\nid: 7\r\ndata: c\r\n\r\n"
    assert [(e.data, e.id) for e in decoder.feed(crlf)] == [("a", None), ("b", None), ("c", "7")]


@given(st.lists(st.dictionaries(st.text(max_size=5), st.integers() | _text, max_size=3)))
def test_ndjson_line_chunks_match_one_buffer(objs: list[dict[str, object]]) -> None:
    import json

    lines = [b"{}\n"] + [json.dumps(o).encode() + b"\n" for o in objs] + [b"\n"]
    one, many = NDJSONDecoder(), NDJSONDecoder()
    assert [v for c in lines for v in many.feed(c)] == one.feed(b"".join(lines))


def test_sse_reads_cut_anywhere_keep_the_fast_path() -> None:
    """A body read in pieces cut at any byte (a Content-Length stream read 64 KiB at a time):
    the start of an event is kept for the next read, and a byte order mark is only ever
    read at the very start."""
    body = b"".join(b'data: {"i": %d}\n\n' % i for i in range(50))
    for size in (1, 5, 7, 64, 1000):
        pieces = [body[i : i + size] for i in range(0, len(body), size)]
        assert [e.data for e in _feed(pieces)] == [f'{{"i": {i}}}' for i in range(50)]
    assert [e.data for e in _feed([b"\xef\xbb\xbfdata: a\n\n", b"\xef\xbb\xbfdata: b\n\n"])] == [
        "a"
    ]  # a second mark is not one: its line is no field (WHATWG), so nothing is dispatched


def test_sse_a_stream_ending_inside_a_kept_event_is_truncated() -> None:
    decoder = SSEDecoder()
    assert [e.data for e in decoder.feed(b'data: a\n\ndata: {"b')] == ["a"]
    decoder.close()
    assert decoder.truncated


def _feed(pieces: list[bytes]) -> list[object]:
    decoder = SSEDecoder()
    return [e for p in pieces for e in decoder.feed(p)]


def test_sse_a_trickle_of_single_bytes_is_held_in_place() -> None:
    """A 32 KiB event read one byte at a time: what the fast path holds back grows in place
    (a copy per read would make this quadratic), and the event comes out whole."""
    payload = "x" * 32 * 1024
    body = b"data: a\n\n" + f"data: {payload}\n\n".encode()
    decoder = SSEDecoder()
    events = [e for i in range(len(body)) for e in decoder.feed(body[i : i + 1])]
    assert [e.data for e in events] == ["a", payload]
    decoder.close()
    assert not decoder.truncated


def _bytewise(pieces: list[bytes]) -> list[tuple[str, str, str | None, int | None]]:
    whole = b"".join(pieces)
    return _sse([whole[i : i + 1] for i in range(len(whole))])


def test_sse_fast_path_reads_match_the_general_path_field_by_field() -> None:
    cases = [
        [b": s\n\n", b"data: a\rb\r\n\r\n"],  # a lone CR inside: two data lines
        [b": s\n\n", b"data: a\rb\n\n"],
        [b": s\n\n", b"event: e\r\ndata: a\rb\r\n\r\n"],
        [b"id: 7\n\n", b"data: x\n\ndata: y\n\n"],  # the last id goes on every event
        [b"id: 7\n\n", b"event: e\ndata: x\n\n"],
        [b": s\n\n", b"event: a\ndata: 1\n\n", b"event: b\ndata: 2\n\n"],
        [b": s\n\n", b"data: a\r", b"\n\r\n"],
    ]
    for pieces in cases:
        assert _sse(pieces) == _bytewise(pieces), pieces
    ids = _sse([b"id: 7\n\n", b"data: x\n\ndata: y\n\n", b"event: e\ndata: z\n\n"])
    assert [e[2] for e in ids] == ["7", "7", "7"]
    names = _sse([b": s\n\n", b"event: a\ndata: 1\n\n", b"event: b\ndata: 2\n\n"])
    assert [e[0] for e in names] == ["a", "b"]


def test_sse_fast_path_events_parse_their_own_bytes() -> None:
    decoder = SSEDecoder("p")
    decoder.feed(b": s\n\n")
    one = decoder.feed(b'data: {"a": 1}\n\n')
    many = decoder.feed(b'data: {"b": 2}\n\ndata: {"c": 3}\n\n')
    named = decoder.feed(b'event: e\ndata: {"d": 4}\n\n')
    assert [e.json() for e in one + many + named] == [{"a": 1}, {"b": 2}, {"c": 3}, {"d": 4}]
    [bad] = decoder.feed(b"data: {nope\n\n")
    with pytest.raises(MalformedResponseError) as caught:
        bad.json()
    assert caught.value.provider == "p"


def test_ndjson_fast_path_waits_for_a_partial_line() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"a":') == []
    assert decoder.feed(b"1}\n") == [{"a": 1}]
    assert decoder.feed(b"{}\n") == [{}]
    assert decoder.feed(b"\n") == []
