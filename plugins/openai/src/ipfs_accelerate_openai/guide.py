"""The quickstart guide's ``openai_api`` class: ``chat``, ``embedding``, ``text_to_image``.

>>> from ipfs_accelerate_py.api_backends import openai_api
>>> client = openai_api(metadata={"openai_api_key": "sk-..."})   # doctest: +SKIP
>>> client.chat("gpt-4o", [{"role": "user", "content": "Hi"}], system="Be brief")["text"]
"""

from __future__ import annotations

from typing import Any

from ipfs_accelerate_py.api_backends.base import ModelFirstClient
from ipfs_accelerate_py.types import EmbeddingResponse, ImageResponse

__all__ = ["openai_api"]


class openai_api(ModelFirstClient):
    """OpenAI with the guide's method names; the resilience settings are the backend's."""

    backend_name = "openai"

    def embedding(
        self, model: str | None, text: Any, encoding_format: str | None = None, **params: Any
    ) -> EmbeddingResponse[Any]:
        """``embedding(model, text, encoding_format)``: ``["embedding"]`` is the vector (a
        list of floats; a numpy row with ``output="numpy"``). ``encoding_format`` left out
        lets the backend pick the wire format (base64); the vectors are floats either way."""
        return self.backend.embed(
            input=text, model=model, encoding_format=encoding_format, **params
        )

    def text_to_image(
        self, model: str | None, size: str, n: int, prompt: str, **params: Any
    ) -> ImageResponse:
        """``text_to_image(model, size, n, prompt)``: ``["urls"]`` lists the images."""
        return self.backend.generate_image(prompt=prompt, model=model, size=size, n=n, **params)
