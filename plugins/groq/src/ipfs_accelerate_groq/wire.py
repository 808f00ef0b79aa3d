"""Groq's exact reply bodies, headers and SSE framing, for scripting a loopback server
(the plugin's tests and its demo scenario).

Shapes follow groq-python's types (ChatCompletion, ChatCompletionChunk with ``x_groq``,
CompletionUsage with Groq's timings) and Groq's error documentation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ipfs_accelerate_py.testing.server import Reply

CHAT = "/openai/v1/chat/completions"
MODELS = "/openai/v1/models"
REQUEST_ID = "req_01jbd6g2qdfw2adyrt2az8hz4w"


def usage(prompt: int = 18, completion: int = 12) -> dict[str, Any]:
    """Groq's ``usage``: token counts plus its timings (seconds)."""
    return {
        "queue_time": 0.037493756,
        "prompt_tokens": prompt,
        "prompt_time": 0.000680594,
        "completion_tokens": completion,
        "completion_time": 0.046333333,
        "total_tokens": prompt + completion,
        "total_time": 0.047013927,
    }


def completion(
    text: str | None = "Hello! I'm doing well.",
    *,
    model: str = "llama3-8b-8192",
    finish_reason: str = "stop",
    tool_calls: list[dict[str, Any]] | None = None,
    prompt_tokens: int = 18,
    completion_tokens: int = 12,
) -> dict[str, Any]:
    """A ``chat.completion`` as Groq sends it (``x_groq.id``, ``system_fingerprint``)."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-f51b2cd2-bef7-417e-964e-a08f0b513c22",
        "object": "chat.completion",
        "created": 1730241104,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        ],
        "usage": usage(prompt_tokens, completion_tokens),
        "system_fingerprint": "fp_179b0f92c9",
        "x_groq": {"id": REQUEST_ID},
    }


def reply(text: str | None = "Hello! I'm doing well.", **kw: Any) -> Reply:
    """A 200 carrying :func:`completion`, with Groq's headers."""
    return Reply.json(completion(text, **kw), headers=HEADERS)


HEADERS = {
    "x-request-id": REQUEST_ID,
    "x-groq-region": "us-east-1",
    "x-ratelimit-limit-requests": "14400",
    "x-ratelimit-limit-tokens": "6000",
    "x-ratelimit-remaining-requests": "14399",
    "x-ratelimit-remaining-tokens": "5970",
    "x-ratelimit-reset-requests": "6s",
    "x-ratelimit-reset-tokens": "300ms",
}


def stream_events(
    pieces: Sequence[str],
    *,
    model: str = "llama3-8b-8192",
    finish_reason: str = "stop",
    prompt_tokens: int = 18,
    completion_tokens: int | None = None,
    done: bool = True,
) -> list[Any]:
    """A Groq stream: the first chunk names the request in ``x_groq.id``; the final chunk
    (finish reason, empty delta) carries ``x_groq.usage``; then ``[DONE]``."""
    base = {
        "id": "chatcmpl-8566e76f-7ded-47d7-a2ca-d212098af00c",
        "object": "chat.completion.chunk",
        "created": 1716131679,
        "model": model,
        "system_fingerprint": "fp_179b0f92c9",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        return {
            **base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            **extra,
        }

    events: list[Any] = [chunk({"role": "assistant", "content": ""}, x_groq={"id": REQUEST_ID})]
    events.extend(chunk({"content": p}) for p in pieces)
    count = len(pieces) if completion_tokens is None else completion_tokens
    events.append(
        chunk({}, finish_reason, x_groq={"id": REQUEST_ID, "usage": usage(prompt_tokens, count)})
    )
    if done:
        events.append("[DONE]")
    return events


def model_entry(
    model_id: str, context_window: int = 131072, owned_by: str = "Meta", active: bool = True
) -> dict[str, Any]:
    """One entry of Groq's ``GET /models`` listing."""
    return {
        "id": model_id,
        "object": "model",
        "created": 1693721698,
        "owned_by": owned_by,
        "active": active,
        "context_window": context_window,
        "public_apps": None,
        "max_completion_tokens": 32768,
    }


def models(*entries: dict[str, Any]) -> dict[str, Any]:
    """Groq's ``GET /models`` body."""
    return {"object": "list", "data": list(entries)}


LISTING = models(
    model_entry("llama-3.1-8b-instant"),
    model_entry("llama-3.3-70b-versatile"),
    model_entry("gemma2-9b-it", 8192, "Google"),
    model_entry("mistral-saba-24b", 32768, "Mistral AI"),
    model_entry("meta-llama/llama-4-scout-17b-16e-instruct"),
    model_entry("whisper-large-v3", 448, "OpenAI"),
    model_entry("whisper-large-v3-turbo", 448, "OpenAI"),
    model_entry("compound-beta-new", 131072, "Groq"),  # not in the shipped catalogue
    model_entry("llama3-8b-8192", 8192, active=False),  # retired
)


def error(
    message: str, type: str = "invalid_request_error", code: str | None = None
) -> dict[str, Any]:
    """Groq's error body: ``{"error": {"message", "type"[, "code"]}}``."""
    body: dict[str, Any] = {"message": message, "type": type}
    if code is not None:
        body["code"] = code
    return {"error": body}


ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("property 'top_k' is unsupported, did you mean 'top_p'?", "invalid_request_error", None),
    401: ("Invalid API Key", "invalid_request_error", "invalid_api_key"),
    403: ("Forbidden: organization restricted", "permissions_error", None),
    404: (
        "The model `llama-9` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    413: ("Request Entity Too Large", "invalid_request_error", None),
    422: ("Unprocessable Entity", "invalid_request_error", None),
    429: (
        "Rate limit reached for model `llama3-8b-8192` in organization `org_01` service tier "
        "`on_demand` on tokens per minute (TPM): Limit 6000, Used 5970, Requested 120. "
        "Please try again in 1.2s.",
        "tokens",
        "rate_limit_exceeded",
    ),
    498: ("Flex tier capacity exceeded", "capacity_exceeded", "capacity_exceeded"),
    500: ("Internal Server Error", "internal_server_error", None),
    502: ("Bad Gateway", "internal_server_error", None),
    503: ("Service Unavailable", "internal_server_error", None),
}


def error_reply(status: int, headers: dict[str, str] | None = None, **kw: Any) -> Reply:
    """The error Groq sends for ``status``, with its ``x-request-id``."""
    message, type_, code = ERRORS.get(status, ("Error", "internal_server_error", None))
    hdrs = {"x-request-id": f"req_server_{status}", **(headers or {})}
    return Reply.json(error(message, type_, code), status=status, headers=hdrs, **kw)


def rate_limited(retry_after: str = "2", reset_tokens: str = "1.2s") -> Reply:
    """A 429 as Groq sends it: ``retry-after`` (seconds) and the ``x-ratelimit-*`` headers
    (no tokens left until ``reset_tokens``)."""
    return error_reply(
        429,
        headers={
            "retry-after": retry_after,
            "x-ratelimit-limit-requests": "14400",
            "x-ratelimit-limit-tokens": "6000",
            "x-ratelimit-remaining-requests": "14370",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-requests": "2m59.56s",
            "x-ratelimit-reset-tokens": reset_tokens,
        },
    )
