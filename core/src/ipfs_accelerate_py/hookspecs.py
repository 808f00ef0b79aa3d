"""The plugin contract: the hooks a provider plugin implements.

A plugin is a module (or object) with functions marked ``@hookimpl``, published under the
entry-point group ``ipfs_accelerate.backends`` with the backend's name as the entry name.
Every hook but ``register_backends`` receives ``backend`` (the backend's name) and returns
``None`` for backends it does not serve, so one plugin can serve several backends.

The request hooks do no I/O: they translate a core request into an
:class:`~ipfs_accelerate_py.calls.HttpCall`, and core runs that call, sync or async, through
the queue, breaker, key pool and retry loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .backend import Backend
    from .calls import HttpCall
    from .config import BackendSpec, Settings
    from .types import ChatRequest, EmbedRequest, GenerateRequest

hookspec = pluggy.HookspecMarker("ipfs_accelerate")
hookimpl = pluggy.HookimplMarker("ipfs_accelerate")


@hookspec
def register_backends(register: Callable[[BackendSpec], None]) -> None:
    """Declare the backends this plugin provides by calling ``register(spec)`` for each."""


@hookspec(firstresult=True)
def chat(backend: str, request: ChatRequest, settings: Settings) -> HttpCall | None:
    """Build the HTTP call for a chat completion. firstresult: the first non-None wins."""


@hookspec(firstresult=True)
def stream(backend: str, request: ChatRequest, settings: Settings) -> HttpCall | None:
    """Build the HTTP call for a streamed chat completion (``HttpCall.stream`` set).
    firstresult."""


@hookspec(firstresult=True)
def embed(backend: str, request: EmbedRequest, settings: Settings) -> HttpCall | None:
    """Build the HTTP call that embeds ``request.inputs``, one vector each. firstresult."""


@hookspec(firstresult=True)
def generate(backend: str, request: GenerateRequest, settings: Settings) -> HttpCall | None:
    """Build the HTTP call that generates text or images (``request.kind``) from a prompt.
    firstresult."""


@hookspec(firstresult=True)
def list_models(backend: str, settings: Settings) -> HttpCall | None:
    """Build the HTTP call that lists the backend's models as ModelInfo. firstresult."""


@hookspec(firstresult=True)
def create_handler(
    backend: str, client: Backend, kind: str, model: str | None, options: dict[str, Any]
) -> Callable[..., Any] | None:
    """Return an endpoint handler: an async callable taking a prompt (or messages) and
    returning a plain dict with ``"text"``. Core's default covers ``chat`` and ``embed``;
    a plugin overrides it for special kinds. firstresult."""
