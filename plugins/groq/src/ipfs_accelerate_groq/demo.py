"""The Groq demo scenario: chat, JSON mode, stream (usage from ``x_groq``), the model
catalogue and the async calls against a loopback Groq server, with a rate limit (429 with
``retry-after`` and ``x-ratelimit-*``) and an outage (503) injected on the way."""

from __future__ import annotations

import asyncio

from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.demo import DemoReport
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply

from . import catalog, wire

KEY = "gsk_demo_not_a_real_key_0000"


def _chat(request: RecordedRequest) -> Reply:
    body = request.json()
    if body.get("stream"):
        pieces = ["Streaming ", "works ", "too."]
        return Reply.sse(wire.stream_events(pieces, model=body["model"]), split=5)
    if body.get("response_format") == {"type": "json_object"}:
        return wire.reply('{"planets": 8}', model=body["model"])
    return wire.reply("Hello! I am a loopback Groq server.", model=body["model"])


def run(report: DemoReport) -> None:
    """Run the scenario, reporting each step."""
    with ProtocolServer() as server:
        server.on(
            "POST",
            wire.CHAT,
            wire.rate_limited("0.2", "200ms"),
            wire.error_reply(503),
            default=_chat,
        )
        server.on("GET", wire.MODELS, default=Reply.json(wire.LISTING))
        report.note(f"loopback Groq server at {server.url('/openai/v1')}")
        backend = get_backend(
            "groq", api_key=KEY, base_url=server.base_url, initial_retry_delay=0.1
        )
        messages = [{"role": "user", "content": "Hello, how are you?"}]
        model = "llama-3.1-8b-instant"
        with backend:
            report.step(
                "chat (after a 429 and a 503)",
                lambda: backend.chat(messages=messages, model=model, max_tokens=100)["text"],
            )
            report.step(
                "JSON mode",
                lambda: (
                    backend.chat(
                        messages=messages, model=model, response_format={"type": "json_object"}
                    ).text
                ),
            )

            def stream() -> str:
                chunks = list(backend.stream(messages=messages, model=model))
                usage = chunks[-1].usage
                timing = usage.extra.get("total_time") if usage else None
                text = "".join(c.text for c in chunks)
                return f"{text}  [x_groq usage: {usage and usage.total_tokens} tokens, {timing}s]"

            report.step("stream", stream)

            def models() -> str:
                listed = backend.list_models()
                cats = {c: len(catalog.select(listed, c)) for c in catalog.CATEGORIES}
                return f"{len(listed)} models; by category {cats}"

            report.step("models (live + catalogue)", models)

            async def async_calls() -> str:
                text = (await backend.achat(messages=messages, model=model)).text
                pieces = [c.text async for c in backend.astream(messages=messages, model=model)]
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
