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

A request whose plugin has no ``authorize`` hook skips httpx's objects altogether and goes
through the same aiohttp session by :mod:`.direct`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl

    import aiohttp
    import httpx

__all__ = [
    "aiohttp_available",
    "async_transport",
    "is_aiohttp",
    "request_error",
    "resolved",
    "translate",
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


def is_aiohttp(transport: object) -> bool:
    """Whether ``transport`` is one :func:`async_transport` made (aiohttp's pool)."""
    cls = _state.get("cls")
    return cls is not None and isinstance(transport, cls)


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


def translate(exc: BaseException) -> BaseException:
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


def request_error(exc: Exception) -> BaseException:
    """httpx's exception for a request aiohttp could not send: its transport errors as in
    :func:`translate`, a request aiohttp refuses to encode (a header value
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


def _build_class() -> type[Any]:
    import asyncio

    import httpx
    from httpx_aiohttp import AiohttpTransport as _Base

    from .direct import DirectReply

    class _Stream(httpx.AsyncByteStream):
        """The reply body read through :meth:`~.direct.DirectReply.read_piece`, as on the
        direct route: aiohttp's errors mid-body translated as above, and every wait for data
        bounded by the read timeout (aiohttp can drop its own read timer, see there)."""

        __slots__ = ("_reply",)

        def __init__(self, reply: DirectReply) -> None:
            self._reply = reply

        async def __aiter__(self) -> AsyncIterator[bytes]:
            read = self._reply.read_piece
            while piece := await read():
                yield piece

        async def aclose(self) -> None:
            await self._reply.aclose()

    class AiohttpTransport(_Base):
        """httpx-aiohttp's transport with httpcore's exception classes."""

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            try:
                response = await super().handle_async_request(request)
            except Exception as exc:  # a cancellation (BaseException) passes as it is
                new = request_error(exc)
                if new is exc:
                    raise
                raise new from exc
            # httpx-aiohttp's stream holds aiohttp's reply as `_aiohttp_response` (0.1.8 to
            # 0.2.x; the aio extra pins that range)
            reply = response.stream._aiohttp_response  # type: ignore[union-attr]
            read = request.extensions.get("timeout", {}).get("read")
            response.stream = _Stream(DirectReply(reply, read, asyncio.get_running_loop()))
            return response

    return AiohttpTransport
