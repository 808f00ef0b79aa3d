"""Value types shared by every backend: messages, results, stream chunks, usage, models.

Plugins translate between these and their provider's wire format; users get them back from
:class:`~ipfs_accelerate_py.backend.Backend`. Each result also reads like the plain dict the
quickstart guide shows (``response["text"]``) and converts with ``to_dict()``.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from .errors import InvalidArgumentError, MalformedResponseError

if TYPE_CHECKING:
    from attrs import field, frozen
    from typing_extensions import TypeVar as _TypeVarWithDefault

    # bare ``EmbeddingResponse`` means lists, so annotations without a parameter stay valid
    Vectors = _TypeVarWithDefault("Vectors", covariant=True, default=list[list[float]])
else:
    from .fastattrs import field, frozen

    Vectors = TypeVar("Vectors", covariant=True)

_Row = TypeVar("_Row", covariant=True)

__all__ = [
    "ChatRequest",
    "ChatResponse",
    "EmbedRequest",
    "EmbeddingResponse",
    "GenerateRequest",
    "GenerateResponse",
    "ImageResponse",
    "Message",
    "ModelInfo",
    "StreamChunk",
    "ToolCall",
    "Usage",
    "text_chunk",
    "token_count",
]

_ROLES = frozenset(("system", "user", "assistant", "tool", "developer", "function", "model"))


class _DictView:
    """Seed-style read access: ``result["text"]``, ``result.get("usage")``, ``"text" in result``."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value for ``key`` in :meth:`to_dict`, or ``default``."""
        return self.to_dict().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.to_dict()

    def keys(self) -> Iterable[str]:
        """The keys of :meth:`to_dict`."""
        return self.to_dict().keys()


@frozen(slots=True)
class ToolCall:
    """A function call the model asked for; ``arguments`` is the JSON text the model wrote."""

    id: str
    name: str
    arguments: str = "{}"
    type: str = "function"

    def parsed_arguments(self) -> Any:
        """The arguments decoded from JSON; a clear error if the model wrote invalid JSON."""
        try:
            return json.loads(self.arguments or "{}")
        except ValueError as exc:
            raise MalformedResponseError(
                f"tool call {self.name!r} has arguments that are not valid JSON: "
                f"{self.arguments[:200]!r} ({exc})"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI-style dict form."""
        return {
            "id": self.id,
            "type": self.type,
            "function": {"name": self.name, "arguments": self.arguments},
        }


_NO_EXTRA: Mapping[str, Any] = MappingProxyType({})
_MESSAGE_FIELDS = frozenset(("role", "content", "name", "tool_calls", "tool_call_id"))


@frozen(slots=True)
class Message:
    """One chat message. ``content`` is text, or a list of provider-style content parts.

    ``extra`` keeps every other field of a message dict (``function_call``, ``refusal``,
    ``cache_control``, ``audio``...) as given; :meth:`to_dict` passes them on, so they reach
    an OpenAI-compatible server unchanged.
    """

    role: str
    content: str | list[Any] | None = None
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    extra: Mapping[str, Any] = _NO_EXTRA

    @classmethod
    def coerce(cls, value: Message | Mapping[str, Any]) -> Message:
        """Build a message from a dict like ``{"role": "user", "content": "Hi"}``."""
        if type(value) is dict and len(value) == 2:  # the common {"role", "content"} form
            role, content = value.get("role"), value.get("content")
            if role in _ROLES and type(content) is str:
                return cls(role, content)
        if isinstance(value, Message):
            return value
        if not isinstance(value, Mapping):
            raise InvalidArgumentError(
                f"each message must be a dict with 'role' and 'content', got {type(value).__name__}"
            )
        role = value.get("role")
        if role not in _ROLES:
            raise InvalidArgumentError(
                f"message role must be one of {sorted(_ROLES)}, got {role!r}"
            )
        content = value.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise InvalidArgumentError(
                f"message content must be a string or a list of parts, got {type(content).__name__}"
            )
        calls = value.get("tool_calls") or ()
        if isinstance(calls, (str, bytes, Mapping)) or not isinstance(calls, (list, tuple)):
            raise InvalidArgumentError(
                f"message tool_calls must be a list of tool calls, got {type(calls).__name__}"
            )
        return cls(
            role=role,
            content=content,
            name=value.get("name"),
            tool_calls=tuple(_coerce_tool_call(c) for c in calls),
            tool_call_id=value.get("tool_call_id"),
            extra={k: v for k, v in value.items() if k not in _MESSAGE_FIELDS} or _NO_EXTRA,
        )

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI-style dict form, omitting empty fields."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.name is not None:
            out["name"] = self.name
        if self.tool_calls:
            out["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.extra:
            for key, value in self.extra.items():
                out.setdefault(key, value)  # never overrides a field above
        return out

    def text(self) -> str:
        """The message's text: the content string, or its text parts joined."""
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "".join(
            p.get("text", "") for p in self.content if isinstance(p, Mapping) and "text" in p
        )


def _coerce_tool_call(value: ToolCall | Mapping[str, Any]) -> ToolCall:
    if isinstance(value, ToolCall):
        return value
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(
            "each tool call must be a dict like {'id': ..., 'type': 'function', "
            f"'function': {{'name': ..., 'arguments': '...'}}}}, got {type(value).__name__}"
        )
    fn = value.get("function") or {}
    if not isinstance(fn, Mapping):
        raise InvalidArgumentError(
            f"a tool call's 'function' must be a dict with 'name' and 'arguments', "
            f"got {type(fn).__name__}"
        )
    args = fn.get("arguments", "{}")
    if not isinstance(args, str):
        try:
            args = json.dumps(args)
        except (TypeError, ValueError, RecursionError) as exc:
            what = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise InvalidArgumentError(
                f"a tool call's arguments could not be encoded as JSON: {what}"
            ) from None
    return ToolCall(
        id=str(value.get("id", "")),
        name=str(fn.get("name", "")),
        arguments=args,
        type=str(value.get("type", "function")),
    )


MAX_TOKENS = 10**12
"""The largest token count believed from a reply; anything above it reads as 0."""


def token_count(value: Any) -> int:
    """A token count from a reply as a sane int: a number from 0 to :data:`MAX_TOKENS`
    (a fractional one truncated) or a string of digits; anything else (negative, absurd,
    NaN, a bool, junk) is 0."""
    if type(value) is int:
        return value if 0 <= value <= MAX_TOKENS else 0
    if isinstance(value, str):
        digits = value.strip()
        # ASCII digits only ("²".isdigit() is True, and int() refuses it), and not so many
        # that int() refuses them (4,300): more than 13 is above MAX_TOKENS anyway
        value = int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 13 else 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    return int(value) if 0 <= value <= MAX_TOKENS else 0  # NaN compares False: 0


@frozen(slots=True)
class Usage:
    """Token counts for one call; ``extra`` keeps provider-specific figures (e.g. ``x_groq``)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    extra: Mapping[str, Any] = field(factory=dict)

    @classmethod
    def of(cls, prompt: Any, completion: Any, total: Any = None) -> Usage:
        """Build usage from possibly missing counts; the total defaults to the sum.

        Counts are what a provider's reply says, so nonsense is not trusted: a negative,
        non-numeric or absurd (above :data:`MAX_TOKENS`) count reads as 0, a fractional
        one is truncated (:func:`token_count`), and a total below the sum is the sum.
        """
        p = prompt if type(prompt) is int and 0 <= prompt <= MAX_TOKENS else token_count(prompt)
        c = (
            completion
            if type(completion) is int and 0 <= completion <= MAX_TOKENS
            else token_count(completion)
        )
        if total is None:
            t = p + c
        else:
            t = total if type(total) is int and 0 <= total <= MAX_TOKENS else token_count(total)
        if cls is not Usage:
            return cls(p, c, t if t >= p + c else p + c)
        usage: Usage = _new(Usage)  # the frozen __init__, without its generic setattr
        _set_prompt(usage, p)
        _set_completion(usage, c)
        _set_total(usage, t if t >= p + c else p + c)
        _set_extra(usage, {})
        return usage

    def merge(self, later: Usage) -> Usage:
        """This usage updated by a later report of the same call: counts the later one
        gives (non-zero) replace, the others are kept (Anthropic sends input tokens first and
        output tokens at the end); ``extra`` is merged key by key."""
        p = later.prompt_tokens or self.prompt_tokens
        c = later.completion_tokens or self.completion_tokens
        total = max(later.total_tokens, p + c)
        same = p == later.prompt_tokens and c == later.completion_tokens
        if same and total == later.total_tokens and not self.extra:
            return later  # a complete report (Gemini sends one per stream event)
        extra = {**self.extra, **later.extra} if later.extra else self.extra
        return _usage(p, c, total, extra)

    def to_dict(self) -> dict[str, Any]:
        """``{"prompt_tokens", "completion_tokens", "total_tokens", ...extra}``."""
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        out.update(self.extra)
        return out


@frozen(slots=True)
class ChatResponse(_DictView):
    """A chat completion: the text, why it stopped, token usage, tool calls and the raw body."""

    text: str
    model: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    id: str | None = None
    raw: Any = field(default=None, repr=False, eq=False)

    def to_dict(self) -> dict[str, Any]:
        """``{"text", "model", "finish_reason", "usage", "tool_calls", "id"}``."""
        return {
            "text": self.text,
            "model": self.model,
            "finish_reason": self.finish_reason,
            "usage": self.usage.to_dict() if self.usage else {},
            "tool_calls": [c.to_dict() for c in self.tool_calls],
            "id": self.id,
        }


@frozen(slots=True)
class ToolCallDelta:
    """A piece of a tool call arriving in a stream; pieces with one ``index`` concatenate."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@frozen(slots=True)
class StreamChunk(_DictView):
    """One piece of a streamed reply. The last chunk has ``done=True``, the finish reason and,
    when the provider reports it, the usage of the whole call."""

    text: str = ""
    done: bool = False
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()
    model: str | None = None
    raw: Any = field(default=None, repr=False, eq=False)

    def to_dict(self) -> dict[str, Any]:
        """``{"text", "done", "finish_reason", "usage"}``."""
        return {
            "text": self.text,
            "done": self.done,
            "finish_reason": self.finish_reason,
            "usage": self.usage.to_dict() if self.usage else None,
        }


def _setter(cls: type, name: str) -> Any:
    """The ``__set__`` of slot ``name`` of a frozen slotted class: setting slots directly
    skips the frozen class's generic ``__init__`` (about twice as fast)."""
    return vars(cls)[name].__set__


_new = object.__new__
_set_text, _set_done, _set_finish, _set_usage, _set_calls, _set_model, _set_raw = (
    _setter(StreamChunk, name)
    for name in ("text", "done", "finish_reason", "usage", "tool_calls", "model", "raw")
)
_set_prompt, _set_completion, _set_total, _set_extra = (
    _setter(Usage, name) for name in ("prompt_tokens", "completion_tokens", "total_tokens", "extra")
)


def _usage(prompt: int, completion: int, total: int, extra: Mapping[str, Any]) -> Usage:
    """``Usage(prompt, completion, total, extra)`` for checked counts, without ``__init__``."""
    usage: Usage = _new(Usage)
    _set_prompt(usage, prompt)
    _set_completion(usage, completion)
    _set_total(usage, total)
    _set_extra(usage, extra)
    return usage


def text_chunk(
    text: str, model: str | None = None, raw: Any = None, usage: Usage | None = None
) -> StreamChunk:
    """``StreamChunk(text, usage=usage, model=model, raw=raw)``: a text delta (not done, no
    finish reason or tool calls), built without the frozen class's generic ``__init__``
    (about twice as fast). Stream parsers call this once per event, so it is the per-chunk
    fast path; the result is an ordinary StreamChunk."""
    chunk: StreamChunk = _new(StreamChunk)
    _set_text(chunk, text)
    _set_done(chunk, False)
    _set_finish(chunk, None)
    _set_usage(chunk, usage)
    _set_calls(chunk, ())
    _set_model(chunk, model)
    _set_raw(chunk, raw)
    return chunk


class _Rows(Protocol[_Row]):
    def __getitem__(self, index: int, /) -> _Row: ...


def _vectors_key(vectors: Any) -> Any:
    """Vectors compared by value whatever their representation (an array's ``==`` is
    element-wise, which ``attrs``' equality cannot use)."""
    if type(vectors) is list:
        return vectors
    tolist = getattr(vectors, "tolist", None)
    return tolist() if tolist is not None else list(vectors)


@frozen(slots=True)
class EmbeddingResponse(_DictView, Generic[Vectors]):
    """Embedding vectors, one per input text, in input order.

    ``embeddings`` is a list of lists of Python floats (``EmbeddingResponse[list[list[float]]]``,
    what a bare ``EmbeddingResponse`` annotation means), or, when the call asked for
    ``output="numpy"``, one 2-D ``numpy.ndarray`` of float32 with a row per input
    (``EmbeddingResponse[numpy.typing.NDArray[numpy.float32]]``).
    """

    embeddings: Vectors = field(eq=_vectors_key)
    model: str | None = None
    usage: Usage | None = None
    raw: Any = field(default=None, repr=False, eq=False)

    @property
    def embedding(self: EmbeddingResponse[_Rows[_Row]]) -> _Row:
        """The first (or only) vector: a list of floats, or a 1-D array row with numpy."""
        return self.embeddings[0]

    def to_dict(self) -> dict[str, Any]:
        """``{"embedding": first vector, "embeddings": all, "model", "usage"}``; the vectors
        as held (a numpy array and its first row when the call asked for numpy)."""
        vectors: Any = self.embeddings
        return {
            "embedding": vectors[0] if len(vectors) else [],
            "embeddings": vectors,
            "model": self.model,
            "usage": self.usage.to_dict() if self.usage else {},
        }


def decode_base64_floats(data: str, *, provider: str | None = None) -> list[float]:
    """Decode a base64 string of little-endian float32 values (OpenAI's ``base64`` format)."""
    import array

    try:
        raw = base64.b64decode(data, validate=True)
    except (ValueError, TypeError) as exc:
        raise MalformedResponseError(
            f"embedding is not valid base64: {exc}", provider=provider
        ) from None
    if len(raw) % 4:
        raise MalformedResponseError(
            f"base64 embedding has {len(raw)} bytes, not a whole number of float32 values",
            provider=provider,
        )
    values = array.array("f")
    values.frombytes(raw)
    if sys.byteorder != "little":
        values.byteswap()
    return values.tolist()


@frozen(slots=True)
class ImageResponse(_DictView):
    """Generated images: URLs and/or base64 payloads, with any revised prompts."""

    urls: list[str] = field(factory=list)
    b64_images: list[str] = field(factory=list, repr=False)
    revised_prompts: list[str] = field(factory=list)
    model: str | None = None
    raw: Any = field(default=None, repr=False, eq=False)

    def image_bytes(self) -> list[bytes]:
        """The base64 images decoded to bytes."""
        return [base64.b64decode(b) for b in self.b64_images]

    def to_dict(self) -> dict[str, Any]:
        """``{"urls", "b64_json", "revised_prompts", "model"}``."""
        return {
            "urls": self.urls,
            "b64_json": self.b64_images,
            "revised_prompts": self.revised_prompts,
            "model": self.model,
        }


@frozen(slots=True)
class GenerateResponse(_DictView):
    """Text generated from a bare prompt (TGI ``/generate``, Ollama ``/api/generate``...)."""

    text: str
    model: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    raw: Any = field(default=None, repr=False, eq=False)

    def to_dict(self) -> dict[str, Any]:
        """``{"text", "generated_text", "model", "finish_reason", "usage"}``."""
        return {
            "text": self.text,
            "generated_text": self.text,
            "model": self.model,
            "finish_reason": self.finish_reason,
            "usage": self.usage.to_dict() if self.usage else {},
        }


@frozen(slots=True)
class ModelInfo(_DictView):
    """A model a backend offers."""

    id: str
    owned_by: str | None = None
    created: int | None = None
    context_window: int | None = None
    description: str | None = None
    category: str | None = None
    raw: Any = field(default=None, repr=False, eq=False)

    def to_dict(self) -> dict[str, Any]:
        """``{"id", "owned_by", "created", "context_window", "description", "category"}``."""
        return {
            "id": self.id,
            "owned_by": self.owned_by,
            "created": self.created,
            "context_window": self.context_window,
            "description": self.description,
            "category": self.category,
        }


# --- requests: what the backend hands a plugin's hook --------------------------------------


@frozen(slots=True)
class ChatRequest:
    """A chat call: model, messages and generation parameters (``temperature``, ``tools``...)."""

    model: str
    messages: tuple[Message, ...]
    params: Mapping[str, Any] = field(factory=dict)


@frozen(slots=True)
class EmbedRequest:
    """An embedding call: one vector is wanted per input text.

    ``encoding_format`` is what the caller asked to travel on the wire (``"float"`` or
    ``"base64"``), or ``None`` when they named none: the plugin then picks (OpenAI-compatible
    plugins ask for base64 where the server supports it). The caller gets float vectors
    either way. ``output`` is how they get them: ``"list"`` (lists of floats) or ``"numpy"``
    (one float32 array); a plugin may return either, and core converts to what was asked.
    """

    model: str
    inputs: tuple[str, ...]
    encoding_format: str | None = None
    params: Mapping[str, Any] = field(factory=dict)
    output: str = "list"


@frozen(slots=True)
class GenerateRequest:
    """A generation from a bare prompt; ``kind`` is ``"text"`` or ``"image"``."""

    model: str
    prompt: str
    kind: str = "text"
    params: Mapping[str, Any] = field(factory=dict)


def coerce_messages(messages: Any) -> list[Message]:
    """Coerce a list of dicts or messages, with a clear error for anything else."""
    if type(messages) is not list and (
        isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Iterable)
    ):
        raise InvalidArgumentError(
            "messages must be a list of dicts like [{'role': 'user', 'content': 'Hi'}], "
            f"got {type(messages).__name__}"
        )
    return [Message.coerce(m) for m in messages]
