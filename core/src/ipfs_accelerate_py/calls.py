"""What a provider hook returns: the call to make, described as data.

Two kinds of call go through the same resilience pipeline (gate, breaker, key, retries,
budget, usage):

- :class:`HttpCall`: one HTTP exchange and how to read its reply. The plugin does no I/O:
  its ``chat`` hook, for example, turns a :class:`~.types.ChatRequest` into an ``HttpCall``
  (method, path, JSON body, and a function that reads the reply); core sends it, sync or
  async, and hands the parsed result back.
- :class:`CallableCall`: a plain Python callable, for providers reached through an SDK
  (boto3 for S3) or a local model. Core calls it with the leased :class:`Credential` and
  maps its exceptions onto core's errors with the call's ``classify``.

The pipeline leases the credential; the plugin places it (``BackendSpec.auth_header`` for
a header, the ``authorize`` hook for a query parameter or a signature, the callable's own
argument for an SDK).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from .errors import BackendError
from .masking import mask_secret
from .types import StreamChunk, Usage

if TYPE_CHECKING:
    from attrs import field, frozen
else:
    from .fastattrs import field, frozen

__all__ = ["STREAM_END", "Call", "CallableCall", "Credential", "HttpCall", "StreamEnd"]


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


@frozen(slots=True)
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

    ``usage_headers`` reads usage from the reply's headers when the body has none (TGI's
    ``x-prompt-tokens`` / ``x-generated-tokens``).

    ``decode`` replaces core's JSON decoding of a plain reply (``fastjson.loads``, which scans
    every byte for integers longer than orjson keeps exact) for a reply known to hold none,
    such as embeddings; it receives the body's bytes and returns the decoded value.
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
    usage_headers: Callable[[Mapping[str, str]], Usage | None] | None = None
    decode: Callable[[bytes], Any] | None = None


@frozen(slots=True, repr=False)
class Credential:
    """A leased credential: ``secret`` (an API key, a secret access key) and, for providers
    whose credential has more parts, an ``id`` (an access key id) and ``extra`` fields
    (a session token). Only masked forms appear in its repr."""

    secret: str
    id: str | None = None
    extra: Mapping[str, str] = field(factory=dict)

    def __repr__(self) -> str:
        who = f"id={self.id!r}, " if self.id else ""
        return f"Credential({who}secret={mask_secret(self.secret)!r})"


@frozen(slots=True)
class CallableCall:
    """A call made by running Python code instead of an HTTP exchange.

    ``fn(credential)`` runs one attempt and returns the result, or, for a stream
    (``stream=True``), an iterator of :class:`~.types.StreamChunk`. ``credential`` is the
    leased :class:`Credential`, or ``None`` when the endpoint has no keys. On the async path
    ``afn`` is awaited when given (returning the result, or an async iterator of chunks);
    otherwise ``fn`` runs in a worker thread, so the event loop never blocks.

    ``classify(exc)`` maps an exception raised by the code (an SDK's) onto one of core's
    errors, so that retry rules, breaker and key rotation apply as to HTTP calls; it may
    return ``None`` for exceptions it does not know, which become a non-retried
    :class:`~.errors.ServerError` naming the exception. Core's own errors pass through.
    ``usage_of`` reads usage from a result; ``next_page`` (given each result) returns the call
    for the next page of a listing, or ``None``.
    """

    fn: Callable[[Credential | None], Any]
    afn: Callable[[Credential | None], Awaitable[Any] | AsyncIterator[StreamChunk]] | None = None
    classify: Callable[[BaseException], BackendError | None] | None = None
    stream: bool = False
    model: str | None = None
    usage_of: Callable[[Any], Usage | None] | None = None
    next_page: Callable[[Any], CallableCall | None] | None = None


Call: TypeAlias = "HttpCall | CallableCall"
"""Either kind of call a hook may return."""

ChunkIterator: TypeAlias = Iterator[StreamChunk]
