"""The resilience pipeline every call goes through, once for threads and once for coroutines.

Order (DESIGN §4): priority gate → circuit breaker → key selection → HTTP attempt →
classify → retry with backoff (moving to another key on 429) → usage and cost accounting.

The decisions live in :class:`~.attempts.Attempts`; the runners here only hold the gate slot,
send, wait and iterate.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import TYPE_CHECKING, Any

import attrs

from .attempts import Attempts, CallOptions, new_request_id
from .calls import STREAM_END, EventParser, HttpCall
from .errors import BackendError, ConnectionError, MalformedResponseError
from .streaming import NDJSONDecoder, SSEDecoder
from .types import StreamChunk, Usage

if TYPE_CHECKING:
    import httpx

    from .endpoint import Endpoint

__all__ = [
    "CallOptions",
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
        err.args = (err._render(),)


def _pages(results: list[Any]) -> Any:
    """Concatenate the list results of a paginated listing."""
    out: list[Any] = []
    for page in results:
        out.extend(page)
    return out


def run(ep: Endpoint, call: HttpCall, opts: CallOptions) -> Any:
    """Run ``call`` on ``ep`` from a thread: gate, attempts, retries, accounting. A paginated
    call follows ``next_page``, each page an exchange retried on its own."""
    try:
        with ep.gate.slot(opts.priority, opts.queue_timeout):
            pages: list[Any] = []
            while True:
                att = Attempts(ep, call, opts)
                result = _exchange(ep, att)
                nxt = call.next_page(att.body) if call.next_page is not None else None
                if nxt is None:
                    return _pages([*pages, result]) if pages else result
                pages.append(result)
                call = nxt
    except BackendError as err:
        _tagged(err, ep, opts)
        raise


def _exchange(ep: Endpoint, att: Attempts) -> Any:
    while True:
        client = ep.transport.client()  # per attempt: a retry after close() reconnects
        request, wait = att.start(client)
        try:
            if wait:
                ep.clock.sleep(wait)
            response = client.send(request)
        except Exception as exc:
            delay = att.failed(att.wrap(exc))
        except BaseException:
            att.abandoned()
            raise
        else:
            done, outcome = att.finish(response)
            if done:
                return outcome
            delay = outcome
        if delay:
            ep.clock.sleep(delay)


async def arun(ep: Endpoint, call: HttpCall, opts: CallOptions) -> Any:
    """Run ``call`` on ``ep`` from a coroutine, never blocking the event loop."""
    try:
        async with ep.gate.aslot(opts.priority, opts.queue_timeout):
            pages: list[Any] = []
            while True:
                att = Attempts(ep, call, opts)
                result = await _aexchange(ep, att)
                nxt = call.next_page(att.body) if call.next_page is not None else None
                if nxt is None:
                    return _pages([*pages, result]) if pages else result
                pages.append(result)
                call = nxt
    except BackendError as err:
        _tagged(err, ep, opts)
        raise


async def _aexchange(ep: Endpoint, att: Attempts) -> Any:
    while True:
        client = await ep.transport.aclient()  # per attempt: a retry after close() reconnects
        request, wait = att.start(client)
        try:
            if wait:
                await ep.clock.asleep(wait)
            response = await client.send(request)
        except Exception as exc:
            delay = att.failed(att.wrap(exc))
        except BaseException:
            att.abandoned()
            raise
        else:
            done, outcome = att.finish(response)
            if done:
                return outcome
            delay = outcome
        if delay:
            await ep.clock.asleep(delay)


# --- streams -----------------------------------------------------------------------------


class StreamState:
    """Turns decoded events into chunks: text chunks pass through; finish reason and usage
    are folded into one final ``done`` chunk at the protocol's end marker."""

    __slots__ = (
        "call",
        "decoder",
        "ended",
        "finish_reason",
        "model",
        "parse",
        "provider",
        "usage",
        "yielded",
    )

    def __init__(self, call: HttpCall, provider: str) -> None:
        self.call = call
        self.provider = provider
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.model: str | None = None
        self.ended = False
        self.yielded = 0
        # a stateful parser is made afresh for each attempt: a retry starts clean
        parse = call.new_parser() if call.new_parser is not None else call.parse_event
        if parse is None:
            raise TypeError("a streamed HttpCall needs parse_event or new_parser")
        self.parse: EventParser = parse
        self.decoder: SSEDecoder | NDJSONDecoder = (
            SSEDecoder(provider) if call.stream == "sse" else NDJSONDecoder(provider)
        )

    def feed(self, data: bytes) -> list[StreamChunk]:
        """Decode bytes into the chunks to hand the caller."""
        return self._consume(self.decoder.feed(data))

    def _consume(self, events: list[Any]) -> list[StreamChunk]:
        out: list[StreamChunk] = []
        parse = self.parse
        for event in events:
            if self.ended:
                break
            try:
                chunk = parse(event)
            except BackendError:
                raise
            except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
                excerpt = str(getattr(event, "data", event))[:200]
                raise MalformedResponseError(
                    f"a stream event does not have the expected shape "
                    f"({type(exc).__name__}: {exc}); event data starts {excerpt!r}",
                    provider=self.provider,
                ) from None
            if chunk is None:
                continue
            if chunk is STREAM_END:
                self.ended = True
                break
            assert isinstance(chunk, StreamChunk)
            if chunk.finish_reason:
                self.finish_reason = chunk.finish_reason
            if chunk.usage is not None:
                self.usage = chunk.usage if self.usage is None else self.usage.merge(chunk.usage)
            if chunk.model:
                self.model = chunk.model
            if chunk.done:
                self.ended = True
            if chunk.text or chunk.tool_calls:
                out.append(attrs.evolve(chunk, done=False) if chunk.done else chunk)
            if self.ended:
                break
        return out

    def finish(self, request_id: str) -> tuple[list[StreamChunk], StreamChunk]:
        """End of the body: the chunks of a last unterminated NDJSON line, and the final
        ``done`` chunk. Raises ConnectionError if the stream stopped before its end marker
        or in the middle of an event."""
        tail = [] if self.ended else self._consume(self.decoder.close())
        cut_mid_event = isinstance(self.decoder, SSEDecoder) and self.decoder.truncated
        if not self.ended and (self.call.end_required or cut_mid_event):
            where = "in the middle of an event" if cut_mid_event else "before its end marker"
            raise ConnectionError(
                f"the stream ended {where}, after {self.yielded} chunks",
                provider=self.provider,
                request_id=request_id,
            )
        final = StreamChunk(
            done=True, finish_reason=self.finish_reason, usage=self.usage, model=self.model
        )
        return tail, final


def run_stream(
    ep: Endpoint, call: HttpCall, opts: CallOptions
) -> Generator[StreamChunk, None, None]:
    """Stream ``call`` from a thread. Retried only until the first chunk reached the caller."""
    try:
        with ep.gate.slot(opts.priority, opts.queue_timeout):
            att = Attempts(ep, call, opts)
            while True:
                client = ep.transport.client()  # per attempt: a retry after close() reconnects
                request, wait = att.start(client)
                state = StreamState(call, ep.spec.name)
                response: httpx.Response | None = None
                # an error status is accounted after the try, so that failed() raising the
                # error is not caught and accounted a second time below
                status_error: BackendError | None = None
                final: StreamChunk | None = None
                try:
                    if wait:
                        ep.clock.sleep(wait)
                    response = client.send(request, stream=True)
                    if response.status_code >= 400:
                        status_error = att.error_reply(response, response.read())
                    else:
                        for data in response.iter_bytes():
                            for chunk in state.feed(data):
                                state.yielded += 1
                                yield chunk
                            if state.ended:
                                break
                        tail, final = state.finish(opts.request_id)
                        for chunk in tail:
                            state.yielded += 1
                            yield chunk
                        att.succeeded(response.headers, final.usage)
                except Exception as exc:
                    delay = att.failed(att.wrap(exc, streaming=True), retry=not state.yielded)
                except BaseException:  # GeneratorExit: the caller stopped reading
                    att.abandoned()
                    raise
                finally:
                    if response is not None:
                        response.close()
                if final is not None:  # outside the try: closing the stream now is no abandonment
                    yield final
                    return
                if status_error is not None:
                    assert response is not None
                    delay = att.failed(status_error, response.headers)
                if delay:
                    ep.clock.sleep(delay)
    except BackendError as err:
        _tagged(err, ep, opts)
        raise


async def arun_stream(
    ep: Endpoint, call: HttpCall, opts: CallOptions
) -> AsyncGenerator[StreamChunk, None]:
    """Stream ``call`` from a coroutine. Retried only until the first chunk reached the caller."""
    try:
        async with ep.gate.aslot(opts.priority, opts.queue_timeout):
            att = Attempts(ep, call, opts)
            while True:
                # per attempt: a retry after close() reconnects
                client = await ep.transport.aclient()
                request, wait = att.start(client)
                state = StreamState(call, ep.spec.name)
                response: httpx.Response | None = None
                status_error: BackendError | None = None  # accounted after the try (see run_stream)
                final: StreamChunk | None = None
                try:
                    if wait:
                        await ep.clock.asleep(wait)
                    response = await client.send(request, stream=True)
                    if response.status_code >= 400:
                        status_error = att.error_reply(response, await response.aread())
                    else:
                        async for data in response.aiter_bytes():
                            for chunk in state.feed(data):
                                state.yielded += 1
                                yield chunk
                            if state.ended:
                                break
                        tail, final = state.finish(opts.request_id)
                        for chunk in tail:
                            state.yielded += 1
                            yield chunk
                        att.succeeded(response.headers, final.usage)
                except Exception as exc:
                    delay = att.failed(att.wrap(exc, streaming=True), retry=not state.yielded)
                except BaseException:  # GeneratorExit / CancelledError: the caller went away
                    att.abandoned()
                    raise
                finally:
                    if response is not None:
                        await response.aclose()
                if final is not None:  # outside the try: closing the stream now is no abandonment
                    yield final
                    return
                if status_error is not None:
                    assert response is not None
                    delay = att.failed(status_error, response.headers)
                if delay:
                    await ep.clock.asleep(delay)
    except BackendError as err:
        _tagged(err, ep, opts)
        raise
