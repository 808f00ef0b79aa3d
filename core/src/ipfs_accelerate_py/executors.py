"""How one attempt is carried out: an HTTP exchange, or a call into Python code.

The runners in :mod:`.pipeline` decide nothing and know no transport: for each attempt they
ask :class:`~.attempts.Attempts` for a credential, hand it to the call's executor, and give
the executor's :class:`Outcome` back to ``Attempts`` to account for. An executor never
raises for a failed attempt; it returns the failure, already translated into one of core's
errors (``Outcome.error``), so that a failure is accounted exactly once.

- :class:`HttpExecutor` builds the request (the plugin places the credential through its
  ``authorize`` hook, or the spec's auth header), sends it through the endpoint's pooled
  httpx client, reads the reply within the attempt's deadline and parses it.
- :class:`CallableExecutor` calls a :class:`~.calls.CallableCall`'s function with the
  credential (in a worker thread on the async path unless the call has an async version)
  and maps its exceptions with the call's ``classify``.

Streams open a :class:`StreamSource`: the pieces to decode (bytes for HTTP, chunks for a
callable), the reply's headers, and a ``close``.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .calls import CallableCall, Credential, HttpCall
from .direct import Direct, DirectReply, encode_json
from .errors import (
    BackendError,
    ConnectionError,
    InvalidArgumentError,
    MalformedResponseError,
    ServerError,
    TimeoutError,
)
from .transport import error_from_reply, parse_json

if TYPE_CHECKING:
    import httpx

    from .attempts import Attempts

__all__ = ["CallableExecutor", "HttpExecutor", "Outcome", "StreamSource", "executor_for"]

_NO_HEADERS: Mapping[str, str] = {}
DRAIN_LIMIT = 64 * 1024
"""The most a stream reads past its end marker to keep its connection (see drain())."""
DRAIN_SECONDS = 1.0
"""How long a stream goes on reading past its end marker (a read already waiting may still
take up to the read timeout)."""
_JSON_TYPES = ("application/json", "application/problem+json")


class Outcome:
    """One attempt's result: ``error`` is None on success, else the failure to account."""

    __slots__ = ("error", "headers", "result")

    def __init__(
        self, result: Any = None, error: BackendError | None = None, headers: Any = None
    ) -> None:
        self.result = result
        self.error = error
        self.headers: Mapping[str, str] = _NO_HEADERS if headers is None else headers


class StreamSource:
    """An opened stream: ``error`` set when the provider refused it (an error status),
    else ``pieces`` to decode; ``close()`` releases the connection."""

    __slots__ = ("aclose_fn", "apieces", "close_fn", "drainable", "error", "headers", "pieces")

    def __init__(
        self,
        *,
        pieces: Iterator[Any] | None = None,
        apieces: AsyncIterator[Any] | None = None,
        headers: Any = None,
        error: BackendError | None = None,
        close: Callable[[], Any] | None = None,
        aclose: Callable[[], Any] | None = None,
        drainable: bool = False,
    ) -> None:
        self.pieces = pieces
        self.apieces = apieces
        self.headers: Mapping[str, str] = _NO_HEADERS if headers is None else headers
        self.error = error
        self.close_fn = close
        self.aclose_fn = aclose
        self.drainable = drainable  # an HTTP body: reading it to its end keeps the connection

    def drain(self) -> None:
        """After the protocol's end marker: read what is left of the body (normally only
        the chunked encoding's last chunk) so that the connection goes back to the pool
        instead of being closed, as the official SDKs do. Gives up past 64 KiB or 1 s (a
        server trickling bytes after its end); a failure is ignored (the result is complete)."""
        if self.drainable and self.pieces is not None:
            size, deadline = 0, time.monotonic() + DRAIN_SECONDS
            try:
                for piece in self.pieces:
                    size += len(piece)
                    if size > DRAIN_LIMIT or time.monotonic() > deadline:
                        return
            except Exception:
                return

    async def adrain(self) -> None:
        """Async :meth:`drain`."""
        if self.drainable and self.apieces is not None:
            size, deadline = 0, time.monotonic() + DRAIN_SECONDS
            try:
                async for piece in self.apieces:
                    size += len(piece)
                    if size > DRAIN_LIMIT or time.monotonic() > deadline:
                        return
            except Exception:
                return

    def close(self) -> None:
        """Release the connection (sync side)."""
        if self.close_fn is not None:
            self.close_fn()

    async def aclose(self) -> None:
        """Release the connection (async side)."""
        if self.aclose_fn is not None:
            await self.aclose_fn()
        elif self.close_fn is not None:
            self.close_fn()


def parse_reply(att: Attempts, call: HttpCall, content: bytes) -> Any:
    """Read a successful reply with the call's parser. Any exception from parsing (a body
    nested too deep, a number out of range) becomes a MalformedResponseError."""
    provider = att.spec.name
    try:
        body: Any = content
        if call.json_reply:
            decode = call.decode
            body = parse_json(content, provider=provider) if decode is None else decode(content)
        att.body = body
        return body if call.parse is None else call.parse(body)
    except BackendError as err:
        err.request_id = err.request_id or att.opts.request_id
        err.provider = err.provider or provider
        raise
    except Exception as exc:
        raise MalformedResponseError(
            f"the reply does not have the expected shape ({type(exc).__name__}: "
            f"{str(exc)[:200]}); body starts {content[:200]!r}",
            provider=provider,
            request_id=att.opts.request_id,
        ) from None


def _merge_headers(headers: dict[str, str], more: Mapping[str, Any]) -> None:
    """Add ``more`` to ``headers``, a name given again in another case replacing the first
    (so an ``Authorization`` of the caller's replaces the key's rather than joining it);
    numbers are sent as their text (anything else but a string is refused when sent)."""
    names = {name.lower(): name for name in headers}
    for name, value in more.items():
        old = names.get(name.lower())
        if old is not None and old != name:
            del headers[old]
        kind = type(value)
        headers[name] = str(value) if kind is int or kind is float else value
        names[name.lower()] = name


def _identity(response: httpx.Response | DirectReply) -> bool:
    """The body is not content-encoded and not read yet: its raw bytes are the bytes to
    decode, so a stream reads them directly (``iter_raw``), without httpx's per-piece
    decoding layers. (A reply already in memory, as ``httpx.MockTransport`` makes from
    ``content=``, has no raw stream left: ``iter_bytes`` serves it.)"""
    if response.is_stream_consumed:
        return False
    encoding = response.headers.get("content-encoding")
    return encoding is None or encoding.strip().lower() in ("", "identity")


class HttpExecutor:
    """Carries out :class:`~.calls.HttpCall` attempts over the endpoint's httpx clients."""

    # -- the request -------------------------------------------------------------------------
    @staticmethod
    def parts(
        att: Attempts, credential: Credential | None
    ) -> tuple[dict[str, str], Any, Mapping[str, Any] | None, float | None]:
        """The request's headers (with the credential placed by the spec, unless the plugin
        places it), JSON body, query parameters and timeout, the caller's extras merged."""
        call, opts, spec = att.call, att.opts, att.spec
        assert isinstance(call, HttpCall)
        place = credential is not None and att.authorize is None
        headers = spec.auth_headers(credential.secret) if place and credential else {}
        if spec.request_id_header:
            headers[spec.request_id_header] = opts.request_id
        if att.idempotency_key:
            _merge_headers(headers, spec.idempotency_headers(att.idempotency_key))
        if call.headers:
            _merge_headers(headers, call.headers)
        if opts.extra_headers:
            _merge_headers(headers, opts.extra_headers)
        body = call.json
        if opts.extra_body:
            if not isinstance(body, dict):
                raise InvalidArgumentError("extra_body needs a call with a JSON object body")
            body = {**body, **opts.extra_body}
        params = call.params
        if opts.extra_query:
            params = {**(params or {}), **opts.extra_query}
        return headers, body, params, opts.timeout

    @staticmethod
    def _unencodable(att: Attempts, exc: Exception) -> InvalidArgumentError:
        return InvalidArgumentError(
            f"the request could not be encoded: {type(exc).__name__}: {str(exc)[:200]}",
            provider=att.spec.name,
            request_id=att.opts.request_id,
        )

    def build(
        self, att: Attempts, client: httpx.Client | httpx.AsyncClient, credential: Credential | None
    ) -> httpx.Request:
        """The request for this attempt, with the credential placed by the plugin."""
        headers, body, params, timeout = self.parts(att, credential)
        extensions = None
        if timeout is not None:
            t = timeout
            extensions = {"timeout": {"connect": min(5.0, t), "read": t, "write": t, "pool": t}}
        call = att.call
        assert isinstance(call, HttpCall)
        try:
            request = client.build_request(
                call.method,
                att.ep.transport.url(call.path),
                json=body,
                params=params,
                headers=headers,
                extensions=extensions,
            )
        except (TypeError, ValueError, RecursionError) as exc:
            raise self._unencodable(att, exc) from None
        authorize = att.authorize
        if authorize is not None and credential is not None:
            authorize(request, credential)
        return request

    async def _asend(
        self, att: Attempts, credential: Credential | None
    ) -> httpx.Response | DirectReply:
        """Send this attempt's request from a coroutine (the reply's body not read yet): on
        aiohttp's pool straight through aiohttp, unless the plugin's ``authorize`` hook signs
        an ``httpx.Request``; otherwise through the loop's httpx client."""
        transport = att.ep.transport
        client, direct = await transport.asender()
        if direct is not None and att.authorize is None:
            return await self._asend_direct(att, direct, credential)
        return await transport.asend(client, self.build(att, client, credential))

    async def _asend_direct(
        self, att: Attempts, direct: Direct, credential: Credential | None
    ) -> DirectReply:
        """Send this attempt's request through aiohttp without httpx's objects (a request
        whose plugin has no ``authorize`` hook: see :mod:`.aio_transport`)."""
        headers, body, params, timeout = self.parts(att, credential)
        call = att.call
        assert isinstance(call, HttpCall)
        for name, value in headers.items():  # what httpx refuses to send, refused here too
            if type(value) is not str or not (value.isascii() and name.isascii()):
                raise self._unencodable(
                    att, ValueError(f"header {name!r} needs an ASCII string value")
                )
        content = None
        if body is not None:
            try:
                content = encode_json(body)
            except (TypeError, ValueError, RecursionError) as exc:
                raise self._unencodable(att, exc) from None
        url = att.ep.transport.address(call.path, params)
        return await direct.send(call.method, url, headers, content, timeout)

    # -- a plain call -------------------------------------------------------------------------
    def attempt(self, att: Attempts, credential: Credential | None) -> Outcome:
        """Send the request from a thread and read the whole reply."""
        ep = att.ep
        client = ep.transport.client()  # per attempt: a retry after close() reconnects
        try:
            request = self.build(att, client, credential)
        except BackendError as err:
            return Outcome(error=err)
        deadline = att.deadline()
        try:
            response = client.send(request, stream=True)
            try:
                content = ep.transport.read(response, deadline, att.clock)
            finally:
                response.close()
        except Exception as exc:
            return Outcome(error=att.wrap(exc))
        return self.finish(att, response, content)

    async def aattempt(self, att: Attempts, credential: Credential | None) -> Outcome:
        """Send the request from a coroutine and read the whole reply."""
        transport = att.ep.transport
        deadline = att.deadline()
        try:
            response = await self._asend(att, credential)
            try:
                content = await transport.aread(response, deadline, att.clock)
            finally:
                await response.aclose()
        except Exception as exc:
            return Outcome(error=att.wrap(exc))
        return self.finish(att, response, content)

    @staticmethod
    def finish(att: Attempts, response: httpx.Response | DirectReply, content: bytes) -> Outcome:
        """Classify a complete reply: an error status, a redirect, or a result to parse."""
        status = response.status_code
        headers = response.headers
        if status >= 300:
            return Outcome(error=att.error_reply(status, headers, content), headers=headers)
        try:
            return Outcome(parse_reply(att, att.call, content), headers=headers)  # type: ignore[arg-type]
        except BackendError as err:
            return Outcome(error=err, headers=headers)

    # -- a stream -----------------------------------------------------------------------------
    def open(self, att: Attempts, credential: Credential | None) -> StreamSource:
        """Send a streamed request from a thread; raises on transport failure."""
        client = att.ep.transport.client()
        request = self.build(att, client, credential)
        response = client.send(request, stream=True)
        try:
            error = self._refused(att, response, None)
        except BaseException:
            response.close()
            raise
        if error is not None:
            response.close()
            return StreamSource(error=error, headers=response.headers)
        pieces = response.iter_raw() if _identity(response) else response.iter_bytes()
        return StreamSource(
            pieces=pieces, headers=response.headers, close=response.close, drainable=True
        )

    async def aopen(self, att: Attempts, credential: Credential | None) -> StreamSource:
        """Send a streamed request from a coroutine; raises on transport failure."""
        response = await self._asend(att, credential)
        try:
            content = None
            if self._not_a_stream(att, response):
                content = await att.ep.transport.aread(response, att.deadline(), att.clock)
            error = self._refused(att, response, content)
        except BaseException:
            await response.aclose()
            raise
        if error is not None:
            await response.aclose()
            return StreamSource(error=error, headers=response.headers)
        apieces = response.aiter_raw() if _identity(response) else response.aiter_bytes()
        return StreamSource(
            apieces=apieces, headers=response.headers, aclose=response.aclose, drainable=True
        )

    @staticmethod
    def _not_a_stream(att: Attempts, response: httpx.Response | DirectReply) -> bool:
        if response.status_code >= 300:
            return True
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "text/html":
            return True
        return att.call.stream == "sse" and kind in _JSON_TYPES

    def _refused(
        self, att: Attempts, response: httpx.Response | DirectReply, content: bytes | None
    ) -> BackendError | None:
        """The error for a streamed request the provider did not answer with a stream: an
        error status, or a 200 whose body is JSON or HTML (sent once, never retried)."""
        if not self._not_a_stream(att, response):
            return None
        if content is None:  # the sync side, which reads here (httpx's reply)
            assert not isinstance(response, DirectReply)
            content = att.ep.transport.read(response, att.deadline(), att.clock)
        status = response.status_code
        if status >= 300:
            return att.error_reply(status, response.headers, content)
        err = error_from_reply(
            500,
            response.headers,
            content,
            provider=att.spec.name,
            request_id=att.opts.request_id,
            secrets=att.ep.keys.secrets(),
        )
        kind = response.headers.get("content-type", "").split(";")[0]
        return MalformedResponseError(
            f"asked for a stream, got a {status} {kind} body instead: {err.message}",
            provider=att.spec.name,
            status_code=status,
            code=err.code,
            request_id=att.opts.request_id,
            provider_request_id=err.provider_request_id,
            body=err.body,
        )

    @staticmethod
    def wrap(att: Attempts, exc: Exception, *, streaming: bool = False) -> BackendError:
        """Translate a transport exception."""
        return att.wrap(exc, streaming=streaming)


class CallableExecutor:
    """Carries out :class:`~.calls.CallableCall` attempts: Python code instead of HTTP."""

    @staticmethod
    def classify(att: Attempts, exc: BaseException, *, streaming: bool = False) -> BackendError:
        """Map an exception from the call's code onto core's errors."""
        if isinstance(exc, BackendError):
            err = exc
        else:
            call = att.call
            assert isinstance(call, CallableCall)
            found = call.classify(exc) if call.classify is not None else None
            if found is not None:
                err = found
            elif isinstance(exc, builtins.TimeoutError):
                err = TimeoutError(f"timed out: {exc}")
            elif isinstance(exc, OSError):
                what = "the stream was cut" if streaming else "the connection failed"
                err = ConnectionError(f"{what}: {type(exc).__name__}: {exc}")
            else:
                err = ServerError(
                    f"{type(exc).__name__}: {str(exc)[:300]}", retryable=False, body=None
                )
        err.provider = err.provider or att.spec.name
        err.request_id = err.request_id or att.opts.request_id
        return err

    def attempt(self, att: Attempts, credential: Credential | None) -> Outcome:
        """Run the function from a thread."""
        call = att.call
        assert isinstance(call, CallableCall)
        try:
            return Outcome(call.fn(credential))
        except Exception as exc:
            return Outcome(error=self.classify(att, exc))

    async def aattempt(self, att: Attempts, credential: Credential | None) -> Outcome:
        """Run the async function, or the function in a worker thread."""
        call = att.call
        assert isinstance(call, CallableCall)
        try:
            if call.afn is not None:
                return Outcome(await call.afn(credential))  # type: ignore[misc]
            import asyncio

            return Outcome(await asyncio.to_thread(call.fn, credential))
        except Exception as exc:
            return Outcome(error=self.classify(att, exc))

    def open(self, att: Attempts, credential: Credential | None) -> StreamSource:
        """Start a streaming function; its iterator's items are chunks."""
        call = att.call
        assert isinstance(call, CallableCall)
        it = iter(call.fn(credential))
        close = getattr(it, "close", None)
        return StreamSource(pieces=it, close=close)

    async def aopen(self, att: Attempts, credential: Credential | None) -> StreamSource:
        """Start a streaming function from a coroutine (its iterator read in a worker
        thread unless the call has an async version)."""
        call = att.call
        assert isinstance(call, CallableCall)
        if call.afn is not None:
            ait: AsyncIterator[Any] = call.afn(credential)  # type: ignore[assignment]
            return StreamSource(apieces=ait, aclose=getattr(ait, "aclose", None))
        import asyncio

        it = iter(await asyncio.to_thread(call.fn, credential))
        return StreamSource(apieces=_in_thread(it), close=getattr(it, "close", None))

    def wrap(self, att: Attempts, exc: Exception, *, streaming: bool = False) -> BackendError:
        """Translate an exception raised while streaming."""
        return self.classify(att, exc, streaming=streaming)


_DONE = object()


async def _in_thread(it: Iterator[Any]) -> AsyncIterator[Any]:
    """Read a blocking iterator from a coroutine, one item per worker-thread hop."""
    import asyncio

    while True:
        item = await asyncio.to_thread(next, it, _DONE)
        if item is _DONE:
            return
        yield item


HTTP = HttpExecutor()
CALLABLE = CallableExecutor()


def executor_for(call: HttpCall | CallableCall) -> HttpExecutor | CallableExecutor:
    """The executor for a call's kind."""
    return HTTP if isinstance(call, HttpCall) else CALLABLE
