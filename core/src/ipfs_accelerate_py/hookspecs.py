"""The plugin contract: the hooks a provider plugin implements.

A plugin is a module (or object) with functions marked ``@hookimpl``, published under the
entry-point group ``ipfs_accelerate.backends`` with the backend's name as the entry name.
``register_backends`` declares the plugin's backends; core then calls a backend's hooks only
on the plugin that registered it, so a hook needs no check of ``backend`` unless one plugin
serves several backends and treats them differently. A hookimpl may take any subset of a
hook's arguments.

The request hooks do no I/O: they translate a core request into a call — an
:class:`~ipfs_accelerate_py.calls.HttpCall` (an HTTP exchange described as data) or a
:class:`~ipfs_accelerate_py.calls.CallableCall` (Python code, for SDK-only providers) — and
core runs it, sync or async, through the queue, breaker, key pool and retry loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import httpx

    from .backend import Backend
    from .calls import Call, Credential
    from .config import BackendSpec, Settings
    from .demo import DemoReport
    from .errors import BackendError
    from .types import ChatRequest, EmbedRequest, GenerateRequest

hookspec = pluggy.HookspecMarker("ipfs_accelerate")
hookimpl = pluggy.HookimplMarker("ipfs_accelerate")


@hookspec
def register_backends(register: Callable[[BackendSpec], None]) -> None:
    """Declare the backends this plugin provides by calling ``register(spec)`` for each."""


@hookspec(firstresult=True)
def chat(backend: str, request: ChatRequest, settings: Settings) -> Call | None:
    """Build the call for a chat completion."""


@hookspec(firstresult=True)
def stream(backend: str, request: ChatRequest, settings: Settings) -> Call | None:
    """Build the call for a streamed chat completion (``HttpCall.stream`` set, or a
    ``CallableCall`` with ``stream=True``)."""


@hookspec(firstresult=True)
def embed(backend: str, request: EmbedRequest, settings: Settings) -> Call | None:
    """Build the call that embeds ``request.inputs``, one vector each: its result an
    ``EmbeddingResponse`` with lists of floats or one float32 array (core converts to the
    caller's ``request.output``); ``request.encoding_format`` is ``None`` unless the caller
    named a wire format."""


@hookspec(firstresult=True)
def generate(backend: str, request: GenerateRequest, settings: Settings) -> Call | None:
    """Build the call that generates text or images (``request.kind``) from a prompt."""


@hookspec(firstresult=True)
def list_models(backend: str, settings: Settings) -> Call | None:
    """Build the call that lists the backend's models as ModelInfo."""


@hookspec(firstresult=True)
def create_handler(
    backend: str, client: Backend, kind: str, model: str | None, options: dict[str, Any]
) -> Callable[..., Any] | None:
    """Return an endpoint handler: an async callable taking a prompt (or messages) and
    returning a plain dict with ``"text"``. Core's default covers ``chat``, ``embed`` and
    ``generate``; a plugin overrides a kind by returning a handler (``None`` falls back to
    core's)."""


@hookspec(firstresult=True)
def authorize(backend: str, request: httpx.Request, credential: Credential) -> None:
    """Place the leased credential on an outgoing HTTP request: a header, a query parameter
    (``request.url = request.url.copy_add_param(...)``) or a signature over the request.
    Without this hook core sends ``BackendSpec.auth_header``."""


@hookspec(firstresult=True)
def refine_error(backend: str, error: BackendError) -> BackendError | None:
    """Return a more precise error than the one core built from a reply or a failure (its
    class chosen by HTTP status): Google's 400 whose reason is ``API_KEY_INVALID`` is an
    AuthenticationError; a missing Ollama model gets "run ``ollama pull``". ``None`` keeps
    core's. Called once per failed attempt, before it is accounted; fields left unset on the
    new error are copied from the old one."""


@hookspec(firstresult=True)
def demo(backend: str, report: DemoReport) -> None:
    """Run this backend's demo scenario against a loopback server speaking its protocol
    (no key, no network), reporting each step with ``report.step(...)``; ``ipfs-accelerate
    demo`` runs the scenario of every installed backend."""
