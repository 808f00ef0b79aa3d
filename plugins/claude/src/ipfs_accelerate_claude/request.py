"""Core chat requests -> Anthropic Messages API (``POST /v1/messages``) request bodies.

System messages move to the top-level ``system`` field (several are joined); tool messages
become ``tool_result`` blocks in a user turn; assistant tool calls become ``tool_use`` blocks;
OpenAI-style ``image_url`` parts become ``image`` blocks; OpenAI-style tools, ``tool_choice``
and ``stop`` are translated. Anything else (Anthropic-native blocks, ``cache_control`` on a
part, ``thinking``, ``metadata``, ``top_k``...) is sent as given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ipfs_accelerate_py.errors import InvalidArgumentError
from ipfs_accelerate_py.types import ChatRequest, Message

__all__ = ["DEFAULT_MAX_TOKENS", "messages_body"]

DEFAULT_MAX_TOKENS = 1024
"""``max_tokens`` sent when the caller gives none (the Messages API requires it)."""

_SYSTEM_ROLES = ("system", "developer")


def messages_body(request: ChatRequest, *, stream: bool = False) -> dict[str, Any]:
    """The ``/v1/messages`` body for ``request`` (``"stream": true`` when ``stream``)."""
    system, messages = convert_messages(request.messages)
    params = {k: v for k, v in request.params.items() if v is not None}  # the API takes no nulls
    max_tokens = params.pop("max_tokens", None)
    alias = params.pop("max_completion_tokens", None)
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": max_tokens if max_tokens is not None else alias or DEFAULT_MAX_TOKENS,
        "messages": messages,
    }
    if system is not None:
        body["system"] = system
    stop = params.pop("stop", None)
    if stop:
        params.setdefault("stop_sequences", [stop] if isinstance(stop, str) else list(stop))
    if "tools" in params:
        params["tools"] = [convert_tool(t) for t in _list(params["tools"], "tools")]
    if "tool_choice" in params:
        params["tool_choice"] = convert_tool_choice(params["tool_choice"])
    parallel = params.pop("parallel_tool_calls", None)
    if parallel is False:
        choice = dict(params.get("tool_choice") or {"type": "auto"})
        choice["disable_parallel_tool_use"] = True
        params["tool_choice"] = choice
    user = params.pop("user", None)
    if user is not None:
        params.setdefault("metadata", {"user_id": user})
    body.update(params)
    if stream:
        body["stream"] = True
    return body


def _list(value: Any, name: str) -> Sequence[Any]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise InvalidArgumentError(f"{name} must be a list, got {type(value).__name__}")
    return value


# --- messages ------------------------------------------------------------------------------


def convert_messages(messages: Sequence[Message]) -> tuple[Any, list[dict[str, Any]]]:
    """``(system, messages)``: the system text (or blocks) and the Anthropic turns."""
    system: list[Any] = []
    out: list[dict[str, Any]] = []
    results: list[Any] | None = None  # the tool_result blocks of the turn being built
    for message in messages:
        role = message.role
        if role in _SYSTEM_ROLES:
            if message.content not in (None, "", []):
                system.append(message.content)
            continue
        if role == "tool":
            block = tool_result(message)
            if results is None:
                results = [block]
                out.append({"role": "user", "content": results})
            else:
                results.append(block)
            continue
        results = None
        if role in ("assistant", "model"):
            out.append({"role": "assistant", "content": assistant_content(message)})
        elif role == "user":
            out.append({"role": "user", "content": content(message.content)})
        else:
            raise InvalidArgumentError(
                f"claude has no {role!r} messages: use 'tool' messages with a tool_call_id"
            )
    return join_system(system), out


def join_system(parts: list[Any]) -> Any:
    """One ``system`` value: the texts joined by blank lines, or text blocks when any
    system message was given as blocks (so ``cache_control`` on them is kept)."""
    if not parts:
        return None
    if all(isinstance(p, str) for p in parts):
        return "\n\n".join(parts)
    blocks: list[Any] = []
    for part in parts:
        if isinstance(part, str):
            blocks.append({"type": "text", "text": part})
        else:
            blocks.extend(content_part(p) for p in part)
    return blocks


def content(value: Any) -> Any:
    """A message's content: text as it is, parts converted one by one."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return [content_part(p) for p in value]


def content_part(part: Any) -> Any:
    """One content part: a string becomes a text block, an OpenAI ``image_url`` part an
    ``image`` block; every other part (text, image, document, tool blocks...) is kept."""
    if isinstance(part, str):
        return {"type": "text", "text": part}
    if not isinstance(part, Mapping):
        raise InvalidArgumentError(
            f"a content part must be a dict or a string, got {type(part).__name__}"
        )
    if part.get("type") == "image_url":
        return image_block(part)
    return dict(part)


def image_block(part: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI ``{"type": "image_url", "image_url": {"url": ...}}`` part as an Anthropic
    image block: a ``data:`` URL becomes a base64 source, any other URL a url source."""
    raw = part.get("image_url")
    url = raw.get("url") if isinstance(raw, Mapping) else raw
    if not isinstance(url, str) or not url:
        raise InvalidArgumentError("an image_url part needs a URL: {'image_url': {'url': ...}}")
    source: dict[str, Any]
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not comma or encoding.lower() != "base64" or not media_type:
            raise InvalidArgumentError(
                "an image data: URL must look like data:image/png;base64,<data>"
            )
        source = {"type": "base64", "media_type": media_type, "data": data}
    else:
        source = {"type": "url", "url": url}
    block: dict[str, Any] = {"type": "image", "source": source}
    block.update({k: v for k, v in part.items() if k not in ("type", "image_url")})
    return block


def assistant_content(message: Message) -> Any:
    """An assistant turn: its content, followed by a ``tool_use`` block per tool call."""
    if not message.tool_calls:
        return content(message.content)
    blocks: list[Any] = []
    if isinstance(message.content, str):
        if message.content:
            blocks.append({"type": "text", "text": message.content})
    elif message.content:
        blocks.extend(content_part(p) for p in message.content)
    for call in message.tool_calls:
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            raise InvalidArgumentError(
                f"tool call {call.name!r} has arguments that are not a JSON object: "
                f"{call.arguments[:200]!r}"
            )
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": arguments})
    return blocks


def tool_result(message: Message) -> dict[str, Any]:
    """A ``tool`` message as a ``tool_result`` block answering ``tool_call_id``."""
    if not message.tool_call_id:
        raise InvalidArgumentError("a 'tool' message needs the tool_call_id it answers")
    return {
        "type": "tool_result",
        "tool_use_id": message.tool_call_id,
        "content": content(message.content),
    }


# --- tools ---------------------------------------------------------------------------------


def convert_tool(tool: Any) -> dict[str, Any]:
    """An OpenAI-style ``{"type": "function", "function": {...}}`` tool as an Anthropic tool
    (``name``, ``description``, ``input_schema``); Anthropic tools are kept as they are."""
    if not isinstance(tool, Mapping):
        raise InvalidArgumentError(f"each tool must be a dict, got {type(tool).__name__}")
    fn = tool.get("function")
    if tool.get("type") != "function" or not isinstance(fn, Mapping):
        return dict(tool)
    if not isinstance(fn.get("name"), str):
        raise InvalidArgumentError("a function tool needs a name")
    out: dict[str, Any] = {"name": fn["name"]}
    if fn.get("description") is not None:
        out["description"] = fn["description"]
    out["input_schema"] = fn.get("parameters") or {"type": "object", "properties": {}}
    if fn.get("strict") is not None:
        out["strict"] = fn["strict"]
    out.update({k: v for k, v in tool.items() if k not in ("type", "function")})
    return out


def convert_tool_choice(choice: Any) -> Any:
    """OpenAI ``tool_choice`` (``"auto"``, ``"required"``, ``"none"``, a named function) as
    Anthropic's (``auto``, ``any``, ``none``, ``tool``); Anthropic dicts are kept."""
    if isinstance(choice, str):
        kind = {"auto": "auto", "required": "any", "any": "any", "none": "none"}.get(choice)
        if kind is None:
            raise InvalidArgumentError(
                f"tool_choice must be 'auto', 'required', 'none' or a dict, got {choice!r}"
            )
        return {"type": kind}
    if not isinstance(choice, Mapping):
        raise InvalidArgumentError(f"tool_choice must be a string or a dict, got {choice!r}")
    fn = choice.get("function")
    if choice.get("type") == "function" and isinstance(fn, Mapping):
        return {"type": "tool", "name": fn.get("name")}
    return dict(choice)
