"""The ``together`` backend: Together AI's OpenAI-compatible API.

Chat, streaming and embeddings are OpenAI's wire format, so the hooks return core's
:mod:`ipfs_accelerate_py.openai_compat` calls unchanged. ``GET /models`` differs: Together
answers a bare JSON array whose entries carry ``type`` (chat, language, embedding, image...)
and ``context_length``; :func:`parse_models` reads that shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ipfs_accelerate_py import openai_compat
from ipfs_accelerate_py.calls import HttpCall
from ipfs_accelerate_py.config import BackendSpec
from ipfs_accelerate_py.demo import DemoReport
from ipfs_accelerate_py.errors import MalformedResponseError
from ipfs_accelerate_py.hookspecs import hookimpl
from ipfs_accelerate_py.types import ChatRequest, EmbedRequest, ModelInfo

NAME = "together"

SPEC = BackendSpec(
    name=NAME,
    display_name="Together AI",
    package="ipfs-accelerate-together",
    default_base_url="https://api.together.xyz/v1",
    api_key_env=("TOGETHER_API_KEY",),
    base_url_env=("TOGETHER_BASE_URL",),
    model_env=("TOGETHER_MODEL",),
    default_model="meta-llama/Llama-3.3-70B-Instruct-Turbo",
    capabilities=frozenset({"chat", "stream", "embed", "list_models"}),
    seed_class="ipfs_accelerate_together.guide:together",
)


@hookimpl
def register_backends(register: Callable[[BackendSpec], None]) -> None:
    """Declare the ``together`` backend."""
    register(SPEC)


@hookimpl
def chat(request: ChatRequest) -> HttpCall:
    """``POST /chat/completions``."""
    return openai_compat.chat_call(request, NAME)


@hookimpl
def stream(request: ChatRequest) -> HttpCall:
    """``POST /chat/completions`` with ``stream: true`` (SSE ending in ``[DONE]``)."""
    return openai_compat.stream_call(request, NAME)


@hookimpl
def embed(request: EmbedRequest) -> HttpCall:
    """``POST /embeddings``."""
    return openai_compat.embed_call(request, NAME)


def parse_models(body: Any) -> list[ModelInfo]:
    """Together's ``/models`` reply (a bare array) → ModelInfo, with ``category`` from
    ``type`` ("language" counts as chat) and ``context_window`` from ``context_length``."""
    if isinstance(body, Mapping) and isinstance(body.get("data"), list):
        body = body["data"]  # an OpenAI-style envelope, should Together ever send one
    if not isinstance(body, list):
        raise MalformedResponseError("the models reply is not a list", provider=NAME)
    out = []
    for item in body:
        if not isinstance(item, Mapping) or not item.get("id"):
            raise MalformedResponseError("a model entry has no id", provider=NAME)
        kind = item.get("type")
        out.append(
            ModelInfo(
                id=str(item["id"]),
                owned_by=item.get("organization") or item.get("owned_by"),
                created=item.get("created"),
                context_window=item.get("context_length"),
                description=item.get("display_name"),
                category="chat" if kind == "language" else kind,
                raw=item,
            )
        )
    return out


@hookimpl
def list_models() -> HttpCall:
    """``GET /models``."""
    return HttpCall("GET", "/models", parse=parse_models, usage_of=lambda _: None)


@hookimpl
def demo(report: DemoReport) -> None:
    """Chat, stream, embed and list models against a loopback Together server."""
    from . import demo as scenario

    scenario.run(report)
