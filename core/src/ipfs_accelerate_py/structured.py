"""Structured outputs on any backend: ``response_format`` with a JSON schema, checked in core.

A call asks for structured output the OpenAI way::

    response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": {...}}}

Each plugin maps that to its provider's mechanism (OpenAI ``json_schema``, Gemini
``responseJsonSchema``, Ollama ``format``). A deployment whose plugin has no mapping can ask
core for *forced tool use* instead (``structured_output="tools"``): the schema becomes the
parameters of one function the model must call, and the call's arguments are the reply. The
router validates every reply against the schema with :func:`validate` (the subset of JSON
Schema providers support) and, unless turned off, asks once more with the validation errors
before giving up with :class:`StructuredOutputError`. So a fallback from one provider to
another keeps the same contract.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .errors import InvalidArgumentError, MalformedResponseError
from .types import ChatResponse, Message, Usage

__all__ = [
    "MODES",
    "StructuredOutputError",
    "StructuredSpec",
    "feedback_messages",
    "parse_reply",
    "spec_of",
    "to_tool_params",
    "validate",
]

MODES = ("native", "tools")
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list, tuple),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


class StructuredOutputError(MalformedResponseError):
    """The model's reply is not JSON matching the requested schema (after the retry);
    ``errors`` lists what is wrong and ``text`` holds the reply."""

    label = "Structured output invalid"

    def __init__(
        self,
        message: str,
        *,
        errors: Sequence[str] = (),
        text: str = "",
        usage: Usage | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.errors = list(errors)
        self.text = text
        self.usage = usage  # what the invalid replies cost


@attrs.frozen(slots=True)
class StructuredSpec:
    """What a call's ``response_format`` asks for: a name and a schema (``None``: any JSON)."""

    name: str
    schema: Mapping[str, Any] | None


def spec_of(response_format: Any) -> StructuredSpec | None:
    """The structured-output request in ``response_format``; ``None`` for plain text."""
    if response_format is None:
        return None
    if not isinstance(response_format, Mapping):
        raise InvalidArgumentError(
            f"response_format must be a dict, got {type(response_format).__name__}"
        )
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return StructuredSpec("json_object", None)
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise InvalidArgumentError(
                "response_format json_schema needs {'json_schema': {'name': ..., 'schema': {...}}}"
            )
        assert isinstance(spec, Mapping)
        return StructuredSpec(str(spec.get("name") or "structured_reply"), schema)
    raise InvalidArgumentError(
        f"response_format type must be 'text', 'json_object' or 'json_schema', got {kind!r}"
    )


def to_tool_params(params: Mapping[str, Any], spec: StructuredSpec) -> dict[str, Any]:
    """``params`` with ``response_format`` replaced by one function the model must call, whose
    parameters are the schema (forced tool use: how Anthropic models return structured data)."""
    out = {k: v for k, v in params.items() if k != "response_format"}
    schema = spec.schema if spec.schema is not None else {"type": "object"}
    tool = {
        "type": "function",
        "function": {
            "name": spec.name,
            "description": "Return the answer as this function's arguments.",
            "parameters": dict(schema),
        },
    }
    out["tools"] = [*(out.get("tools") or ()), tool]
    out["tool_choice"] = {"type": "function", "function": {"name": spec.name}}
    return out


def _strip_fences(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        first = text.find("\n")
        last = text.rfind("```")
        if first != -1 and last > first:
            return text[first + 1 : last].strip()
    return text


def parse_reply(reply: ChatResponse, spec: StructuredSpec, mode: str) -> tuple[str, Any, list[str]]:
    """The reply's JSON text, its decoded value and the schema violations (empty: valid).
    In ``tools`` mode the text is the forced call's arguments."""
    text = reply.text or ""
    if mode == "tools":
        calls = [c for c in reply.tool_calls if c.name == spec.name] or list(reply.tool_calls)
        if calls:
            text = calls[0].arguments
    text = _strip_fences(text)
    try:
        value = json.loads(text)
    except ValueError as exc:
        return text, None, [f"the reply is not valid JSON ({exc})"]
    if spec.schema is None:
        return text, value, []
    return text, value, validate(value, spec.schema)


def feedback_messages(
    messages: Sequence[Message], text: str, errors: Sequence[str]
) -> list[Message]:
    """The conversation for the one retry: the invalid reply, then what is wrong with it."""
    listed = "; ".join(errors[:10])
    return [
        *messages,
        Message("assistant", text or "(empty reply)"),
        Message(
            "user",
            f"That reply does not match the required JSON schema: {listed}. "
            "Reply again with only the corrected JSON.",
        ),
    ]


def validate(value: Any, schema: Mapping[str, Any], path: str = "$") -> list[str]:
    """Check ``value`` against the JSON Schema subset providers support: ``type`` (or a list
    of types), ``nullable``, ``enum``, ``const``, ``properties``, ``required``,
    ``additionalProperties`` (bool or schema), ``items``, ``anyOf``/``oneOf``, ``minItems``/
    ``maxItems``, ``minimum``/``maximum``. Returns the violations with their JSON paths."""
    errors: list[str] = []
    if value is None and schema.get("nullable"):
        return []
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if (
            isinstance(options, list)
            and options
            and not any(not validate(value, option, path) for option in options)
        ):
            errors.append(f"{path}: matches none of the {key} alternatives")
            return errors
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: must be {schema['const']!r}")
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        errors.append(f"{path}: {value!r} is not one of {enum!r}")
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_is_type(value, str(k)) for k in kinds):
            errors.append(f"{path}: expected {' or '.join(map(str, kinds))}, got {_name(value)}")
            return errors
    if isinstance(value, dict):
        errors.extend(_object(value, schema, path))
    elif isinstance(value, (list, tuple)):
        items = schema.get("items")
        for i, item in enumerate(value):
            if isinstance(items, Mapping):
                errors.extend(validate(item, items, f"{path}[{i}]"))
        low, high = schema.get("minItems"), schema.get("maxItems")
        if isinstance(low, int) and len(value) < low:
            errors.append(f"{path}: needs at least {low} items")
        if isinstance(high, int) and len(value) > high:
            errors.append(f"{path}: allows at most {high} items")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        low, high = schema.get("minimum"), schema.get("maximum")
        if isinstance(low, (int, float)) and value < low:
            errors.append(f"{path}: must be >= {low}")
        if isinstance(high, (int, float)) and value > high:
            errors.append(f"{path}: must be <= {high}")
    return errors


def _object(value: dict[str, Any], schema: Mapping[str, Any], path: str) -> list[str]:
    errors: list[str] = []
    props = schema.get("properties")
    props = props if isinstance(props, Mapping) else {}
    for name in schema.get("required") or ():
        if name not in value:
            errors.append(f"{path}: missing required property {name!r}")
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        sub = props.get(name)
        if isinstance(sub, Mapping):
            errors.extend(validate(item, sub, f"{path}.{name}"))
        elif extra is False:
            errors.append(f"{path}: property {name!r} is not allowed")
        elif isinstance(extra, Mapping):
            errors.extend(validate(item, extra, f"{path}.{name}"))
    return errors


def _is_type(value: Any, kind: str) -> bool:
    if isinstance(value, bool) and kind in ("integer", "number"):
        return False
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    types = _TYPES.get(kind)
    return True if types is None else isinstance(value, types)


def _name(value: Any) -> str:
    for kind, types in _TYPES.items():
        if kind != "number" and _is_type(value, kind) and isinstance(value, types):
            return kind
    return "number" if isinstance(value, float) else type(value).__name__
