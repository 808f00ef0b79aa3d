"""Google Gemini (the Generative Language API, ``/v1beta``): chat, SSE streaming, images,
embeddings and the model list.

The key travels in the ``x-goog-api-key`` header, never in the URL. Request bodies are built
in :mod:`.wire`, replies read in :mod:`.replies`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ipfs_accelerate_py.calls import HttpCall
from ipfs_accelerate_py.config import BackendSpec
from ipfs_accelerate_py.errors import BackendError
from ipfs_accelerate_py.hookspecs import hookimpl
from ipfs_accelerate_py.types import (
    ChatRequest,
    EmbedRequest,
    GenerateRequest,
    GenerateResponse,
    Message,
)

from . import errors, replies, wire

if TYPE_CHECKING:
    from ipfs_accelerate_py.demo import DemoReport

NAME = "gemini"
DEFAULT_MODEL = "gemini-2.5-flash"
MODELS_PAGE_SIZE = 1000  # the API's maximum: most accounts get every model in one page

SPEC = BackendSpec(
    name=NAME,
    display_name="Google Gemini",
    package="ipfs-accelerate-gemini",
    default_base_url="https://generativelanguage.googleapis.com",
    base_url_suffix="/v1beta",
    api_key_env=("GOOGLE_API_KEY", "GEMINI_API_KEY"),
    base_url_env=("GOOGLE_GEMINI_BASE_URL",),
    model_env=("GEMINI_MODEL",),
    default_model=DEFAULT_MODEL,
    auth_header="x-goog-api-key",
    auth_prefix="",
    capabilities=frozenset({"chat", "stream", "embed", "generate", "list_models"}),
    seed_class="ipfs_accelerate_gemini.guide:gemini",
)


@hookimpl
def register_backends(register: Callable[[BackendSpec], None]) -> None:
    """Declare the ``gemini`` backend."""
    register(SPEC)


def _body(request: ChatRequest) -> dict[str, Any]:
    return wire.apply_params(wire.contents_body(request.messages), request.params)


@hookimpl
def chat(request: ChatRequest) -> HttpCall:
    """``POST /models/{model}:generateContent``."""
    return HttpCall(
        "POST",
        f"/{wire.model_path(request.model)}:generateContent",
        json=_body(request),
        parse=replies.parse_generate,
        model=wire.plain_model(request.model),
    )


@hookimpl
def stream(request: ChatRequest) -> HttpCall:
    """``POST /models/{model}:streamGenerateContent?alt=sse``; the event carrying a
    ``finishReason`` is the last, so a stream cut before it is an error."""
    return HttpCall(
        "POST",
        f"/{wire.model_path(request.model)}:streamGenerateContent",
        params={"alt": "sse"},
        json=_body(request),
        stream="sse",
        new_parser=replies.stream_parser,
        model=wire.plain_model(request.model),
    )


def _as_generated(result: Any) -> GenerateResponse:
    return GenerateResponse(
        text=result.text,
        model=result.model,
        finish_reason=result.finish_reason,
        usage=result.usage,
        raw=result.raw,
    )


@hookimpl
def generate(request: GenerateRequest) -> HttpCall | None:
    """Text from a bare prompt: ``generateContent`` with one user turn (no image models)."""
    if request.kind != "text":
        return None
    chat_request = ChatRequest(request.model, (Message("user", request.prompt),), request.params)
    return HttpCall(
        "POST",
        f"/{wire.model_path(request.model)}:generateContent",
        json=_body(chat_request),
        parse=lambda body: _as_generated(replies.parse_generate(body)),
        model=wire.plain_model(request.model),
    )


@hookimpl
def embed(request: EmbedRequest) -> HttpCall:
    """One text: ``POST /models/{model}:embedContent``; several: ``:batchEmbedContents``
    (vectors come back in input order)."""
    model, count = request.model, len(request.inputs)
    items = [wire.embed_request(model, text, request.params) for text in request.inputs]
    if count == 1:
        method, body = "embedContent", items[0]
    else:
        method, body = "batchEmbedContents", {"requests": items}
    return HttpCall(
        "POST",
        f"/{wire.model_path(model)}:{method}",
        json=body,
        parse=lambda b: replies.parse_embeddings(b, wire.plain_model(model), count),
        model=wire.plain_model(model),
    )


def _models_page(token: str | None) -> HttpCall:
    params: dict[str, Any] = {"pageSize": MODELS_PAGE_SIZE}
    if token:
        params["pageToken"] = token
    return HttpCall(
        "GET",
        "/models",
        params=params,
        parse=replies.parse_models,
        usage_of=lambda _: None,
        next_page=_next_models_page,
    )


def _next_models_page(body: Any) -> HttpCall | None:
    token = body.get("nextPageToken") if isinstance(body, dict) else None
    return _models_page(token) if isinstance(token, str) and token else None


@hookimpl
def list_models() -> HttpCall:
    """``GET /models``, following ``nextPageToken`` through every page."""
    return _models_page(None)


@hookimpl
def refine_error(error: BackendError) -> BackendError | None:
    """Google's error body over core's status-only class: a 400 ``API_KEY_INVALID`` is an
    AuthenticationError; a ``RetryInfo`` ``retryDelay`` is the retry delay when the reply
    had no ``Retry-After``."""
    better = errors.map_error(error)
    return None if better is error else better


@hookimpl
def demo(report: DemoReport) -> None:
    """Chat, stream, embeddings and the paged model list against a loopback Gemini, with a
    429 (RetryInfo) and a 503 on the way."""
    from . import demo as scenario

    scenario.run(report)
