"""Fixtures for the OpenAI plugin tests: a loopback OpenAI server and a backend aimed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing.server import ProtocolServer


@pytest.fixture
def openai(protocol_server: ProtocolServer, clock: FakeClock, secret: str) -> Iterator[Backend]:
    """The openai backend pointed at the loopback server's ``/v1``."""
    backend = get_backend(
        "openai", api_key=secret, base_url=protocol_server.url("/v1"), clock=clock
    )
    yield backend
    backend.close()
