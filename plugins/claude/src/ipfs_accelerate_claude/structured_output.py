"""``response_format`` on Claude: the Messages API has no such field, so a JSON reply is asked
for the way Anthropic documents it, as one forced tool call whose input schema is the
requested schema; the reply's text is then that call's JSON input, as OpenAI would return it.

``{"type": "json_object"}`` asks for any JSON object; ``{"type": "json_schema", "json_schema":
{"name", "schema"}}`` for that schema (core's :mod:`ipfs_accelerate_py.structured` builds the
tool and validates replies where the router asks it to).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from ipfs_accelerate_py import structured
from ipfs_accelerate_py.calls import StreamEnd
from ipfs_accelerate_py.types import ChatRequest, ChatResponse, StreamChunk, text_chunk

__all__ = ["as_json_reply", "as_json_stream", "forced_tool_request"]


def forced_tool_request(request: ChatRequest) -> tuple[ChatRequest, str | None]:
    """The request with ``response_format`` turned into a forced tool call, and that tool's
    name (``None``: the request asked for no structured reply)."""
    spec = structured.spec_of(request.params.get("response_format"))
    if spec is None:
        params = {k: v for k, v in request.params.items() if k != "response_format"}
        return attrs.evolve(request, params=params), None
    return attrs.evolve(request, params=structured.to_tool_params(request.params, spec)), spec.name


def as_json_reply(parse: Callable[[Any], ChatResponse], tool: str) -> Callable[[Any], ChatResponse]:
    """A reply parser whose text is the forced tool call's JSON input."""

    def read(body: Any) -> ChatResponse:
        reply = parse(body)
        calls = [c for c in reply.tool_calls if c.name == tool]
        if not calls:
            return reply
        rest = tuple(c for c in reply.tool_calls if c.name != tool)
        return attrs.evolve(reply, text=calls[0].arguments, tool_calls=rest, finish_reason="stop")

    return read


def as_json_stream(new_parser: Callable[[], Any], tool: str) -> Callable[[], Any]:
    """A stream parser factory whose text chunks are the forced tool call's JSON input."""

    def make() -> Callable[[Any], StreamChunk | StreamEnd | None]:
        parse = new_parser()
        forced: set[int] = set()

        def read(event: Any) -> StreamChunk | StreamEnd | None:
            chunk = parse(event)
            if not isinstance(chunk, StreamChunk) or not chunk.tool_calls:
                if isinstance(chunk, StreamChunk) and chunk.finish_reason == "tool_calls":
                    return attrs.evolve(chunk, finish_reason="stop")
                return chunk  # type: ignore[no-any-return]
            text = chunk.text
            kept = []
            for delta in chunk.tool_calls:
                if delta.name == tool:
                    forced.add(delta.index)
                if delta.index in forced:
                    text += delta.arguments
                else:
                    kept.append(delta)
            if not kept and not (chunk.done or chunk.finish_reason or chunk.usage is not None):
                return text_chunk(text, chunk.model, chunk.raw)  # a piece of the JSON: per event
            finish = "stop" if chunk.finish_reason == "tool_calls" else chunk.finish_reason
            return attrs.evolve(chunk, text=text, tool_calls=tuple(kept), finish_reason=finish)

        return read

    return make
