"""Streamed replies: iterate for chunks; ``close()`` (or ``with``) ends the stream at once.

A stream holds its endpoint's queue slot and its connection until it ends. Reading it to the
end, or leaving its ``with`` / ``async with`` block, releases both::

    with backend.stream(messages=msgs, model="gpt-4o-mini") as stream:
        for chunk in stream:
            if "STOP" in chunk.text:
                break          # the block's exit closes the stream and frees the slot
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import TYPE_CHECKING

from .types import StreamChunk

if TYPE_CHECKING:
    from .pipeline import StreamControl

__all__ = ["AsyncStream", "Stream"]


class Stream(Iterator[StreamChunk]):
    """A streamed reply read from a thread. ``close()`` works from any thread: a reader
    blocked waiting for the next chunk in another thread stops at once."""

    __slots__ = ("_control", "_gen")

    def __init__(
        self, gen: Generator[StreamChunk, None, None], control: StreamControl | None = None
    ) -> None:
        self._gen = gen
        self._control = control

    def __iter__(self) -> Iterator[StreamChunk]:
        return self._gen  # a for loop then reads the generator itself: no layer per chunk

    def __next__(self) -> StreamChunk:
        return next(self._gen)

    def close(self) -> None:
        """Stop reading: close the connection and free the queue slot."""
        if not getattr(self._gen, "gi_running", False):
            try:
                self._gen.close()
                return
            except ValueError:  # another thread started reading just now
                pass
        if self._control is not None:  # another thread is blocked reading: cut it off
            self._control.stop()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncStream(AsyncIterator[StreamChunk]):
    """A streamed reply read from a coroutine."""

    __slots__ = ("_gen",)

    def __init__(self, gen: AsyncGenerator[StreamChunk, None]) -> None:
        self._gen = gen

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        return self._gen  # an async for then reads the generator itself: no layer per chunk

    async def __anext__(self) -> StreamChunk:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        """Stop reading: close the connection and free the queue slot."""
        await self._gen.aclose()

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
