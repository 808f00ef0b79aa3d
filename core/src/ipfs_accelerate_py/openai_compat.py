"""The OpenAI wire format, shared by every OpenAI-compatible backend.

OpenAI, Groq (under ``/openai/v1``), OVMS ``/v3``, vLLM, OPEA and TGI's Messages API all speak
it, so the translation lives here once: request bodies from core requests, and replies
(chat completions, SSE chunks, embeddings in ``float`` or ``base64``, images, models) into
core types. Plugins call :func:`chat_call`, :func:`stream_call` and friends from their hooks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from .calls import STREAM_END, HttpCall, StreamEnd
from .decoders import ServerSentEvent
from .errors import (
    BackendError,
    InvalidRequestError,
    MalformedResponseError,
    OverloadedError,
    RateLimitError,
    ServerError,
)
from .transport import _error_fields, parse_json
from .types import (
    ChatRequest,
    ChatResponse,
    EmbeddingResponse,
    EmbedRequest,
    GenerateRequest,
    GenerateResponse,
    ImageResponse,
    ModelInfo,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
    text_chunk,
)
from .vectors import decode_base64, from_floats

__all__ = [
    "chat_body",
    "chat_call",
    "completion_call",
    "embed_call",
    "image_call",
    "models_call",
    "parse_chat",
    "parse_usage",
    "stream_call",
    "stream_event_parser",
]

_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


def _bad(provider: str, what: str, body: Any) -> MalformedResponseError:
    excerpt = json.dumps(body)[:200] if not isinstance(body, bytes) else repr(body[:200])
    return MalformedResponseError(f"{what}; body starts {excerpt}", provider=provider)


def parse_usage(data: Any) -> Usage | None:
    """OpenAI ``usage`` → Usage, keeping extra fields (cached tokens, timing) in ``extra``."""
    if type(data) is not dict and not isinstance(data, Mapping):
        return None
    extra = {k: v for k, v in data.items() if k not in _USAGE_KEYS}
    usage = Usage.of(
        data.get("prompt_tokens"), data.get("completion_tokens"), data.get("total_tokens")
    )
    if extra:
        return Usage(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens, extra)
    return usage


def chat_body(
    request: ChatRequest, *, stream: bool = False, include_usage: bool = True
) -> dict[str, Any]:
    """The ``/chat/completions`` body: model, messages, then the caller's parameters as given."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [m.to_dict() for m in request.messages],
    }
    if not request.model:  # a server that serves one model (model_required=False)
        del body["model"]
    body.update(request.params)
    if stream:
        body["stream"] = True
        if include_usage and "stream_options" not in body:
            body["stream_options"] = {"include_usage": True}
    return body


def _tool_calls(raw: Any) -> tuple[ToolCall, ...]:
    if not raw:
        return ()
    calls = []
    for item in raw:
        fn = item.get("function") or {}
        args = fn.get("arguments", "")
        calls.append(
            ToolCall(
                id=str(item.get("id", "")),
                name=str(fn.get("name", "")),
                arguments=args if isinstance(args, str) else json.dumps(args),
                type=str(item.get("type", "function")),
            )
        )
    return tuple(calls)


def parse_chat(body: Any, provider: str) -> ChatResponse:
    """A chat completion body → ChatResponse, with a clear error for a malformed one."""
    if type(body) is not dict:
        raise _bad(provider, "the chat reply is not a JSON object", body)
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise _bad(provider, "the chat reply has no choices", body)
    choice = choices[0]
    message = choice.get("message") if type(choice) is dict else None
    if type(message) is not dict:
        raise _bad(provider, "the chat reply's first choice has no message", body)
    content = message.get("content")
    if isinstance(content, list):  # some servers return content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return ChatResponse(
        text=content or "",
        model=body.get("model"),
        finish_reason=choice.get("finish_reason"),
        usage=parse_usage(body.get("usage")),
        tool_calls=_tool_calls(message.get("tool_calls")),
        id=body.get("id"),
        raw=body,
    )


def chat_call(request: ChatRequest, provider: str, path: str = "/chat/completions") -> HttpCall:
    """The HttpCall for a non-streamed chat completion."""
    return HttpCall(
        "POST",
        path,
        json=chat_body(request),
        parse=lambda body: parse_chat(body, provider),
        model=request.model,
    )


def stream_error(obj: Mapping[str, Any], provider: str) -> BackendError:
    """The error for an error object sent inside a stream (no HTTP status to go by)."""
    message, code = _error_fields(obj)
    text = (code or "").lower()
    cls: type[BackendError] = ServerError
    if "rate" in text or "quota" in text:
        cls = RateLimitError
    elif "overload" in text:
        cls = OverloadedError
    elif "invalid" in text:
        cls = InvalidRequestError
    return cls(f"error inside the stream: {message or obj}", provider=provider, code=code, body=obj)


def stream_event_parser(
    provider: str,
) -> Callable[[ServerSentEvent], StreamChunk | StreamEnd | None]:
    """A parser for OpenAI SSE chunks: content and tool-call deltas, finish reason, usage,
    ``[DONE]`` as the end marker, and ``{"error": ...}`` events raised as errors."""

    def parse(event: ServerSentEvent) -> StreamChunk | StreamEnd | None:
        data = event.data
        if data == "[DONE]":
            return STREAM_END
        if not data:
            return None
        obj = event.json()
        if not isinstance(obj, dict):
            raise _bad(provider, "a stream event is not a JSON object", obj)
        if "error" in obj:
            raise stream_error(obj, provider)
        usage = obj.get("usage")
        choices = obj.get("choices")
        if not choices:
            if usage:
                return StreamChunk(usage=parse_usage(usage), model=obj.get("model"), raw=obj)
            return None
        choice = choices[0]
        delta = choice.get("delta") or {}
        text = delta.get("content") or ""
        raw_calls = delta.get("tool_calls")
        finish = choice.get("finish_reason")
        if not (raw_calls or usage or finish):  # the common case: a text delta
            return text_chunk(text, obj.get("model"), obj)
        deltas: tuple[ToolCallDelta, ...] = ()
        if raw_calls:
            deltas = tuple(
                ToolCallDelta(
                    index=int(c.get("index", 0)),
                    id=c.get("id"),
                    name=(c.get("function") or {}).get("name"),
                    arguments=(c.get("function") or {}).get("arguments") or "",
                )
                for c in raw_calls
            )
        return StreamChunk(
            text=text,
            finish_reason=finish,
            usage=parse_usage(usage) if usage else None,
            tool_calls=deltas,
            model=obj.get("model"),
            raw=obj,
        )

    return parse


def stream_call(
    request: ChatRequest,
    provider: str,
    path: str = "/chat/completions",
    *,
    include_usage: bool = True,
) -> HttpCall:
    """The HttpCall for a streamed chat completion over SSE."""
    return HttpCall(
        "POST",
        path,
        json=chat_body(request, stream=True, include_usage=include_usage),
        stream="sse",
        parse_event=stream_event_parser(provider),
        model=request.model,
    )


def parse_embeddings(
    body: Any, provider: str, count: int, output: str = "list"
) -> EmbeddingResponse[Any]:
    """An embeddings body → vectors in input order, whichever format arrived: base64 decoded
    (float32), float lists checked to be numbers. ``output="numpy"`` gives one float32 array
    (numpy must be installed), else lists of floats."""
    if not isinstance(body, Mapping) or not isinstance(body.get("data"), list):
        raise _bad(provider, "the embeddings reply has no data list", body)
    items = body["data"]
    if not all(type(d) is dict for d in items):
        raise _bad(provider, "an embeddings data entry is not an object", body)
    positions = [d.get("index", 0) for d in items]
    try:
        in_order = positions == sorted(positions)  # servers send them in order
    except TypeError:
        raise _bad(provider, "an embedding's index is not a number", body) from None
    if not in_order:
        order = sorted(range(len(items)), key=positions.__getitem__)
        items, positions = [items[i] for i in order], [positions[i] for i in order]
    if len(items) != count:
        raise _bad(provider, f"asked for {count} embeddings, got {len(items)}", body)
    raw = [d.get("embedding") for d in items]
    vectors: Any
    if all(type(v) is str for v in raw):  # base64: straight into lists or one array
        vectors = decode_base64(raw, output, provider=provider, positions=positions)
    else:
        floats: list[Any] = []
        for position, vec in zip(positions, raw, strict=True):
            if isinstance(vec, str):  # a server mixing the two formats
                floats.extend(decode_base64([vec], provider=provider, positions=[position]))
            elif type(vec) is list:
                try:
                    sum(vec)  # every value a number, checked at C speed and without a copy
                except TypeError:
                    vec = [float(v) for v in vec]  # numeric strings, or the error for garbage
                floats.append(vec)
            else:
                raise _bad(provider, "an embedding is neither a list of floats nor base64", body)
        vectors = from_floats(floats, output, provider=provider)
    return EmbeddingResponse(
        embeddings=vectors, model=body.get("model"), usage=parse_usage(body.get("usage")), raw=body
    )


_orjson_loads: Callable[[bytes], Any] | None
try:
    from orjson import loads as _orjson_loads
except ImportError:  # pragma: no cover - depends on the installed extras (core[speed])
    _orjson_loads = None


def _embeddings_json(content: bytes, provider: str) -> Any:
    """An embeddings reply decoded: by orjson straight when installed. Its only integers are
    indices and token counts, so core's scan of every byte for integers too long for orjson
    (about as costly as orjson itself on a 0.5 MB reply) protects nothing here. Anything
    orjson refuses (NaN, deep nesting, not JSON) goes to core's decoder and its errors."""
    if _orjson_loads is not None:
        try:
            return _orjson_loads(content)
        except ValueError:
            pass
    return parse_json(content, provider=provider)


def embed_call(
    request: EmbedRequest,
    provider: str,
    path: str = "/embeddings",
    *,
    wire_format: str | None = None,
) -> HttpCall:
    """The HttpCall for ``/embeddings``.

    ``encoding_format`` is sent as the caller asked; when they named none, as
    ``wire_format``, else ``"float"``. A plugin whose server supports base64 passes
    ``wire_format="base64"`` (OpenAI, vLLM, llama.cpp and OVMS do; the official openai SDK
    asks for it the same way): a quarter of the bytes and no JSON number parsing, decoded
    to the same float32 values. Whatever format the reply carries is decoded (a server that
    ignores the field and sends floats works), into ``request.output``: lists or a numpy
    array.
    """
    body: dict[str, Any] = {
        "model": request.model,
        "input": list(request.inputs),
        "encoding_format": request.encoding_format or wire_format or "float",
    }
    if not request.model:
        del body["model"]
    body.update(request.params)
    count, output = len(request.inputs), request.output
    return HttpCall(
        "POST",
        path,
        json=body,
        parse=lambda b: parse_embeddings(b, provider, count, output),
        model=request.model,
        decode=lambda content: _embeddings_json(content, provider),
    )


def parse_images(body: Any, provider: str, model: str | None) -> ImageResponse:
    """An images body → URLs and/or base64 payloads."""
    if not isinstance(body, Mapping) or not isinstance(body.get("data"), list):
        raise _bad(provider, "the images reply has no data list", body)
    urls, b64, revised = [], [], []
    for item in body["data"]:
        if item.get("url"):
            urls.append(item["url"])
        if item.get("b64_json"):
            b64.append(item["b64_json"])
        if item.get("revised_prompt"):
            revised.append(item["revised_prompt"])
    if not urls and not b64:
        raise _bad(provider, "the images reply has neither URLs nor base64 images", body)
    return ImageResponse(urls=urls, b64_images=b64, revised_prompts=revised, model=model, raw=body)


def image_call(
    request: GenerateRequest, provider: str, path: str = "/images/generations"
) -> HttpCall:
    """The HttpCall for ``/images/generations``."""
    body: dict[str, Any] = {"model": request.model, "prompt": request.prompt}
    body.update(request.params)
    model = request.model
    return HttpCall(
        "POST",
        path,
        json=body,
        parse=lambda b: parse_images(b, provider, model),
        model=request.model,
        usage_of=lambda _: None,
    )


def parse_completion(body: Any, provider: str) -> GenerateResponse:
    """A legacy ``/completions`` body → GenerateResponse."""
    if not isinstance(body, Mapping) or not body.get("choices"):
        raise _bad(provider, "the completion reply has no choices", body)
    choice = body["choices"][0]
    return GenerateResponse(
        text=choice.get("text") or "",
        model=body.get("model"),
        finish_reason=choice.get("finish_reason"),
        usage=parse_usage(body.get("usage")),
        raw=body,
    )


def completion_call(
    request: GenerateRequest, provider: str, path: str = "/completions"
) -> HttpCall:
    """The HttpCall for a legacy text completion."""
    body: dict[str, Any] = {"model": request.model, "prompt": request.prompt}
    if not request.model:
        del body["model"]
    body.update(request.params)
    return HttpCall(
        "POST", path, json=body, parse=lambda b: parse_completion(b, provider), model=request.model
    )


def parse_models(body: Any, provider: str) -> list[ModelInfo]:
    """A ``/models`` body → ModelInfo list."""
    data = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(data, list):
        raise _bad(provider, "the models reply has no data list", body)
    out = []
    for item in data:
        if not isinstance(item, Mapping) or not item.get("id"):
            raise _bad(provider, "a model entry has no id", body)
        out.append(
            ModelInfo(
                id=str(item["id"]),
                owned_by=item.get("owned_by"),
                created=item.get("created"),
                context_window=item.get("context_window") or item.get("max_model_len"),
                raw=item,
            )
        )
    return out


def models_call(provider: str, path: str = "/models") -> HttpCall:
    """The HttpCall for ``GET /models``."""
    return HttpCall("GET", path, parse=lambda b: parse_models(b, provider), usage_of=lambda _: None)
