"""The Ollama demo scenario: chat, NDJSON stream, generate, embeddings and the model list
against a loopback server speaking Ollama's ``/api``, with a rate limit (429 + retry-after)
and a busy server (503) injected on the way, and a missing model's ``ollama pull`` advice."""

from __future__ import annotations

from typing import Any

from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.demo import DemoReport
from ipfs_accelerate_py.errors import NotFoundError
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply

TOKEN = "ollama-demo-proxy-token-not-real-0000"  # Ollama needs none; shows it is never printed
MODEL = "llama3.2"
COUNTERS = {"prompt_eval_count": 12, "eval_count": 9, "total_duration": 51_000_000}


def _error(message: str, status: int, **headers: str) -> Reply:
    return Reply.json({"error": message}, status=status, headers=headers)


def _chat(request: RecordedRequest) -> Reply:
    body = request.json()
    if body.get("model") != MODEL:
        return _error(f'model "{body.get("model")}" not found, try pulling it first', 404)
    if not body.get("stream", True):
        message = {"role": "assistant", "content": "Hello! I am a loopback Ollama."}
        return Reply.json(
            {"model": MODEL, "message": message, "done": True, "done_reason": "stop", **COUNTERS}
        )
    lines: list[Any] = [
        {"model": MODEL, "message": {"role": "assistant", "content": p}, "done": False}
        for p in ("Streaming ", "works ", "too.")
    ]
    lines.append(
        {
            "model": MODEL,
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            **COUNTERS,
        }
    )
    return Reply.ndjson(lines, split=7)  # lines split mid-way on purpose


def _script(server: ProtocolServer) -> None:
    server.on(
        "POST",
        "/api/chat",
        _error("too many requests", 429, **{"retry-after": "0.1"}),
        _error("server busy, please try again.  maximum pending requests exceeded", 503),
        default=_chat,
    )
    generated = {"model": MODEL, "response": "The sky is blue.", "done": True, **COUNTERS}
    server.on("POST", "/api/generate", default=Reply.json(generated))
    vectors = {
        "model": "all-minilm",
        "embeddings": [[0.1, 0.2], [0.3, 0.4]],
        "prompt_eval_count": 4,
    }
    server.on("POST", "/api/embed", default=Reply.json(vectors))
    tags = {
        "models": [{"name": n, "model": n, "size": 1} for n in (f"{MODEL}:latest", "all-minilm")]
    }
    server.on("GET", "/api/tags", default=Reply.json(tags))


def run(report: DemoReport) -> None:
    """Run the scenario, reporting each step."""
    with ProtocolServer() as server:
        _script(server)
        report.note(f"loopback Ollama at {server.base_url} (429 then 503 on the first chat)")
        backend = get_backend(
            "ollama",
            base_url=server.base_url,
            api_key=TOKEN,
            initial_retry_delay=0.05,
        )
        messages = [{"role": "user", "content": "Hello, how are you?"}]
        with backend:
            report.step(
                "chat (after a 429 and a 503)",
                lambda: backend.chat(messages=messages, model=MODEL).text,
            )

            def stream() -> str:
                chunks = list(backend.stream(messages=messages, model=MODEL))
                return "".join(c.text for c in chunks) + f"  [done: {chunks[-1].finish_reason}]"

            report.step("stream (NDJSON)", stream)
            report.step(
                "generate",
                lambda: backend.generate(prompt="Why is the sky blue?", model=MODEL).text,
            )
            report.step(
                "embeddings",
                lambda: backend.embed(input=["a", "b"], model="all-minilm").embeddings,
            )
            report.step("list_models", lambda: [m.id for m in backend.list_models()])

            def missing_model() -> str:
                try:
                    backend.chat(messages=messages, model="mistral")
                except NotFoundError as err:
                    return err.message
                raise AssertionError("a missing model was not reported")

            report.step("missing model (404)", missing_model)

            def usage() -> str:
                stats = backend.get_usage_stats()
                return (
                    f"{stats['total_requests']} requests, {stats['total_tokens']} tokens, "
                    f"${stats['estimated_cost_usd']:.2f} (self-hosted); "
                    f"circuit {backend.circuit_state}; server saw {len(server.requests)} requests"
                )

            report.step("usage and cost", usage)
