"""TGI and TEI replies as the servers write them, for scripting the loopback server.

Shapes from text-generation-inference ``router/src/lib.rs`` / ``server.rs`` and
text-embeddings-inference ``router/src/http/types.rs`` / ``lib.rs``. TGI's SSE is written
by axum as ``data:{json}`` with no space after the colon.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ipfs_accelerate_py.testing.server import Reply


def token(i: int, text: str, special: bool = False) -> dict[str, Any]:
    """A TGI ``Token``."""
    return {"id": 100 + i, "text": text, "logprob": -0.25, "special": special}


def details(
    generated_tokens: int = 3, finish_reason: str = "length", prefill: int = 0
) -> dict[str, Any]:
    """A ``/generate`` ``Details`` object."""
    return {
        "finish_reason": finish_reason,
        "generated_tokens": generated_tokens,
        "seed": None,
        "prefill": [{"id": i, "text": f"p{i}", "logprob": None} for i in range(prefill)],
        "tokens": [token(i, f"t{i}") for i in range(generated_tokens)],
    }


def generated(text: str, with_details: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``/generate`` reply body."""
    body: dict[str, Any] = {"generated_text": text}
    if with_details is not None:
        body["details"] = with_details
    return body


def stream_events(
    pieces: Sequence[str], finish_reason: str = "eos_token", input_length: int = 7
) -> list[dict[str, Any]]:
    """``/generate_stream`` events: one per piece, then the special EOS token carrying
    ``generated_text`` and ``details``."""
    events: list[dict[str, Any]] = [
        {"index": i + 1, "token": token(i, p), "generated_text": None, "details": None}
        for i, p in enumerate(pieces)
    ]
    events.append(
        {
            "index": len(pieces) + 1,
            "token": token(len(pieces), "</s>", special=True),
            "generated_text": "".join(pieces),
            "details": {
                "finish_reason": finish_reason,
                "generated_tokens": len(pieces) + 1,
                "seed": None,
                "input_length": input_length,
            },
        }
    )
    return events


def frames(events: Sequence[Any]) -> list[bytes]:
    """Events framed as axum writes them: ``data:{json}\\n\\n`` (no space); bytes as given
    (a ``: keep-alive`` comment, broken data)."""
    return [
        (e if isinstance(e, bytes) else b"data:" + json.dumps(e).encode()) + b"\n\n" for e in events
    ]


def sse_payload(events: Sequence[Any]) -> bytes:
    """The whole stream as one byte string."""
    return b"".join(frames(events))


def sse(events: Sequence[Any], split: Any = None, **kw: Any) -> Reply:
    """A chunked ``text/event-stream`` reply of TGI events, one chunk per event unless
    ``split`` says otherwise."""
    return Reply.sse(frames(events), split=split, **kw)


def error(message: str, error_type: str) -> dict[str, str]:
    """TGI's and TEI's error body."""
    return {"error": message, "error_type": error_type}


def error_reply(status: int, message: str, error_type: str, **kw: Any) -> Reply:
    """An error status with the servers' JSON error body."""
    return Reply.json(error(message, error_type), status=status, **kw)


def tgi_info(**extra: Any) -> dict[str, Any]:
    """A TGI ``/info`` body."""
    return {
        "model_id": "mistralai/Mistral-7B-Instruct-v0.2",
        "model_sha": None,
        "model_pipeline_tag": "text-generation",
        "max_concurrent_requests": 128,
        "max_best_of": 2,
        "max_stop_sequences": 4,
        "max_input_tokens": 4095,
        "max_total_tokens": 4096,
        "validation_workers": 2,
        "max_client_batch_size": 4,
        "router": "text-generation-router",
        "version": "3.3.6",
        **extra,
    }


def tei_info(max_client_batch_size: int = 32, **extra: Any) -> dict[str, Any]:
    """A TEI ``/info`` body."""
    return {
        "model_id": "sentence-transformers/all-MiniLM-L6-v2",
        "model_sha": None,
        "model_dtype": "float32",
        "served_model_name": "sentence-transformers/all-MiniLM-L6-v2",
        "model_type": {"embedding": {"pooling": "mean"}},
        "max_concurrent_requests": 512,
        "max_input_length": 256,
        "max_batch_tokens": 16384,
        "max_batch_requests": None,
        "max_client_batch_size": max_client_batch_size,
        "auto_truncate": False,
        "tokenization_workers": 4,
        "version": "1.8.0",
        "sha": None,
        "docker_label": None,
        **extra,
    }


def vector_for(text: str) -> list[float]:
    """A deterministic 4-float vector for ``text`` (so order can be checked)."""
    n = float(len(text))
    return [n, float(ord(text[0])), 0.5, -n / 10.0]
