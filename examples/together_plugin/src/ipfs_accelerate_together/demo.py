"""The Together demo scenario: a loopback server speaking Together's API, a 429 on the way."""

from __future__ import annotations

from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.demo import DemoReport
from ipfs_accelerate_py.testing import openai_wire
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply

from .testing_wire import MODEL, models_listing


def run(report: DemoReport) -> None:
    """Run the scenario, reporting each step."""
    with ProtocolServer() as server:

        def chat(request: RecordedRequest) -> Reply:
            if request.json().get("stream"):
                return Reply.sse(openai_wire.chat_stream(["Together ", "streams."], model=MODEL))
            return openai_wire.chat_reply("Hello from a loopback Together server.", model=MODEL)

        rate_limited = openai_wire.error_reply(429, headers={"retry-after": "0.1"})
        server.on("POST", "/v1/chat/completions", rate_limited, default=chat)
        server.on("POST", "/v1/embeddings", default=Reply.json(openai_wire.embeddings([[0.5]])))
        server.on("GET", "/v1/models", default=Reply.json(models_listing()))
        report.note(f"loopback Together server at {server.url('/v1')}")
        backend = get_backend("together", api_key="demo-key-000000", base_url=server.url("/v1"))
        hi = [{"role": "user", "content": "Hi"}]
        with backend:
            report.step("chat (after a 429)", lambda: backend.chat(messages=hi).text)
            report.step("stream", lambda: "".join(c.text for c in backend.stream(messages=hi)))
            report.step(
                "embed", lambda: backend.embed(input="x", model="BAAI/bge-base-en-v1.5").embedding
            )
            report.step("list models", lambda: [m.id for m in backend.list_models()])
