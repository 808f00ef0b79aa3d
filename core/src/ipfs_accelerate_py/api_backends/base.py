"""The base of the quickstart guide's classes: guide-style names over a core backend.

A guide class holds one :class:`~ipfs_accelerate_py.backend.Backend` (``self.backend``) and
adds only what the guide's code needs: its constructor ``(resources=None, metadata=None)``,
its method names and argument order, and its result dicts. Everything else — the resilience
settings (``client.max_retries = 5``), ``create_endpoint``, ``add_api_key``,
``get_usage_stats``, ``circuit_state`` and the core calls (``chat(messages=...)``,
``stream``, ``embed``...) — is the backend's own, reached through this object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ..endpoint import POLICY_NAMES

if TYPE_CHECKING:
    from ..backend import Backend
    from ..stream import AsyncStream, Stream
    from ..types import ChatResponse

__all__ = ["GuideClient", "ModelFirstClient"]

# names settable on the guide object that belong to the backend's default endpoint
_FORWARDED_SETTINGS = POLICY_NAMES | {"key_selection_strategy", "single_flight"}


class GuideClient:
    """A quickstart-guide class bound to one backend. Subclasses set ``backend_name``."""

    backend_name: ClassVar[str] = ""

    def __init__(
        self,
        resources: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        backend: Backend | None = None,
    ) -> None:
        """``backend=`` binds an existing core backend (one built with a test clock, say)
        instead of building one from ``metadata`` and the environment."""
        from ..core import get_backend

        object.__setattr__(self, "resources", dict(resources or {}))
        object.__setattr__(self, "metadata", dict(metadata or {}))
        if backend is None:
            backend = get_backend(self.backend_name, metadata=self.metadata)
        object.__setattr__(self, "backend", backend)

    resources: dict[str, Any]
    metadata: dict[str, Any]
    backend: Backend

    def __getattr__(self, name: str) -> Any:
        # only reached for names this class does not define: the backend's own
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.backend, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FORWARDED_SETTINGS:
            setattr(self.backend, name, value)
        else:
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.backend!r}>"

    def close(self) -> None:
        """Close the backend's connections."""
        self.backend.close()

    def __enter__(self) -> GuideClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def messages(
        messages: Any = None, prompt: str | None = None, system: str | None = None
    ) -> list[Any]:
        """The guide's ``(messages, prompt, system)`` arguments as one message list."""
        out: list[Any] = list(messages or [])
        if prompt:
            out.append({"role": "user", "content": prompt})
        if system and not any(_role(m) == "system" for m in out):
            out.insert(0, {"role": "system", "content": system})
        return out


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, Mapping) else getattr(message, "role", None)


class ModelFirstClient(GuideClient):
    """A guide class whose chat calls take the model first, as the guide writes them for
    OpenAI, Ollama, TGI and self-hosted servers: ``chat(model, messages, prompt=None,
    system=None, **params)``. ``prompt`` adds a user message, ``system`` a system message
    (unless the messages have one); other keywords are the backend's (generation parameters,
    pipeline options such as ``priority=`` or ``endpoint_id=``)."""

    def chat(
        self,
        model: str | None = None,
        messages: Any = None,
        prompt: str | None = None,
        system: str | None = None,
        **params: Any,
    ) -> ChatResponse:
        """A chat completion: ``["text"]`` is the reply."""
        return self.backend.chat(
            messages=self.messages(messages, prompt, system), model=model, **params
        )

    async def achat(
        self,
        model: str | None = None,
        messages: Any = None,
        prompt: str | None = None,
        system: str | None = None,
        **params: Any,
    ) -> ChatResponse:
        """Async :meth:`chat`."""
        return await self.backend.achat(
            messages=self.messages(messages, prompt, system), model=model, **params
        )

    def stream_chat(
        self,
        model: str | None = None,
        messages: Any = None,
        prompt: str | None = None,
        system: str | None = None,
        **params: Any,
    ) -> Stream:
        """Chunks with ``["text"]`` and ``["done"]``, as :meth:`chat` takes its arguments."""
        return self.backend.stream(
            messages=self.messages(messages, prompt, system), model=model, **params
        )

    def astream_chat(
        self,
        model: str | None = None,
        messages: Any = None,
        prompt: str | None = None,
        system: str | None = None,
        **params: Any,
    ) -> AsyncStream:
        """Async :meth:`stream_chat`: ``async for chunk in client.astream_chat(...)``."""
        return self.backend.astream(
            messages=self.messages(messages, prompt, system), model=model, **params
        )

    def create_chat_endpoint_handler(self, model: str | None = None) -> Any:
        """An async handler: ``await handler(prompt)`` returns ``{"text": ...}``."""
        return self.backend.create_handler("chat", model)
