"""Core requests -> Gemini request bodies (``generateContent``, ``embedContent``).

Roles: ``assistant`` becomes ``model``; ``system`` (and ``developer``) messages become the
``systemInstruction``; ``tool`` messages become ``functionResponse`` parts of a user turn.
Generation parameters map to ``generationConfig`` (``max_tokens`` -> ``maxOutputTokens``,
``stop`` -> ``stopSequences``, ``n`` -> ``candidateCount``, JSON mode -> ``responseMimeType``);
OpenAI-style ``tools``/``tool_choice`` map to ``functionDeclarations``/``toolConfig``.
Unknown parameters are refused before anything is sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ipfs_accelerate_py.errors import InvalidArgumentError
from ipfs_accelerate_py.types import Message

from .media import image_part, url_part

__all__ = ["SYNTHETIC_ID", "contents_body", "embed_request", "model_path", "plain_model"]

SYNTHETIC_ID = "gemini-call-"  # prefix of tool-call ids we made up (Gemini sent none)

# snake_case (OpenAI-style) parameter -> generationConfig field
_GENERATION = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "max_tokens": "maxOutputTokens",
    "max_completion_tokens": "maxOutputTokens",
    "max_output_tokens": "maxOutputTokens",
    "n": "candidateCount",
    "candidate_count": "candidateCount",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "response_mime_type": "responseMimeType",
    "response_schema": "responseSchema",
    "response_json_schema": "responseJsonSchema",
    "response_modalities": "responseModalities",
    "response_logprobs": "responseLogprobs",
    "logprobs": "logprobs",
    "thinking_config": "thinkingConfig",
    "media_resolution": "mediaResolution",
    "speech_config": "speechConfig",
}
# snake_case parameter -> top-level request field, passed as given
_TOP_LEVEL = {
    "safety_settings": "safetySettings",
    "cached_content": "cachedContent",
    "tool_config": "toolConfig",
}
_TOOL_CHOICE = {"auto": "AUTO", "none": "NONE", "required": "ANY", "any": "ANY"}
_NATIVE_PART_KEYS = frozenset(
    ("text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode")
)


def plain_model(model: str) -> str:
    """The model id without the ``models/`` prefix (how prices and stats name it)."""
    return model.removeprefix("models/")


def model_path(model: str) -> str:
    """The resource name: ``gemini-2.5-flash`` -> ``models/gemini-2.5-flash``; a name that
    already has a collection (``models/...``, ``tunedModels/...``) is kept."""
    return model if "/" in model else f"models/{model}"


# --- messages -------------------------------------------------------------------------------


def _part(part: Any) -> dict[str, Any]:
    """One content part: text, image bytes, an OpenAI-style ``image_url``, or a native part."""
    if isinstance(part, str):
        return {"text": part}
    if isinstance(part, (bytes, bytearray, memoryview)):
        return image_part(bytes(part))
    if not isinstance(part, Mapping):
        raise InvalidArgumentError(
            f"a content part must be a string, bytes or a dict, got {type(part).__name__}"
        )
    kind = part.get("type")
    if kind == "text" or (kind is None and set(part) == {"text"}):
        return {"text": str(part.get("text", ""))}
    if kind == "image_url":
        ref = part.get("image_url")
        url = ref.get("url") if isinstance(ref, Mapping) else ref
        if not isinstance(url, str):
            raise InvalidArgumentError("an image_url part needs image_url.url (a string)")
        return url_part(url)
    if kind == "image":
        data = part.get("data", part.get("image"))
        if isinstance(data, (bytes, bytearray, memoryview)):
            return image_part(bytes(data))
        raise InvalidArgumentError("an image part needs its bytes in 'data'")
    if kind is None and _NATIVE_PART_KEYS.intersection(part):
        return dict(part)  # already in Gemini's form
    raise InvalidArgumentError(f"unsupported content part type {kind!r}")


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    return [_part(p) for p in content]


def _tool_response(message: Message, names: Mapping[str, str]) -> dict[str, Any]:
    call_id = message.tool_call_id
    name = message.name or (names.get(call_id) if call_id else None)
    if not name:
        raise InvalidArgumentError(
            "a tool message needs the function's name: give 'name', or a 'tool_call_id' "
            "of an earlier assistant tool call"
        )
    text = message.text()
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    response = value if isinstance(value, dict) else {"result": value}
    out: dict[str, Any] = {"name": name, "response": response}
    if call_id and not call_id.startswith(SYNTHETIC_ID):
        out["id"] = call_id
    return {"functionResponse": out}


def _model_turn(message: Message) -> list[dict[str, Any]]:
    parts = _parts(message.content)
    for call in message.tool_calls:
        fn: dict[str, Any] = {"name": call.name, "args": call.parsed_arguments() or {}}
        if call.id and not call.id.startswith(SYNTHETIC_ID):
            fn["id"] = call.id
        parts.append({"functionCall": fn})
    return parts


def contents_body(messages: tuple[Message, ...]) -> dict[str, Any]:
    """``contents`` (and ``systemInstruction``) for a message list."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, for tool results
    answering = False  # the last turn holds tool results: parallel results share it
    for message in messages:
        role = message.role
        if role in ("system", "developer"):
            system.extend(_parts(message.content))
            continue
        if role in ("tool", "function"):
            part = _tool_response(message, names)
            if answering:
                contents[-1]["parts"].append(part)
            else:
                contents.append({"role": "user", "parts": [part]})
            answering = True
            continue
        answering = False
        if role in ("assistant", "model"):
            names.update({c.id: c.name for c in message.tool_calls})
            contents.append({"role": "model", "parts": _model_turn(message)})
            continue
        contents.append({"role": "user", "parts": _parts(message.content)})
    if not contents:
        raise InvalidArgumentError("Gemini needs at least one user message besides the system")
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    return body


# --- parameters -----------------------------------------------------------------------------


def _response_format(value: Any) -> dict[str, Any]:
    kind = value.get("type") if isinstance(value, Mapping) else value
    if kind == "text":
        return {"responseMimeType": "text/plain"}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema" and isinstance(value, Mapping):
        spec = value.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        out: dict[str, Any] = {"responseMimeType": "application/json"}
        if schema is not None:
            out["responseJsonSchema"] = schema
        return out
    raise InvalidArgumentError(
        "response_format must be {'type': 'json_object'}, {'type': 'json_schema', ...} "
        f"or {{'type': 'text'}}, got {value!r}"
    )


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise InvalidArgumentError("tools must be a list")
    declarations: list[dict[str, Any]] = []
    native: list[dict[str, Any]] = []
    for tool in tools:
        if isinstance(tool, Mapping) and tool.get("type") == "function":
            fn = tool.get("function") or {}
            decl = {k: fn[k] for k in ("name", "description", "parameters") if k in fn}
            declarations.append(decl)
        elif isinstance(tool, Mapping):
            native.append(dict(tool))  # a Gemini tool (functionDeclarations, googleSearch...)
        else:
            raise InvalidArgumentError(f"a tool must be a dict, got {type(tool).__name__}")
    if declarations:
        native.insert(0, {"functionDeclarations": declarations})
    return native


def _tool_choice(choice: Any) -> dict[str, Any]:
    if isinstance(choice, str) and choice in _TOOL_CHOICE:
        return {"functionCallingConfig": {"mode": _TOOL_CHOICE[choice]}}
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        name = choice["function"].get("name")
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    raise InvalidArgumentError(
        f"tool_choice must be 'auto', 'none', 'required' or a function, got {choice!r}"
    )


def apply_params(body: dict[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Add generation parameters to ``body`` in Gemini's names; refuse unknown ones."""
    config: dict[str, Any] = {}
    for name, value in params.items():
        if value is None:
            continue
        if name in _GENERATION:
            config[_GENERATION[name]] = value
        elif name == "stop":
            config["stopSequences"] = [value] if isinstance(value, str) else list(value)
        elif name == "response_format":
            config.update(_response_format(value))
        elif name == "generation_config":
            if not isinstance(value, Mapping):
                raise InvalidArgumentError("generation_config must be a dict")
            config.update(value)
        elif name == "tools":
            body["tools"] = _tools(value)
        elif name == "tool_choice":
            body["toolConfig"] = _tool_choice(value)
        elif name in _TOP_LEVEL:
            body[_TOP_LEVEL[name]] = value
        else:
            known = sorted({*_GENERATION, *_TOP_LEVEL, "stop", "response_format", "tools"})
            raise InvalidArgumentError(
                f"gemini does not take the parameter {name!r}; it takes {', '.join(known)}, "
                "generation_config={...} (Gemini's own names) or extra_body={...}"
            )
    if config:
        body["generationConfig"] = config
    return body


# --- embeddings -----------------------------------------------------------------------------

_EMBED = {
    "task_type": "taskType",
    "title": "title",
    "output_dimensionality": "outputDimensionality",
    "dimensions": "outputDimensionality",
}


def embed_request(model: str, text: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """One ``EmbedContentRequest``: the model, the text, and its options in Gemini's names."""
    out: dict[str, Any] = {"model": model_path(model), "content": {"parts": [{"text": text}]}}
    for name, value in params.items():
        if name not in _EMBED:
            raise InvalidArgumentError(
                f"gemini embeddings do not take {name!r}; they take {', '.join(sorted(_EMBED))}"
            )
        if value is not None:
            out[_EMBED[name]] = value
    return out
