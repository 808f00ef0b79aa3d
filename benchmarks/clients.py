"""The clients the benchmarks compare, each as "make one call" functions built in a loop.

Every client answers the same OpenAI chat request against the same loopback server
(benchmarks/server.py). A client whose package is not installed is left out (``None``), so the
suite runs with whatever is there; ``--compare`` adds the official ``openai`` client and
``litellm`` when installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx

KEY = "sk-bench-" + "0123456789abcdef" * 3
MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Say hello."}]
BODY = {"model": MODEL, "messages": MESSAGES, "max_tokens": 16}
AUTH = {"Authorization": f"Bearer {KEY}"}
# the pipeline on, with room for every request in flight (the defaults admit 5 at a time
# and queue 100 more: a fan-out of hundreds sets these, as the guide says)
FANOUT = {"max_concurrent_requests": 100, "queue_size": 100_000}
GATED_AIOHTTP = "raw aiohttp, 100 at a time"
"""Raw aiohttp behind an ``asyncio.Semaphore(100)``: the admission ``FANOUT`` gives ours."""

AsyncCall = Callable[[], Awaitable[Any]]


def _floor_loads() -> tuple[Callable[[str | bytes], Any], str]:
    try:
        import orjson

        return orjson.loads, "orjson"
    except ImportError:
        import json

        return json.loads, "json"


loads_floor, FLOOR_JSON = _floor_loads()
"""The stream floor's JSON decoder: the one core uses (orjson when installed), bare."""


def installed(name: str) -> bool:
    """Whether ``name`` can be imported, without importing it."""
    return importlib.util.find_spec(name) is not None


def version(name: str) -> str:
    """The installed version of distribution ``name``, or "-"."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as v

    try:
        return v(name)
    except PackageNotFoundError:
        return "-"


@contextlib.contextmanager
def async_transport(which: str) -> Iterator[None]:
    """Build async clients with ``which`` ("httpx" or "aiohttp") while inside."""
    old = os.environ.get("IPFS_ACCELERATE_ASYNC_TRANSPORT")
    os.environ["IPFS_ACCELERATE_ASYNC_TRANSPORT"] = which
    try:
        yield
    finally:
        if old is None:
            del os.environ["IPFS_ACCELERATE_ASYNC_TRANSPORT"]
        else:
            os.environ["IPFS_ACCELERATE_ASYNC_TRANSPORT"] = old


@contextlib.asynccontextmanager
async def achat_client(name: str, base: str) -> AsyncIterator[AsyncCall | None]:
    """An async "one chat call" function for client ``name`` against ``base`` (".../v1"),
    open for the duration; ``None`` if that client is not installed."""
    url = base + "/chat/completions"
    if name == "raw httpx":
        client = httpx.AsyncClient()

        async def raw() -> Any:
            return (await client.post(url, json=BODY, headers=AUTH)).json()

        try:
            yield raw
        finally:
            await client.aclose()
    elif name in ("raw aiohttp", GATED_AIOHTTP):
        if not installed("aiohttp"):
            yield None
            return
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))

        async def plain() -> Any:
            async with session.post(url, json=BODY, headers=AUTH) as r:
                return await r.json()

        # the same admission as ours under FANOUT: 100 at a time, the rest wait their turn
        admit = asyncio.Semaphore(FANOUT["max_concurrent_requests"])

        async def gated() -> Any:
            async with admit:
                return await plain()

        try:
            yield plain if name == "raw aiohttp" else gated
        finally:
            await session.close()
    elif name in ("ours", "ours (httpx pool)"):
        from ipfs_accelerate_py.core import get_backend

        which = "httpx" if name == "ours (httpx pool)" else "aiohttp"
        backend = get_backend("openai", api_key=KEY, base_url=base, **FANOUT)
        with async_transport(which):
            await backend.achat(messages=MESSAGES, model=MODEL, max_tokens=16)  # builds the client

        async def ours() -> Any:
            return await backend.achat(messages=MESSAGES, model=MODEL, max_tokens=16)

        try:
            yield ours
        finally:
            await backend.aclose()
    elif name == "openai":
        if not installed("openai"):
            yield None
            return
        import openai

        oclient = openai.AsyncOpenAI(api_key=KEY, base_url=base, max_retries=0)

        async def official() -> Any:
            return await oclient.chat.completions.create(
                model=MODEL, messages=MESSAGES, max_tokens=16
            )

        try:
            yield official
        finally:
            await oclient.close()
    elif name == "litellm":
        if not installed("litellm"):
            yield None
            return
        litellm = _litellm()

        async def lite() -> Any:
            return await litellm.acompletion(
                model="openai/" + MODEL,
                messages=MESSAGES,
                max_tokens=16,
                api_base=base,
                api_key=KEY,
                num_retries=0,
            )

        yield lite
    else:
        raise ValueError(name)


def chat_client(name: str, base: str) -> tuple[Callable[[], Any], Callable[[], None]] | None:
    """A sync "one chat call" function and its closer for ``name``; ``None`` if not
    installed (for the openai and litellm comparison rows)."""
    if name == "openai" and installed("openai"):
        import openai

        client = openai.OpenAI(api_key=KEY, base_url=base, max_retries=0)
        return (
            lambda: client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=16)
        ), client.close
    if name == "litellm" and installed("litellm"):
        litellm = _litellm()
        return (
            lambda: litellm.completion(
                model="openai/" + MODEL,
                messages=MESSAGES,
                max_tokens=16,
                api_base=base,
                api_key=KEY,
                num_retries=0,
            )
        ), lambda: None
    return None


def stream_client(name: str, base: str) -> tuple[Callable[[], int], Callable[[], None]] | None:
    """A sync "read one whole stream, return the chunk count" function for the openai and
    litellm comparison rows; ``None`` if not installed."""
    if name == "openai" and installed("openai"):
        import openai

        client = openai.OpenAI(api_key=KEY, base_url=base, max_retries=0)

        def official() -> int:
            n = 0
            for _ in client.chat.completions.create(
                model=MODEL,
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            ):
                n += 1
            return n

        return official, client.close
    if name == "litellm" and installed("litellm"):
        litellm = _litellm()

        def lite() -> int:
            n = 0
            for _ in litellm.completion(
                model="openai/" + MODEL,
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
                api_base=base,
                api_key=KEY,
                num_retries=0,
            ):
                n += 1
            return n

        return lite, lambda: None
    return None


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download at import
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


async def mock_async(backend: Any, handler: Callable[[httpx.Request], httpx.Response]) -> None:
    """Send ``backend``'s async calls on the running loop through ``httpx.MockTransport``:
    the httpx client its transport made gets MockTransport as its underlying transport
    (httpx's ``_transport``). On aiohttp's pool a request normally skips httpx's objects
    (``direct.Direct``), which would bypass the mock: that route is turned off for
    this client (a second intrusion), so what is measured is the pipeline plus the route
    through httpx's objects."""
    transport = backend.default_endpoint.transport
    client = await transport.aclient()
    client._transport = httpx.MockTransport(handler)
    entries = transport._aclients
    key = id(asyncio.get_running_loop())
    entries[key] = (*entries[key][:3], None)
