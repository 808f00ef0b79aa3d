"""Anthropic Claude: the Messages API (``POST /v1/messages``, streamed over SSE) and
``GET /v1/models``.

The request and reply formats live in :mod:`.request`, :mod:`.reply` and :mod:`.events`;
this module declares the backend and builds each hook's HttpCall.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ipfs_accelerate_py.calls import HttpCall
from ipfs_accelerate_py.config import BackendSpec
from ipfs_accelerate_py.hookspecs import hookimpl
from ipfs_accelerate_py.types import ChatRequest

from .events import new_event_parser
from .reply import parse_message, parse_models
from .request import messages_body
from .structured_output import as_json_reply, as_json_stream, forced_tool_request

if TYPE_CHECKING:
    from ipfs_accelerate_py.demo import DemoReport

NAME = "claude"
API_VERSION = "2023-06-01"
DEFAULT_MODEL = "claude-sonnet-5-5"
"""The model used when neither ``model=`` nor ``ANTHROPIC_MODEL`` names one."""
MODELS_PAGE = 1000  # the largest page /v1/models serves

SPEC = BackendSpec(
    name=NAME,
    display_name="Anthropic Claude",
    package="ipfs-accelerate-claude",
    default_base_url="https://api.anthropic.com",
    api_key_env=("ANTHROPIC_API_KEY",),
    base_url_env=("ANTHROPIC_BASE_URL",),
    model_env=("ANTHROPIC_MODEL",),
    default_model=DEFAULT_MODEL,
    auth_header="x-api-key",
    auth_prefix="",
    default_headers={"anthropic-version": API_VERSION},
    capabilities=frozenset({"chat", "stream", "list_models"}),
    seed_class="ipfs_accelerate_claude.guide:claude",
)


@hookimpl
def register_backends(register: Callable[[BackendSpec], None]) -> None:
    """Declare the ``claude`` backend."""
    register(SPEC)


@hookimpl
def chat(request: ChatRequest) -> HttpCall:
    """``POST /v1/messages``; ``response_format`` becomes a forced tool call."""
    request, tool = forced_tool_request(request)
    parse = parse_message if tool is None else as_json_reply(parse_message, tool)
    body = messages_body(request)
    return HttpCall("POST", "/v1/messages", json=body, parse=parse, model=request.model)


@hookimpl
def stream(request: ChatRequest) -> HttpCall:
    """``POST /v1/messages`` with ``"stream": true``; ``message_stop`` ends the stream."""
    request, tool = forced_tool_request(request)
    return HttpCall(
        "POST",
        "/v1/messages",
        json=messages_body(request, stream=True),
        stream="sse",
        new_parser=new_event_parser if tool is None else as_json_stream(new_event_parser, tool),
        model=request.model,
    )


def models_call(after_id: str | None = None) -> HttpCall:
    """One page of ``GET /v1/models``; the next page starts after the last id of this one."""
    params: dict[str, Any] = {"limit": MODELS_PAGE}
    if after_id is not None:
        params["after_id"] = after_id
    return HttpCall(
        "GET",
        "/v1/models",
        params=params,
        parse=parse_models,
        usage_of=lambda _: None,
        next_page=_next_page,
    )


def _next_page(body: Any) -> HttpCall | None:
    if not isinstance(body, Mapping) or body.get("has_more") is not True:
        return None
    last = body.get("last_id")
    return models_call(last) if isinstance(last, str) and last else None


@hookimpl
def list_models() -> HttpCall:
    """``GET /v1/models``, every page (``has_more`` / ``last_id`` -> ``after_id``)."""
    return models_call()


@hookimpl
def demo(report: DemoReport) -> None:
    """Every call against a loopback Messages API server, with a 429 and a 529 on the way."""
    from . import demo as scenario

    scenario.run(report)
