"""Gemini replies exactly as the Generative Language API sends them, for the loopback server."""

from __future__ import annotations

import base64
import json
from typing import Any

from ipfs_accelerate_py.testing.server import Reply

MODEL_VERSION = "gemini-2.5-flash-preview-05-20"

# a real 1x1 baseline JPEG (JFIF), and the magic numbers of the other formats
JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////"
    "////////////////////////////////////wgALCAABAAEBAREA/8QAFBABAAAAAAAAAAAAAAAAAAAAAP/a"
    "AAgBAQABPxA="
)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 17
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
WEBP = (
    b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00"
    b"/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"
)


def usage(prompt: int = 8, candidates: int = 12, **extra: int) -> dict[str, Any]:
    """``usageMetadata`` with the total Gemini reports (thoughts count in the total)."""
    total = prompt + candidates + extra.get("thoughtsTokenCount", 0)
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": total,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
        **extra,
    }


def candidate(parts: list[dict[str, Any]], finish: str | None = "STOP") -> dict[str, Any]:
    """One candidate with its content parts and finish reason."""
    out: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish is not None:
        out["finishReason"] = finish
    return out


def response(
    text: str | None = "Hello!",
    *,
    parts: list[dict[str, Any]] | None = None,
    finish: str | None = "STOP",
    usage_metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``GenerateContentResponse``."""
    parts = parts if parts is not None else [{"text": text}]
    return {
        "candidates": [candidate(parts, finish)],
        "usageMetadata": usage_metadata or usage(),
        "modelVersion": MODEL_VERSION,
        "responseId": "resp-abc123",
    }


def stream_events(pieces: list[str], finish: str | None = "STOP") -> list[dict[str, Any]]:
    """The events of ``streamGenerateContent?alt=sse``: one response per piece, usage on each
    (growing), the finish reason on the last."""
    events = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        events.append(
            {
                "candidates": [candidate([{"text": piece}], finish if last else None)],
                "usageMetadata": usage(8, i + 1)
                if last
                else {"promptTokenCount": 8, "totalTokenCount": 8},
                "modelVersion": MODEL_VERSION,
                "responseId": "resp-stream",
            }
        )
    return events


def sse(events: list[Any], split: Any = None, **kw: Any) -> Reply:
    """Gemini's framing: ``data: {...}`` lines ended by CRLF CRLF, one chunk per event
    unless ``split`` says otherwise."""
    frames = [
        e if isinstance(e, bytes) else b"data: " + json.dumps(e).encode() + b"\r\n\r\n"
        for e in events
    ]
    return Reply.sse(frames, split=split, **kw)


def error(code: int, status: str, message: str, details: list[Any] | None = None) -> dict[str, Any]:
    """Google's error body."""
    err: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        err["details"] = details
    return {"error": err}


def error_reply(code: int, status: str, message: str, **kw: Any) -> Reply:
    """An error reply with Google's body and status."""
    headers = kw.pop("headers", None)
    return Reply.json(error(code, status, message, **kw), status=code, headers=headers)


API_KEY_INVALID = error(
    400,
    "INVALID_ARGUMENT",
    "API key not valid. Please pass a valid API key.",
    [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        },
        {
            "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
            "locale": "en-US",
            "message": "API key not valid. Please pass a valid API key.",
        },
    ],
)

QUOTA = error(
    429,
    "RESOURCE_EXHAUSTED",
    "You exceeded your current quota, please check your plan and billing details.",
    [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/"
                    "generate_content_free_tier_requests"
                }
            ],
        },
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"},
    ],
)

# an OpenAI-style tool list, as the tests pass it
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
