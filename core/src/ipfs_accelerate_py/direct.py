"""The direct route: async requests through aiohttp's session without httpx's objects.

A request (a plain call or a stream) whose plugin has no ``authorize`` hook skips httpx's
request and response objects altogether when the async client runs on aiohttp's pool (see
:mod:`.aio_transport`): :class:`Direct` sends it through the same aiohttp session with the
client's headers, timeouts and proxy, and :class:`DirectReply` gives core the part of
``httpx.Response`` it reads (status, headers, body pieces, close). httpx's objects and its
client's send (headers merged and copied several times, a cookie jar, the adapter's
translation of each object) cost about a third of an async call at 200 in flight.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, ItemsView, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .aio_transport import is_aiohttp, translate

if TYPE_CHECKING:
    import asyncio

    import aiohttp
    import httpx

__all__ = ["Direct", "DirectReply", "ReplyHeaders", "encode_json", "sender"]


def sender(
    transport: httpx.AsyncBaseTransport | None,
    client: httpx.AsyncClient,
    own: Mapping[str, str],
) -> Direct | None:
    """A :class:`Direct` sender for ``client`` when ``transport`` (its transport) is ours;
    ``own`` are the headers core gave the client (httpx adds its defaults)."""
    if transport is None or not is_aiohttp(transport):
        return None
    return Direct(transport, client.headers, client.timeout, own)


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode_json(body: Any) -> bytes:
    """A JSON request body, encoded as httpx encodes ``json=`` (compact, UTF-8, no NaN);
    one encoder for every call (``json.dumps`` with options builds one per call)."""
    return _ENCODER.encode(body).encode()


class ReplyHeaders(Mapping[str, str]):
    """A reply's headers read as ``httpx.Headers`` reads them: one decoding for all (ASCII,
    else UTF-8, else Latin-1), names in any case, a name sent twice read as its values joined
    by ", ". A lookup whose header came once with an ASCII value (nearly all) takes it from
    aiohttp's parsed headers, where any of those decodings reads it the same; anything else
    decodes aiohttp's raw bytes once, as httpx would (httpx's own class decodes and scans its
    whole list on every lookup)."""

    __slots__ = ("_map", "_parsed", "_raw")

    def __init__(self, parsed: Any, raw: tuple[tuple[bytes, bytes], ...]) -> None:
        self._parsed = parsed  # aiohttp's CIMultiDictProxy
        self._raw = raw
        self._map: dict[str, str] | None = None

    def _mapping(self) -> dict[str, str]:
        mapping = self._map
        if mapping is None:
            mapping = self._map = _decoded(self._raw)
        return mapping

    def get(self, name: str, default: Any = None) -> Any:
        """The header's value (values joined by ", "), or ``default``."""
        values = self._parsed.getall(name, None)
        if values is None:
            return default
        if len(values) == 1 and values[0].isascii():
            return values[0]
        return self._mapping().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value  # type: ignore[no-any-return]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._parsed

    def __iter__(self) -> Iterator[str]:
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())

    def items(self) -> ItemsView[str, str]:
        """(lower-case name, value) pairs."""
        return self._mapping().items()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return self._mapping() == {str(k).lower(): v for k, v in other.items()}

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = {
            k: "[secure]" if k in ("authorization", "proxy-authorization") else v
            for k, v in self._mapping().items()
        }
        return f"ReplyHeaders({shown!r})"


def _decoded(raw: tuple[tuple[bytes, bytes], ...]) -> dict[str, str]:
    for encoding in ("ascii", "utf-8", "iso-8859-1"):  # httpx's order, for the whole set
        try:
            pairs = [(name.decode(encoding).lower(), value.decode(encoding)) for name, value in raw]
            break
        except UnicodeDecodeError:
            continue
    out: dict[str, str] = {}
    for name, value in pairs:
        seen = out.get(name)
        out[name] = value if seen is None else f"{seen}, {value}"
    return out


def _accepted_encodings() -> str:
    """The content codings aiohttp decodes here (brotli and zstd when their packages are)."""
    from aiohttp import compression_utils

    codings = ["gzip", "deflate"]
    if getattr(compression_utils, "HAS_BROTLI", False):
        codings.append("br")
    if getattr(compression_utils, "HAS_ZSTD", False):
        codings.append("zstd")
    return ", ".join(codings)


def _client_timeout(connect: float | None, read: float | None, pool: float | None) -> Any:
    """aiohttp's timeouts for httpx's: ``connect`` covers waiting for a pooled connection
    and opening one (httpx's pool timeout), ``sock_connect`` opening one, ``sock_read`` each
    read (as httpx-aiohttp maps them)."""
    from aiohttp import ClientTimeout

    return ClientTimeout(sock_connect=connect, sock_read=read, connect=pool)


def _stalled(content: aiohttp.StreamReader, seconds: float) -> None:
    """Fail a body that sent nothing for ``seconds`` (see :meth:`DirectReply.read_piece`)."""
    import aiohttp

    timeout = getattr(aiohttp, "SocketTimeoutError", aiohttp.ServerTimeoutError)
    content.set_exception(timeout(f"no data from the server for {seconds:g} s"))


class DirectReply:
    """A reply read straight from aiohttp: what core reads of an ``httpx.Response``."""

    __slots__ = ("_loop", "_response", "_stall", "headers", "status_code")

    is_stream_consumed = False

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        stall: float | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._response = response
        self._stall = stall
        self._loop = loop
        self.status_code: int = response.status
        self.headers: Mapping[str, str] = ReplyHeaders(response.headers, response.raw_headers)

    async def read_piece(self) -> bytes:
        """The body's next piece as it arrives (decoded if content-encoded), ``b""`` at its
        end; aiohttp's errors become httpx's (see :func:`_httpx_error`). A wait for data
        longer than the read timeout fails on a timer of our own: after some malformed
        framing (a bad chunk size) aiohttp 3.14 drops its read timer without failing the
        body, which would then wait forever."""
        content = self._response.content
        try:
            piece = content.read_nowait()  # what has arrived (or the reader's error)
            if piece or content.at_eof():
                return piece
            stall = self._stall
            if stall is None:
                return await content.readany()
            watchdog = self._loop.call_later(stall, _stalled, content, stall)
            try:
                return await content.readany()
            finally:
                watchdog.cancel()
        except Exception as exc:  # a cancellation (BaseException) passes as it is
            new = translate(exc)
            if new is exc:
                raise
            raise new from exc

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body's pieces as they arrive (see :meth:`read_piece`)."""
        read = self.read_piece
        while piece := await read():
            yield piece

    aiter_raw = aiter_bytes

    async def aclose(self) -> None:
        """Release the connection (back to the pool when the body was read to its end)."""
        self._response.release()
        await self._response.wait_for_close()


class Direct:
    """Sends a request through the aiohttp session under one of core's async clients, with
    that client's default headers and timeouts, without httpx's objects (see the module's
    docstring)."""

    __slots__ = (
        "_headers",
        "_loop",
        "_proxy",
        "_proxy_token",
        "_read",
        "_session",
        "_timeout",
        "_transport",
        "_urls",
    )

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        headers: httpx.Headers,
        timeout: httpx.Timeout,
        own: Mapping[str, str],
    ) -> None:
        from multidict import CIMultiDict

        base: CIMultiDict[str] = CIMultiDict(headers.multi_items())
        if not any(name.lower() == "accept-encoding" for name in own):
            base["Accept-Encoding"] = _accepted_encodings()  # aiohttp decodes, not httpx
        self._headers = base
        self._proxy, self._proxy_token = _proxy_parts(getattr(transport, "proxy", None))
        self._timeout = _client_timeout(timeout.connect, timeout.read, timeout.pool)
        self._read = timeout.read
        self._transport: Any = transport
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._urls: dict[str, Any] = {}

    def _open_session(self) -> aiohttp.ClientSession:
        """The transport's session (the one its httpx requests use), opened on first use."""
        from aiohttp import ClientSession

        transport = self._transport
        if not isinstance(transport.client, ClientSession):
            transport.client = transport.get_client()
        session: aiohttp.ClientSession = transport.client
        self._session = session
        import asyncio  # loaded already: this runs in the session's event loop

        self._loop = asyncio.get_running_loop()  # the one this sender serves (one per loop)
        return session

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float | None,
    ) -> DirectReply:
        """Send the request; return once the reply's status and headers are in. Failures
        raise httpx's exception for them, as the httpx client would."""
        session = self._session
        if session is None or session.closed:
            session = self._open_session()
        target = self._urls.get(url)
        if target is None:
            from yarl import URL

            target = URL(url, encoded=True)  # httpx's URL text: already percent-encoded
            if len(self._urls) < 256:
                self._urls[url] = target
        merged = self._headers.copy()
        merged.update(headers)
        if body is not None and "content-type" not in merged:
            merged["Content-Type"] = "application/json"
        limits = self._timeout
        if timeout is not None:
            limits = _client_timeout(min(5.0, timeout), timeout, timeout)
        proxy_headers = None
        if self._proxy_token is not None:
            if target.scheme == "https":  # to the proxy alone, never through the tunnel
                proxy_headers = {"Proxy-Authorization": self._proxy_token}
            else:
                merged["Proxy-Authorization"] = self._proxy_token
        try:
            response = await session.request(
                method,
                target,
                headers=merged,
                data=body,
                allow_redirects=False,
                timeout=limits,
                proxy=self._proxy,
                proxy_headers=proxy_headers,
            )
        except Exception as exc:
            raise _request_error(exc) from exc
        loop = self._loop
        assert loop is not None  # set with the session
        return DirectReply(response, self._read if timeout is None else timeout, loop)


def _proxy_parts(proxy: httpx.Proxy | None) -> tuple[Any, str | None]:
    """``proxy``'s URL for aiohttp, and its credentials (httpx takes them out of the URL) as
    a ``Proxy-Authorization`` value (aiohttp deprecates its ``proxy_auth``)."""
    if proxy is None:
        return None, None
    import base64

    from yarl import URL

    token = None
    if proxy.auth:
        token = "Basic " + base64.b64encode(":".join(proxy.auth).encode()).decode("ascii")
    return URL(str(proxy.url)), token


def _request_error(exc: Exception) -> BaseException:
    """httpx's exception for a request aiohttp could not send: its transport errors as in
    :func:`~.aio_transport.translate`, a request aiohttp refuses to encode (a header value
    with a line break) as ``LocalProtocolError``."""
    import aiohttp
    import httpx

    new = translate(exc)
    if (
        new is exc
        and isinstance(exc, (ValueError, TypeError))
        and not isinstance(exc, aiohttp.ClientError)
    ):
        return httpx.LocalProtocolError(str(exc))
    return new
