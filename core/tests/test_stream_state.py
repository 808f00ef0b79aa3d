"""StreamState: how decoded events become the chunks a caller sees, and how a stream ends."""

from __future__ import annotations

from typing import Any

import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.calls import HttpCall
from ipfs_accelerate_py.pipeline import StreamState
from ipfs_accelerate_py.types import StreamChunk, Usage


def ndjson_event(obj: Any) -> StreamChunk:
    """Ollama-style: text in every line, ``done`` with token counts on the last one."""
    usage = Usage.of(obj.get("prompt_eval_count"), obj.get("eval_count")) if obj["done"] else None
    return StreamChunk(text=obj["text"], done=obj["done"], usage=usage)


def sse_event(event: Any) -> StreamChunk:
    return StreamChunk(text=event.data)


def state(stream: str, *, end_required: bool) -> StreamState:
    parse = ndjson_event if stream == "ndjson" else sse_event
    call = HttpCall("POST", "/x", stream=stream, parse_event=parse, end_required=end_required)  # type: ignore[arg-type]
    return StreamState(call, "prov")


def test_last_ndjson_line_without_newline_is_not_lost() -> None:
    st = state("ndjson", end_required=True)
    first = st.feed(b'{"text": "a", "done": false}\n{"text": "b", "done": true, "eval_count": 2')
    assert [c.text for c in first] == ["a"]
    assert st.feed(b', "prompt_eval_count": 5}') == []  # still no newline
    tail, final = st.finish("req_1")
    assert [c.text for c in tail] == ["b"]
    assert not any(c.done for c in tail)
    assert final.done
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (5, 2)


def test_sse_cut_mid_event_is_an_error_even_without_an_end_marker() -> None:
    st = state("sse", end_required=False)
    assert [c.text for c in st.feed(b"data: a\n\ndata: b")] == ["a"]
    with pytest.raises(errors.ConnectionError, match="middle of an event"):
        st.finish("req_1")


def test_sse_without_end_marker_is_fine_when_none_is_required() -> None:
    st = state("sse", end_required=False)
    assert [c.text for c in st.feed(b"data: a\n\n")] == ["a"]
    tail, final = st.finish("req_1")
    assert (tail, final.done) == ([], True)


def test_missing_end_marker_is_an_error_when_required() -> None:
    st = state("sse", end_required=True)
    st.feed(b"data: a\n\n")
    with pytest.raises(errors.ConnectionError, match="before its end marker"):
        st.finish("req_1")
