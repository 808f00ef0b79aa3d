"""OpenAI: chat completions (+SSE), embeddings, images, legacy completions and models.

All of the wire format is shared with the other OpenAI-compatible backends and lives in
:mod:`ipfs_accelerate_py.openai_compat`; this module only declares the backend and routes
each hook there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ipfs_accelerate_py import openai_compat
from ipfs_accelerate_py.calls import HttpCall
from ipfs_accelerate_py.config import BackendSpec
from ipfs_accelerate_py.hookspecs import hookimpl
from ipfs_accelerate_py.types import ChatRequest, EmbedRequest, GenerateRequest

if TYPE_CHECKING:
    from ipfs_accelerate_py.demo import DemoReport

NAME = "openai"

SPEC = BackendSpec(
    name=NAME,
    display_name="OpenAI",
    package="ipfs-accelerate-openai",
    default_base_url="https://api.openai.com/v1",
    api_key_env=("OPENAI_API_KEY",),
    base_url_env=("OPENAI_BASE_URL",),
    model_env=("OPENAI_MODEL",),
    request_id_header="X-Client-Request-Id",
    seed_class="ipfs_accelerate_openai.guide:openai_api",
)


@hookimpl
def register_backends(register: Callable[[BackendSpec], None]) -> None:
    """Declare the ``openai`` backend."""
    register(SPEC)


@hookimpl
def chat(request: ChatRequest) -> HttpCall:
    """``POST /chat/completions``."""
    return openai_compat.chat_call(request, NAME)


@hookimpl
def stream(request: ChatRequest) -> HttpCall:
    """``POST /chat/completions`` with ``stream: true`` and usage in the last chunk."""
    return openai_compat.stream_call(request, NAME)


@hookimpl
def embed(request: EmbedRequest) -> HttpCall:
    """``POST /embeddings``; base64 on the wire unless the caller named a format (as the
    official SDK does), decoded to the same float32 values."""
    return openai_compat.embed_call(request, NAME, wire_format="base64")


@hookimpl
def generate(request: GenerateRequest) -> HttpCall:
    """``POST /images/generations`` for images, ``POST /completions`` for text."""
    if request.kind == "image":
        return openai_compat.image_call(request, NAME)
    return openai_compat.completion_call(request, NAME)


@hookimpl
def list_models() -> HttpCall:
    """``GET /models``."""
    return openai_compat.models_call(NAME)


@hookimpl
def demo(report: DemoReport) -> None:
    """Every call against a loopback OpenAI server, with a 429 and a 503 on the way."""
    from . import demo as scenario

    scenario.run(report)
