"""The ``ipfs-accelerate`` command.

``ipfs-accelerate backends``   list installed backends
``ipfs-accelerate demo``       run every OpenAI call, sync and async, against a loopback
                               OpenAI-protocol server, with a rate limit and an outage on the way
``ipfs-accelerate chat -b openai -m gpt-4o-mini "Hello"``   a real call with your configuration
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from .errors import BackendError


def _backends(_: argparse.Namespace) -> int:
    from .core import list_backends
    from .plugins import KNOWN_PACKAGES

    installed = list_backends()
    for name in sorted(set(KNOWN_PACKAGES) | set(installed)):
        state = "installed" if name in installed else f"pip install {KNOWN_PACKAGES[name]}"
        print(f"{name:10} {state}")
    return 0


def _chat(args: argparse.Namespace) -> int:
    from .core import get_backend

    with get_backend(args.backend) as backend:
        messages = [{"role": "user", "content": args.prompt}]
        if args.stream:
            for chunk in backend.stream(messages=messages, model=args.model):
                print(chunk.text, end="", flush=True)
            print()
        else:
            print(backend.chat(messages=messages, model=args.model).text)
    return 0


def _demo(_: argparse.Namespace) -> int:
    from .core import get_backend
    from .testing import openai_wire as wire
    from .testing.server import ProtocolServer, RecordedRequest, Reply

    logging.basicConfig(level=logging.WARNING, format="  log: %(message)s")
    for name in ("NO_PROXY", "no_proxy"):  # the demo's server is on loopback: never proxy it
        os.environ[name] = ",".join(filter(None, [os.environ.get(name), "127.0.0.1", "localhost"]))

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
        print(f"loopback OpenAI-protocol server at {server.url('/v1')}")

        backend = get_backend(
            "openai",
            api_key="sk-demo-not-a-real-key-0000",
            base_url=server.url("/v1"),
            initial_retry_delay=0.1,
        )
        messages = [{"role": "user", "content": "Hello, how are you?"}]
        reply = backend.chat(messages=messages, model="gpt-4o", temperature=0.7, max_tokens=100)
        print(f"chat (after a 429 and a 503, retried): {reply['text']}")

        print("stream: ", end="")
        for chunk in backend.stream(messages=messages, model="gpt-4o"):
            print(chunk.text if not chunk.done else f"  [done: {chunk.finish_reason}]", end="")
        print()
        embedding = backend.embed(input="This is a sample text", model="text-embedding-3-small")
        print(f"embedding: {embedding['embedding']}")
        image = backend.generate_image(
            prompt="A lakeside sunset", model="dall-e-3", size="1024x1024"
        )
        print(f"image urls: {image['urls']}")
        print(f"models: {[m.id for m in backend.list_models()]}")

        async def async_calls() -> None:
            text = (await backend.achat(messages=messages, model="gpt-4o")).text
            pieces = [c.text async for c in backend.astream(messages=messages, model="gpt-4o")]
            print(f"async stream: {''.join(pieces)!r} (achat: {len(text)} chars)")

        asyncio.run(async_calls())
        stats = backend.get_usage_stats()
        print(
            f"usage: {stats['total_requests']} requests, {stats['total_tokens']} tokens, "
            f"~${stats['estimated_cost_usd']:.6f}; circuit {backend.circuit_state}; "
            f"server saw {len(server.requests)} requests"
        )
        backend.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ipfs-accelerate`` command."""
    parser = argparse.ArgumentParser(prog="ipfs-accelerate", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("backends", help="list backends and how to install them").set_defaults(
        run=_backends
    )
    sub.add_parser(
        "demo", help="exercise the openai backend against a loopback server"
    ).set_defaults(run=_demo)
    chat = sub.add_parser("chat", help="send one prompt with your configuration")
    chat.add_argument("prompt")
    chat.add_argument("-b", "--backend", default="openai")
    chat.add_argument("-m", "--model", default=None)
    chat.add_argument("--stream", action="store_true")
    chat.set_defaults(run=_chat)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except BackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
