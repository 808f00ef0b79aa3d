"""Incremental decoders for streamed replies: server-sent events (SSE) and NDJSON.

:class:`SSEDecoder` follows the WHATWG HTML "server-sent events" parsing rules exactly:
lines end with CRLF, LF or CR (a CRLF split across two chunks is one line end), a leading
UTF-8 BOM is skipped, and an event is dispatched only by a blank line. :class:`NDJSONDecoder`
parses one JSON value per LF-terminated line. Both take raw bytes in chunks of any size,
decode UTF-8 only on complete lines (so a character split across chunks is safe), and keep
a partial line as a list of pieces joined once, so many tiny chunks cost linear time.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any

from ipfs_accelerate_py import fastjson
from ipfs_accelerate_py.errors import MalformedResponseError

_BYTES_FIRST = fastjson.BYTES_FIRST
_fast_loads = fastjson.fast_loads
_DIGITS = fastjson.DIGITS
_LONG_RUN = fastjson.LONG_RUN
_new = object.__new__

__all__ = [
    "NDJSONDecoder",
    "SSEDecoder",
    "ServerSentEvent",
    "aiter_ndjson",
    "aiter_sse",
    "iter_ndjson",
    "iter_sse",
]

_BOM = b"\xef\xbb\xbf"
MAX_LINE = 16 * 1024 * 1024
"""The longest stream line (or SSE event) accepted, in bytes: 16 MiB."""
_EXCERPT = 200


def _excerpt(text: str) -> str:
    """Return ``text`` cut to about 200 characters, for error messages."""
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."


class ServerSentEvent:
    """One dispatched server-sent event.

    ``event`` is the event type ("message" by default), ``data`` the data lines joined by
    "\\n", ``id`` the last event ID seen so far in the stream (None if never set) and
    ``retry`` this event's valid ``retry`` field in milliseconds, else None. ``encoded`` is
    ``data`` as the UTF-8 bytes it was read from, when the decoder has them at no cost:
    :meth:`json` then parses those bytes instead of encoding ``data`` again.
    """

    __slots__ = ("data", "encoded", "event", "id", "provider", "retry")

    def __init__(
        self,
        event: str = "message",
        data: str = "",
        id: str | None = None,
        retry: int | None = None,
        provider: str | None = None,
        encoded: bytes | None = None,
    ) -> None:
        self.event = event
        self.data = data
        self.id = id
        self.retry = retry
        self.provider = provider  # named in errors from json(); not part of equality
        self.encoded = encoded  # not part of equality either

    def json(self) -> Any:
        """Return ``data`` parsed as JSON; raise MalformedResponseError if it is not JSON."""
        encoded = self.encoded
        if (
            encoded is not None
            and _fast_loads is not None
            and _LONG_RUN not in encoded.translate(_DIGITS)
        ):  # fastjson.loads, inlined: this runs once per stream event
            try:
                return _fast_loads(encoded)
            except ValueError:
                pass  # not UTF-8, NaN, nested too deeply...: the general path decides
        try:
            return fastjson.loads(self.data)
        except ValueError as exc:
            raise MalformedResponseError(
                f"event data is not valid JSON ({exc}): {_excerpt(self.data)!r}",
                provider=self.provider,
            )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ServerSentEvent):
            return NotImplemented
        return (self.event, self.data, self.id, self.retry) == (
            other.event,
            other.data,
            other.id,
            other.retry,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __repr__(self) -> str:
        return (
            f"ServerSentEvent(event={self.event!r}, data={self.data!r}, "
            f"id={self.id!r}, retry={self.retry!r})"
        )


def _data_event(
    name: str, body: bytes, last_id: str | None, provider: str | None
) -> ServerSentEvent:
    """The event of a fast path: ``body`` is its data, as read (a data-only event)."""
    event: ServerSentEvent = _new(ServerSentEvent)  # without __init__'s keyword handling
    try:
        event.data = body.decode()
    except UnicodeDecodeError:
        event.data = body.decode("utf-8", "replace")
    event.encoded = body if _BYTES_FIRST else None
    event.event = name
    event.id = last_id
    event.retry = None
    event.provider = provider
    return event


_HOLD_MAX = 64 * 1024  # the most held back; a longer event goes to the general path


def _holdable(start: bytes) -> bool:
    """Whether ``start`` can only begin a data-only event, LF line ends (``data: {...``, a
    piece of ``data:``, or a whole data line awaiting its blank line), and is small enough
    to keep back until the next read completes it."""
    if len(start) > _HOLD_MAX or b"\r" in start:
        return False
    if start[:6] != b"data: " and not b"data: ".startswith(start):
        return False
    end = start.find(b"\n")
    return end == -1 or end == len(start) - 1


class _LineSplitter:
    """Cut byte chunks into complete decoded lines, keeping the partial last line.

    With ``cr`` set, CR, LF and CRLF all end a line (SSE), else only LF does (NDJSON).
    """

    __slots__ = ("_cr", "_parts", "_pending", "_skip_lf", "_started")

    def __init__(self, cr: bool) -> None:
        self._cr = cr
        self._pending = 0  # bytes in _parts
        self._parts: list[bytes] = []  # the pending partial line, in pieces
        self._skip_lf = False  # the last chunk ended with CR: a leading LF is part of it
        self._started = False  # the leading BOM (if any) has been dealt with

    def feed(self, chunk: bytes) -> list[str]:
        """Return the lines completed by ``chunk``, without their line ends."""
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[0] == 10:
                chunk = chunk[1:]
        if not self._started:
            chunk = b"".join(self._parts) + chunk
            self._parts.clear()
            if len(chunk) < 3 and _BOM.startswith(chunk):
                if chunk:  # may yet be a BOM: wait for more bytes
                    self._parts.append(chunk)
                return []
            self._started = True
            if chunk.startswith(_BOM):
                chunk = chunk[3:]
        if b"\n" not in chunk and not (self._cr and b"\r" in chunk):
            if chunk:
                self._parts.append(chunk)
                self._pending += len(chunk)
                if self._pending > MAX_LINE:
                    raise MalformedResponseError(
                        f"a stream line is longer than the {MAX_LINE:,} byte limit"
                    )
            return []
        if self._parts:
            self._parts.append(chunk)
            chunk = b"".join(self._parts)
            self._parts.clear()
            self._pending = 0
        end = max(chunk.rfind(b"\n"), chunk.rfind(b"\r")) if self._cr else chunk.rfind(b"\n")
        if end + 1 < len(chunk):
            self._parts.append(chunk[end + 1 :])
            self._pending = len(chunk) - end - 1
            chunk = chunk[: end + 1]
        elif chunk[end] == 13:
            self._skip_lf = True
        if self._cr and b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = chunk.decode("utf-8", "replace").split("\n")
        lines.pop()  # the empty string after the last line end
        return lines

    def begin(self) -> None:
        """The stream does not start with a byte order mark: no chunk is checked for one."""
        self._started = True

    def idle(self) -> bool:
        """No partial line is pending: the next chunk starts a line."""
        return self._started and not self._parts and not self._skip_lf

    def pending(self) -> bytes:
        """Return and clear the unterminated partial line."""
        rest = b"".join(self._parts)
        self._parts.clear()
        self._pending = 0
        return rest


class SSEDecoder:
    """Incremental server-sent events parser (WHATWG HTML rules).

    Feed raw byte chunks with :meth:`feed`; call :meth:`close` at end of stream, which
    sets ``truncated`` when the stream stopped inside an event.
    """

    def __init__(self, provider: str | None = None) -> None:
        self.provider = provider
        self.truncated = False
        self._lines = _LineSplitter(cr=True)
        self._data: list[str] = []
        self._size = 0  # characters of data in the event being read
        self._event = ""
        self._last_id: str | None = None
        self._retry: int | None = None
        self._clean = False  # between events, no partial line: a chunk may be one whole event
        self._names: dict[bytes, str] = {}  # event names seen, decoded
        self._held = bytearray()  # the start of a data-only event, until a read completes it
        self._begun = False  # the first bytes were seen

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Return the events completed by ``chunk``, in order."""
        held = self._held
        if held:  # the start of a data-only event, kept back by the fast path
            size = len(held) + len(chunk)
            if b"\n" not in chunk and b"\r" not in chunk and size <= min(_HOLD_MAX, MAX_LINE):
                held += chunk  # still no line end (a trickle): appended in place, not copied
                return []
            chunk = bytes(held) + chunk
            held.clear()
        elif not self._begun and chunk:
            self._begun = True
            if chunk[:1] != _BOM[:1]:  # no byte order mark: the fast paths may take it
                self._lines.begin()
                self._clean = True
        if self._clean and len(chunk) <= MAX_LINE:
            # the fast paths: the chunk is one whole data-only event, as providers send them
            # (LF or CRLF line ends throughout), one named event, or several data-only
            # events; anything else takes the general path below
            lines = chunk.count(b"\n")
            if chunk[:6] == b"data: ":
                if lines == 2:
                    if chunk[-2:] == b"\n\n" and b"\r" not in chunk:
                        body = chunk[6:-2]
                    elif chunk[-4:] == b"\r\n\r\n" and chunk.count(b"\r") == 2:
                        body = chunk[6:-4]
                    else:
                        body = None
                    if body is not None:  # _data_event("message", ...), inlined: the hot path
                        event: ServerSentEvent = _new(ServerSentEvent)
                        try:
                            event.data = body.decode()
                        except UnicodeDecodeError:
                            event.data = body.decode("utf-8", "replace")
                        event.encoded = body if _BYTES_FIRST else None
                        event.event = "message"
                        event.id = self._last_id
                        event.retry = None
                        event.provider = self.provider
                        return [event]
                many = self._data_events(chunk)
                if many is not None:
                    return many
            elif lines == 3 and chunk[:7] == b"event: ":
                named = self._named_event(chunk)
                if named is not None:
                    return [named]
            elif _holdable(chunk):  # a read cut inside "data: "
                self._held += chunk
                return []
        return self._general(chunk)

    def _data_events(self, chunk: bytes) -> list[ServerSentEvent] | None:
        """The fast path for a read holding whole data-only events, maybe none, and then the
        start of the next (a client reading slower than the server sends, a Content-Length
        body read in large pieces): the events, and that start kept for the next read. None
        if any event has other fields or lines (the general path then reads the chunk)."""
        crlf = b"\r" in chunk
        parts = chunk.split(b"\r\n\r\n" if crlf else b"\n\n")
        tail = parts.pop()  # after the last blank line: the start of the next event, or b""
        if tail and (crlf or not _holdable(tail)):
            return None
        for part in parts:
            if part[:6] != b"data: " or b"\n" in part or (crlf and b"\r" in part):
                return None
        self._held += tail  # empty before: this read began with what it held
        last_id, provider = self._last_id, self.provider
        return [_data_event("message", part[6:], last_id, provider) for part in parts]

    def _general(self, chunk: bytes) -> list[ServerSentEvent]:
        """Any chunk, line by line, by the WHATWG rules."""
        events: list[ServerSentEvent] = []
        data = self._data
        for line in self._lines.feed(chunk):
            if not line:  # blank line: dispatch
                if data:
                    events.append(
                        ServerSentEvent(
                            self._event or "message",
                            data[0] if len(data) == 1 else "\n".join(data),
                            self._last_id,
                            self._retry,
                            self.provider,
                        )
                    )
                    data.clear()
                    self._size = 0
                self._event = ""
                self._retry = None
            elif line.startswith("data: "):
                data.append(line[6:])
                self._size += len(line)
                if self._size > MAX_LINE:
                    raise MalformedResponseError(
                        f"a stream event is larger than the {MAX_LINE:,} byte limit",
                        provider=self.provider,
                    )
            elif line[0] != ":":  # a colon first marks a comment
                self._field(line)
        self._clean = not data and not self._event and self._retry is None and self._lines.idle()
        return events

    def _named_event(self, chunk: bytes) -> ServerSentEvent | None:
        """The fast path for a chunk of three lines starting ``event:``: one whole named
        event (an ``event:`` line, a ``data:`` line and the blank line, all LF or all CRLF),
        or None for anything else, which takes the general path."""
        if chunk[-2:] == b"\n\n" and b"\r" not in chunk:
            end = -2
        elif chunk[-4:] == b"\r\n\r\n" and chunk.count(b"\r\n") == 3 == chunk.count(b"\r"):
            end = -4
        else:
            return None
        nl = chunk.index(b"\n")
        start = nl + 1
        if chunk[start : start + 6] != b"data: ":
            return None
        raw_name = chunk[7 : nl - 1 if end == -4 else nl]
        name = self._names.get(raw_name)
        if name is None:  # a stream uses a handful of event names: decode each once
            name = raw_name.decode("utf-8", "replace") or "message"
            if len(self._names) < 64:
                self._names[raw_name] = name
        return _data_event(name, chunk[start + 6 : end], self._last_id, self.provider)

    def _field(self, line: str) -> None:
        """Process a field line other than ``data:``."""
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)

    def close(self) -> list[ServerSentEvent]:
        """End the stream; an unterminated event is dropped (WHATWG), so return [].

        ``truncated`` becomes True if a partial line or undispatched data lines remained.
        """
        self.truncated = bool(self._lines.pending()) or bool(self._data) or bool(self._held)
        self._held.clear()
        self._data.clear()
        self._event = ""
        self._retry = None
        return []


class NDJSONDecoder:
    """Incremental newline-delimited JSON parser: one JSON value per line.

    Lines end with LF (a trailing CR is tolerated); blank lines are skipped. A line that is
    not JSON raises MalformedResponseError naming ``provider``.
    """

    def __init__(self, provider: str | None = None) -> None:
        self.provider = provider
        self._lines = _LineSplitter(cr=False)

    def feed(self, chunk: bytes) -> list[Any]:
        """Return the JSON values of the lines completed by ``chunk``."""
        if chunk[-1:] == b"\n" and chunk.count(b"\n") == 1 and self._lines.idle():
            try:  # the fast path: the chunk is exactly one line, as servers send them
                if _fast_loads is not None and _LONG_RUN not in chunk.translate(_DIGITS):
                    return [_fast_loads(chunk)]  # fastjson.loads, inlined: once per line
                return [fastjson.loads(chunk)] if chunk.strip() else []
            except ValueError:
                pass  # blank, not valid UTF-8 or not JSON: the general path decides
        return [
            self._parse(line) for line in self._lines.feed(chunk) if line and not line.isspace()
        ]

    def close(self) -> list[Any]:
        """End the stream, parsing a final line that had no trailing newline."""
        line = self._lines.pending().decode("utf-8", "replace")
        return [self._parse(line)] if line and not line.isspace() else []

    def _parse(self, line: str) -> Any:
        try:
            return fastjson.loads(line)  # JSON ignores a trailing CR as whitespace
        except ValueError as exc:
            raise MalformedResponseError(
                f"NDJSON line is not valid JSON ({exc}): {_excerpt(line.rstrip())!r}",
                provider=self.provider,
            )


def iter_sse(chunks: Iterable[bytes], provider: str | None = None) -> Iterator[ServerSentEvent]:
    """Yield the server-sent events of a stream of byte chunks."""
    decoder = SSEDecoder(provider)
    for chunk in chunks:
        yield from decoder.feed(chunk)
    yield from decoder.close()


async def aiter_sse(
    chunks: AsyncIterable[bytes], provider: str | None = None
) -> AsyncIterator[ServerSentEvent]:
    """Yield the server-sent events of an async stream of byte chunks."""
    decoder = SSEDecoder(provider)
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.close():
        yield event


def iter_ndjson(chunks: Iterable[bytes], provider: str | None = None) -> Iterator[Any]:
    """Yield the JSON values of an NDJSON stream of byte chunks."""
    decoder = NDJSONDecoder(provider)
    for chunk in chunks:
        yield from decoder.feed(chunk)
    yield from decoder.close()


async def aiter_ndjson(
    chunks: AsyncIterable[bytes], provider: str | None = None
) -> AsyncIterator[Any]:
    """Yield the JSON values of an async NDJSON stream of byte chunks."""
    decoder = NDJSONDecoder(provider)
    async for chunk in chunks:
        for value in decoder.feed(chunk):
            yield value
    for value in decoder.close():
        yield value
