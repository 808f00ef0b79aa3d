"""The quickstart guide's ``groq`` class: ``chat``, ``stream_chat``, ``list_models``...

>>> from ipfs_accelerate_py.api_backends import groq
>>> groq_api = groq(resources={}, metadata={"groq_api_key": "gsk_..."})   # doctest: +SKIP
>>> groq_api.chat("llama-3.1-8b-instant", [{"role": "user", "content": "Hi"}])["text"]

``top_k``: the guide passes ``top_k=40``, but Groq has no top-k sampling and answers a
request carrying it with a 400. This class therefore does not send it and warns
(:class:`GroqParameterWarning`) instead of failing the guide's call; the core API
(``backend.chat(top_k=...)``) refuses it with InvalidArgumentError.
"""

from __future__ import annotations

import warnings
from typing import Any

from ipfs_accelerate_py.api_backends.base import GuideClient
from ipfs_accelerate_py.types import ChatResponse, ModelInfo

from . import catalog

__all__ = ["GroqParameterWarning", "groq"]


class GroqParameterWarning(UserWarning):
    """A guide argument Groq has no equivalent for was not sent (``top_k``)."""


def _sampling(top_k: int | None, **given: Any) -> dict[str, Any]:
    if top_k is not None:
        warnings.warn(
            f"top_k={top_k!r} was not sent: Groq has no top-k sampling (it rejects the "
            "parameter with a 400); use top_p or temperature",
            GroqParameterWarning,
            stacklevel=3,
        )
    return {k: v for k, v in given.items() if v is not None}


class groq(GuideClient):
    """Groq with the guide's method names; the resilience settings are the backend's."""

    backend_name = "groq"

    def chat(
        self,
        model_name: str | None = None,
        messages: Any = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        frequency_penalty: float | None = None,
        presence_penalty: float | None = None,
        response_format: dict[str, Any] | None = None,
        **kw: Any,
    ) -> ChatResponse:
        """``chat(model_name, messages, temperature=, max_tokens=, ...)``: ``["text"]``,
        ``.get("usage")``; ``tools=``, ``stop=``, ``seed=``... pass through as keywords."""
        params = _sampling(
            top_k,
            temperature=temperature,
            max_tokens=max_tokens,
            top_p=top_p,
            frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty,
            response_format=response_format,
        )
        return self.backend.chat(messages=messages, model=model_name, **params, **kw)

    def stream_chat(
        self,
        model_name: str | None = None,
        messages: Any = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        frequency_penalty: float | None = None,
        presence_penalty: float | None = None,
        response_format: dict[str, Any] | None = None,
        **kw: Any,
    ) -> Any:
        """Chunks with ``["text"]`` and ``["done"]``; the last one carries the usage."""
        params = _sampling(
            top_k,
            temperature=temperature,
            max_tokens=max_tokens,
            top_p=top_p,
            frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty,
            response_format=response_format,
        )
        return self.backend.stream(messages=messages, model=model_name, **params, **kw)

    def list_models(self, category: str | None = None) -> list[ModelInfo]:
        """Groq's models (``["id"]``, ``["description"]``, ``["context_window"]``,
        ``["category"]``), only those of ``category`` (chat, vision, audio) if given."""
        return catalog.list_models(self.backend, category)

    def is_compatible_model(self, model_name: str, category: str = "chat") -> bool:
        """Whether the model serves ``category``, by the catalogue and the last listing."""
        return catalog.is_compatible(model_name, category, self.backend.settings.base_url)

    def create_groq_endpoint_handler(self, model_name: str | None = None) -> Any:
        """An async handler: ``await handler(prompt)`` returns ``{"text": ...}``."""
        return self.backend.create_handler("chat", model_name)
