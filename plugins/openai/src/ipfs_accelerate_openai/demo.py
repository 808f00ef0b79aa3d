"""The OpenAI demo scenario: every call, sync and async, against a loopback OpenAI server,
with a rate limit (429 + retry-after) and an outage (503) injected on the way."""

from __future__ import annotations

import asyncio

from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.demo import DemoReport
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply

KEY = "sk-demo-not-a-real-key-0000"


def run(report: DemoReport) -> None:
    """Run the scenario, reporting each step."""
    with ProtocolServer() as server:
        stream_events = wire.chat_stream(["Streaming ", "works ", "too."])

        def chat_reply(request: RecordedRequest) -> Reply:
            if request.json().get("stream"):
                return Reply.sse(stream_events, split=5)  # chunks split mid-event on purpose
            return Reply.json(wire.chat_completion("Hello! I am a loopback OpenAI server."))

        server.on(
            "POST",
            "/v1/chat/completions",
            wire.error_reply(429, headers={"retry-after": "0.2"}),
            wire.error_reply(503),
            default=chat_reply,
        )
        server.on("POST", "/v1/embeddings", default=Reply.json(wire.embeddings([[0.1, 0.2, 0.3]])))
        server.on(
            "POST",
            "/v1/images/generations",
            default=Reply.json(wire.images(urls=["https://example.invalid/lake.png"])),
        )
        server.on("GET", "/v1/models", default=Reply.json(wire.models(["gpt-4o", "dall-e-3"])))
        report.note(f"loopback OpenAI-protocol server at {server.url('/v1')}")
        backend = get_backend(
            "openai", api_key=KEY, base_url=server.url("/v1"), initial_retry_delay=0.1
        )
        messages = [{"role": "user", "content": "Hello, how are you?"}]
        with backend:
            report.step(
                "chat (after a 429 and a 503)",
                lambda: backend.chat(messages=messages, model="gpt-4o", max_tokens=100)["text"],
            )

            def stream() -> str:
                chunks = list(backend.stream(messages=messages, model="gpt-4o"))
                return "".join(c.text for c in chunks) + f"  [done: {chunks[-1].finish_reason}]"

            report.step("stream", stream)
            report.step(
                "embeddings",
                lambda: backend.embed(input="A sample text", model="text-embedding-3-small")[
                    "embedding"
                ],
            )
            report.step(
                "images",
                lambda: backend.generate_image(prompt="A lakeside sunset", model="dall-e-3")[
                    "urls"
                ],
            )
            report.step("models", lambda: [m.id for m in backend.list_models()])

            async def async_calls() -> str:
                text = (await backend.achat(messages=messages, model="gpt-4o")).text
                pieces = [c.text async for c in backend.astream(messages=messages, model="gpt-4o")]
                return f"achat {text[:20]!r}..., astream {''.join(pieces)!r}"

            report.step("achat + astream", lambda: asyncio.run(async_calls()))

            def usage() -> str:
                stats = backend.get_usage_stats()
                return (
                    f"{stats['total_requests']} requests, {stats['total_tokens']} tokens, "
                    f"~${stats['estimated_cost_usd']:.6f}; circuit {backend.circuit_state}; "
                    f"server saw {len(server.requests)} requests"
                )

            report.step("usage and cost", usage)
