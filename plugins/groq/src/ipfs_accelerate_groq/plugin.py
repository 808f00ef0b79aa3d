"""Groq: chat completions (+SSE), JSON mode, tools and models, under ``/openai/v1``.

Groq speaks the OpenAI wire format, shared in :mod:`ipfs_accelerate_py.openai_compat`;
this module adds only what differs:

* Streams: Groq reports usage in the final chunk's ``x_groq.usage`` (with its timings
  ``queue_time``, ``prompt_time``, ``completion_time``, ``total_time``, kept in
  ``Usage.extra``), so ``stream_options`` is not sent; a stream stopped early by Groq
  (``x_groq.error``) raises. A caller's own ``stream_options`` is passed through.
* Parameters Groq rejects with a 400 (its OpenAI-compatibility page, and the SDK's
  parameter list) raise :class:`~ipfs_accelerate_py.errors.InvalidArgumentError` before
  anything is sent: ``logprobs``, ``logit_bias``, ``top_logprobs``, ``n`` other than 1,
  ``messages[].name``, and ``top_k`` (not a Groq parameter at all).
* ``list_models``: the live listing merged with the shipped catalogue (:mod:`.catalog`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ipfs_accelerate_py import openai_compat
from ipfs_accelerate_py.calls import HttpCall, StreamEnd
from ipfs_accelerate_py.config import BackendSpec, Settings
from ipfs_accelerate_py.decoders import ServerSentEvent
from ipfs_accelerate_py.errors import (
    BackendError,
    InvalidArgumentError,
    InvalidRequestError,
    MalformedResponseError,
    OverloadedError,
    ServerError,
)
from ipfs_accelerate_py.hookspecs import hookimpl
from ipfs_accelerate_py.types import ChatRequest, StreamChunk

from . import catalog

if TYPE_CHECKING:
    from ipfs_accelerate_py.demo import DemoReport

NAME = "groq"

SPEC = BackendSpec(
    name=NAME,
    display_name="Groq",
    package="ipfs-accelerate-groq",
    default_base_url="https://api.groq.com",
    base_url_suffix="/openai/v1",
    api_key_env=("GROQ_API_KEY",),
    base_url_env=("GROQ_BASE_URL",),
    model_env=("GROQ_MODEL",),
    default_model="llama-3.3-70b-versatile",
    capabilities=frozenset({"chat", "stream", "list_models"}),
    seed_class="ipfs_accelerate_groq.guide:groq",
)

# Parameters Groq answers with a 400; caught here with a clearer message and no request.
REJECTED = {
    "logprobs": "Groq does not support logprobs (its API answers 400)",
    "top_logprobs": "Groq does not support top_logprobs (its API answers 400)",
    "logit_bias": "Groq does not support logit_bias (its API answers 400)",
    "top_k": "Groq has no top_k sampling parameter (its API rejects unknown properties "
    "with a 400); use top_p or temperature",
}


def check_request(request: ChatRequest) -> None:
    """Refuse what Groq would reject with a 400, before anything is sent."""
    params = request.params
    for name, reason in REJECTED.items():
        if params.get(name) is not None:
            raise InvalidArgumentError(f"{name}={params[name]!r}: {reason}", provider=NAME)
    n = params.get("n")
    if n is not None and n != 1:
        raise InvalidArgumentError(
            f"n={n!r}: Groq generates one choice per request (n must be 1)", provider=NAME
        )
    for message in request.messages:
        if message.name is not None:
            raise InvalidArgumentError(
                f"messages[].name ({message.name!r}) is not supported by Groq (its API "
                "answers 400); put the name in the content instead",
                provider=NAME,
            )


@hookimpl
def register_backends(register: Callable[[BackendSpec], None]) -> None:
    """Declare the ``groq`` backend."""
    register(SPEC)


@hookimpl
def chat(request: ChatRequest) -> HttpCall:
    """``POST /chat/completions``; the usage carries Groq's timings in ``extra``."""
    check_request(request)
    return openai_compat.chat_call(request, NAME)


def stream_event_parser() -> Callable[[ServerSentEvent], StreamChunk | StreamEnd | None]:
    """OpenAI's chunk parser, plus Groq's ``x_groq``: ``usage`` becomes the chunk's usage
    (merged with any top-level ``usage``), and ``error`` (a stream stopped early) raises."""
    base = openai_compat.stream_event_parser(NAME)

    def parse(event: ServerSentEvent) -> StreamChunk | StreamEnd | None:
        chunk = base(event)
        if chunk.__class__ is StreamChunk and type(chunk.raw) is dict and "x_groq" not in chunk.raw:
            return chunk  # most events: nothing of Groq's to read, so no further checks
        if isinstance(chunk, StreamEnd):
            return chunk
        if chunk is None:  # no choices and no usage: may still carry x_groq
            obj = event.json() if event.data else None
            if not isinstance(obj, Mapping) or obj.get("x_groq") is None:
                return None
            chunk = StreamChunk(model=obj.get("model"), raw=obj)
        raw = chunk.raw if isinstance(chunk.raw, Mapping) else {}
        extra: Any = raw.get("x_groq")
        if extra is None:
            return chunk
        if not isinstance(extra, Mapping):
            raise MalformedResponseError(
                f"a stream event's x_groq is not an object: {str(extra)[:200]!r}", provider=NAME
            )
        if extra.get("error"):
            raise openai_compat.stream_error({"error": str(extra["error"])}, NAME)
        usage = openai_compat.parse_usage(extra.get("usage"))
        if usage is None:
            return chunk
        merged = usage if chunk.usage is None else chunk.usage.merge(usage)
        return attrs.evolve(chunk, usage=merged)

    return parse


@hookimpl
def stream(request: ChatRequest) -> HttpCall:
    """``POST /chat/completions`` with ``stream: true``; usage from ``x_groq.usage``."""
    check_request(request)
    call = openai_compat.stream_call(request, NAME, include_usage=False)
    return attrs.evolve(call, parse_event=stream_event_parser())


@hookimpl
def list_models(settings: Settings) -> HttpCall:
    """``GET /models``, merged with the shipped catalogue (descriptions, categories)."""
    call = openai_compat.models_call(NAME)
    parse = call.parse
    assert parse is not None
    base_url = settings.base_url
    return attrs.evolve(call, parse=lambda body: catalog.enrich(parse(body), base_url))


@hookimpl
def refine_error(error: BackendError) -> BackendError | None:
    """Groq's own statuses and stream errors: a 498 (flex tier at capacity, "retry later")
    is an OverloadedError, retried; an error event inside a stream whose ``type`` is
    ``invalid_request_error`` (e.g. ``tool_use_failed``) is an InvalidRequestError, not
    retried, instead of core's ServerError for an error event it cannot classify."""
    if error.status_code == 498 and not isinstance(error, OverloadedError):
        return OverloadedError(error.message, code=error.code)
    body = error.body
    if (
        error.status_code is None
        and type(error) is ServerError
        and isinstance(body, Mapping)
        and isinstance(body.get("error"), Mapping)
        and body["error"].get("type") == "invalid_request_error"
    ):
        return InvalidRequestError(error.message, code=error.code)
    return None


@hookimpl
def demo(report: DemoReport) -> None:
    """Every call against a loopback Groq server, with a 429 and a 503 on the way."""
    from . import demo as scenario

    scenario.run(report)
