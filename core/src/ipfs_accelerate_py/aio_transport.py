"""The async HTTP transport: aiohttp under httpx's API when the ``aio`` extra is installed.

httpx's own async pool (httpcore) schedules waiting requests in quadratic time, so its
throughput falls from ~350 to ~85 req/s between 10 and 200 requests in flight, and a request
cancelled at the wrong moment can leak a pool slot (encode/httpcore#1093). With
``pip install ipfs-accelerate-core[aio]`` every async client is an ``httpx.AsyncClient``
whose transport is ``httpx_aiohttp.AiohttpTransport``: plugins and callers keep httpx's
request and response objects, and aiohttp's connection pool does the I/O.

httpx-aiohttp turns aiohttp's exceptions into httpx's, but coarsely (a refused connection
becomes a *connect timeout*, a dropped connection a timeout too, and parser errors pass
through as aiohttp exceptions). :class:`AiohttpTransport` here maps each aiohttp exception
to the httpx exception httpcore raises for the same failure, so core's error translation
(``transport.error_from_exception``) gives the same error class and retry decision on both
transports. ``IPFS_ACCELERATE_ASYNC_TRANSPORT=httpx`` keeps httpx's own pool.

A request (a plain call or a stream) whose plugin has no ``authorize`` hook skips httpx's
request and response objects altogether: :class:`Direct` sends it through the same aiohttp
session with the client's headers, timeouts and proxy, and :class:`DirectReply` gives core
the part of ``httpx.Response`` it reads (status, headers, body pieces, close). httpx's
objects and its client's send (headers merged and copied several times, a cookie jar, the
adapter's translation of each object) cost about a third of an async call at 200 in flight.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, ItemsView, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl

    import aiohttp
    import httpx

__all__ = [
    "Direct",
    "DirectReply",
    "ReplyHeaders",
    "aiohttp_available",
    "async_transport",
    "resolved",
]

ENV = "IPFS_ACCELERATE_ASYNC_TRANSPORT"

_state: dict[str, Any] = {}


def aiohttp_available() -> bool:
    """Whether the aiohttp transport can be used (``httpx-aiohttp`` importable and not turned
    off with ``IPFS_ACCELERATE_ASYNC_TRANSPORT=httpx``)."""
    if os.environ.get(ENV, "").strip().lower() == "httpx":
        return False
    if "cls" not in _state:
        try:
            _state["cls"] = _build_class()
        except ImportError:
            _state["cls"] = None
    return _state["cls"] is not None


def resolved() -> bool:
    """Whether the aiohttp import has been tried (see :func:`aiohttp_available`)."""
    return "cls" in _state or os.environ.get(ENV, "").strip().lower() == "httpx"


def async_transport(
    *, verify: ssl.SSLContext, limits: httpx.Limits, proxy: str | None = None
) -> httpx.AsyncBaseTransport | None:
    """A fresh aiohttp-backed transport, or ``None`` to let httpx build its own pool (also
    for a SOCKS ``proxy``, which aiohttp cannot use and httpx can with ``httpx[socks]``).
    ``proxy`` is the HTTP(S) proxy every request goes through (see ``transport.env_proxy``)."""
    if not aiohttp_available():
        return None
    if proxy is not None and not proxy.lower().startswith(("http://", "https://")):
        return None
    import httpx

    cls = _state["cls"]
    transport: httpx.AsyncBaseTransport = cls(
        verify=verify,
        limits=limits,
        trust_env=False,
        proxy=httpx.Proxy(proxy) if proxy else None,  # its repr masks credentials
        client=lambda: _session(verify, limits),
    )
    return transport


def _session(verify: ssl.SSLContext, limits: httpx.Limits) -> aiohttp.ClientSession:
    """The aiohttp session under a transport (opened in its event loop on first use): the
    pool httpx-aiohttp would open, with a cookie jar that also keeps cookies from servers
    addressed by IP (aiohttp's default refuses them; httpx keeps them), as self-hosted
    servers often are."""
    import aiohttp

    connector = aiohttp.TCPConnector(
        limit=limits.max_connections or 0,
        keepalive_timeout=limits.keepalive_expiry,
        ssl=verify,
    )
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True))


def direct(
    transport: httpx.AsyncBaseTransport | None,
    client: httpx.AsyncClient,
    own: Mapping[str, str],
) -> Direct | None:
    """A :class:`Direct` sender for ``client`` when ``transport`` (its transport) is ours;
    ``own`` are the headers core gave the client (httpx adds its defaults)."""
    cls = _state.get("cls")
    if cls is None or not isinstance(transport, cls):
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


class DirectReply:
    """A reply read straight from aiohttp: what core reads of an ``httpx.Response``."""

    __slots__ = ("_response", "headers", "status_code")

    is_stream_consumed = False

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status_code: int = response.status
        self.headers: Mapping[str, str] = ReplyHeaders(response.headers, response.raw_headers)

    async def read_piece(self) -> bytes:
        """The body's next piece as it arrives (decoded if content-encoded), ``b""`` at its
        end; aiohttp's errors become httpx's (see :func:`_httpx_error`)."""
        try:
            return await self._response.content.readany()
        except Exception as exc:  # a cancellation (BaseException) passes as it is
            new = _translate(exc)
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
        "_proxy",
        "_proxy_token",
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
        self._transport: Any = transport
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, Any] = {}

    def _open_session(self) -> aiohttp.ClientSession:
        """The transport's session (the one its httpx requests use), opened on first use."""
        from aiohttp import ClientSession

        transport = self._transport
        if not isinstance(transport.client, ClientSession):
            transport.client = transport.get_client()
        session: aiohttp.ClientSession = transport.client
        self._session = session
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
        return DirectReply(response)


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
    :func:`_translate`, a request aiohttp refuses to encode (a header value with a line
    break) as ``LocalProtocolError``."""
    import aiohttp
    import httpx

    new = _translate(exc)
    if (
        new is exc
        and isinstance(exc, (ValueError, TypeError))
        and not isinstance(exc, aiohttp.ClientError)
    ):
        return httpx.LocalProtocolError(str(exc))
    return new


def _httpx_error(cause: BaseException) -> type[Exception] | None:
    """The httpx exception class httpcore raises for the failure aiohttp reported."""
    import asyncio

    import aiohttp
    import httpx
    from aiohttp.http_exceptions import ContentEncodingError

    timeout_connect = getattr(aiohttp, "ConnectionTimeoutError", None)
    timeout_read = getattr(aiohttp, "SocketTimeoutError", None)
    if timeout_connect is not None and isinstance(cause, timeout_connect):
        return httpx.ConnectTimeout
    if timeout_read is not None and isinstance(cause, timeout_read):
        return httpx.ReadTimeout
    if isinstance(cause, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        return httpx.ReadTimeout
    if isinstance(cause, aiohttp.ClientHttpProxyError):  # the proxy answered with an error
        return httpx.ProxyError
    if isinstance(cause, aiohttp.ClientConnectorError):  # refused, DNS, TLS handshake
        return httpx.ConnectError
    if isinstance(cause, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol
    nonhttp = getattr(aiohttp, "NonHttpUrlClientError", None)
    if nonhttp is not None and isinstance(cause, nonhttp):
        return httpx.UnsupportedProtocol
    if isinstance(cause, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError
    if isinstance(cause, aiohttp.ClientPayloadError) and isinstance(
        cause.__cause__, ContentEncodingError
    ):
        return httpx.DecodingError  # a corrupt compressed body: malformed, not retried
    if isinstance(cause, (aiohttp.ClientPayloadError, aiohttp.ClientResponseError)):
        return httpx.RemoteProtocolError  # a cut or malformed reply
    if isinstance(cause, aiohttp.ClientOSError):
        return httpx.ReadError
    if isinstance(cause, aiohttp.ClientError):
        return httpx.TransportError
    return None


def _translate(exc: BaseException) -> BaseException:
    """The httpx exception to raise for ``exc`` (an aiohttp exception, or httpx-aiohttp's
    coarse translation of one), or ``exc`` itself when it is neither."""
    import asyncio

    import aiohttp
    import httpx

    cause = exc.__cause__ if isinstance(exc, httpx.TransportError) else exc
    if cause is None or isinstance(cause, asyncio.CancelledError):
        return exc
    cls = _httpx_error(cause)
    if cls is None:
        return exc
    message = str(cause) or type(cause).__name__
    if isinstance(cause, aiohttp.ClientProxyConnectionError):  # a ClientConnectorError
        message = f"the proxy could not be reached: {message}"
    return cls(message)


def _build_class() -> type[Any]:
    import asyncio

    import httpx
    from httpx_aiohttp import AiohttpTransport as _Base

    class _Stream(httpx.AsyncByteStream):
        """The reply body, with aiohttp's errors mid-body translated as above."""

        __slots__ = ("_inner",)

        def __init__(self, inner: httpx.AsyncByteStream) -> None:
            self._inner = inner

        async def __aiter__(self) -> AsyncIterator[bytes]:
            try:
                async for chunk in self._inner:
                    yield chunk
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                new = _translate(exc)
                if new is exc:
                    raise
                raise new from exc

        async def aclose(self) -> None:
            await self._inner.aclose()

    class AiohttpTransport(_Base):
        """httpx-aiohttp's transport with httpcore's exception classes."""

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            try:
                response = await super().handle_async_request(request)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                new = _translate(exc)
                if new is exc:
                    raise
                raise new from exc
            stream = response.stream
            assert isinstance(stream, httpx.AsyncByteStream)
            response.stream = _Stream(stream)
            return response

    return AiohttpTransport
