"""The demo scenarios of ``llvm``/``vllm``, ``ovms`` and ``opea``: each against a loopback
server speaking that server's protocol, with a rate limit (429 + retry-after) and an outage
(503) injected on the first chat.

* ``llvm`` / ``vllm``: an OpenAI-compatible server serving one model (no ``model`` sent):
  chat, stream, embeddings, completions and the model list under ``/v1``.
* ``ovms``: the OpenAI-compatible ``/v3`` endpoints, then KServe v2 (health, metadata and
  ``infer`` when numpy is installed).
* ``opea``: ChatQnA (``/v1/chatqna``: plain, then its ``data: b'...'`` stream) and the
  embedding microservice.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.demo import DemoReport
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply

__all__ = ["KEY", "run"]

KEY = "sk-local-demo-not-a-real-key-0000"  # none is needed; shows it is never printed
MESSAGES = [{"role": "user", "content": "Hello, how are you?"}]
SERVED = "Qwen/Qwen2.5-1.5B-Instruct"


def _chat_route(server: ProtocolServer, path: str, text: str, model: str) -> None:
    """``path`` answers a 429 (retry-after 0.1 s), a 503, then chat or an SSE stream."""
    events = wire.chat_stream(["Streaming ", "works ", "too."], model=model)

    def reply(request: RecordedRequest) -> Reply:
        if request.json().get("stream"):
            return Reply.sse(events, split=11)  # events split mid-way on purpose
        return Reply.json(wire.chat_completion(text, model=model))

    server.on(
        "POST",
        path,
        wire.error_reply(429, headers={"retry-after": "0.1"}),
        wire.error_reply(503),
        default=reply,
    )


def _completion(text: str, model: str) -> dict[str, Any]:
    choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
    return {"id": "cmpl-demo", "object": "text_completion", "model": model, "choices": [choice]}


def _chat_steps(report: DemoReport, backend: Backend, model: str | None) -> None:
    report.step(
        "chat (after a 429 and a 503)",
        lambda: backend.chat(messages=MESSAGES, model=model).text,
    )

    def stream() -> str:
        chunks = list(backend.stream(messages=MESSAGES, model=model))
        return "".join(c.text for c in chunks) + f"  [done: {chunks[-1].finish_reason}]"

    report.step("stream", stream)


def _usage_step(report: DemoReport, backend: Backend, server: ProtocolServer) -> None:
    def usage() -> str:
        stats = backend.get_usage_stats()
        return (
            f"{stats['total_requests']} requests, {stats['total_tokens']} tokens, "
            f"${stats['estimated_cost_usd']:.2f} (self-hosted); circuit {backend.circuit_state}; "
            f"server saw {len(server.requests)} requests"
        )

    report.step("usage and cost", usage)


def _openai_server(name: str, report: DemoReport, server: ProtocolServer) -> Backend:
    _chat_route(server, "/v1/chat/completions", "Hello! I am a loopback vLLM.", SERVED)
    server.on("POST", "/v1/embeddings", default=Reply.json(wire.embeddings([[0.1, 0.2, 0.3]])))
    completion = _completion(" blue, because of Rayleigh scattering.", SERVED)
    server.on("POST", "/v1/completions", default=Reply.json(completion))
    server.on("GET", "/v1/models", default=Reply.json(wire.models([SERVED], owned_by="vllm")))
    report.note(f"loopback OpenAI-compatible server at {server.url('/v1')}, serving {SERVED}")
    backend = _backend(name, server.url("/v1"))
    _chat_steps(report, backend, None)  # no model: the server answers with the one it serves
    report.step("embeddings", lambda: backend.embed(input="A sample text").embeddings)
    report.step("generate (completions)", lambda: backend.generate(prompt="The sky is").text)
    report.step("list_models", lambda: [m.id for m in backend.list_models()])
    return backend


def _ovms(name: str, report: DemoReport, server: ProtocolServer) -> Backend:
    model = "OpenVINO/Phi-3.5-mini-instruct-int4-ov"
    _chat_route(server, "/v3/chat/completions", "Hello! I am a loopback OVMS.", model)
    server.on("POST", "/v3/embeddings", default=Reply.json(wire.embeddings([[0.4, 0.5]])))
    server.on("GET", "/v3/models", default=Reply.json(wire.models([model], owned_by="OVMS")))
    server.on("GET", "/v2/health/ready", default=Reply.raw(b""))
    metadata = {
        "name": "resnet",
        "versions": ["1"],
        "platform": "OpenVINO",
        "inputs": [{"name": "0", "datatype": "FP32", "shape": [1, 3]}],
        "outputs": [{"name": "1463", "datatype": "FP32", "shape": [1, 2]}],
    }
    server.on("GET", "/v2/models/resnet", default=Reply.json(metadata))
    output = {"name": "1463", "datatype": "FP32", "shape": [1, 2], "data": [0.25, 0.75]}
    infer = {"model_name": "resnet", "model_version": "1", "outputs": [output]}
    server.on("POST", "/v2/models/resnet/infer", default=Reply.json(infer))
    report.note(f"loopback OpenVINO Model Server at {server.base_url} (/v3 and KServe /v2)")
    backend = _backend(name, server.base_url)
    _chat_steps(report, backend, model)
    report.step("embeddings", lambda: backend.embed(input="A sample", model="gte").embeddings)
    report.step("list_models", lambda: [m.id for m in backend.list_models()])

    from .guide import ovms

    client = ovms(backend=backend)
    report.step("server ready (KServe)", client.is_server_ready)
    if importlib.util.find_spec("numpy") is None:
        report.note("numpy is not installed: infer skipped (ipfs-accelerate-local[numpy])")
        return backend
    import numpy as np

    def infer() -> str:
        out = client.infer("resnet", np.array([[0.1, 0.2, 0.3]], dtype=np.float32))
        return f"{out.dtype} {list(out.shape)} {out.tolist()}"

    report.step("infer (KServe v2)", infer)
    return backend


def _opea(name: str, report: DemoReport, server: ProtocolServer) -> Backend:
    answer = wire.chat_completion("About $51.2 billion.", model="chatqna")
    tokens = [" Nike", "'s revenue", " was", " $51.2B", " — über"]
    lines = b"".join(f"data: {t.encode()!r}\n\n".encode("ascii") for t in tokens)

    def chatqna(request: RecordedRequest) -> Reply:
        if request.json().get("stream"):
            return Reply.sse(lines + b"data: [DONE]\n\n", split=13)
        return Reply.json(answer)

    server.on(
        "POST",
        "/v1/chatqna",
        wire.error_reply(429, headers={"retry-after": "0.1"}),
        wire.error_reply(503),
        default=chatqna,
    )
    server.on("POST", "/v1/embeddings", default=Reply.json(wire.embeddings([[0.7, 0.8]])))
    report.note(f"loopback OPEA ChatQnA megaservice at {server.base_url}")
    backend = _backend(name, server.base_url)
    _chat_steps(report, backend, None)  # the default model is ChatQnA
    report.step("embeddings", lambda: backend.embed(input="A sample").embeddings)
    return backend


def _backend(name: str, base_url: str) -> Backend:
    return get_backend(name, base_url=base_url, api_key=KEY, initial_retry_delay=0.05)


SCENARIOS: dict[str, Callable[[str, DemoReport, ProtocolServer], Backend]] = {
    "llvm": _openai_server,
    "vllm": _openai_server,
    "ovms": _ovms,
    "opea": _opea,
}


def run(name: str, report: DemoReport) -> None:
    """Run backend ``name``'s scenario, reporting each step."""
    with ProtocolServer() as server:
        backend = SCENARIOS[name](name, report, server)
        with backend:
            _usage_step(report, backend, server)
