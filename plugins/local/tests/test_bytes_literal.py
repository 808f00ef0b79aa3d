"""The ChatQnA bytes-literal decoder: a literal parser, never eval."""

from __future__ import annotations

import ast
import io
import tokenize

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipfs_accelerate_local.opea import decode_bytes_literal
from ipfs_accelerate_py.errors import MalformedResponseError


@given(st.binary(max_size=200))
def test_any_bytes_round_trip_through_repr(data: bytes) -> None:
    assert decode_bytes_literal(repr(data)) == data


@given(st.text(max_size=100))
def test_any_text_round_trips_as_chatqna_sends_it(text: str) -> None:
    literal = repr(text.encode("utf-8", "surrogatepass"))
    assert decode_bytes_literal(literal).decode("utf-8", "surrogatepass") == text


@given(st.text(max_size=60))
def test_anything_else_is_malformed_or_agrees_with_python(text: str) -> None:
    try:
        got = decode_bytes_literal(text)
    except MalformedResponseError:
        return
    # what it accepts, Python reads the same way whenever Python reads it as one literal
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text.strip()).readline))
        expected = ast.literal_eval(text.strip())
    except (SyntaxError, ValueError, tokenize.TokenError, IndentationError):
        return
    if sum(t.type == tokenize.STRING for t in tokens) != 1:
        return  # implicit concatenation b'a' b'b': OPEA never sends it
    if isinstance(expected, bytes):
        assert got == expected


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("b'plain'", b"plain"),
        ('b"it\'s"', b"it's"),
        ("b'it\\'s'", b"it's"),
        ("b'a\\\\b'", b"a\\b"),
        ("b'\\n\\r\\t\\a\\b\\f\\v'", b"\n\r\t\a\b\f\v"),
        ("b'\\xc3\\xa9t\\xc3\\xa9'", "été".encode()),
        ("b'\\0\\12\\141'", b"\x00\na"),
        ("b'\\q'", b"\\q"),
        ("b''", b""),
        ("B'x'", b"x"),
        ("  b'padded'  ", b"padded"),
        ("b'raw é'", "raw é".encode()),  # OPEA's unescaped fake_stream
    ],
)
def test_escapes(literal: str, expected: bytes) -> None:
    assert decode_bytes_literal(literal) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "b",
        "b'",
        "'abc'",
        "b'abc\"",
        "rb'abc'",
        "b'\\'",
        "b'\\x'",
        "b'\\xZZ'",
        "b'abc' + b'def",
        "__import__('os').system('true')",
        "[DONE",
    ],
)
def test_not_a_literal(text: str) -> None:
    with pytest.raises(MalformedResponseError, match="not a bytes literal"):
        decode_bytes_literal(text)
