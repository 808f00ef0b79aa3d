"""HTTP connections per endpoint, and the translation of HTTP failures into our errors.

A :class:`Transport` owns the connections to one base URL: one ``httpx.Client`` shared by
every thread, and one ``httpx.AsyncClient`` per event loop (an async client's connections
belong to the loop that opened them, so successive ``asyncio.run`` calls each get their own).
Connect timeout 5 s; the read timeout is the backend's ``timeout`` setting.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import aio_transport, fastjson
from .aio_transport import async_transport
from .direct import Direct, DirectReply, sender
from .errors import (
    BackendError,
    ConnectionError,
    InvalidArgumentError,
    MalformedResponseError,
    OverloadedError,
    TimeoutError,
    error_for_status,
)
from .masking import mask_url, redact, redact_data
from .resilience import forks
from .resilience.retry import parse_retry_after, should_retry_header

__all__ = ["Transport", "error_from_reply", "error_from_exception", "parse_json"]

MAX_BODY = 64 * 1024 * 1024
"""The largest reply body read (after decompression), in bytes: 64 MiB."""
MAX_ERROR_BODY = 1024 * 1024
"""The largest error reply body read, in bytes: 1 MiB."""

PROVIDER_REQUEST_ID_HEADERS = (
    "x-request-id",
    "request-id",
    "x-amzn-requestid",
    "x-goog-request-id",
)


if TYPE_CHECKING:  # httpx, ssl and asyncio load on first use: importing core stays fast
    import asyncio
    import ssl

    import httpx

    _LoopClient = tuple[
        weakref.ref[asyncio.AbstractEventLoop],
        httpx.AsyncClient,
        AsyncGenerator[None, None],
        Direct | None,
    ]


_ssl: ssl.SSLContext | None = None
_inherited: list[object] = []  # in a forked child: the parent's clients, dropped, not closed
_ssl_lock = threading.Lock()


def _ssl_context() -> ssl.SSLContext:
    """One TLS context for every client in the process: building one loads the CA
    certificates (tens of ms), which each new client would otherwise do again."""
    global _ssl
    if _ssl is None:
        with _ssl_lock:
            if _ssl is None:
                import httpx

                _ssl = httpx.create_ssl_context()
    return _ssl


def env_proxy(base_url: str) -> str | None:
    """The proxy the environment names for ``base_url`` (``HTTPS_PROXY``, ``HTTP_PROXY`` or
    ``ALL_PROXY``, in either case, unless ``NO_PROXY`` lists its host), as httpx's own
    clients read it; ``None`` for none. aiohttp's pool is given it explicitly: its own
    reading of the environment runs in a worker thread on every request."""
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]  # not in typeshed
    where = parts.netloc.rpartition("@")[2].lower()  # host:port: NO_PROXY may name either
    if not proxy or bypass(where, proxies):
        return None
    return proxy if "://" in proxy else "http://" + proxy


def _prepare_async() -> None:
    """What building the first async client needs, done in a worker thread."""
    _ssl_context()
    aio_transport.aiohttp_available()


_classes: list[Any] = []  # (Client, AsyncClient), built on first use (httpx loads lazily)
_SET_COOKIE = (b"set-cookie", b"set-cookie2")


def _client_classes() -> tuple[type[httpx.Client], type[httpx.AsyncClient]]:
    """httpx's clients with a cookie jar that looks at a reply's cookies only when it sets
    one. httpx's own adapts every reply and its request to ``http.cookiejar``'s interfaces
    (a ``urllib.request.Request``, the headers copied into an ``email.message.Message``,
    twice): a sixth of an async call's cost at high concurrency, for APIs that rarely set
    cookies. Cookies that are set are kept and sent back as before."""
    if not _classes:
        import httpx

        class RareCookies(httpx.Cookies):
            def extract_cookies(self, response: httpx.Response) -> None:
                for name, _ in response.headers.raw:
                    if name.lower() in _SET_COOKIE:
                        super().extract_cookies(response)
                        return

        class KeepsRareCookies:
            """Gives a client the cookie jar above (``cookies=`` as httpx takes it)."""

            _rare: httpx.Cookies

            @property
            def cookies(self) -> httpx.Cookies:
                return self._rare

            @cookies.setter
            def cookies(self, cookies: Any) -> None:
                self._rare = RareCookies(cookies)

            def __init__(self, **options: Any) -> None:
                super().__init__(**options)
                self.cookies = options.get("cookies") or {}

        class Client(KeepsRareCookies, httpx.Client):
            """An ``httpx.Client`` with the cookie jar above."""

        class AsyncClient(KeepsRareCookies, httpx.AsyncClient):
            """An ``httpx.AsyncClient`` with the cookie jar above."""

        _classes.append((Client, AsyncClient))
    return _classes[0]  # type: ignore[no-any-return]


class Transport:
    """Pooled HTTP clients for one base URL, safe to share across threads and event loops."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        connect_timeout: float = 5.0,
        headers: Mapping[str, str] | None = None,
        max_connections: int = 100,
    ) -> None:
        self.base_url = base_url
        self.max_body = MAX_BODY
        self.max_error_body = MAX_ERROR_BODY
        self._timeout = (timeout, connect_timeout)
        self._headers = dict(headers or {})
        self._max_connections = max_connections
        self._urls: dict[str, httpx.URL] = {}
        self._addresses: dict[str, str] = {}
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        # id(loop) -> (weak ref to the loop, its client, the generator that closes it)
        self._aclients: dict[int, _LoopClient] = {}
        self._httpx_pools: set[int] = set()  # ids of async clients on httpx's own pool
        forks.register(self)

    def _after_fork(self) -> None:
        """In a forked child: drop (never close: they are the parent's too) the inherited
        clients and their pooled connections, so the child opens its own; a socket shared by
        two processes hands each the other's answers."""
        # kept, never collected: collecting a loop client's closer would run its finally
        # (aclose: a TLS close_notify on the parent's connection) on the child's next loop
        _inherited.append((self._client, self._aclients))
        self._lock = threading.Lock()
        self._client = None
        self._aclients = {}

    def __repr__(self) -> str:
        return f"Transport({mask_url(self.base_url)!r})"

    def _options(self) -> dict[str, Any]:
        import httpx

        read, connect = self._timeout
        verify = _ssl_context()
        n = self._max_connections
        return {
            "timeout": httpx.Timeout(read, connect=connect),
            "headers": self._headers,
            "limits": httpx.Limits(max_connections=n, max_keepalive_connections=n),
            "verify": verify,
        }

    def url(self, path: str) -> httpx.URL:
        """The absolute URL of ``path`` under the base URL, parsed once and cached (httpx
        would otherwise parse and merge the relative path on every request)."""
        url = self._urls.get(path)
        if url is None:
            import httpx

            url = httpx.URL(self.base_url.rstrip("/") + "/" + path.lstrip("/"))
            if len(self._urls) < 256:
                self._urls[path] = url
        return url

    def address(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """The text of :meth:`url`, with ``params`` merged into its query as httpx does."""
        if params:
            return str(self.url(path).copy_merge_params(params))
        text = self._addresses.get(path)
        if text is None:
            text = str(self.url(path))
            if len(self._addresses) < 256:
                self._addresses[path] = text
        return text

    def read(self, response: httpx.Response, deadline: float | None, clock: Any = None) -> bytes:
        """Read a reply's body within the attempt's deadline and the size limit."""
        limit = self._limit(response)
        parts: list[bytes] = []
        size = 0
        for piece in response.iter_bytes():
            size = self._took(response, parts, piece, size, limit, deadline)
        return b"".join(parts)

    async def aread(
        self, response: httpx.Response | DirectReply, deadline: float | None, clock: Any = None
    ) -> bytes:
        """Async :meth:`read`."""
        limit = self._limit(response)
        parts: list[bytes] = []
        size = 0
        if type(response) is DirectReply:  # no async generator per reply
            read = response.read_piece
            while piece := await read():
                size = self._took(response, parts, piece, size, limit, deadline)
        else:
            async for piece in response.aiter_bytes():
                size = self._took(response, parts, piece, size, limit, deadline)
        return b"".join(parts)

    def _took(
        self,
        response: httpx.Response | DirectReply,
        parts: list[bytes],
        piece: bytes,
        size: int,
        limit: int,
        deadline: float | None,
    ) -> int:
        """Add a piece of the body read: the size so far, within the limit and deadline."""
        size += len(piece)
        if size > limit:
            raise self._too_large(response, limit)
        parts.append(piece)
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError("timed out reading the reply (the call's deadline passed)")
        return size

    def _limit(self, response: httpx.Response | DirectReply) -> int:
        limit = self.max_error_body if response.status_code >= 300 else self.max_body
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise self._too_large(response, limit)
        return limit

    @staticmethod
    def _too_large(response: httpx.Response | DirectReply, limit: int) -> MalformedResponseError:
        what = "error reply" if response.status_code >= 300 else "reply"
        return MalformedResponseError(
            f"the {what} body is larger than the {limit:,} byte limit (HTTP "
            f"{response.status_code}); raise Transport.max_body if such replies are expected"
        )

    def client(self) -> httpx.Client:
        """The shared sync client, created on first use."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    client_class = _client_classes()[0]
                    self._client = client_class(base_url=self.base_url, **self._options())
                    # a backend dropped without close() still frees its sockets
                    weakref.finalize(self, self._client.close)
                client = self._client
        return client

    async def aclient(self) -> httpx.AsyncClient:
        """The async client of the running event loop, created on first use in that loop
        and closed when the loop shuts down (``asyncio.run`` ending)."""
        import asyncio

        loop = asyncio.get_running_loop()
        entry = self._aclients.get(id(loop))
        if entry is None or entry[0]() is not loop:
            entry = await self._open_aclient(loop)
        return entry[1]

    async def asender(self) -> tuple[httpx.AsyncClient, Direct | None]:
        """The running loop's async client (see :meth:`aclient`) and, on aiohttp's pool, the
        :class:`~.direct.Direct` sender over the same connections."""
        import asyncio

        loop = asyncio.get_running_loop()
        entry = self._aclients.get(id(loop))
        if entry is None or entry[0]() is not loop:
            entry = await self._open_aclient(loop)
        return entry[1], entry[3]

    async def _open_aclient(self, loop: asyncio.AbstractEventLoop) -> _LoopClient:

        self._sweep()
        if _ssl is None or not aio_transport.resolved():
            # loading CA certificates (tens of ms) and importing aiohttp (~200 ms): not on
            # the event loop
            await loop.run_in_executor(None, _prepare_async)
        options = self._options()
        # aiohttp's pool when the `aio` extra is installed (see aio_transport), else httpx's
        transport = async_transport(
            verify=options["verify"], limits=options["limits"], proxy=env_proxy(self.base_url)
        )
        client_class = _client_classes()[1]
        client = client_class(base_url=self.base_url, transport=transport, **options)
        if transport is None:  # httpx's own pool: sends are shielded from cancellation
            self._httpx_pools.add(id(client))
        direct = sender(transport, client, self._headers)
        # An async generator, once started, is closed by the loop's shutdown_asyncgens()
        # (asyncio.run does this before closing the loop): its finally closes the client
        # in its own loop, so no connection outlives the loop that opened it.
        closer = self._close_at_shutdown(id(loop), client)
        await closer.__anext__()
        with self._lock:
            entry = self._aclients.get(id(loop))
            if entry is None or entry[0]() is not loop:
                entry = (weakref.ref(loop), client, closer, direct)
                self._aclients[id(loop)] = entry
                return entry
        await closer.aclose()  # another task of this loop won the race
        return entry

    async def _close_at_shutdown(
        self, key: int, client: httpx.AsyncClient
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with self._lock:
                entry = self._aclients.get(key)
                if entry is not None and entry[1] is client:
                    del self._aclients[key]
                self._httpx_pools.discard(id(client))
            await client.aclose()

    async def asend(self, client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
        """Send ``request`` (streamed) from a coroutine. On httpx's own pool a caller that is
        cancelled while the request waits for a connection or for the reply's headers would
        leak the pool slot (httpcore's open bug encode/httpcore#1093: enough cancellations and
        every later call waits for a pool timeout), so there the send runs in its own task that
        a cancellation does not interrupt: it finishes in the background and its reply is
        closed. So does the reply's close (httpcore's close takes a lock: a caller cancelled
        there leaves the request in the pool for good), whoever closes it: the caller, or
        httpx at the end of the body. aiohttp's pool (the ``aio`` extra) has no such bug and
        sends directly."""
        if id(client) not in self._httpx_pools:
            return await client.send(request, stream=True)
        import asyncio

        send = asyncio.ensure_future(client.send(request, stream=True))
        try:
            response = await asyncio.shield(send)
        except asyncio.CancelledError:
            send.add_done_callback(_close_abandoned)
            raise
        response.stream = _shielded_close(response.stream)
        return response

    def _sweep(self) -> None:
        """Forget clients of loops that are gone or closed without shutting down."""
        with self._lock:
            for key, (ref, *_) in list(self._aclients.items()):
                loop = ref()
                if loop is None or loop.is_closed():
                    del self._aclients[key]

    def close(self) -> None:
        """Close the sync client (async clients close with their loop, or ``aclose``)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the running loop's async client; threads' sync client stays open."""
        import asyncio

        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._aclients.get(id(loop))
        if entry is not None and entry[0]() is loop:
            await entry[2].aclose()


_closing: set[asyncio.Future[None]] = set()


_shielded: list[Any] = []  # the class below, built on first use (httpx loads lazily)


def _shielded_close(stream: Any) -> httpx.AsyncByteStream:
    """``stream`` (a reply's body on httpx's pool) with a close a cancellation does not
    interrupt: it runs in its own task, which a cancelled caller leaves finishing in the
    background (see Transport.asend)."""
    if not _shielded:
        import asyncio

        import httpx

        class ShieldedClose(httpx.AsyncByteStream):
            __slots__ = ("_inner",)

            def __init__(self, inner: httpx.AsyncByteStream) -> None:
                self._inner = inner

            def __aiter__(self) -> AsyncIterator[bytes]:
                return self._inner.__aiter__()

            async def aclose(self) -> None:
                close = asyncio.ensure_future(self._inner.aclose())
                try:
                    await asyncio.shield(close)
                except asyncio.CancelledError:
                    _closing.add(close)  # a task nobody holds may be collected before it runs
                    close.add_done_callback(_closed)
                    raise

        _shielded.append(ShieldedClose)
    return _shielded[0](stream)  # type: ignore[no-any-return]


def _closed(close: asyncio.Future[None]) -> None:
    """A background close ended: forget it, and its error (a broken connection) with it."""
    _closing.discard(close)
    if not close.cancelled():
        close.exception()


def _close_abandoned(send: asyncio.Future[httpx.Response]) -> None:
    """Close the reply of a send its caller stopped waiting for (see Transport.asend)."""
    if send.cancelled() or send.exception() is not None:
        return
    import asyncio

    closing = asyncio.ensure_future(send.result().aclose())
    _closing.add(closing)  # a task nobody holds may be collected before it runs
    closing.add_done_callback(_closing.discard)


def parse_json(content: bytes, *, provider: str | None, what: str = "reply") -> Any:
    """Decode a JSON body, with a clear error quoting the start of anything else."""
    try:
        return fastjson.loads(content)
    except (ValueError, RecursionError):  # stdlib json: RecursionError when nested too deeply
        excerpt = content[:200].decode("utf-8", "replace")
        raise MalformedResponseError(
            f"the {what} is not valid JSON: {excerpt!r}", provider=provider
        ) from None


def _provider_request_id(headers: Mapping[str, str]) -> str | None:
    for name in PROVIDER_REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None


def _error_fields(body: Any, secrets: Sequence[str] = ()) -> tuple[str | None, str | None]:
    """Find the message and code in the error body shapes providers use.

    OpenAI/Groq ``{"error": {"message", "type", "code"}}``; Anthropic ``{"type": "error",
    "error": {"type", "message"}}``; Gemini ``{"error": {"code", "message", "status"}}``;
    Ollama and TGI ``{"error": "...", "error_type": "..."}``; FastAPI ``{"detail": ...}``.
    """
    if isinstance(body, list) and body:  # Gemini streams wrap errors in a list
        body = body[0]
    if not isinstance(body, Mapping):
        return None, None
    err = body.get("error")
    if isinstance(err, Mapping):
        message = err.get("message")
        code = err.get("code") or err.get("type") or err.get("status")
        if isinstance(code, int):  # Gemini's numeric code duplicates the HTTP status
            code = err.get("status") or err.get("type")
        return (str(message) if message is not None else None), (
            str(code) if code is not None else None
        )
    if isinstance(err, str):
        code = body.get("error_type") or body.get("code") or body.get("type")
        return err, (str(code) if code is not None else None)
    for key in ("message", "detail", "error_message"):
        value = body.get(key)
        if value:
            text = value if isinstance(value, str) else _excerpt(json.dumps(value), secrets)
            return text, (str(body["code"]) if body.get("code") is not None else None)
    return None, None


_EXCERPT = 300  # characters of a reply quoted in an error, cut only after masking


def _excerpt(text: str, secrets: Sequence[str]) -> str:
    """``text`` masked, then cut to an excerpt: a key near the cut cannot show in part."""
    text = redact(text, secrets)
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."


def error_from_reply(
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    provider: str | None,
    request_id: str | None,
    secrets: Iterable[str | None] = (),
    now: float | None = None,
) -> BackendError:
    """Build the error for an HTTP error reply: class by status, message from the body."""
    keys = [s for s in secrets if s]
    body: Any = None
    try:
        body = fastjson.loads(content) if content else None
    except (ValueError, RecursionError):
        body = None
    message, code = _error_fields(body, keys)
    if message is None:
        import httpx

        # decode well past the excerpt, so that a key straddling the cut is masked whole
        text = content[: _EXCERPT * 4].decode("utf-8", "replace").strip()
        message = _excerpt(text, keys) or httpx.codes.get_reason_phrase(status) or "no message"
    else:
        message = redact(message, keys)
    if code:
        code = redact(code, keys)
    provider_request_id = _provider_request_id(headers)
    if provider_request_id:  # a reply's header: echoed keys are masked there too
        provider_request_id = redact(provider_request_id, keys)
    if body is not None and keys:
        body = redact_data(body, keys)
    cls = error_for_status(status)
    if code and "overloaded" in code.lower() and cls is not OverloadedError and status >= 500:
        cls = OverloadedError
    should = should_retry_header(headers)
    return cls(
        message,
        provider=provider,
        status_code=status,
        code=code,
        request_id=request_id,
        provider_request_id=provider_request_id,
        retry_after=parse_retry_after(headers, now),
        body=body,
        retryable=should,
    )


def error_from_exception(
    exc: Exception,
    *,
    provider: str | None,
    request_id: str | None,
    streaming: bool = False,
    url: str | None = None,
) -> BackendError:
    """Translate an httpx exception into ConnectionError, TimeoutError or the like. ``url``
    (the endpoint's base URL, shown masked) is named when the server could not be reached.

    The httpx exception (and the chain under it) is detached from the request it failed
    to send and from its traceback, whose frames hold that request: the error users get
    keeps ``exc`` as its ``__context__``, and the request carries the key's header.
    """
    if isinstance(exc, BackendError):
        return exc
    import httpx

    _forget_request(exc, httpx)
    where = f" {mask_url(url)}" if url else ""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        cls = TimeoutError if isinstance(exc, httpx.ConnectTimeout) else ConnectionError
        return cls(
            f"could not connect to{where or ' the server'} ({type(exc).__name__}: {exc}); "
            "is the server running and the base URL right?",
            provider=provider,
            request_id=request_id,
        )

    if isinstance(exc, httpx.TimeoutException):
        kind = {
            httpx.ConnectTimeout: "connecting",
            httpx.ReadTimeout: "waiting for the reply",
            httpx.WriteTimeout: "sending the request",
            httpx.PoolTimeout: "waiting for a free connection",
        }.get(type(exc), "")
        detail = f" while {kind}" if kind else ""
        return TimeoutError(f"timed out{detail}", provider=provider, request_id=request_id)
    if isinstance(exc, (httpx.LocalProtocolError, httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return InvalidArgumentError(  # the request itself is invalid (e.g. a bad header value)
            f"the request could not be sent: {type(exc).__name__}: {exc}",
            provider=provider,
            request_id=request_id,
        )
    if isinstance(exc, httpx.DecodingError):
        return MalformedResponseError(
            f"the reply could not be decoded: {exc}", provider=provider, request_id=request_id
        )
    if isinstance(exc, (httpx.TransportError, OSError)):
        what = "the stream was cut" if streaming else "the connection failed"
        return ConnectionError(
            f"{what}: {type(exc).__name__}: {exc}".rstrip(": "),
            provider=provider,
            request_id=request_id,
        )
    return ConnectionError(
        f"unexpected transport failure: {type(exc).__name__}: {exc}",
        provider=provider,
        request_id=request_id,
    )


def _forget_request(exc: BaseException, httpx: Any) -> None:
    """Drop what reaches the live request from ``exc`` and the exceptions chained under it:
    httpx's ``request`` reference and the tracebacks (their frames hold the request and its
    headers as local variables)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        err = todo.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, httpx.RequestError):
            err._request = None  # the property then raises instead of handing out the request
        err.__traceback__ = None
        todo += (err.__context__, err.__cause__)


def _ssl_after_fork() -> None:
    global _ssl_lock
    _ssl_lock = threading.Lock()  # a parent's thread may have held it while building


forks.register_function(_ssl_after_fork)
