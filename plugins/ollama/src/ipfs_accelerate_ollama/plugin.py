"""Ollama: ``/api/chat`` (+NDJSON streams), ``/api/generate``, ``/api/embed``, ``/api/tags``.

The base URL ends in ``/api`` (``base_url_suffix``), so both ``OLLAMA_HOST=http://host:11434``
and the guide's ``OLLAMA_API_URL=http://localhost:11434/api`` work; every path here is
relative to it. No key is needed; a bearer token (``OLLAMA_API_KEY``) is sent when set, for
an Ollama behind an authenticating proxy or ollama.com.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ipfs_accelerate_py.calls import HttpCall
from ipfs_accelerate_py.config import BackendSpec, Settings
from ipfs_accelerate_py.errors import BackendError, InvalidArgumentError
from ipfs_accelerate_py.hookspecs import hookimpl
from ipfs_accelerate_py.types import ChatRequest, EmbedRequest, GenerateRequest

from . import hints, wire
from .wire import NAME

if TYPE_CHECKING:
    from ipfs_accelerate_py.demo import DemoReport

SPEC = BackendSpec(
    name=NAME,
    display_name="Ollama",
    package="ipfs-accelerate-ollama",
    default_base_url="http://localhost:11434/api",
    api_key_env=("OLLAMA_API_KEY",),
    base_url_env=("OLLAMA_API_URL", "OLLAMA_HOST"),
    base_url_suffix="/api",
    model_env=("OLLAMA_MODEL",),
    api_key_required=False,
    capabilities=frozenset({"chat", "stream", "embed", "generate", "list_models"}),
    extra_config={"legacy_embeddings": False},
    seed_class="ipfs_accelerate_ollama.guide:ollama",
    free=True,
)


def _no_usage(_: Any) -> None:
    return None


def legacy_enabled(settings: Settings) -> bool:
    """Whether ``metadata={"legacy_embeddings": True}`` asks for ``/api/embeddings``."""
    value = settings.extra.get("legacy_embeddings", False)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def legacy_embed_call(model: str, text: str, params: dict[str, Any]) -> HttpCall:
    """``POST /embeddings`` (Ollama before 0.3.0): one prompt per request, one vector back,
    no token counts."""
    body = {"model": model, "prompt": text, **wire.fields(params)}
    return HttpCall("POST", "/embeddings", json=body, parse=wire.parse_legacy, model=model)


def show_call(model: str, verbose: bool = False) -> HttpCall:
    """``POST /show``: a model's details, template, parameters and capabilities (a dict)."""
    body: dict[str, Any] = {"model": model}
    if verbose:
        body["verbose"] = True
    return HttpCall(
        "POST", "/show", json=body, parse=wire.parse_object, model=model, usage_of=_no_usage
    )


def generate_stream_call(model: str, prompt: str, params: dict[str, Any]) -> HttpCall:
    """``POST /generate`` streamed as NDJSON (core has no hook for a streamed generate)."""
    return HttpCall(
        "POST",
        "/generate",
        json=wire.generate_body(model, prompt, params, stream=True),
        stream="ndjson",
        parse_event=wire.generate_event,
        model=model,
    )


@hookimpl
def register_backends(register: Callable[[BackendSpec], None]) -> None:
    """Declare the ``ollama`` backend."""
    register(SPEC)


@hookimpl
def chat(request: ChatRequest) -> HttpCall:
    """``POST /chat`` with ``"stream": false``."""
    body = wire.chat_body(request.model, request.messages, request.params, stream=False)
    return HttpCall("POST", "/chat", json=body, parse=wire.parse_chat, model=request.model)


@hookimpl
def stream(request: ChatRequest) -> HttpCall:
    """``POST /chat`` streamed as NDJSON; the ``done`` line ends it and carries the usage."""
    return HttpCall(
        "POST",
        "/chat",
        json=wire.chat_body(request.model, request.messages, request.params, stream=True),
        stream="ndjson",
        new_parser=wire.chat_parser,
        model=request.model,
    )


@hookimpl
def embed(request: EmbedRequest, settings: Settings) -> HttpCall:
    """``POST /embed`` with every input at once; with ``legacy_embeddings`` set, the old
    ``POST /embeddings`` (one input only: use :func:`ipfs_accelerate_ollama.embed` for more)."""
    params = dict(request.params)
    if legacy_enabled(settings):
        if len(request.inputs) != 1:
            raise InvalidArgumentError(
                "legacy_embeddings: /api/embeddings takes one text per request; embed one "
                "text at a time or call ipfs_accelerate_ollama.embed(backend, texts)",
                provider=NAME,
            )
        return legacy_embed_call(request.model, request.inputs[0], params)
    body = {"model": request.model, "input": list(request.inputs), **wire.fields(params)}
    return HttpCall(
        "POST",
        "/embed",
        json=body,
        parse=wire.embed_parser(len(request.inputs)),
        model=request.model,
    )


@hookimpl
def generate(request: GenerateRequest) -> HttpCall:
    """``POST /generate`` with ``"stream": false`` (text only)."""
    body = wire.generate_body(request.model, request.prompt, request.params, stream=False)
    return HttpCall("POST", "/generate", json=body, parse=wire.parse_generate, model=request.model)


@hookimpl
def list_models() -> HttpCall:
    """``GET /tags``: the models pulled on this server."""
    return HttpCall("GET", "/tags", parse=wire.parse_tags, usage_of=_no_usage)


@hookimpl
def refine_error(error: BackendError) -> BackendError | None:
    """Ollama's fix on core's error, for every call path: ``ollama pull`` for a missing
    model, ``ollama serve`` for a server that refused the connection."""
    return hints.refine(error)


@hookimpl
def demo(report: DemoReport) -> None:
    """Chat, stream, generate, embeddings and the model list against a loopback Ollama,
    with a 429 and a 503 on the way."""
    from . import demo as scenario

    scenario.run(report)
