"""The quickstart guide's ``ollama`` class: ``list_models``, ``chat``, ``stream_chat``...

>>> from ipfs_accelerate_py.api_backends import ollama
>>> client = ollama(metadata={"ollama_api_url": "http://localhost:11434/api"})  # doctest: +SKIP
>>> client.chat("llama3", [{"role": "user", "content": "Hi"}])["text"]           # doctest: +SKIP

Errors carry Ollama's advice (``ollama pull <model>``, ``ollama serve``): the plugin's
``refine_error`` hook adds it on every call path (:mod:`.hints`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ipfs_accelerate_py.api_backends.base import ModelFirstClient
from ipfs_accelerate_py.backend import PIPELINE_OPTIONS
from ipfs_accelerate_py.stream import Stream
from ipfs_accelerate_py.types import (
    EmbeddingResponse,
    GenerateResponse,
    ModelInfo,
)

from . import embeddings
from .plugin import generate_stream_call, show_call

__all__ = ["ollama"]


class ollama(ModelFirstClient):
    """Ollama with the guide's method names; the resilience settings are the backend's."""

    backend_name = "ollama"

    def list_models(self, **options: Any) -> list[ModelInfo]:
        """The models pulled on the server (``/api/tags``): a list, ``m["id"]`` each."""
        return self.backend.list_models(**options)

    def generate(self, model: str | None, prompt: str, **params: Any) -> GenerateResponse:
        """``generate(model, prompt)`` over ``/api/generate``: ``["text"]`` is the reply."""
        return self.backend.generate(prompt=prompt, model=model, **params)  # type: ignore[return-value]

    def stream_generate(self, model: str | None, prompt: str, **params: Any) -> Stream:
        """``/api/generate`` streamed: chunks with ``"text"`` and ``"done"``."""
        name = self.backend.resolve_model(model)
        options = {k: params.pop(k) for k in list(params) if k in PIPELINE_OPTIONS}
        return self.backend.request_stream(generate_stream_call(name, prompt, params), **options)

    def embed(self, model: str | None, input: Any, **params: Any) -> EmbeddingResponse[Any]:
        """``embed(model, input)``: ``["embedding"]`` / ``["embeddings"]``; falls back to
        the legacy ``/api/embeddings`` on an older Ollama."""
        return embeddings.embed(self.backend, input, model, **params)

    def show(self, model: str | None = None, verbose: bool = False) -> dict[str, Any]:
        """``/api/show``: the model's details, parameters, template and capabilities."""
        name = self.backend.resolve_model(model)
        return self.backend.request(show_call(name, verbose))  # type: ignore[no-any-return]

    def create_ollama_endpoint_handler(
        self, model: str | None = None
    ) -> Callable[..., Awaitable[dict[str, Any]]]:
        """An async handler: ``await handler(prompt, model=None, **params)`` returns
        ``{"text": ...}``; ``prompt`` is a string or a message list."""
        backend = self.backend
        default = model

        async def handler(prompt: Any, model: str | None = None, **params: Any) -> dict[str, Any]:
            messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
            result = await backend.achat(messages=messages, model=model or default, **params)
            return result.to_dict()

        return handler
