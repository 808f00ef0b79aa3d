"""The demo scenarios of ``hf_tgi`` and ``hf_tei``, each against a loopback server speaking
the self-hosted server's wire format (TGI's SSE is axum's ``data:{json}``; errors are
``{"error", "error_type"}``).

* ``hf_tgi``: chat through the Messages API after a 429 ``overloaded`` (retry-after 0.1 s) and
  a 503; a chat stream; ``generate_text`` after a 424 ``generation`` failure (a retried
  ServerError, from the plugin's ``refine_error`` hook), its usage read from TGI's
  ``x-prompt-tokens`` / ``x-generated-tokens`` headers; the ``/generate_stream`` token stream;
  the model list.
* ``hf_tei``: an embedding after a 429 ``Overloaded``, a 503 ``Unhealthy`` and a 424
  ``Backend`` failure;
  ``batch_embed`` of 5 texts split by the server's ``max_client_batch_size`` (2, from
  ``/info``) into 3 concurrent requests; ``rerank``.
"""

from __future__ import annotations

import json
from typing import Any

from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.demo import DemoReport
from ipfs_accelerate_py.testing import openai_wire
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply

__all__ = ["KEY", "run"]

KEY = "hf_demoNotARealToken0123456789abcd"  # a self-hosted server needs none; never printed
MODEL = "mistralai/Mistral-7B-Instruct-v0.2"
MESSAGES = [{"role": "user", "content": "Hello, how are you?"}]


def _error(status: int, message: str, error_type: str, **headers: str) -> Reply:
    return Reply.json({"error": message, "error_type": error_type}, status=status, headers=headers)


def _token_events(pieces: list[str]) -> bytes:
    """``/generate_stream`` as TGI writes it: a token per event, then the special EOS token
    with ``generated_text`` and ``details``."""
    events: list[dict[str, Any]] = [
        {"index": i, "token": {"id": i, "text": p, "logprob": -0.1, "special": False}}
        for i, p in enumerate(pieces, 1)
    ]
    for event in events:
        event.update(generated_text=None, details=None)
    details = {"finish_reason": "eos_token", "generated_tokens": len(pieces) + 1, "seed": None}
    eos = {"id": 2, "text": "</s>", "logprob": 0.0, "special": True}
    events.append(
        {
            "index": len(pieces) + 1,
            "token": eos,
            "generated_text": "".join(pieces),
            "details": {**details, "input_length": 9},
        }
    )
    return b"".join(b"data:" + json.dumps(e).encode() + b"\n\n" for e in events)


def _tgi(report: DemoReport, server: ProtocolServer) -> None:
    events = openai_wire.chat_stream(["Streaming ", "works ", "too."], model=MODEL)

    def chat(request: RecordedRequest) -> Reply:
        if request.json().get("stream"):
            return Reply.sse(events, split=17)
        return Reply.json(openai_wire.chat_completion("Hello! I am a loopback TGI.", model=MODEL))

    server.on(
        "POST",
        "/v1/chat/completions",
        _error(429, "Model is overloaded", "overloaded", **{"retry-after": "0.1"}),
        _error(503, "unhealthy", "unhealthy"),
        default=chat,
    )
    counts = {"x-prompt-tokens": "9", "x-generated-tokens": "6"}
    server.on(
        "POST",
        "/generate",
        _error(424, "Request failed during generation: CUDA out of memory", "generation"),
        default=Reply.json({"generated_text": " qubits hold 0 and 1 at once."}, headers=counts),
    )
    tokens = _token_events(["Qubits ", "are ", "fun."])
    server.on("POST", "/generate_stream", default=Reply.sse(tokens, split=23))
    server.on("GET", "/v1/models", default=Reply.json(openai_wire.models([MODEL], "tgi")))
    report.note(f"loopback TGI at {server.base_url} (429 and 503 on chat, 424 on generate)")

    from .guide import hf_tgi

    backend = get_backend("hf_tgi", base_url=server.base_url, api_key=KEY, initial_retry_delay=0.05)
    client = hf_tgi(backend=backend)
    with backend:
        report.step("chat (after a 429 and a 503)", lambda: backend.chat(messages=MESSAGES).text)

        def stream() -> str:
            chunks = list(backend.stream(messages=MESSAGES))
            return "".join(c.text for c in chunks) + f"  [done: {chunks[-1].finish_reason}]"

        report.step("stream (Messages API)", stream)
        report.step(
            "generate_text (after a 424)",
            lambda: client.generate_text(None, "Explain quantum computing", {"max_new_tokens": 20})[
                "generated_text"
            ],
        )

        def token_stream() -> str:
            chunks = list(client.stream_generate(None, "Explain quantum computing"))
            final = chunks[-1]
            details = final.raw["details"]
            return (
                "".join(c.text for c in chunks)
                + f"  [done: {final.finish_reason}, {details['generated_tokens']} tokens]"
            )

        report.step("stream_generate (tokens)", token_stream)
        report.step("list_models", lambda: [m.id for m in backend.list_models()])
        _usage(report, backend, server)


def _tei(report: DemoReport, server: ProtocolServer) -> None:
    def embed(request: RecordedRequest) -> Reply:
        texts = request.json()["inputs"]
        if len(texts) > 2:  # TEI refuses more than max_client_batch_size
            message = f"batch size {len(texts)} > maximum allowed batch size 2"
            return _error(422, message, "Validation")
        return Reply.json([[float(len(t)), 0.5] for t in texts])

    server.on(
        "POST",
        "/embed",
        _error(429, "Model is overloaded", "Overloaded", **{"retry-after": "0.1"}),
        _error(503, "unhealthy", "Unhealthy"),
        _error(424, "Inference failed", "Backend"),
        default=embed,
    )
    info = {"model_id": "BAAI/bge-small-en-v1.5", "max_client_batch_size": 2, "version": "1.8.0"}
    server.on("GET", "/info", default=Reply.json(info))
    ranks = [{"index": 1, "score": 0.98}, {"index": 0, "score": 0.02}]
    server.on("POST", "/rerank", default=Reply.json(ranks))
    report.note(f"loopback TEI at {server.base_url} (429, 503 and 424 on the first embedding)")

    from .guide import hf_tei

    backend = get_backend("hf_tei", base_url=server.base_url, api_key=KEY, initial_retry_delay=0.05)
    client = hf_tei(backend=backend)
    with backend:
        report.step(
            "embed (after 429, 503, 424)",
            lambda: backend.embed(input="A sample text").embeddings,
        )
        texts = ["one", "three", "five!", "seven..", "nine....."]

        def batch() -> str:
            vectors = client.batch_embed(None, texts)
            requests = len(server.requests_to("/embed")) - 4
            return f"{[v[0] for v in vectors]} in {requests} requests of <= 2"

        report.step("batch_embed (batch size 2)", batch)
        report.step(
            "rerank",
            lambda: client.rerank("What is Deep Learning?", ["Cheese", "Deep Learning is..."]),
        )
        _usage(report, backend, server)


def _usage(report: DemoReport, backend: Any, server: ProtocolServer) -> None:
    def usage() -> str:
        stats = backend.get_usage_stats()
        return (
            f"{stats['total_requests']} requests, {stats['total_tokens']} tokens; "
            f"circuit {backend.circuit_state}; server saw {len(server.requests)} requests"
        )

    report.step("usage", usage)


def run(name: str, report: DemoReport) -> None:
    """Run backend ``name``'s scenario, reporting each step."""
    with ProtocolServer() as server:
        (_tgi if name == "hf_tgi" else _tei)(report, server)
