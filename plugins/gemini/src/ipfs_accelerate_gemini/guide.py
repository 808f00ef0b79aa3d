"""The quickstart guide's ``gemini`` class: ``chat``, ``stream_chat``, ``process_image``.

>>> from ipfs_accelerate_py.api_backends import gemini
>>> client = gemini(metadata={"google_api_key": "..."})               # doctest: +SKIP
>>> client.chat([{"role": "user", "content": "Hi"}], model="gemini-2.5-flash")["text"]
"""

from __future__ import annotations

from typing import Any

from ipfs_accelerate_py.api_backends.base import GuideClient
from ipfs_accelerate_py.stream import Stream
from ipfs_accelerate_py.types import ChatResponse

__all__ = ["gemini"]


class gemini(GuideClient):
    """Gemini with the guide's method names; the model defaults to ``GEMINI_MODEL`` or
    ``gemini-2.5-flash``, and the resilience settings are the backend's."""

    backend_name = "gemini"

    def chat(self, messages: Any, model: str | None = None, **params: Any) -> ChatResponse:
        """``chat(messages, model=None, temperature=..., ...)``: ``["text"]`` is the answer."""
        return self.backend.chat(messages=messages, model=model, **params)

    def stream_chat(self, messages: Any, model: str | None = None, **params: Any) -> Stream:
        """Chunks with ``["text"]`` and ``["done"]``; the last one has ``done`` True."""
        return self.backend.stream(messages=messages, model=model, **params)

    def process_image(
        self, image_data: bytes, prompt: str, model: str | None = None, **params: Any
    ) -> ChatResponse:
        """``process_image(image_data, prompt, model)``: the image bytes (PNG, JPEG, WebP or
        GIF) and the prompt in one user turn; ``["text"]`` is the answer."""
        content = [{"type": "image", "data": image_data}, {"type": "text", "text": prompt}]
        return self.backend.chat(
            messages=[{"role": "user", "content": content}], model=model, **params
        )

    def create_gemini_endpoint_handler(self, model: str | None = None) -> Any:
        """An async handler: ``await handler(prompt)`` returns ``{"text": ...}``."""
        return self.backend.create_handler("chat", model)
