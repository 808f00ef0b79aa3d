"""The quickstart guide's ``claude`` class: ``chat``, ``stream_chat`` and the endpoint handler.

>>> from ipfs_accelerate_py.api_backends import claude
>>> claude_api = claude(metadata={"anthropic_api_key": "sk-ant-..."})  # doctest: +SKIP
>>> claude_api.chat([{"role": "user", "content": "Hello"}])["text"]  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from ipfs_accelerate_py.api_backends.base import GuideClient
from ipfs_accelerate_py.stream import Stream
from ipfs_accelerate_py.types import ChatResponse

__all__ = ["claude"]


class claude(GuideClient):
    """Claude with the guide's method names; the resilience settings are the backend's."""

    backend_name = "claude"

    def chat(
        self, messages: Any, model: str | None = None, system: str | None = None, **params: Any
    ) -> ChatResponse:
        """``chat(messages)``: ``["text"]`` is the reply; ``model=``, ``system=``,
        ``max_tokens=``, ``temperature=``, ``tools=``... are optional."""
        return self.backend.chat(messages=messages, model=model, system=system, **params)

    def stream_chat(
        self, messages: Any, model: str | None = None, system: str | None = None, **params: Any
    ) -> Stream:
        """Chunks with ``["text"]`` and ``["done"]``, as :meth:`chat` takes its arguments."""
        return self.backend.stream(messages=messages, model=model, system=system, **params)

    def create_claude_endpoint_handler(self, model: str | None = None) -> Any:
        """An async handler: ``await handler(prompt)`` returns ``{"text": ...}``."""
        return self.backend.create_handler("chat", model)
