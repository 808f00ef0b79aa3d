"""Anthropic Messages API replies -> core types: messages, usage, stop reasons, errors, models.

The streamed events live in :mod:`.events`. Every reader raises MalformedResponseError (never
KeyError or TypeError) for a body that is not what the API documents.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any

from ipfs_accelerate_py.errors import (
    AuthenticationError,
    BackendError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TimeoutError,
)
from ipfs_accelerate_py.types import ChatResponse, ModelInfo, ToolCall, Usage

__all__ = [
    "STOP_REASONS",
    "body_error",
    "finish_reason",
    "parse_message",
    "parse_models",
    "parse_usage",
]

NAME = "claude"

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
"""Anthropic stop reasons as core (OpenAI-style) finish reasons; others (``pause_turn``...)
are kept as they are."""

ERROR_TYPES: dict[str, type[BackendError]] = {
    "invalid_request_error": InvalidRequestError,
    "request_too_large": InvalidRequestError,
    "billing_error": InvalidRequestError,
    "authentication_error": AuthenticationError,
    "permission_error": PermissionDeniedError,
    "not_found_error": NotFoundError,
    "rate_limit_error": RateLimitError,
    "timeout_error": TimeoutError,
    "api_error": ServerError,
    "overloaded_error": OverloadedError,
}
"""``error.type`` -> core's error class, for errors that come without an HTTP error status
(an ``error`` event inside a stream, an error body sent with 200). Unknown types are
ServerError."""


def bad(what: str, body: Any) -> MalformedResponseError:
    """A MalformedResponseError quoting the start of ``body``."""
    try:
        excerpt = json.dumps(body)[:200]
    except (TypeError, ValueError):
        excerpt = repr(body)[:200]
    return MalformedResponseError(f"{what}; body starts {excerpt}", provider=NAME)


def body_error(body: Mapping[str, Any], where: str) -> BackendError:
    """The error for ``{"type": "error", "error": {"type", "message"}}`` received ``where``."""
    err = body.get("error")
    kind = err.get("type") if isinstance(err, Mapping) else None
    message = err.get("message") if isinstance(err, Mapping) else None
    cls = ERROR_TYPES.get(kind, ServerError) if isinstance(kind, str) else ServerError
    request_id = body.get("request_id")
    return cls(
        f"{where}: {message or body}",
        provider=NAME,
        code=kind if isinstance(kind, str) else None,
        provider_request_id=request_id if isinstance(request_id, str) else None,
        body=dict(body),
    )


def finish_reason(stop_reason: Any) -> str | None:
    """An Anthropic ``stop_reason`` as a finish reason (unknown ones kept as they are)."""
    if stop_reason is None:
        return None
    return STOP_REASONS.get(stop_reason, str(stop_reason))


def parse_usage(data: Any) -> Usage | None:
    """Anthropic ``usage``: input and output tokens, and every other figure
    (``cache_creation_input_tokens``, ``cache_read_input_tokens``...) in ``extra``."""
    if not isinstance(data, Mapping):
        return None
    counts = ("input_tokens", "output_tokens")
    extra = {k: v for k, v in data.items() if k not in counts and v is not None}
    usage = Usage.of(_count(data, "input_tokens"), _count(data, "output_tokens"))
    return Usage(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens, extra)


def _count(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(f"usage {key} is not a whole number", dict(data))
    return value


def _tool_call(block: Mapping[str, Any], body: Any) -> ToolCall:
    name, call_id = block.get("name"), block.get("id")
    if not isinstance(name, str) or not isinstance(call_id, str):
        raise bad("a tool_use block has no name or id", body)
    return ToolCall(id=call_id, name=name, arguments=json.dumps(block.get("input") or {}))


def parse_message(body: Any) -> ChatResponse:
    """A ``message`` body -> ChatResponse: the text blocks joined, ``tool_use`` blocks as
    tool calls, the stop reason mapped, usage with the cache figures in ``extra``."""
    if not isinstance(body, Mapping):
        raise bad("the messages reply is not a JSON object", body)
    if body.get("type") == "error":
        raise body_error(body, "error in a successful reply")
    blocks = body.get("content")
    if not isinstance(blocks, list):
        raise bad("the messages reply has no content list", body)
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in blocks:
        if not isinstance(block, Mapping):
            raise bad("a content block is not an object", body)
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise bad("a text block has no text", body)
            texts.append(text)
        elif kind == "tool_use":
            calls.append(_tool_call(block, body))
    return ChatResponse(
        text="".join(texts),
        model=body.get("model"),
        finish_reason=finish_reason(body.get("stop_reason")),
        usage=parse_usage(body.get("usage")),
        tool_calls=tuple(calls),
        id=body.get("id"),
        raw=body,
    )


def _epoch(value: Any) -> int | None:
    """An RFC 3339 ``created_at`` as epoch seconds (None when absent or unreadable)."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return int(when.timestamp())


def parse_models(body: Any) -> list[ModelInfo]:
    """One ``/v1/models`` page -> ModelInfo (``description`` is the display name)."""
    data = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(data, list):
        raise bad("the models reply has no data list", body)
    out = []
    for item in data:
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
            raise bad("a model entry has no id", body)
        window = item.get("max_input_tokens")
        out.append(
            ModelInfo(
                id=item["id"],
                owned_by="anthropic",
                created=_epoch(item.get("created_at")),
                context_window=window if isinstance(window, int) else None,
                description=item.get("display_name"),
                raw=item,
            )
        )
    return out
