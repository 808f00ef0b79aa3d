"""Gemini replies -> core types: candidates, usage, finish reasons, blocks, errors, streams.

A reply blocked by the safety settings (``promptFeedback.blockReason``, or a candidate that
finished for ``SAFETY``-like reasons with no text) raises InvalidRequestError with code
``"blocked"`` naming the reason, never an empty string. An ``{"error": ...}`` body (an event
inside a stream) raises the error :mod:`.errors` maps it to.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from typing import Any

from ipfs_accelerate_py.calls import StreamEnd
from ipfs_accelerate_py.decoders import ServerSentEvent
from ipfs_accelerate_py.errors import InvalidRequestError
from ipfs_accelerate_py.types import (
    ChatResponse,
    EmbeddingResponse,
    ModelInfo,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
    text_chunk,
)

from .errors import PROVIDER, bad_reply, error_from_body
from .wire import SYNTHETIC_ID

__all__ = [
    "parse_embeddings",
    "parse_generate",
    "parse_models",
    "parse_usage",
    "stream_parser",
]

_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
}
# finish reasons that mean the answer was withheld: an error when no text came
_BLOCKED = frozenset(k for k, v in _FINISH.items() if v == "content_filter")

# --- generateContent ------------------------------------------------------------------------


_EXTRA_COUNTS = {
    "thoughtsTokenCount": "thoughts_tokens",
    "cachedContentTokenCount": "cached_tokens",
    "toolUsePromptTokenCount": "tool_use_prompt_tokens",
}


def parse_usage(data: Any) -> Usage | None:
    """``usageMetadata`` -> Usage; thinking, cached and tool-prompt counts go to ``extra``."""
    if type(data) is not dict and not isinstance(data, Mapping):  # streams: once per event
        return None
    usage = Usage.of(
        data.get("promptTokenCount"), data.get("candidatesTokenCount"), data.get("totalTokenCount")
    )
    if _EXTRA_COUNTS.keys().isdisjoint(data):  # the common case: a C-speed check per event
        return usage
    extra = {name: data[key] for key, name in _EXTRA_COUNTS.items() if data.get(key)}
    if extra:
        return Usage(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens, extra)
    return usage


def _blocked(what: str, reason: str, body: Any) -> InvalidRequestError:
    return InvalidRequestError(
        f"{what} was blocked by Gemini (reason: {reason}); rephrase it or adjust safety_settings",
        provider=PROVIDER,
        code="blocked",
        body=body,
    )


def _check_prompt(body: Mapping[str, Any]) -> None:
    feedback = body.get("promptFeedback")
    if isinstance(feedback, Mapping) and feedback.get("blockReason"):
        raise _blocked("the prompt", str(feedback["blockReason"]), body)


def _candidate(body: Any) -> Mapping[str, Any] | None:
    """The first candidate (``index`` 0) of a reply; None when a stream event has none (with
    ``candidateCount`` > 1 an event may carry only another candidate's text)."""
    if not isinstance(body, Mapping):
        raise bad_reply("the reply is not a JSON object", body)
    if "error" in body:
        raise error_from_body(body)
    _check_prompt(body)
    candidates = body.get("candidates")
    if candidates is None:
        return None
    if not isinstance(candidates, list) or not all(isinstance(c, Mapping) for c in candidates):
        raise bad_reply("the reply's candidates are not a list of objects", body)
    return next((c for c in candidates if c.get("index", 0) == 0), None)


def _read_parts(candidate: Mapping[str, Any]) -> tuple[str, list[tuple[str | None, str, str]]]:
    """The answer text (thoughts left out) and the function calls (id, name, JSON args)."""
    content = candidate.get("content") or {}
    parts = content.get("parts") or [] if isinstance(content, Mapping) else None
    if not isinstance(parts, list):
        raise bad_reply("a candidate's content has no parts list", candidate)
    texts: list[str] = []
    calls: list[tuple[str | None, str, str]] = []
    for part in parts:
        if not isinstance(part, Mapping):
            raise bad_reply("a content part is not an object", candidate)
        call = part.get("functionCall")
        if isinstance(call, Mapping):
            args = json.dumps(call.get("args") or {})
            calls.append((call.get("id"), str(call.get("name", "")), args))
        elif isinstance(part.get("text"), str) and not part.get("thought"):
            texts.append(part["text"])
    return "".join(texts), calls


def _finish(raw: Any, calls: bool) -> str | None:
    if not isinstance(raw, str):
        return None
    if raw == "STOP" and calls:
        return "tool_calls"
    return _FINISH.get(raw, raw.lower())


def parse_generate(body: Any) -> ChatResponse:
    """A ``GenerateContentResponse`` -> ChatResponse (first candidate)."""
    candidate = _candidate(body)
    if candidate is None:
        raise bad_reply("the reply has no candidates", body)
    text, calls = _read_parts(candidate)
    raw_finish = candidate.get("finishReason")
    if raw_finish in _BLOCKED and not text and not calls:
        raise _blocked("the answer", raw_finish, body)
    return ChatResponse(
        text=text,
        model=body.get("modelVersion"),
        finish_reason=_finish(raw_finish, bool(calls)),
        usage=parse_usage(body.get("usageMetadata")),
        tool_calls=tuple(
            ToolCall(id=cid or f"{SYNTHETIC_ID}{i}", name=name, arguments=args)
            for i, (cid, name, args) in enumerate(calls)
        ),
        id=body.get("responseId"),
        raw=body,
    )


def _lone_text(body: Any) -> str | None:
    """The text of the common stream event, else None: an object without error or prompt
    feedback whose one candidate (index 0, no finish reason) has one plain text part. Any
    other shape (a wrong type included) is None, and the general path reads it."""
    try:
        if "error" in body or "promptFeedback" in body:
            return None
        (candidate,) = body["candidates"]
        (part,) = candidate["content"]["parts"]
        text = part["text"]
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    if (
        type(text) is not str
        or type(body) is not dict
        or type(candidate) is not dict
        or type(part) is not dict
        or "finishReason" in candidate
        or candidate.get("index", 0) != 0
        or "functionCall" in part
        or "thought" in part
    ):
        return None
    return text


def stream_parser() -> Callable[[ServerSentEvent], StreamChunk | StreamEnd | None]:
    """A parser for one attempt of ``streamGenerateContent?alt=sse``: each event is a whole
    ``GenerateContentResponse``; the event with a ``finishReason`` ends the stream.

    Gemini reports the usage so far on every event. A text delta's report is only kept (the
    latest replaces the earlier ones) and read when core asks for it: ``usage_so_far()``,
    called when the stream ends or is abandoned; the other events carry their usage."""
    counter = itertools.count()
    seen_text = seen_calls = False  # for the safety check: did any answer come before?
    pending: Any = None  # the latest usageMetadata not handed out on a chunk

    def parse(event: ServerSentEvent) -> StreamChunk | None:
        nonlocal seen_text, seen_calls, pending
        data = event.data
        if not data or data.isspace():
            return None
        body = event.json()
        text = _lone_text(body)
        if text is not None:  # the common event, a text delta: none of the checks below apply
            seen_text = seen_text or bool(text)
            reported = body.get("usageMetadata")
            if reported is not None:
                pending = reported
            return text_chunk(text, body.get("modelVersion"), body)
        candidate = _candidate(body)
        usage = parse_usage(body.get("usageMetadata"))
        if usage is not None:
            pending = None  # this report is newer, and goes out on this event's chunk
        model = body.get("modelVersion")
        if candidate is None:
            return StreamChunk(usage=usage, model=model, raw=body) if usage else None
        text, calls = _read_parts(candidate)
        deltas: tuple[ToolCallDelta, ...] = ()
        if calls:
            deltas = tuple(
                ToolCallDelta(
                    index=(n := next(counter)),
                    id=cid or f"{SYNTHETIC_ID}{n}",
                    name=name,
                    arguments=args,
                )
                for cid, name, args in calls
            )
        seen_text = seen_text or bool(text)
        seen_calls = seen_calls or bool(calls)
        raw_finish = candidate.get("finishReason")
        if raw_finish in _BLOCKED and not seen_text and not seen_calls:
            raise _blocked("the answer", raw_finish, body)
        return StreamChunk(
            text=text,
            done=raw_finish is not None,
            finish_reason=_finish(raw_finish, seen_calls),
            usage=usage,
            tool_calls=deltas,
            model=model,
            raw=body,
        )

    def usage_so_far() -> Usage | None:
        return parse_usage(pending)

    parse.usage_so_far = usage_so_far  # type: ignore[attr-defined]  # read by core
    return parse


# --- embeddings and models ------------------------------------------------------------------


def _values(item: Any, body: Any) -> list[float]:
    values = item.get("values") if isinstance(item, Mapping) else None
    if not isinstance(values, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        raise bad_reply("an embedding has no list of numbers in 'values'", body)
    return [float(v) for v in values]


def parse_embeddings(body: Any, model: str, count: int) -> EmbeddingResponse:
    """``{"embedding": {...}}`` (embedContent) or ``{"embeddings": [...]}`` (batch)."""
    if not isinstance(body, Mapping):
        raise bad_reply("the embeddings reply is not a JSON object", body)
    if "embeddings" in body:
        items = body["embeddings"]
        if not isinstance(items, list):
            raise bad_reply("the embeddings reply's 'embeddings' is not a list", body)
    elif "embedding" in body:
        items = [body["embedding"]]
    else:
        raise bad_reply("the embeddings reply has no embedding", body)
    vectors = [_values(item, body) for item in items]
    if len(vectors) != count:
        raise bad_reply(f"asked for {count} embeddings, got {len(vectors)}", body)
    return EmbeddingResponse(
        embeddings=vectors, model=model, usage=parse_usage(body.get("usageMetadata")), raw=body
    )


def parse_models(body: Any) -> list[ModelInfo]:
    """A ``ListModelsResponse`` page -> ModelInfo list (ids without ``models/``)."""
    if not isinstance(body, Mapping):
        raise bad_reply("the models reply is not a JSON object", body)
    items = body.get("models", [])
    if not isinstance(items, list):
        raise bad_reply("the models reply's 'models' is not a list", body)
    out = []
    for item in items:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise bad_reply("a model entry has no name", body)
        methods = item.get("supportedGenerationMethods") or []
        embeds = "embedContent" in methods and "generateContent" not in methods
        limit = item.get("inputTokenLimit")
        out.append(
            ModelInfo(
                id=item["name"].removeprefix("models/"),
                owned_by="google",
                context_window=limit if isinstance(limit, int) else None,
                description=item.get("description") or item.get("displayName"),
                category="embedding" if embeds else "chat",
                raw=item,
            )
        )
    return out
