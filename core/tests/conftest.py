"""Fixtures for the core pipeline tests: a tiny OpenAI-compatible "loopback" backend.

Core is tested without any provider plugin installed, so this module registers a test plugin
of its own through :func:`ipfs_accelerate_py.plugins.register`: every request hook returns an
:mod:`ipfs_accelerate_py.openai_compat` call, so the OpenAI wire helpers script its replies on
the ``protocol_server`` fixture.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ipfs_accelerate_py import openai_compat, plugins
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.calls import HttpCall
from ipfs_accelerate_py.config import BackendSpec, Settings
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.hookspecs import hookimpl
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer
from ipfs_accelerate_py.types import ChatRequest, EmbedRequest

NAME = "loopback"

SPEC = BackendSpec(
    name=NAME,
    package="ipfs-accelerate-loopback-test",
    default_base_url=None,
    base_url_env=("LOOPBACK_BASE_URL",),
    api_key_env=("LOOPBACK_API_KEY",),
    request_id_header="X-Client-Request-Id",
    display_name="Loopback (tests)",
)


class LoopbackPlugin:
    """An OpenAI-compatible test plugin serving the backend ``loopback``."""

    @hookimpl
    def register_backends(self, register: Callable[[BackendSpec], None]) -> None:
        register(SPEC)

    @hookimpl
    def chat(self, backend: str, request: ChatRequest, settings: Settings) -> HttpCall | None:
        return openai_compat.chat_call(request, NAME) if backend == NAME else None

    @hookimpl
    def stream(self, backend: str, request: ChatRequest, settings: Settings) -> HttpCall | None:
        return openai_compat.stream_call(request, NAME) if backend == NAME else None

    @hookimpl
    def embed(self, backend: str, request: EmbedRequest, settings: Settings) -> HttpCall | None:
        return openai_compat.embed_call(request, NAME) if backend == NAME else None

    @hookimpl
    def list_models(self, backend: str, settings: Settings) -> HttpCall | None:
        return openai_compat.models_call(NAME) if backend == NAME else None


@pytest.fixture
def loopback_plugin() -> Iterator[LoopbackPlugin]:
    """The loopback plugin, registered for the test and unregistered after it."""
    plugin = LoopbackPlugin()
    assert [s.name for s in plugins.register(plugin)] == [NAME]
    yield plugin
    plugins.unregister(plugin)


@pytest.fixture
def make_backend(
    loopback_plugin: LoopbackPlugin,
    protocol_server: ProtocolServer,
    clock: FakeClock,
    secret: str,
) -> Iterator[Callable[..., Backend]]:
    """Build loopback backends (closed after the test): ``make_backend(server=..., **options)``
    with the fake ``clock``, the ``secret`` key and ``protocol_server``'s ``/v1`` unless given
    (``clock``, ``secret`` and ``protocol_server`` come from core's pytest plugin)."""
    made: list[Backend] = []

    def make(
        server: ProtocolServer | None = None, api_key: str | None = secret, **options: Any
    ) -> Backend:
        options.setdefault("clock", clock)
        backend = get_backend(
            NAME, api_key=api_key, base_url=(server or protocol_server).url("/v1"), **options
        )
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture
def backend(make_backend: Callable[..., Backend]) -> Backend:
    """The loopback backend with default settings, aimed at ``protocol_server``."""
    return make_backend()


def _chat(backend: Backend, **kwargs: Any) -> Any:
    return backend.chat(messages=wire.user(), model="m", **kwargs)


def _stream(backend: Backend, **kwargs: Any) -> Any:
    # read to the end (no ``with``): the helper does not rely on a stream's early close
    return list(backend.stream(messages=wire.user(), model="m", **kwargs))


def _achat(backend: Backend, **kwargs: Any) -> Any:
    async def call() -> Any:
        try:
            return await backend.achat(messages=wire.user(), model="m", **kwargs)
        finally:
            await backend.aclose()

    return asyncio.run(call())


def _astream(backend: Backend, **kwargs: Any) -> Any:
    async def call() -> Any:
        try:
            messages = wire.user()
            return [
                chunk async for chunk in backend.astream(messages=messages, model="m", **kwargs)
            ]
        finally:
            await backend.aclose()

    return asyncio.run(call())


_CALLS: dict[str, Callable[..., Any]] = {
    "chat": _chat,
    "stream": _stream,
    "achat": _achat,
    "astream": _astream,
}


@pytest.fixture
def call() -> Callable[..., Any]:
    """``call(kind, backend, **kwargs)``: one call of ``messages=user(), model="m"`` made as
    ``"chat"``, ``"stream"`` (read to the end), ``"achat"`` or ``"astream"`` (each async kind
    in its own ``asyncio.run``, the backend's async clients closed after it)."""

    def run(kind: str, backend: Backend, **kwargs: Any) -> Any:
        return _CALLS[kind](backend, **kwargs)

    return run


@pytest.fixture
def chunk_event() -> Callable[..., dict[str, Any]]:
    """``chunk_event(*choices)``: a ``chat.completion.chunk`` stream event. Without choices, the
    first event of an OpenAI stream (the role, empty content: it yields no chunk); with them,
    that event with ``choices`` replaced by the given ones."""

    def make(*choices: Any) -> dict[str, Any]:
        first: dict[str, Any] = wire.chat_stream([])[0]
        return {**first, "choices": list(choices)} if choices else first

    return make
