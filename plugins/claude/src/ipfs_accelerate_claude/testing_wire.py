"""Protocol-exact Anthropic Messages API replies for tests and benchmarks (shapes from the API
reference and the official SDK's types): messages, the named SSE events, error bodies and
model pages, to script a :class:`~ipfs_accelerate_py.testing.server.ProtocolServer` with::

    server.on("POST", "/v1/messages", Reply.json(message("Hello!")))
    server.on("POST", "/v1/messages", Reply.sse(stream_events(["Hel", "lo"])))
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ipfs_accelerate_py.testing.server import Reply

MODEL = "claude-sonnet-4-5-20250929"

ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "messages: at least one message is required"),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "model: claude-9"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}


def usage(
    input_tokens: int = 25, output_tokens: int = 15, cache_write: int = 0, cache_read: int = 0
) -> dict[str, Any]:
    """A ``usage`` object as the Messages API sends it."""
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def message(
    text: str | None = "Hello! How can I help you today?",
    *,
    tool_uses: Sequence[tuple[str, str, dict[str, Any]]] = (),
    stop_reason: str = "end_turn",
    model: str = MODEL,
    id: str = "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    **usage_args: int,
) -> dict[str, Any]:
    """A ``message`` object: a text block (unless None) then ``tool_use`` blocks."""
    content: list[dict[str, Any]] = []
    if text is not None:
        content.append({"type": "text", "text": text})
    for call_id, name, arguments in tool_uses:
        content.append({"type": "tool_use", "id": call_id, "name": name, "input": arguments})
    return {
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage(**usage_args),
    }


def stream_events(
    pieces: Sequence[str] = ("Hello", "!"),
    *,
    tool: tuple[str, str, Sequence[str]] | None = None,
    stop_reason: str = "end_turn",
    input_tokens: int = 25,
    output_tokens: int = 15,
    cache_read: int = 0,
    ping: bool = True,
) -> list[tuple[str, Any]]:
    """The named events of a streamed message: text ``pieces`` in block 0, then optionally
    a ``tool_use`` block ``(id, name, partial_json pieces)``."""
    start_usage = usage(input_tokens, 1, cache_read=cache_read)
    events: list[tuple[str, Any]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": MODEL,
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
    ]
    if ping:
        events.append(("ping", {"type": "ping"}))
    for piece in pieces:
        events.append(
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                },
            )
        )
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    if tool is not None:
        call_id, name, parts = tool
        block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": 1, "content_block": block},
            )
        )
        for part in parts:
            delta = {"type": "input_json_delta", "partial_json": part}
            events.append(
                ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": delta})
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": 1}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def error(kind: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    """An error body ``{"type": "error", "error": {"type", "message"}}``."""
    body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
    if request_id is not None:
        body["request_id"] = request_id
    return body


def error_reply(status: int, headers: dict[str, str] | None = None) -> Reply:
    """The API's reply for an error status, with its ``request-id`` header."""
    kind, text = ERRORS[status]
    hdrs = {"request-id": f"req_server_{status}", **(headers or {})}
    return Reply.json(error(kind, text), status=status, headers=hdrs)


def models_page(ids: Sequence[str], has_more: bool) -> dict[str, Any]:
    """One page of ``GET /v1/models``."""
    data = [
        {
            "type": "model",
            "id": model_id,
            "display_name": model_id.replace("-", " ").title(),
            "created_at": "2025-02-19T00:00:00Z",
        }
        for model_id in ids
    ]
    return {
        "data": data,
        "has_more": has_more,
        "first_id": ids[0] if ids else None,
        "last_id": ids[-1] if ids else None,
    }


def sse_bytes(events: Sequence[tuple[str, Any]]) -> bytes:
    """The events framed as the API sends them."""
    return b"".join(
        f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events
    )
