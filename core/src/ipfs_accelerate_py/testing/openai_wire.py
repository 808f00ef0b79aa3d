"""Protocol-exact OpenAI reply bodies for tests of any OpenAI-compatible backend.

Each function returns what the real API sends (field names, nesting, the SSE framing with
``[DONE]``), so a plugin's tests and the benchmarks script a :class:`ProtocolServer` with it::

    server.on("POST", "/v1/chat/completions", Reply.json(chat_completion("Hello!")))
    server.on("POST", "/v1/chat/completions", Reply.sse(chat_stream(["Hel", "lo"])))
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable, Sequence
from typing import Any

from .server import RecordedRequest, Reply

__all__ = [
    "chat_completion",
    "chat_reply",
    "chat_stream",
    "embeddings",
    "embeddings_reply",
    "error",
    "error_reply",
    "images",
    "models",
    "user",
]


def usage(prompt: int = 9, completion: int = 12) -> dict[str, int]:
    """An OpenAI ``usage`` object."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def chat_completion(
    text: str | None = "Hello! How can I help?",
    *,
    model: str = "gpt-4o-mini-2024-07-18",
    finish_reason: str = "stop",
    tool_calls: list[dict[str, Any]] | None = None,
    prompt_tokens: int = 9,
    completion_tokens: int = 12,
    id: str = "chatcmpl-abc123",
) -> dict[str, Any]:
    """A ``chat.completion`` object."""
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": id,
        "object": "chat.completion",
        "created": 1_741_569_952,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        ],
        "usage": usage(prompt_tokens, completion_tokens),
        "system_fingerprint": "fp_06737a9306",
    }


def chat_reply(text: str | None = "ok", **kw: Any) -> Reply:
    """A 200 reply carrying :func:`chat_completion` (same keywords)."""
    return Reply.json(chat_completion(text, **kw))


def user(text: str = "Hello") -> list[dict[str, str]]:
    """A one-message conversation: ``[{"role": "user", "content": text}]``."""
    return [{"role": "user", "content": text}]


def tool_call(id: str, name: str, arguments: str) -> dict[str, Any]:
    """One entry of ``message.tool_calls``."""
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


def chat_stream(
    pieces: Sequence[str],
    *,
    model: str = "gpt-4o-mini-2024-07-18",
    finish_reason: str = "stop",
    include_usage: bool = True,
    done: bool = True,
    prompt_tokens: int = 9,
    completion_tokens: int | None = None,
) -> list[Any]:
    """The SSE events of a streamed completion: a role chunk, one chunk per piece, the
    finish chunk, the usage chunk (``choices: []``) and ``[DONE]``; pass to ``Reply.sse``."""
    base = {
        "id": "chatcmpl-stream1",
        "object": "chat.completion.chunk",
        "created": 1_741_569_952,
        "model": model,
        "system_fingerprint": "fp_06737a9306",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            **base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    events: list[Any] = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events.extend(chunk({"content": p}) for p in pieces)
    events.append(chunk({}, finish_reason))
    if include_usage:
        completion = len(pieces) if completion_tokens is None else completion_tokens
        events.append({**base, "choices": [], "usage": usage(prompt_tokens, completion)})
    if done:
        events.append("[DONE]")
    return events


def embeddings(
    vectors: Sequence[Sequence[float]],
    *,
    encoding_format: str = "float",
    model: str = "text-embedding-3-small",
    prompt_tokens: int = 8,
) -> dict[str, Any]:
    """A ``list`` of ``embedding`` objects; base64 packs little-endian float32 values."""
    data = []
    for i, vec in enumerate(vectors):
        value: Any = list(vec)
        if encoding_format == "base64":
            value = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def embeddings_reply(
    vectors: Sequence[Sequence[float]], **kw: Any
) -> Callable[[RecordedRequest], Reply]:
    """A reply source answering ``/embeddings`` as the API does: ``vectors`` (float32) in the
    format the request's ``encoding_format`` names, ``float`` when it names none; a format
    other than those two is a 400 ``invalid_request_error``. ``kw`` as for :func:`embeddings`.
    """

    def reply(request: RecordedRequest) -> Reply:
        fmt = request.json().get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            message = f"{fmt!r} is not one of ['float', 'base64'] - 'encoding_format'"
            body = error(message, "invalid_request_error", param="encoding_format")
            return Reply.json(body, status=400)
        return Reply.json(embeddings(vectors, encoding_format=fmt, **kw))

    return reply


def images(
    urls: Sequence[str] = (), b64: Sequence[str] = (), revised_prompt: str | None = None
) -> dict[str, Any]:
    """An images reply with URLs or ``b64_json`` payloads."""
    data: list[dict[str, Any]] = [{"url": u} for u in urls] + [{"b64_json": b} for b in b64]
    if revised_prompt:
        for item in data:
            item["revised_prompt"] = revised_prompt
    return {"created": 1_741_569_952, "data": data}


def models(ids: Sequence[str], owned_by: str = "openai") -> dict[str, Any]:
    """A ``GET /models`` reply."""
    return {
        "object": "list",
        "data": [
            {"id": i, "object": "model", "created": 1_686_935_002, "owned_by": owned_by}
            for i in ids
        ],
    }


def error(
    message: str,
    type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """An OpenAI error body."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


_ERRORS = {
    400: ("Invalid value for 'temperature'.", "invalid_request_error", "invalid_value"),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to sample from this model", "invalid_request_error", None),
    404: ("The model `gpt-9` does not exist", "invalid_request_error", "model_not_found"),
    409: ("Conflict", "invalid_request_error", None),
    422: ("Unprocessable", "invalid_request_error", None),
    429: ("Rate limit reached for gpt-4o-mini", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request.", "server_error", None),
    503: ("The engine is currently overloaded.", "server_error", None),
}


def error_reply(status: int, headers: dict[str, str] | None = None, **kw: Any) -> Reply:
    """An error reply as OpenAI sends it for ``status``, with an ``x-request-id``."""
    message, type_, code = _ERRORS.get(status, ("Error", "server_error", None))
    hdrs = {"x-request-id": f"req_server_{status}"}
    hdrs.update(headers or {})
    return Reply.json(error(message, type_, code), status=status, headers=hdrs, **kw)
