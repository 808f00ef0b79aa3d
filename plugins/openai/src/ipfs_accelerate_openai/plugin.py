"""OpenAI: chat completions (+SSE), embeddings, images, legacy completions and models.

All of the wire format is shared with the other OpenAI-compatible backends and lives in
:mod:`ipfs_accelerate_py.openai_compat`; this module only declares the backend and routes
each hook there.
"""

from __future__ import annotations

from collections.abc import Callable

from ipfs_accelerate_py import openai_compat
from ipfs_accelerate_py.calls import HttpCall
from ipfs_accelerate_py.config import BackendSpec, Settings
from ipfs_accelerate_py.hookspecs import hookimpl
from ipfs_accelerate_py.types import ChatRequest, EmbedRequest, GenerateRequest

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
def chat(backend: str, request: ChatRequest, settings: Settings) -> HttpCall | None:
    """``POST /chat/completions``."""
    if backend != NAME:
        return None
    return openai_compat.chat_call(request, NAME)


@hookimpl
def stream(backend: str, request: ChatRequest, settings: Settings) -> HttpCall | None:
    """``POST /chat/completions`` with ``stream: true`` and usage in the last chunk."""
    if backend != NAME:
        return None
    return openai_compat.stream_call(request, NAME)


@hookimpl
def embed(backend: str, request: EmbedRequest, settings: Settings) -> HttpCall | None:
    """``POST /embeddings``."""
    if backend != NAME:
        return None
    return openai_compat.embed_call(request, NAME)


@hookimpl
def generate(backend: str, request: GenerateRequest, settings: Settings) -> HttpCall | None:
    """``POST /images/generations`` for images, ``POST /completions`` for text."""
    if backend != NAME:
        return None
    if request.kind == "image":
        return openai_compat.image_call(request, NAME)
    return openai_compat.completion_call(request, NAME)


@hookimpl
def list_models(backend: str, settings: Settings) -> HttpCall | None:
    """``GET /models``."""
    if backend != NAME:
        return None
    return openai_compat.models_call(NAME)
