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
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl

    import httpx

__all__ = ["aiohttp_available", "async_transport", "resolved"]

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
    *, verify: ssl.SSLContext, limits: httpx.Limits
) -> httpx.AsyncBaseTransport | None:
    """A fresh aiohttp-backed transport, or ``None`` to let httpx build its own pool."""
    if not aiohttp_available():
        return None
    cls = _state["cls"]
    transport: httpx.AsyncBaseTransport = cls(verify=verify, limits=limits, trust_env=False)
    return transport


def _httpx_error(cause: BaseException) -> type[Exception] | None:
    """The httpx exception class httpcore raises for the failure aiohttp reported."""
    import asyncio

    import aiohttp
    import httpx

    timeout_connect = getattr(aiohttp, "ConnectionTimeoutError", None)
    timeout_read = getattr(aiohttp, "SocketTimeoutError", None)
    if timeout_connect is not None and isinstance(cause, timeout_connect):
        return httpx.ConnectTimeout
    if timeout_read is not None and isinstance(cause, timeout_read):
        return httpx.ReadTimeout
    if isinstance(cause, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        return httpx.ReadTimeout
    if isinstance(cause, (aiohttp.ClientProxyConnectionError, aiohttp.ClientHttpProxyError)):
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

    import httpx

    cause = exc.__cause__ if isinstance(exc, httpx.TransportError) else exc
    if cause is None or isinstance(cause, asyncio.CancelledError):
        return exc
    cls = _httpx_error(cause)
    if cls is None:
        return exc
    message = str(cause) or type(cause).__name__
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
