"""The Claude demo scenario: chat, the named-event stream, the paged model list and the
async calls against a loopback Messages API server, with a rate limit (429 with
``retry-after``) and an overload (529) injected on the way."""

from __future__ import annotations

import asyncio

from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.demo import DemoReport
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply

from . import testing_wire as wire

KEY = "sk-ant-demo-not-a-real-key-0000"


def _messages(request: RecordedRequest) -> Reply:
    if request.json().get("stream"):
        return Reply.sse(wire.stream_events(["Streaming ", "works ", "too."]), split=7)
    return Reply.json(wire.message("Hello! I am a loopback Claude server."))


def run(report: DemoReport) -> None:
    """Run the scenario, reporting each step."""
    with ProtocolServer() as server:
        server.on(
            "POST",
            "/v1/messages",
            wire.error_reply(429, headers={"retry-after": "0.1"}),
            wire.error_reply(529),
            default=_messages,
        )
        server.on(
            "GET",
            "/v1/models",
            Reply.json(wire.models_page(["claude-opus-4-1", "claude-sonnet-4-5"], True)),
            Reply.json(wire.models_page(["claude-haiku-4-5"], False)),
        )
        report.note(f"loopback Messages API server at {server.base_url}")
        backend = get_backend(
            "claude", api_key=KEY, base_url=server.base_url, initial_retry_delay=0.1
        )
        messages = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello, how are you?"},
        ]
        with backend:
            report.step(
                "chat (after a 429 and a 529)",
                lambda: backend.chat(messages=messages, max_tokens=100)["text"],
            )

            def stream() -> str:
                chunks = list(backend.stream(messages=messages))
                usage = chunks[-1].usage
                text = "".join(c.text for c in chunks)
                return f"{text}  [usage merged across events: {usage and usage.to_dict()}]"

            report.step("stream (named events)", stream)
            report.step("models (two pages)", lambda: [m.id for m in backend.list_models()])

            async def async_calls() -> str:
                text = (await backend.achat(messages=messages)).text
                pieces = [c.text async for c in backend.astream(messages=messages)]
                return f"achat {text[:20]!r}..., astream {''.join(pieces)!r}"

            report.step("achat + astream", lambda: asyncio.run(async_calls()))

            def usage() -> str:
                stats = backend.get_usage_stats()
                return (
                    f"{stats['total_requests']} requests, {stats['total_tokens']} tokens, "
                    f"~${stats['estimated_cost_usd']:.6f}; circuit {backend.circuit_state}"
                )

            report.step("usage and cost", usage)
