"""The resilience pipeline every call goes through, once for threads and once for coroutines.

Order: priority gate → circuit breaker → key selection → attempt (an HTTP exchange or a
call into Python code) → classify → retry with backoff (moving to another key on 429) →
usage and cost accounting.

The decisions live in :class:`~.attempts.Attempts` and the I/O in :mod:`.executors`; the
runners here only hold the gate slot, wait and iterate, for both kinds of call.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Generator
from time import monotonic
from typing import TYPE_CHECKING, Any, NoReturn

from . import fastattrs as attrs  # attrs.evolve for core's classes, without loading attrs
from . import observability as _obs
from .attempts import Attempts, CallOptions, PluginHooks, new_request_id
from .calls import STREAM_END, CallableCall, EventParser, HttpCall, StreamEnd
from .decoders import NDJSONDecoder, SSEDecoder
from .errors import BackendError, ConnectionError, MalformedResponseError, TimeoutError
from .executors import StreamSource, executor_for
from .types import StreamChunk, Usage

if TYPE_CHECKING:
    from .endpoint import Endpoint

__all__ = [
    "CallOptions",
    "PluginHooks",
    "StreamControl",
    "StreamState",
    "arun",
    "arun_stream",
    "new_request_id",
    "run",
    "run_stream",
]


# --- plain calls -------------------------------------------------------------------------


def _tagged(err: BackendError, ep: Endpoint, opts: CallOptions) -> None:
    """Fill in the provider and request id where the error's source could not know them
    (the queue, the breaker)."""
    if err.provider is None or err.request_id is None:
        err.provider = err.provider or ep.spec.name
        err.request_id = err.request_id or opts.request_id


def _pages(results: list[Any]) -> Any:
    """Concatenate the list results of a paginated listing."""
    out: list[Any] = []
    for page in results:
        out.extend(page)
    return out


def run(
    ep: Endpoint,
    call: HttpCall | CallableCall,
    opts: CallOptions,
    hooks: PluginHooks | None = None,
) -> Any:
    """Run ``call`` on ``ep`` from a thread: gate, attempts, retries, accounting. A paginated
    call follows ``next_page``, each page an exchange retried on its own."""
    if _obs.ENABLED and opts.obs is None:
        return _obs.observed_run(run, ep, call, opts, hooks)
    try:
        with ep.gate.slot(opts.priority, opts.queue_timeout):
            pages: list[Any] = []
            while True:
                att = Attempts(ep, call, opts, hooks)
                result = _exchange(ep, att)
                nxt = _next(call, att, result)
                if nxt is None:
                    return _pages([*pages, result]) if pages else result
                pages.append(result)
                call = nxt
    except BackendError as err:
        _tagged(err, ep, opts)
        raise


def _next(call: HttpCall | CallableCall, att: Attempts, result: Any) -> Any:
    if call.next_page is None:
        return None
    return call.next_page(att.body if isinstance(call, HttpCall) else result)


def _exchange(ep: Endpoint, att: Attempts) -> Any:
    ex = executor_for(att.call)
    while True:
        credential, wait = att.start()
        try:
            if wait:
                ep.clock.sleep(wait)
            outcome = ex.attempt(att, credential)
        except BaseException:  # KeyboardInterrupt and the like: the request may have gone
            att.abandoned(sent=True)
            raise
        # accounted outside the try: failed() raising the error must not count it twice
        if outcome.error is None:
            att.succeeded(outcome.headers, att.usage_of(outcome.result, outcome.headers))
            return outcome.result
        delay = att.failed(outcome.error, outcome.headers)
        if delay:
            ep.clock.sleep(delay)


async def arun(
    ep: Endpoint,
    call: HttpCall | CallableCall,
    opts: CallOptions,
    hooks: PluginHooks | None = None,
) -> Any:
    """Run ``call`` on ``ep`` from a coroutine, never blocking the event loop."""
    if _obs.ENABLED and opts.obs is None:
        return await _obs.observed_arun(arun, ep, call, opts, hooks)
    try:
        async with ep.gate.aslot(opts.priority, opts.queue_timeout):
            pages: list[Any] = []
            while True:
                att = Attempts(ep, call, opts, hooks)
                result = await _aexchange(ep, att)
                nxt = _next(call, att, result)
                if nxt is None:
                    return _pages([*pages, result]) if pages else result
                pages.append(result)
                call = nxt
    except BackendError as err:
        _tagged(err, ep, opts)
        raise


async def _aexchange(ep: Endpoint, att: Attempts) -> Any:
    ex = executor_for(att.call)
    while True:
        credential, wait = att.start() if ep.shared is None else await att.astart()
        try:
            if wait:
                await ep.clock.asleep(wait)
            outcome = await ex.aattempt(att, credential)
        except BaseException:  # CancelledError: the request may have reached the server
            att.abandoned(sent=not wait)
            raise
        if outcome.error is None:
            att.succeeded(outcome.headers, att.usage_of(outcome.result, outcome.headers))
            return outcome.result
        delay = att.failed(outcome.error, outcome.headers)
        if delay:
            await ep.clock.asleep(delay)


# --- streams -----------------------------------------------------------------------------


END_OF_BODY: Any = object()
"""Fed to :meth:`StreamState.feed` at the end of an HTTP body."""


def _chunk(event: Any) -> Any:
    """A callable's stream yields chunks already."""
    return event


class StreamState:
    """Turns decoded events into chunks: text chunks pass through; finish reason and usage
    are folded into one final ``done`` chunk at the protocol's end marker. One per attempt."""

    __slots__ = (
        "call",
        "decoder",
        "ended",
        "error",
        "finish_reason",
        "last_event",
        "model",
        "parse",
        "provider",
        "raw",
        "usage",
        "yielded",
    )

    def __init__(self, call: HttpCall | CallableCall, provider: str) -> None:
        self.call = call
        self.provider = provider
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.model: str | None = None
        self.ended = False
        self.error: BackendError | None = None  # raised by finish(), after earlier chunks
        self.yielded = 0
        self.raw: Any = None  # the raw event of the last chunk with a finish, usage or end
        self.last_event = time.monotonic()
        self.decoder: SSEDecoder | NDJSONDecoder | None = None
        if isinstance(call, CallableCall):
            self.parse: EventParser = _chunk
            return
        # a stateful parser is made afresh for each attempt: a retry starts clean
        parse = call.new_parser() if call.new_parser is not None else call.parse_event
        if parse is None:
            raise TypeError("a streamed HttpCall needs parse_event or new_parser")
        self.parse = parse
        self.decoder = SSEDecoder(provider) if call.stream == "sse" else NDJSONDecoder(provider)

    def feed(self, piece: Any, now: float | None = None) -> list[StreamChunk]:
        """Decode a piece (bytes of an HTTP body, or a callable's chunk) read at ``now``
        (``time.monotonic()``, taken here when not given) into the chunks to hand the caller.
        ``END_OF_BODY`` ends the body: the events of a last unterminated line."""
        decoder = self.decoder
        if decoder is None:
            events: list[Any] = [piece]
        elif piece is END_OF_BODY:
            events = decoder.close()
        else:
            events = decoder.feed(piece)
            if not events:
                return []  # comments and keep-alives do not count as events
        self.last_event = time.monotonic() if now is None else now
        out: list[StreamChunk] = []
        parse = self.parse
        for event in events:
            try:
                chunk = parse(event)
            except Exception as exc:
                error = exc if isinstance(exc, BackendError) else self._malformed(event, exc)
                if not out:
                    raise error from None
                # chunks decoded before the failing event reach the caller first, however the
                # body was cut into reads; finish() raises the error after them
                self.error = error
                self.ended = True
                break
            if chunk is None:
                continue
            if chunk.__class__ is StreamChunk and not (chunk.done or chunk.finish_reason):
                # the common case: a text (or tool-call) delta, with the usage so far or not
                usage = chunk.usage
                if usage is not None:  # Gemini reports it on every event
                    self.usage = usage if self.usage is None else self.usage.merge(usage)
                    self.raw = chunk.raw if chunk.raw is not None else self.raw
                if chunk.model:
                    self.model = chunk.model
                if chunk.text or chunk.tool_calls:
                    out.append(chunk)
            elif self._last(chunk, out):
                break
        return out

    def _last(self, chunk: StreamChunk | StreamEnd, out: list[StreamChunk]) -> bool:
        """Fold a chunk with a finish reason, usage or ``done`` (or the end marker) into the
        final chunk's fields, passing on its text; True when it ends the stream."""
        if chunk is STREAM_END:
            self.ended = True
            return True
        if not isinstance(chunk, StreamChunk):
            raise TypeError(f"a stream parser returned {type(chunk).__name__}, not a StreamChunk")
        self.raw = chunk.raw if chunk.raw is not None else self.raw
        if chunk.finish_reason:
            self.finish_reason = chunk.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage if self.usage is None else self.usage.merge(chunk.usage)
        if chunk.model:
            self.model = chunk.model
        if chunk.text or chunk.tool_calls:
            out.append(attrs.evolve(chunk, done=False) if chunk.done else chunk)
        if chunk.done:
            self.ended = True
        return self.ended

    def usage_so_far(self) -> Usage | None:
        """The usage reported so far: the chunks' usage, merged with what the parser kept
        back (``parse.usage_so_far()``, for providers that report it on every event)."""
        kept = getattr(self.parse, "usage_so_far", None)
        try:
            later = kept() if kept is not None else None
        except Exception:  # never in the way of accounting (an abandoned call's key lease)
            later = None
        if later is None:
            return self.usage
        return later if self.usage is None else self.usage.merge(later)

    def _malformed(self, event: Any, exc: Exception) -> MalformedResponseError:
        """Any failure to read an event is a malformed reply."""
        excerpt = str(getattr(event, "data", event))[:200]
        return MalformedResponseError(
            f"a stream event does not have the expected shape "
            f"({type(exc).__name__}: {exc}); event data starts {excerpt!r}",
            provider=self.provider,
        )

    def finish(self, request_id: str) -> tuple[list[StreamChunk], StreamChunk]:
        """End of the body: the chunks of a last unterminated NDJSON line, and the final
        ``done`` chunk. Raises ConnectionError if the stream stopped before its end marker
        or in the middle of an event, and the error of a failing event whose preceding
        chunks were handed out first."""
        if self.error is not None:
            raise self.error
        decoder = self.decoder
        tail = [] if self.ended or decoder is None else self.feed(END_OF_BODY)
        cut_mid_event = isinstance(decoder, SSEDecoder) and decoder.truncated
        required = isinstance(self.call, HttpCall) and self.call.end_required
        if not self.ended and (required or cut_mid_event):
            where = "in the middle of an event" if cut_mid_event else "before its end marker"
            raise ConnectionError(
                f"the stream ended {where}, after {self.yielded} chunks",
                provider=self.provider,
                request_id=request_id,
            )
        final = StreamChunk(
            done=True,
            finish_reason=self.finish_reason,
            usage=self.usage_so_far(),
            model=self.model,
            raw=self.raw,
        )
        return tail, final


class StreamControl:
    """Lets :meth:`~.stream.Stream.close` stop a stream from any thread: it closes the
    connection under a reader blocked in another thread, which then ends quietly."""

    __slots__ = ("closed", "source")

    def __init__(self) -> None:
        self.closed = False
        self.source: StreamSource | None = None

    def stop(self) -> None:
        """Close the stream's connection now (from any thread)."""
        self.closed = True
        source = self.source
        if source is not None:
            try:
                source.close()
            except Exception:  # the reader's thread may be closing it at the same moment
                pass


def _stream_limits(ep: Endpoint, opts: CallOptions) -> tuple[float, float | None]:
    """The idle timeout (no event for this long fails the stream; comments and keep-alives
    do not count) and the total deadline, if the caller asked for one."""
    idle = opts.timeout if opts.timeout is not None else ep.settings.timeout
    total = None if opts.total_timeout is None else time.monotonic() + opts.total_timeout
    return idle, total


def _stream_timeout(idle: float, total: float | None, now: float) -> NoReturn:
    """Raise the TimeoutError of a stream past its idle timeout or total deadline."""
    if total is not None and now > total:
        raise TimeoutError("the stream did not finish within its total timeout")
    raise TimeoutError(f"the stream sent no event for {idle:g}s (idle timeout)")


def run_stream(
    ep: Endpoint,
    call: HttpCall | CallableCall,
    opts: CallOptions,
    control: StreamControl | None = None,
    hooks: PluginHooks | None = None,
) -> Generator[StreamChunk, None, None]:
    """Stream ``call`` from a thread. Retried only until the first chunk reached the caller."""
    if _obs.ENABLED and opts.obs is None:
        yield from _obs.observed_stream(run_stream, ep, call, opts, control, hooks)
        return
    ex = executor_for(call)
    control = control or StreamControl()
    idle, total = _stream_limits(ep, opts)
    try:
        with ep.gate.slot(opts.priority, opts.queue_timeout):
            att = Attempts(ep, call, opts, hooks)
            while True:
                credential, wait = att.start()
                state = StreamState(call, ep.spec.name)
                source: StreamSource | None = None
                final: StreamChunk | None = None
                failure: BackendError | None = None
                try:
                    if wait:
                        ep.clock.sleep(wait)
                    source = control.source = ex.open(att, credential)
                    if source.error is None:
                        assert source.pieces is not None
                        for piece in source.pieces:
                            now = monotonic()
                            chunks = state.feed(piece, now)
                            if chunks:
                                state.yielded += len(chunks)
                                yield from chunks
                            if state.ended:
                                break
                            if now - state.last_event > idle or (total is not None and now > total):
                                _stream_timeout(idle, total, now)
                        if state.ended:
                            source.drain()  # keeps the connection for the next call
                        tail, final = state.finish(opts.request_id)
                        state.yielded += len(tail)
                        yield from tail
                except Exception as exc:
                    if control.closed:  # closed from another thread: end quietly
                        att.abandoned(sent=True, usage=state.usage_so_far())
                        return
                    failure = ex.wrap(att, exc, streaming=True)
                except BaseException:  # GeneratorExit: the caller stopped reading
                    att.abandoned(sent=source is not None, usage=state.usage_so_far())
                    raise
                finally:
                    control.source = None
                    if source is not None:
                        source.close()
                # accounted outside the try, so that failed() raising is not caught again
                if final is not None:
                    headers = source.headers if source else {}
                    att.succeeded(headers, final.usage or att.usage_of(None, headers))
                    yield final
                    return
                if failure is None:
                    assert source is not None and source.error is not None
                    delay = att.failed(source.error, source.headers)
                else:
                    delay = att.failed(failure, retry=not state.yielded)
                if delay:
                    ep.clock.sleep(delay)
    except BackendError as err:
        _tagged(err, ep, opts)
        raise


async def arun_stream(
    ep: Endpoint,
    call: HttpCall | CallableCall,
    opts: CallOptions,
    hooks: PluginHooks | None = None,
) -> AsyncGenerator[StreamChunk, None]:
    """Stream ``call`` from a coroutine. Retried only until the first chunk reached the caller."""
    if _obs.ENABLED and opts.obs is None:
        observed = _obs.observed_astream(arun_stream, ep, call, opts, hooks)
        try:
            async for chunk in observed:
                yield chunk
        finally:  # an async for does not close what it iterates: a caller's aclose() must
            await observed.aclose()
        return
    ex = executor_for(call)
    idle, total = _stream_limits(ep, opts)
    try:
        async with ep.gate.aslot(opts.priority, opts.queue_timeout):
            att = Attempts(ep, call, opts, hooks)
            while True:
                credential, wait = att.start() if ep.shared is None else await att.astart()
                state = StreamState(call, ep.spec.name)
                source: StreamSource | None = None
                final: StreamChunk | None = None
                failure: BackendError | None = None
                gone = False  # the caller went away, accounted for
                try:
                    if wait:
                        await ep.clock.asleep(wait)
                    source = await ex.aopen(att, credential)
                    if source.error is None:
                        assert source.apieces is not None
                        async for piece in source.apieces:
                            now = monotonic()
                            for chunk in state.feed(piece, now):
                                state.yielded += 1
                                yield chunk
                            if state.ended:
                                break
                            if now - state.last_event > idle or (total is not None and now > total):
                                _stream_timeout(idle, total, now)
                        if state.ended:
                            await source.adrain()  # keeps the connection for the next call
                        tail, final = state.finish(opts.request_id)
                        for chunk in tail:
                            state.yielded += 1
                            yield chunk
                except Exception as exc:
                    failure = ex.wrap(att, exc, streaming=True)
                except BaseException:  # GeneratorExit / CancelledError: the caller went away
                    gone = True
                    att.abandoned(sent=source is not None, usage=state.usage_so_far())
                    raise
                finally:
                    if source is not None:
                        try:
                            await source.aclose()
                        except BaseException:
                            # cancelled while the reply was closing: unless accounted above,
                            # the attempt ends here (its key lease given back)
                            if not gone:
                                att.abandoned(sent=True, usage=state.usage_so_far())
                            raise
                if final is not None:
                    headers = source.headers if source else {}
                    att.succeeded(headers, final.usage or att.usage_of(None, headers))
                    yield final
                    return
                if failure is None:
                    assert source is not None and source.error is not None
                    delay = att.failed(source.error, source.headers)
                else:
                    delay = att.failed(failure, retry=not state.yielded)
                if delay:
                    await ep.clock.asleep(delay)
    except BackendError as err:
        _tagged(err, ep, opts)
        raise
