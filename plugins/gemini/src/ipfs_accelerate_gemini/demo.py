"""The Gemini demo scenario: chat, SSE stream, embeddings (one and batched) and the model list
over two pages, against a loopback server speaking the Generative Language API (``/v1beta``).

Faults on the way: a 429 ``RESOURCE_EXHAUSTED`` with a ``retry-after`` header, a 503
``UNAVAILABLE``, a 429 whose only delay is Google's ``RetryInfo`` (read by the plugin's
``refine_error`` hook), and an invalid key (400 ``API_KEY_INVALID``: an AuthenticationError).
"""

from __future__ import annotations

import json
from typing import Any

from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.demo import DemoReport
from ipfs_accelerate_py.errors import AuthenticationError
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply

KEY = "AIzaSy-demo-not-a-real-key-00000000"
MODEL = "gemini-2.5-flash"
PREFIX = f"/v1beta/models/{MODEL}"
USAGE = {"promptTokenCount": 8, "candidatesTokenCount": 6, "totalTokenCount": 14}


def _error(code: int, status: str, message: str, *details: Any, **headers: str) -> Reply:
    body = {"error": {"code": code, "message": message, "status": status, "details": details}}
    return Reply.json(body, status=code, headers=headers)


def _answer(text: str, finish: str | None = "STOP") -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": USAGE, "modelVersion": MODEL}


def _generate(request: RecordedRequest) -> Reply:
    if request.headers.get("x-goog-api-key") != KEY:
        info = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
        return _error(
            400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", info
        )
    return Reply.json(_answer("Hello! I am a loopback Gemini."))


def _models(request: RecordedRequest) -> Reply:
    page = request.query.get("pageToken")
    names = ["gemini-2.5-pro", MODEL] if page is None else ["gemini-embedding-001"]
    body: dict[str, Any] = {"models": [{"name": f"models/{n}"} for n in names]}
    if page is None:
        body["nextPageToken"] = "page-2"
    return Reply.json(body)


def _script(server: ProtocolServer) -> None:
    server.on(
        "POST",
        f"{PREFIX}:generateContent",
        _error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted.", **{"retry-after": "0.1"}),
        _error(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
        default=_generate,
    )
    events = [_answer(p, None) for p in ("Streaming ", "works ")] + [_answer("too.")]
    frames = [b"data: " + json.dumps(e).encode() + b"\r\n\r\n" for e in events]
    server.on("POST", f"{PREFIX}:streamGenerateContent", default=Reply.sse(frames, split=9))
    retry_info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.2s"}
    server.on(
        "POST",
        "/v1beta/models/gemini-embedding-001:embedContent",
        _error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", retry_info),
        default=Reply.json({"embedding": {"values": [0.1, 0.2, 0.3]}}),
    )
    batch = {"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]}
    server.on(
        "POST",
        "/v1beta/models/gemini-embedding-001:batchEmbedContents",
        default=Reply.json(batch),
    )
    server.on("GET", "/v1beta/models", default=_models)


def run(report: DemoReport) -> None:
    """Run the scenario, reporting each step."""
    with ProtocolServer() as server:
        _script(server)
        report.note(f"loopback Gemini at {server.url('/v1beta')} (429, 503 on the first chat)")
        backend = get_backend(
            "gemini", api_key=KEY, base_url=server.base_url, initial_retry_delay=0.05
        )
        messages = [{"role": "user", "content": "Hello, how are you?"}]
        with backend:
            report.step(
                "chat (after a 429 and a 503)", lambda: backend.chat(messages=messages).text
            )

            def stream() -> str:
                chunks = list(backend.stream(messages=messages))
                return "".join(c.text for c in chunks) + f"  [done: {chunks[-1].finish_reason}]"

            report.step("stream (SSE)", stream)
            embedder = "gemini-embedding-001"
            report.step(
                "embeddings (RetryInfo 0.2s)",
                lambda: backend.embed(input="A sample text", model=embedder).embeddings,
            )
            report.step(
                "batch embeddings",
                lambda: backend.embed(input=["a", "b"], model=embedder).embeddings,
            )
            report.step("list_models (2 pages)", lambda: [m.id for m in backend.list_models()])

            def bad_key() -> str:
                other = get_backend("gemini", api_key="AIzaSy-wrong", base_url=server.base_url)
                with other:
                    try:
                        other.chat(messages=messages)
                    except AuthenticationError as err:
                        return f"{type(err).__name__} [{err.code}]"
                raise AssertionError("an invalid key was not reported")

            report.step("invalid key (400)", bad_key)

            def usage() -> str:
                stats = backend.get_usage_stats()
                return (
                    f"{stats['total_requests']} requests, {stats['total_tokens']} tokens, "
                    f"~${stats['estimated_cost_usd']:.6f}; circuit {backend.circuit_state}; "
                    f"server saw {len(server.requests)} requests"
                )

            report.step("usage and cost", usage)
