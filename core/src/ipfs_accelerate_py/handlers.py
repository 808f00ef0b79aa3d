"""Core's default endpoint handlers, registered as a built-in plugin.

``backend.create_handler("chat", model)`` returns an async callable: ``await handler(prompt)``
(a string, or a list of messages) returns the chat result as a plain dict with ``"text"``.
``"embed"`` handlers return ``{"embedding": [...], "embeddings": [...], "text": <the input>,
...}`` (``"text"`` is the text embedded, so the guide's ``result["text"]`` works on every
handler; the vectors are lists of floats, or a float32 array and its first row for a handler
created with ``output="numpy"``), ``"generate"`` ones ``{"text": ..., "generated_text": ...}``.
Plugins may override a kind with their own hookimpl.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .hookspecs import hookimpl

if TYPE_CHECKING:
    from .backend import Backend

Handler = Callable[..., Awaitable[dict[str, Any]]]


def _messages(prompt: Any) -> Any:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return prompt


@hookimpl(trylast=True)
def create_handler(
    backend: str, client: Backend, kind: str, model: str | None, options: dict[str, Any]
) -> Handler | None:
    """Handlers for ``chat``, ``embed`` and ``generate`` on any backend."""
    if kind == "chat":

        async def chat_handler(prompt: Any, **params: Any) -> dict[str, Any]:
            result = await client.achat(
                messages=_messages(prompt), model=model, **{**options, **params}
            )
            return result.to_dict()

        return chat_handler
    if kind == "embed":

        async def embed_handler(text: Any, **params: Any) -> dict[str, Any]:
            result = await client.aembed(input=text, model=model, **{**options, **params})
            return {**result.to_dict(), "text": text}

        return embed_handler
    if kind == "generate":

        async def generate_handler(prompt: str, **params: Any) -> dict[str, Any]:
            result = await client.agenerate(prompt=prompt, model=model, **{**options, **params})
            return result.to_dict()

        return generate_handler
    return None
