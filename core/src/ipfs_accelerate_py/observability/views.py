"""What hooks receive: a read-only view of one call at one moment, with no secret in it."""

from __future__ import annotations

from typing import Any

import attrs

from ..types import Usage

__all__ = ["CallView"]


@attrs.frozen(slots=True)
class CallView:
    """One call as a hook sees it.

    Always: ``backend``, ``endpoint`` (its id), ``operation`` (``chat``, ``embeddings``...),
    ``model`` (requested), ``request_id``, ``priority`` (``HIGH``/``NORMAL``/``LOW``),
    ``stream``, ``attempt`` (1-based, 0 before the first). ``body`` is the request body as
    sent (keys masked; not in the repr). ``on_response``: ``result``, ``usage``, ``cost``,
    ``duration`` (seconds). ``on_error`` / ``on_retry``: ``error`` (already redacted),
    ``key_name`` and ``key`` (masked, as ``sk-...abcd``); ``on_retry``: ``delay`` (seconds
    before the next attempt; 0 when it goes at once to another key).
    """

    backend: str
    endpoint: str
    operation: str
    model: str | None
    request_id: str
    priority: str
    stream: bool = False
    attempt: int = 0
    body: Any = attrs.field(default=None, repr=False)
    result: Any = attrs.field(default=None, repr=False)
    usage: Usage | None = None
    cost: float | None = None
    duration: float | None = None
    error: BaseException | None = None
    delay: float | None = None
    key_name: str | None = None
    key: str | None = None
