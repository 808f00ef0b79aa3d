"""Ollama's replies as the server sends them (docs/api.md, api/types.go), for the tests."""

from __future__ import annotations

from typing import Any

from ipfs_accelerate_py.testing.server import Reply

CREATED = "2025-07-07T20:22:19.184789Z"
COUNTERS = {
    "total_duration": 4883583458,
    "load_duration": 1334875,
    "prompt_eval_count": 26,
    "prompt_eval_duration": 342546000,
    "eval_count": 282,
    "eval_duration": 4535599000,
}
TIMINGS = {k: v for k, v in COUNTERS.items() if k.endswith("duration")}


def chat(
    text: str = "Hello! How are you today?",
    model: str = "llama3",
    tool_calls: list[dict[str, Any]] | None = None,
    done_reason: str = "stop",
) -> dict[str, Any]:
    """A non-streamed ``/api/chat`` reply."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "model": model,
        "created_at": CREATED,
        "message": message,
        "done_reason": done_reason,
        "done": True,
        **COUNTERS,
    }


def tool_call(name: str, arguments: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A tool call as Ollama writes it: arguments as a JSON object."""
    return {**extra, "function": {"name": name, "arguments": arguments}}


def chat_stream(pieces: list[str], model: str = "llama3", done: bool = True) -> list[Any]:
    """The lines of a streamed ``/api/chat`` reply, the last one ``done`` with counters."""
    lines: list[Any] = [
        {
            "model": model,
            "created_at": CREATED,
            "message": {"role": "assistant", "content": p},
            "done": False,
        }
        for p in pieces
    ]
    if done:
        lines.append(
            {
                "model": model,
                "created_at": CREATED,
                "message": {"role": "assistant", "content": ""},
                "done_reason": "stop",
                "done": True,
                **COUNTERS,
            }
        )
    return lines


def generate(text: str = "The sky is blue.", model: str = "llama3") -> dict[str, Any]:
    """A non-streamed ``/api/generate`` reply."""
    return {
        "model": model,
        "created_at": CREATED,
        "response": text,
        "done": True,
        "done_reason": "stop",
        "context": [1, 2, 3],
        **COUNTERS,
    }


def generate_stream(pieces: list[str], model: str = "llama3") -> list[Any]:
    """The lines of a streamed ``/api/generate`` reply."""
    lines: list[Any] = [
        {"model": model, "created_at": CREATED, "response": p, "done": False} for p in pieces
    ]
    lines.append(
        {
            "model": model,
            "created_at": CREATED,
            "response": "",
            "done": True,
            "done_reason": "stop",
            "context": [1, 2, 3],
            **COUNTERS,
        }
    )
    return lines


def embed(vectors: list[list[float]], model: str = "all-minilm") -> dict[str, Any]:
    """An ``/api/embed`` reply."""
    return {
        "model": model,
        "embeddings": vectors,
        "total_duration": 14143917,
        "load_duration": 1019500,
        "prompt_eval_count": 8,
    }


def tags(names: list[str]) -> dict[str, Any]:
    """An ``/api/tags`` reply."""
    return {
        "models": [
            {
                "name": n,
                "model": n,
                "modified_at": "2025-05-04T17:37:44.706015396-07:00",
                "size": 2019393189,
                "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
                "details": {
                    "parent_model": "",
                    "format": "gguf",
                    "family": "llama",
                    "families": ["llama"],
                    "parameter_size": "3.2B",
                    "quantization_level": "Q4_K_M",
                },
            }
            for n in names
        ]
    }


def error(message: str, status: int, **kw: Any) -> Reply:
    """An Ollama error reply: ``{"error": "..."}`` as JSON."""
    return Reply.json({"error": message}, status=status, **kw)


def model_missing(model: str = "llama3") -> Reply:
    """The 404 of a model that was never pulled (server/routes.go handleScheduleError)."""
    return error(f'model "{model}" not found, try pulling it first', 404)


def route_missing() -> Reply:
    """Go's default 404 for a route an older server does not have."""
    return Reply.text("404 page not found", status=404)
