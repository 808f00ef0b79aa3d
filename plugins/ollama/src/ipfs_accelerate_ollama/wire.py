"""Ollama's native wire format: request bodies from core requests, replies into core types.

Ollama speaks JSON over ``/api/chat``, ``/api/generate``, ``/api/embed`` and ``/api/tags``;
chat and generate stream NDJSON (one JSON object per line, the last one ``"done": true``
with the call's counters). Sampling parameters travel inside ``options``; this module maps
the common keywords (``temperature``, ``max_tokens``...) there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ipfs_accelerate_py.calls import EventParser, StreamEnd
from ipfs_accelerate_py.errors import InvalidArgumentError, MalformedResponseError
from ipfs_accelerate_py.openai_compat import stream_error
from ipfs_accelerate_py.types import (
    ChatResponse,
    EmbeddingResponse,
    GenerateResponse,
    Message,
    ModelInfo,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
    text_chunk,
)

NAME = "ollama"

# Ollama's model options (the Modelfile parameters): given as keywords, they go to "options"
OPTION_NAMES = frozenset(
    {
        "numa", "num_ctx", "num_batch", "num_gpu", "main_gpu", "low_vram", "f16_kv",
        "logits_all", "vocab_only", "use_mmap", "use_mlock", "embedding_only", "num_thread",
        "num_keep", "seed", "num_predict", "top_k", "top_p", "min_p", "tfs_z", "typical_p",
        "repeat_last_n", "temperature", "repeat_penalty", "presence_penalty",
        "frequency_penalty", "mirostat", "mirostat_tau", "mirostat_eta", "penalize_newline",
        "stop",
    }
)  # fmt: skip
_NUM_PREDICT = ("max_tokens", "max_completion_tokens")
_TIMINGS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")
_ROLES = {"developer": "system", "model": "assistant", "function": "tool"}


def _bad(what: str, body: Any) -> MalformedResponseError:
    try:
        excerpt = json.dumps(body)[:200]
    except (TypeError, ValueError):
        excerpt = repr(body)[:200]
    return MalformedResponseError(f"{what}; body starts {excerpt}", provider=NAME)


# --- requests ------------------------------------------------------------------------------


def _format(response_format: Any) -> Any:
    """OpenAI's ``response_format`` as Ollama's ``format``: "json" or a JSON schema."""
    kind = response_format.get("type") if isinstance(response_format, Mapping) else None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if isinstance(schema, Mapping):
            return dict(schema)
    if kind == "text":
        return None
    raise InvalidArgumentError(
        "response_format must be {'type': 'json_object'}, {'type': 'text'} or "
        f"{{'type': 'json_schema', 'json_schema': {{'schema': {{...}}}}}}, got {response_format!r}"
    )


def fields(params: Mapping[str, Any]) -> dict[str, Any]:
    """A call's keywords as Ollama body fields: sampling keywords (``temperature``,
    ``top_p``, ``top_k``, ``seed``, ``stop``, ``max_tokens`` as ``num_predict``, any Modelfile
    parameter) go into ``options`` (over an ``options`` dict given as well);
    ``response_format`` becomes ``format``; everything else (``keep_alive``, ``format``,
    ``tools``, ``think``, ``images``...) is sent as given."""
    body: dict[str, Any] = {}
    options: dict[str, Any] = {}
    given = params.get("options")
    if given is not None and not isinstance(given, Mapping):
        raise InvalidArgumentError(f"options must be a dict, got {type(given).__name__}")
    for key, value in params.items():
        if key == "options" or value is None:
            continue
        if key in _NUM_PREDICT:
            options["num_predict"] = value
        elif key == "stop":
            options["stop"] = [value] if isinstance(value, str) else list(value)
        elif key in OPTION_NAMES:
            options[key] = value
        elif key == "response_format":
            fmt = _format(value)
            if fmt is not None:
                body["format"] = fmt
        else:
            body[key] = value
    merged = {**(given or {}), **options}
    if merged:
        body["options"] = merged
    return body


def _images_and_text(parts: list[Any]) -> tuple[str, list[str]]:
    """OpenAI-style content parts as Ollama's text and base64 ``images``."""
    texts: list[str] = []
    images: list[str] = []
    for part in parts:
        if not isinstance(part, Mapping):
            raise InvalidArgumentError(f"a content part must be a dict, got {part!r:.80}")
        if "text" in part:
            texts.append(str(part["text"]))
            continue
        url = part.get("image_url")
        url = url.get("url") if isinstance(url, Mapping) else url
        if isinstance(url, str) and url.startswith("data:") and "," in url:
            images.append(url.split(",", 1)[1])
        else:
            raise InvalidArgumentError(
                "Ollama takes images as base64: give image parts as "
                "{'type': 'image_url', 'image_url': {'url': 'data:image/png;base64,...'}}"
            )
    return "".join(texts), images


def _arguments(call: ToolCall) -> Any:
    try:
        return json.loads(call.arguments or "{}")
    except ValueError:
        raise InvalidArgumentError(
            f"tool call {call.name!r} has arguments that are not JSON: {call.arguments[:100]!r}"
        ) from None


def message(m: Message) -> dict[str, Any]:
    """One core message as an Ollama chat message."""
    out: dict[str, Any] = {"role": _ROLES.get(m.role, m.role)}
    if isinstance(m.content, list):
        out["content"], images = _images_and_text(m.content)
        if images:
            out["images"] = images
    else:
        out["content"] = m.content or ""
    if m.tool_calls:
        out["tool_calls"] = [
            {
                **({"id": c.id} if c.id else {}),
                "function": {"name": c.name, "arguments": _arguments(c)},
            }
            for c in m.tool_calls
        ]
    if out["role"] == "tool" and m.name:
        out["tool_name"] = m.name
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    return out


def chat_body(
    model: str, messages: tuple[Message, ...], params: Mapping[str, Any], *, stream: bool
) -> dict[str, Any]:
    """The ``/api/chat`` body. ``stream`` is always sent: Ollama streams unless told not to."""
    return {
        "model": model,
        "messages": [message(m) for m in messages],
        **fields(params),
        "stream": stream,
    }


def generate_body(
    model: str, prompt: str, params: Mapping[str, Any], *, stream: bool
) -> dict[str, Any]:
    """The ``/api/generate`` body."""
    return {"model": model, "prompt": prompt, **fields(params), "stream": stream}


# --- replies -------------------------------------------------------------------------------


def usage(body: Mapping[str, Any]) -> Usage | None:
    """The counters of a final reply: ``prompt_eval_count`` and ``eval_count`` as tokens,
    the durations (nanoseconds, as Ollama reports them) in ``extra``."""
    timings = {k: body[k] for k in _TIMINGS if isinstance(body.get(k), (int, float))}
    p, c = body.get("prompt_eval_count"), body.get("eval_count")
    if p is None and c is None and not timings:
        return None
    for name, value in (("prompt_eval_count", p), ("eval_count", c)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise _bad(f"{name} is not an integer", body)
    base = Usage.of(p, c)
    return Usage(base.prompt_tokens, base.completion_tokens, base.total_tokens, timings)


def _object(body: Any, what: str) -> dict[str, Any]:
    if type(body) is not dict:
        raise _bad(f"the {what} is not a JSON object", body)
    if "error" in body:
        raise stream_error(body, NAME)
    return body


def _raw_calls(msg: Mapping[str, Any], body: Any) -> list[Mapping[str, Any]]:
    calls = msg.get("tool_calls") or []
    if not isinstance(calls, list) or not all(
        isinstance(c, Mapping) and isinstance(c.get("function"), Mapping) for c in calls
    ):
        raise _bad("tool_calls is not a list of function calls", body)
    return calls


def _args_text(fn: Mapping[str, Any]) -> str:
    args = fn.get("arguments", {})
    return args if isinstance(args, str) else json.dumps(args)


def _message_of(body: dict[str, Any]) -> tuple[str, list[Mapping[str, Any]]]:
    msg = body.get("message")
    if type(msg) is not dict:
        if body.get("done") and msg is None:  # a final line may carry no message
            return "", []
        raise _bad("the chat reply has no message", body)
    content = msg.get("content") or ""
    if not isinstance(content, str):
        raise _bad("the message content is not text", body)
    return content, _raw_calls(msg, body)


def parse_chat(body: Any) -> ChatResponse:
    """A non-streamed ``/api/chat`` reply as a ChatResponse."""
    body = _object(body, "chat reply")
    text, raw_calls = _message_of(body)
    calls = tuple(
        ToolCall(
            id=str(c.get("id") or f"call_{i}"),
            name=str(c["function"].get("name", "")),
            arguments=_args_text(c["function"]),
        )
        for i, c in enumerate(raw_calls)
    )
    return ChatResponse(
        text=text,
        model=body.get("model"),
        finish_reason="tool_calls" if calls else body.get("done_reason"),
        usage=usage(body),
        tool_calls=calls,
        raw=body,
    )


def chat_parser() -> EventParser:
    """A parser for one ``/api/chat`` NDJSON stream: text, tool calls (numbered across the
    stream), and the final ``done`` line's reason and counters."""
    seen = 0

    def parse(event: Any) -> StreamChunk | StreamEnd | None:
        nonlocal seen
        obj = _object(event, "stream line")
        msg = obj.get("message")
        if type(msg) is dict and not msg.get("tool_calls") and obj.get("done") is not True:
            text = msg.get("content") or ""  # the common line, a text delta: the fast build
            if type(text) is str:
                return text_chunk(text, obj.get("model"), obj)
        text, raw_calls = _message_of(obj)
        deltas = []
        for c in raw_calls:
            fn = c["function"]
            deltas.append(
                ToolCallDelta(
                    index=seen,
                    id=str(c.get("id") or f"call_{seen}"),
                    name=str(fn.get("name", "")),
                    arguments=_args_text(fn),
                )
            )
            seen += 1
        done = obj.get("done") is True
        reason = ("tool_calls" if seen else obj.get("done_reason")) if done else None
        return StreamChunk(
            text=text,
            done=done,
            finish_reason=reason,
            usage=usage(obj) if done else None,
            tool_calls=tuple(deltas),
            model=obj.get("model"),
            raw=obj,
        )

    return parse


def _generated(obj: dict[str, Any]) -> str:
    text = obj.get("response", "")
    if not isinstance(text, str):
        raise _bad("the generate reply's response is not text", obj)
    return text


def parse_generate(body: Any) -> GenerateResponse:
    """A non-streamed ``/api/generate`` reply as a GenerateResponse."""
    body = _object(body, "generate reply")
    if "response" not in body:
        raise _bad("the generate reply has no response", body)
    return GenerateResponse(
        text=_generated(body),
        model=body.get("model"),
        finish_reason=body.get("done_reason"),
        usage=usage(body),
        raw=body,
    )


def generate_event(event: Any) -> StreamChunk | StreamEnd | None:
    """One ``/api/generate`` NDJSON line as a chunk."""
    obj = _object(event, "stream line")
    if obj.get("done") is not True:  # a text delta: the fast build
        return text_chunk(_generated(obj), obj.get("model"), obj)
    return StreamChunk(
        text=_generated(obj),
        done=True,
        finish_reason=obj.get("done_reason"),
        usage=usage(obj),
        model=obj.get("model"),
        raw=obj,
    )


def _vector(value: Any, body: Any) -> list[float]:
    if not isinstance(value, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        raise _bad("an embedding is not a list of numbers", body)
    return [float(v) for v in value]


def embed_parser(count: int) -> Callable[[Any], EmbeddingResponse]:
    """The parser of an ``/api/embed`` reply carrying ``count`` vectors."""

    def parse(body: Any) -> EmbeddingResponse:
        body = _object(body, "embed reply")
        vectors = body.get("embeddings")
        if not isinstance(vectors, list):
            raise _bad("the embed reply has no embeddings list", body)
        out = [_vector(v, body) for v in vectors]
        if len(out) != count:
            raise _bad(f"asked for {count} embeddings, got {len(out)}", body)
        return EmbeddingResponse(
            embeddings=out, model=body.get("model"), usage=usage(body), raw=body
        )

    return parse


def parse_legacy(body: Any) -> EmbeddingResponse:
    """A legacy ``/api/embeddings`` reply (``{"embedding": [...]}``, one vector, no counts)."""
    body = _object(body, "embeddings reply")
    if "embedding" not in body:
        raise _bad("the embeddings reply has no embedding", body)
    return EmbeddingResponse(embeddings=[_vector(body["embedding"], body)], raw=body)


def parse_tags(body: Any) -> list[ModelInfo]:
    """An ``/api/tags`` reply as ModelInfo, one per local model."""
    body = _object(body, "tags reply")
    models = body.get("models")
    if not isinstance(models, list):
        raise _bad("the tags reply has no models list", body)
    out = []
    for item in models:
        name = item.get("name") or item.get("model") if isinstance(item, Mapping) else None
        if not isinstance(name, str) or not name:
            raise _bad("a model entry has no name", body)
        details = item.get("details") if isinstance(item.get("details"), Mapping) else {}
        described = [details.get(k) for k in ("family", "parameter_size", "quantization_level")]
        out.append(
            ModelInfo(
                id=name,
                description=" ".join(str(d) for d in described if d) or None,
                raw=item,
            )
        )
    return out


def parse_object(body: Any) -> dict[str, Any]:
    """A reply that must be a JSON object (``/api/show``, ``/api/version``), as a dict."""
    return _object(body, "reply")
