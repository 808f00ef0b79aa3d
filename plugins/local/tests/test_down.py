"""A self-hosted server that is down: a ConnectionError, retried, never anything else."""

from __future__ import annotations

import asyncio

import pytest

from ipfs_accelerate_local import ovms as ovms_calls
from ipfs_accelerate_py import errors
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing.server import ProtocolServer

MESSAGES = [{"role": "user", "content": "Hello"}]
CALLS = {
    "llvm": ("/v1", lambda b: b.chat(messages=MESSAGES)),
    "vllm": ("/v1", lambda b: b.list_models()),
    "ovms": ("", lambda b: b.request(ovms_calls.metadata_call("m"))),  # KServe, no numpy
    "opea": ("", lambda b: list(b.stream(messages=MESSAGES))),
}


def _dead_url(path: str) -> str:
    with ProtocolServer() as server:  # started and stopped: nothing listens on its port
        return server.url(path or "/")


@pytest.mark.parametrize("name", sorted(CALLS))
def test_refused_connection_is_a_connection_error(name: str, clock: FakeClock) -> None:
    path, call = CALLS[name]
    backend = get_backend(name, base_url=_dead_url(path), clock=clock, max_retries=2)
    with pytest.raises(errors.ConnectionError) as info:
        call(backend)
    assert isinstance(info.value, ConnectionError)  # the builtin too
    assert info.value.provider == name
    assert len(clock.sleeps) == 2  # retried like any connection failure
    with pytest.raises(errors.ConnectionError):
        asyncio.run(backend.achat(messages=MESSAGES, model="m"))
    backend.close()


@pytest.mark.parametrize("name", sorted(CALLS))
def test_refused_connection_names_the_url(name: str, clock: FakeClock) -> None:
    path, call = CALLS[name]
    url = _dead_url(path)
    backend = get_backend(name, base_url=url, clock=clock, max_retries=0)
    with pytest.raises(errors.ConnectionError) as info:
        call(backend)
    message = info.value.message
    assert message.startswith(f"could not connect to {url.rstrip('/')} (ConnectError: ")
    assert message.endswith("; is the server running and the base URL right?")
    backend.close()
