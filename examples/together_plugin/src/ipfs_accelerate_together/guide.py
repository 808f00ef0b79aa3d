"""A quickstart-guide-style class for Together, for code written in the guide's style:
``from ipfs_accelerate_py.api_backends import guide_class; together = guide_class("together")``.
"""

from __future__ import annotations

from typing import Any

from ipfs_accelerate_py.api_backends import GuideClient

__all__ = ["together"]


class together(GuideClient):
    """``chat(model, messages)`` and ``create_together_endpoint_handler()``, as the guide's
    classes; resilience settings (``client.max_retries = 3``) are the backend's."""

    backend_name = "together"

    def chat(self, model: str | None = None, messages: Any = None, **params: Any) -> Any:
        """``chat(model, messages, temperature=...)``: ``["text"]`` is the reply."""
        return self.backend.chat(messages=messages, model=model, **params)

    def stream_chat(self, model: str | None = None, messages: Any = None, **params: Any) -> Any:
        """Chunks with ``["text"]`` and ``["done"]``."""
        return self.backend.stream(messages=messages, model=model, **params)

    def create_together_endpoint_handler(self, model: str | None = None) -> Any:
        """An async handler: ``await handler(prompt)`` returns ``{"text": ...}``."""
        return self.backend.create_handler("chat", model)
