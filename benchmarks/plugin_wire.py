"""Canned replies in each provider's own framing, for the per-plugin benchmarks.

Imported by benchmarks/server.py (so it imports nothing of the library): Anthropic's named SSE
events (``/v1/messages``), Gemini's ``alt=sse`` stream (``:generateContent`` and
``:streamGenerateContent``) and Ollama's NDJSON (``/api/chat``). OpenAI-compatible plugins
(groq, hf_tgi's Messages API, llvm) are served the OpenAI replies of server.py.
"""

from __future__ import annotations

import json
from typing import Any

TEXT = "Hello! How can I help?"


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


# --- Anthropic --------------------------------------------------------------------------

CLAUDE_MODEL = "claude-sonnet-4-5"


def claude_chat() -> bytes:
    """A ``message`` object."""
    return json.dumps(
        {
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "type": "message",
            "role": "assistant",
            "model": CLAUDE_MODEL,
            "content": [{"type": "text", "text": TEXT}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 9, "output_tokens": 12},
        }
    ).encode()


def claude_stream(chunks: int) -> list[bytes]:
    """message_start, content_block_start, ``chunks`` text deltas, content_block_stop,
    message_delta, message_stop; each ``event: NAME`` + ``data: JSON``."""
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": CLAUDE_MODEL,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 9, "output_tokens": 1},
        },
    }
    events: list[tuple[str, Any]] = [
        ("message_start", start),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
    ]
    events += [
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": f" word{i}"},
            },
        )
        for i in range(chunks)
    ]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": chunks},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return [f"event: {name}\ndata: {_compact(obj)}\n\n".encode() for name, obj in events]


# --- Gemini -----------------------------------------------------------------------------

GEMINI_MODEL = "gemini-2.5-flash"


def _gemini(text: str, finish: str | None, usage: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {
        "content": {"parts": [{"text": text}], "role": "model"},
        "index": 0,
    }
    if finish:
        candidate["finishReason"] = finish
    out: dict[str, Any] = {"candidates": [candidate], "modelVersion": GEMINI_MODEL}
    if usage:
        out["usageMetadata"] = {
            "promptTokenCount": 9,
            "candidatesTokenCount": 12,
            "totalTokenCount": 21,
        }
    return out


def gemini_chat() -> bytes:
    """A ``GenerateContentResponse``."""
    return json.dumps(_gemini(TEXT, "STOP", True)).encode()


def gemini_stream(chunks: int) -> list[bytes]:
    """``alt=sse``: one ``data:`` event per response, CRLF line ends as Google sends them;
    every event carries the usage so far, as Gemini's do; the last has the finish reason."""
    objs = [_gemini(f" word{i}", None, True) for i in range(chunks)]
    for i, obj in enumerate(objs):
        obj["usageMetadata"]["candidatesTokenCount"] = i + 1
        obj["usageMetadata"]["totalTokenCount"] = 10 + i
    objs.append(_gemini("", "STOP", True))
    return [f"data: {_compact(o)}\r\n\r\n".encode() for o in objs]


# --- Ollama -----------------------------------------------------------------------------

OLLAMA_MODEL = "llama3.2"
_CREATED = "2025-03-10T01:39:12.123456Z"


def ollama_chat() -> bytes:
    """``/api/chat`` with ``stream: false``."""
    return json.dumps(
        {
            "model": OLLAMA_MODEL,
            "created_at": _CREATED,
            "message": {"role": "assistant", "content": TEXT},
            "done_reason": "stop",
            "done": True,
            "total_duration": 4_883_583_458,
            "load_duration": 1_334_875,
            "prompt_eval_count": 9,
            "prompt_eval_duration": 342_546_000,
            "eval_count": 12,
            "eval_duration": 4_535_599_000,
        }
    ).encode()


def ollama_stream(chunks: int) -> list[bytes]:
    """NDJSON lines; the last has ``done: true`` and the counts."""
    lines = [
        {
            "model": OLLAMA_MODEL,
            "created_at": _CREATED,
            "message": {"role": "assistant", "content": f" word{i}"},
            "done": False,
        }
        for i in range(chunks)
    ]
    last = json.loads(ollama_chat())
    last["message"]["content"] = ""
    lines.append(last)
    return [(_compact(o) + "\n").encode() for o in lines]


def route(head: bytes) -> tuple[str, str] | None:
    """(framing, content type) for a request line, or None for the OpenAI replies."""
    line = head.split(b"\r\n", 1)[0]
    if b"/v1/messages" in line:
        return "claude", "text/event-stream; charset=utf-8"
    if b":generateContent" in line or b":streamGenerateContent" in line:
        return "gemini", "text/event-stream"
    if b"/api/chat" in line:
        return "ollama", "application/x-ndjson"
    return None


def body(framing: str, stream: bool, chunks: int) -> list[bytes] | bytes:
    """The events (stream) or the JSON body of ``framing``."""
    if framing == "claude":
        return claude_stream(chunks) if stream else claude_chat()
    if framing == "gemini":
        return gemini_stream(chunks) if stream else gemini_chat()
    return ollama_stream(chunks) if stream else ollama_chat()
