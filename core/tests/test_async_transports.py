"""Both async transports (httpx's pool, aiohttp's with the aio extra) give the same error
class for the same failure, so retries and breakers behave alike whichever is installed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.aio_transport import aiohttp_available
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

CHAT = "/v1/chat/completions"


@pytest.fixture(params=["httpx", "aiohttp"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which async transport the test's clients use."""
    monkeypatch.setenv("IPFS_ACCELERATE_ASYNC_TRANSPORT", request.param)
    if request.param == "aiohttp" and not aiohttp_available():
        pytest.skip("the aio extra (httpx-aiohttp) is not installed")
    return str(request.param)


def _achat(backend: Backend) -> object:
    return asyncio.run(backend.achat(messages=wire.user(), model="m"))


def test_refused_connection_is_a_connection_error(
    transport: str, loopback_plugin: object, secret: str
) -> None:
    with ProtocolServer() as gone:
        url = gone.url("/v1")  # closed after this block: nothing listens there any more
    backend = get_backend("loopback", api_key=secret, base_url=url, max_retries=0)
    try:
        with pytest.raises(errors.ConnectionError) as info:
            _achat(backend)
    finally:
        backend.close()
    assert not isinstance(info.value, errors.TimeoutError)
    assert "could not connect" in str(info.value)


def test_dropped_connection_is_a_connection_error_and_retried(
    transport: str, make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, Reply.drop_connection(), wire.chat_reply("ok"))
    backend = make_backend(max_retries=1)
    assert _achat(backend).text == "ok"  # type: ignore[attr-defined]
    assert len(protocol_server.requests) == 2


def test_slow_reply_is_a_timeout(
    transport: str, make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, default=Reply.json(wire.chat_completion("late"), delay=2.0))
    backend = make_backend(max_retries=0, timeout=0.2)
    with pytest.raises(errors.TimeoutError):
        _achat(backend)
    assert len(protocol_server.requests) == 1


def test_reply_cut_mid_body_is_a_connection_error(
    transport: str, make_backend: Callable[..., Backend], protocol_server: ProtocolServer
) -> None:
    reply = wire.chat_reply("ok")
    protocol_server.on("POST", CHAT, default=Reply.raw(reply.body, cut_after=10))
    backend = make_backend(max_retries=0)
    with pytest.raises(errors.ConnectionError):
        _achat(backend)
