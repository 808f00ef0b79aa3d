"""What the router returns: replies with every attempt attached, and its own errors.

A routed reply is the backend's reply type (``ChatResponse``...) with three more fields:
``attempts`` (every deployment tried, in order, with the outcome, error class, latency and
usage), ``deployment`` (the id that answered) and, for structured output, ``parsed``.
An error the router raises carries ``attempts`` too (as an attribute).
"""

from __future__ import annotations

from typing import Any

import attrs

from .errors import BackendError
from .types import (
    ChatResponse,
    EmbeddingResponse,
    GenerateResponse,
    ImageResponse,
    Message,
    Usage,
)

__all__ = [
    "NoDeploymentAvailableError",
    "RouteAttempt",
    "RoutedChatResponse",
    "RoutedEmbeddingResponse",
    "RoutedGenerateResponse",
    "RoutedImageResponse",
    "add_usage",
    "routed",
    "texts_of",
    "usage_of",
    "with_text",
]


class NoDeploymentAvailableError(BackendError):
    """Every deployment the call could use is cooling down, rate limited or open, and none
    comes back before the call's deadline; ``retry_after`` is the seconds until the first
    one does."""

    label = "No deployment available"
    retryable = True


@attrs.frozen(slots=True)
class RouteAttempt:
    """One try of one deployment: why it was tried (``primary``, ``fallback``,
    ``context_window``, ``content_policy``, ``validation_retry``, ``stream_resume``), how it
    ended (``ok`` or the error class name), its latency in seconds and its usage."""

    deployment: str
    backend: str
    model: str
    alias: str
    reason: str
    outcome: str
    error: str | None = None
    latency: float = 0.0
    usage: Usage | None = None

    @property
    def ok(self) -> bool:
        """Whether this attempt produced the reply."""
        return self.outcome == "ok"


@attrs.frozen(slots=True)
class RoutedChatResponse(ChatResponse):
    """A :class:`ChatResponse` with the router's ``attempts``, ``deployment`` and ``parsed``."""

    attempts: tuple[RouteAttempt, ...] = ()
    deployment: str | None = None
    parsed: Any = attrs.field(default=None, eq=False)


@attrs.frozen(slots=True)
class RoutedEmbeddingResponse(EmbeddingResponse):
    """An :class:`EmbeddingResponse` with the router's ``attempts`` and ``deployment``."""

    attempts: tuple[RouteAttempt, ...] = ()
    deployment: str | None = None


@attrs.frozen(slots=True)
class RoutedGenerateResponse(GenerateResponse):
    """A :class:`GenerateResponse` with the router's ``attempts`` and ``deployment``."""

    attempts: tuple[RouteAttempt, ...] = ()
    deployment: str | None = None


@attrs.frozen(slots=True)
class RoutedImageResponse(ImageResponse):
    """An :class:`ImageResponse` with the router's ``attempts`` and ``deployment``."""

    attempts: tuple[RouteAttempt, ...] = ()
    deployment: str | None = None


_ROUTED: dict[type, tuple[type, tuple[str, ...]]] = {
    base: (sub, tuple(f.name for f in attrs.fields(base)))
    for base, sub in (
        (ChatResponse, RoutedChatResponse),
        (EmbeddingResponse, RoutedEmbeddingResponse),
        (GenerateResponse, RoutedGenerateResponse),
        (ImageResponse, RoutedImageResponse),
    )
}


def routed(result: Any, attempts: tuple[RouteAttempt, ...], deployment: str, **extra: Any) -> Any:
    """``result`` as its routed subtype carrying ``attempts`` and ``deployment``."""
    entry = _ROUTED.get(type(result))
    if entry is None:
        for base, value in _ROUTED.items():
            if isinstance(result, base):
                entry = value
                break
        else:
            return result
    cls, names = entry
    values = [getattr(result, name) for name in names]
    return cls(*values, attempts=attempts, deployment=deployment, **extra)


def usage_of(result: Any) -> Usage | None:
    """The usage a reply reports, if any."""
    usage = getattr(result, "usage", None)
    return usage if isinstance(usage, Usage) else None


def texts_of(payload: dict[str, Any]) -> list[Message]:
    """An embed input or a prompt as messages, for the budget's token estimate."""
    value = payload.get("input", payload.get("prompt"))
    items = [value] if isinstance(value, str) else list(value or ())
    return [Message("user", str(item)) for item in items]


def add_usage(a: Usage | None, b: Usage | None) -> Usage | None:
    if a is None or b is None:
        return a or b
    return Usage(
        a.prompt_tokens + b.prompt_tokens,
        a.completion_tokens + b.completion_tokens,
        a.total_tokens + b.total_tokens,
    )


def with_text(reply: ChatResponse, text: str) -> ChatResponse:
    if reply.text == text:
        return reply
    return attrs.evolve(reply, text=text)
