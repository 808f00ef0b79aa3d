"""Text Generation Inference's wire format: ``/generate``, ``/generate_stream``, ``/info``.

A self-hosted TGI server (or a dedicated Inference Endpoint) takes
``POST /generate {"inputs": prompt, "parameters": {...}}`` and answers
``{"generated_text": ..., "details": {...}}`` (details only when ``parameters.details`` is
true). ``POST /generate_stream`` answers server-sent events, each
``{"index", "token": {"id", "text", "logprob", "special"}, "generated_text": null,
"details": null}``; the last event carries ``generated_text`` (and ``details`` with
``finish_reason``, ``generated_tokens`` and ``input_length``), and an
``{"error": ..., "error_type": ...}`` event reports a failure mid-stream. There is no
``[DONE]`` marker on this route.

Without a configured server the backend talks to Hugging Face's hosted router
(``https://router.huggingface.co``), as ``huggingface_hub``'s ``InferenceClient`` does: the
HF Inference provider at ``/hf-inference/models/{model}`` (the same body plus ``"stream"``;
the reply may be a one-element list), and the OpenAI-compatible ``/v1/chat/completions``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import attrs

from ipfs_accelerate_py.calls import HttpCall
from ipfs_accelerate_py.config import Settings
from ipfs_accelerate_py.decoders import ServerSentEvent
from ipfs_accelerate_py.errors import (
    InvalidArgumentError,
    MalformedResponseError,
)
from ipfs_accelerate_py.types import (
    GenerateRequest,
    GenerateResponse,
    StreamChunk,
    Usage,
    text_chunk,
)

from .errors import stream_error

__all__ = [
    "HOSTED_BASE_URL",
    "TextGenerationResponse",
    "generate_call",
    "generate_stream_call",
    "health_call",
    "info_call",
    "is_hosted",
    "parse_generate",
    "parse_stream_event",
    "usage_from_headers",
]

HOSTED_BASE_URL = "https://router.huggingface.co"
HOSTED_PROVIDER = "/hf-inference"

# core's OpenAI-style names -> TGI's parameter names
_RENAMES = {"max_tokens": "max_new_tokens", "max_completion_tokens": "max_new_tokens"}


@attrs.frozen(slots=True)
class TextGenerationResponse(GenerateResponse):
    """A TGI generation: :class:`GenerateResponse` plus TGI's ``details`` when asked for."""

    details: Any = None

    def to_dict(self) -> dict[str, Any]:
        """``{"text", "generated_text", "model", "finish_reason", "usage"}`` and ``"details"``
        when the server sent them."""
        out = GenerateResponse.to_dict(self)
        if self.details is not None:
            out["details"] = self.details
        return out


def is_hosted(settings: Settings) -> bool:
    """Whether the backend talks to Hugging Face's hosted router (no base URL configured)."""
    return settings.base_url.rstrip("/") == HOSTED_BASE_URL


def hosted_model_path(model: str, provider: str, suffix: str = "") -> str:
    """``/hf-inference/models/{model}{suffix}``; a hosted call needs a model id."""
    if not model:
        raise InvalidArgumentError(
            f"{provider} without a base URL calls Hugging Face's hosted inference, which needs "
            f"a model id: pass model=, or set a self-hosted server's base URL"
        )
    return f"{HOSTED_PROVIDER}/models/{quote(model, safe='/')}{suffix}"


def _bad(provider: str, what: str, body: Any) -> MalformedResponseError:
    return MalformedResponseError(f"{what}; body starts {str(body)[:200]!r}", provider=provider)


def parameters_of(params: Mapping[str, Any]) -> dict[str, Any]:
    """TGI's ``parameters`` object from a call's keywords: a ``parameters=`` dict as given,
    plus any loose keywords (``max_tokens`` becomes ``max_new_tokens``)."""
    rest = dict(params)
    given = rest.pop("parameters", None)
    if given is not None and not isinstance(given, Mapping):
        raise InvalidArgumentError(f"parameters must be a dict, got {type(given).__name__}")
    out = dict(given or {})
    for name, value in rest.items():
        out[_RENAMES.get(name, name)] = value
    return out


def _usage(details: Any) -> Usage | None:
    if not isinstance(details, Mapping):
        return None
    generated = details.get("generated_tokens")
    prompt = details.get("input_length")
    if prompt is None and details.get("prefill"):
        prompt = len(details["prefill"])
    return Usage.of(prompt, generated)


def _count(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def usage_from_headers(headers: Mapping[str, str]) -> Usage | None:
    """TGI's ``x-prompt-tokens`` / ``x-generated-tokens`` reply headers, which ``/generate``
    sends whether or not ``details`` were asked for (core reads them when the body has no
    usage)."""
    prompt, generated = _count(headers, "x-prompt-tokens"), _count(headers, "x-generated-tokens")
    if prompt is None and generated is None:
        return None
    return Usage.of(prompt, generated)


def parse_generate(body: Any, provider: str, model: str | None) -> TextGenerationResponse:
    """A ``/generate`` reply (an object, or the hosted API's one-element list) → response."""
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    if not isinstance(body, Mapping) or not isinstance(body.get("generated_text"), str):
        raise _bad(provider, "the generation reply has no generated_text", body)
    details = body.get("details")
    finish = details.get("finish_reason") if isinstance(details, Mapping) else None
    return TextGenerationResponse(
        text=body["generated_text"],
        model=model or None,
        finish_reason=finish,
        usage=_usage(details),
        raw=body,
        details=details,
    )


def generate_call(request: GenerateRequest, settings: Settings, provider: str) -> HttpCall:
    """``POST /generate`` (self-hosted) or ``POST /hf-inference/models/{model}`` (hosted)."""
    if request.kind != "text":
        raise InvalidArgumentError(f"{provider} generates text only, not {request.kind!r}")
    body: dict[str, Any] = {"inputs": request.prompt, "parameters": parameters_of(request.params)}
    path = "/generate"
    if is_hosted(settings):
        path = hosted_model_path(request.model, provider)
        body["stream"] = False
    model = request.model
    return HttpCall(
        "POST",
        path,
        json=body,
        parse=lambda b: parse_generate(b, provider, model),
        model=model or None,
        usage_headers=usage_from_headers,
    )


def stream_event_parser(provider: str) -> Any:
    """A parser for ``/generate_stream`` events (stateless: one per call is enough)."""

    def parse(event: ServerSentEvent) -> StreamChunk | None:
        return parse_stream_event(event, provider)

    return parse


def parse_stream_event(event: ServerSentEvent, provider: str) -> StreamChunk | None:
    """One ``/generate_stream`` event → a chunk; the event with ``generated_text`` is the
    last (``done``). Special tokens (``</s>``) carry no text."""
    if not event.data:
        return None
    obj = event.json()
    if not isinstance(obj, dict):
        raise _bad(provider, "a stream event is not a JSON object", obj)
    if obj.get("error") is not None:
        raise stream_error(obj, provider)
    token: Any = obj.get("token")
    # dict first: the Mapping ABC check is slow, and this runs once per event
    text = token.get("text") if type(token) is dict or isinstance(token, Mapping) else None
    if not isinstance(text, str):
        raise _bad(provider, "a stream event has no token text", obj)
    if token.get("special"):
        text = ""
    if obj.get("generated_text") is None:
        return text_chunk(text, None, obj)  # every event but the last: the fast build
    details = obj.get("details")
    return StreamChunk(
        text=text,
        done=True,
        finish_reason=details.get("finish_reason") if isinstance(details, Mapping) else None,
        usage=_usage(details),
        raw=obj,
    )


def generate_stream_call(
    model: str, prompt: str, params: Mapping[str, Any], settings: Settings, provider: str
) -> HttpCall:
    """``POST /generate_stream`` (self-hosted) or the hosted model route with ``stream``."""
    if not isinstance(prompt, str) or not prompt:
        raise InvalidArgumentError("prompt must be a non-empty string")
    body: dict[str, Any] = {"inputs": prompt, "parameters": parameters_of(params)}
    path = "/generate_stream"
    if is_hosted(settings):
        path = hosted_model_path(model, provider)
        body["stream"] = True
    return HttpCall(
        "POST",
        path,
        json=body,
        stream="sse",
        parse_event=stream_event_parser(provider),
        model=model or None,
    )


def self_hosted_only(settings: Settings, provider: str, route: str) -> None:
    """Refuse a route only a self-hosted server has (the hosted router has no ``/info``)."""
    if is_hosted(settings):
        raise InvalidArgumentError(
            f"{route} is a route of a self-hosted {provider} server; set its base URL "
            f"(hosted inference at {HOSTED_BASE_URL} has no such route)"
        )


def info_call(settings: Settings, provider: str) -> HttpCall:
    """``GET /info``: the served model and the server's limits, as a dict."""
    self_hosted_only(settings, provider, "/info")

    def parse(body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _bad(provider, "the /info reply is not a JSON object", body)
        return body

    return HttpCall("GET", "/info", parse=parse, usage_of=lambda _: None)


def health_call(settings: Settings, provider: str) -> HttpCall:
    """``GET /health``: ``True`` when the server answers 200 (an error status raises)."""
    self_hosted_only(settings, provider, "/health")
    return HttpCall(
        "GET", "/health", json_reply=False, parse=lambda _: True, usage_of=lambda _: None
    )
