"""The Messages API's streamed events -> StreamChunk.

``message_start`` (model, input tokens), ``content_block_start`` / ``content_block_delta``
(``text_delta`` as text, ``tool_use`` blocks and their ``input_json_delta`` pieces as
ToolCallDelta), ``content_block_stop``, ``message_delta`` (stop reason, output tokens) and
``message_stop`` (the end marker). ``ping``, thinking and citation deltas and event types the
API may add later are skipped; an ``error`` event raises the error its ``error.type`` names.
A parser keeps state (which content block is which tool call), so core makes one per attempt.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ipfs_accelerate_py.calls import STREAM_END, StreamEnd
from ipfs_accelerate_py.types import StreamChunk, ToolCallDelta, Usage, text_chunk

from .reply import bad, body_error, finish_reason, parse_usage

__all__ = ["EVENT_TYPES", "new_event_parser"]

EVENT_TYPES = frozenset(
    (
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "error",
    )
)
"""The event types this parser reads; every other one (``ping``...) is skipped unread."""


class ServerSentEvent(Protocol):
    """What the parser reads of core's decoded server-sent event."""

    event: str

    def json(self) -> Any:
        """The event's data decoded as JSON (MalformedResponseError if it is not JSON)."""


Parser = Callable[[ServerSentEvent], "StreamChunk | StreamEnd | None"]


def new_event_parser() -> Parser:
    """A fresh parser for one attempt of a streamed ``/v1/messages`` call."""
    tools: dict[Any, int] = {}  # content block index -> tool call number (0, 1, ...)

    def parse(event: ServerSentEvent) -> StreamChunk | StreamEnd | None:
        kind: Any = event.event
        if kind not in EVENT_TYPES and kind != "message":
            return None
        obj = event.json()
        if type(obj) is not dict and not isinstance(obj, Mapping):  # dict first: the ABC is slow
            raise bad("a stream event is not a JSON object", obj)
        if kind == "message":  # no "event:" line: the type is in the data
            kind = obj.get("type")
        if kind == "content_block_delta":
            return _delta(obj, tools)
        if kind == "content_block_start":
            return _block_start(obj, tools)
        if kind == "message_delta":
            delta = obj.get("delta") or {}
            if not isinstance(delta, Mapping):
                raise bad("a message_delta has no delta object", obj)
            return StreamChunk(
                finish_reason=finish_reason(delta.get("stop_reason")),
                usage=parse_usage(obj.get("usage")),
                raw=obj,
            )
        if kind == "message_start":
            return _message_start(obj)
        if kind == "message_stop":
            return STREAM_END
        if kind == "error":
            raise body_error(obj, "error inside the stream")
        return None  # content_block_stop, or an unknown type sent without an event line

    return parse


def _message_start(obj: Mapping[str, Any]) -> StreamChunk:
    message = obj.get("message")
    if not isinstance(message, Mapping):
        raise bad("a message_start event has no message", obj)
    usage = parse_usage(message.get("usage"))
    if usage is not None:  # output tokens come with message_delta
        usage = Usage(usage.prompt_tokens, 0, usage.prompt_tokens, usage.extra)
    model = message.get("model")
    return StreamChunk(usage=usage, model=model if isinstance(model, str) else None, raw=obj)


def _block_start(obj: Mapping[str, Any], tools: dict[Any, int]) -> StreamChunk | None:
    block = obj.get("content_block")
    if not isinstance(block, Mapping):
        raise bad("a content_block_start event has no content_block", obj)
    kind = block.get("type")
    if kind == "text":
        text = block.get("text") or ""
        if not isinstance(text, str):
            raise bad("a text block's text is not a string", obj)
        return StreamChunk(text=text, raw=obj) if text else None
    if kind == "tool_use":
        number = tools[obj.get("index")] = len(tools)
        arguments = block.get("input")
        delta = ToolCallDelta(
            index=number,
            id=block.get("id"),
            name=block.get("name"),
            arguments=json.dumps(arguments) if arguments else "",
        )
        return StreamChunk(tool_calls=(delta,), raw=obj)
    return None  # thinking, server tool and other blocks


def _delta(obj: Mapping[str, Any], tools: dict[Any, int]) -> StreamChunk | None:
    delta = obj.get("delta")
    if type(delta) is not dict and not isinstance(delta, Mapping):  # dict first: the ABC is slow
        raise bad("a content_block_delta event has no delta", obj)
    kind = delta.get("type")
    if kind == "text_delta":
        text = delta.get("text")
        if not isinstance(text, str):
            raise bad("a text_delta has no text", obj)
        return text_chunk(text, None, obj) if text else None  # the common event: the fast build
    if kind == "input_json_delta":
        number = tools.get(obj.get("index"))
        if number is None:  # the input of a server tool (web search...): not ours to run
            return None
        piece = delta.get("partial_json") or ""
        if not isinstance(piece, str):
            raise bad("an input_json_delta's partial_json is not a string", obj)
        if not piece:
            return None
        return StreamChunk(tool_calls=(ToolCallDelta(index=number, arguments=piece),), raw=obj)
    return None  # thinking, signature and citations deltas
