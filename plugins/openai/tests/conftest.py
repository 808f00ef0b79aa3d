"""Fixtures for the OpenAI plugin tests: a loopback OpenAI server and a backend aimed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing.server import ProtocolServer

SECRET = "sk-test-0123456789SECRETabcd"


@pytest.fixture
def secret() -> str:
    """The API key the tests configure; it must never appear in errors, reprs or stats."""
    return SECRET


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock: retries and backoff take no real time, and sleeps are recorded."""
    return FakeClock()


@pytest.fixture
def openai(protocol_server: ProtocolServer, clock: FakeClock) -> Iterator[Backend]:
    """The openai backend pointed at the loopback server's ``/v1``."""
    backend = get_backend(
        "openai", api_key=SECRET, base_url=protocol_server.url("/v1"), clock=clock
    )
    yield backend
    backend.close()
