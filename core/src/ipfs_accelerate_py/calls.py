"""What a provider hook returns: one HTTP exchange and how to read its reply.

A plugin does no I/O. Its ``chat`` hook, for example, turns a :class:`~.types.ChatRequest`
into an :class:`HttpCall` (method, path, JSON body, and a function that reads the reply);
core runs it through the resilience pipeline, sync or async, and hands the parsed result
back. That is why every plugin gets threads, asyncio, retries and breakers for free.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs

from .types import StreamChunk, Usage

__all__ = ["STREAM_END", "HttpCall", "StreamEnd"]


class StreamEnd:
    """The type of :data:`STREAM_END`, returned by ``parse_event`` at the protocol's end marker."""

    _instance: StreamEnd | None = None

    def __new__(cls) -> StreamEnd:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "STREAM_END"


STREAM_END = StreamEnd()

EventParser = Callable[[Any], "StreamChunk | StreamEnd | None"]


@attrs.frozen(slots=True)
class HttpCall:
    """One HTTP exchange with the provider.

    For a plain call, ``parse`` receives the decoded JSON body (or the raw bytes when
    ``json_reply`` is false) and returns the result. For a stream (``stream`` is ``"sse"`` or
    ``"ndjson"``), ``parse_event`` receives each event (a ServerSentEvent, or a decoded NDJSON
    value) and returns a :class:`~.types.StreamChunk`, ``None`` to skip it, or
    :data:`STREAM_END` at the protocol's end marker. When ``end_required`` is true, a stream
    that stops without that marker raises ConnectionError: it was cut.

    A stream parser that keeps state between events (a tool call assembled from deltas, the
    model named in a first event) is given as ``new_parser``, a factory called once per
    attempt, so a retried stream starts from a clean state; ``parse_event`` suits a stateless
    parser. Usage reported by several events is merged field by field.

    ``next_page``, for listings that come in pages, receives the decoded body of each page and
    returns the call for the next page, or ``None`` after the last; each page is one exchange,
    retried on its own, and the pages' list results are concatenated.
    """

    method: str
    path: str
    json: Any = None
    params: Mapping[str, Any] | None = None
    headers: Mapping[str, str] | None = None
    parse: Callable[[Any], Any] | None = None
    json_reply: bool = True
    stream: Literal["sse", "ndjson"] | None = None
    parse_event: EventParser | None = None
    end_required: bool = True
    model: str | None = None
    usage_of: Callable[[Any], Usage | None] | None = None
    new_parser: Callable[[], EventParser] | None = None
    next_page: Callable[[Any], HttpCall | None] | None = None
