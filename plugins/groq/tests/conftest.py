"""Fixtures for the Groq plugin tests: a loopback Groq server and a backend aimed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing.server import ProtocolServer

SECRET = "gsk_test0123456789SECRETabcdWXYZ"


@pytest.fixture
def secret() -> str:
    """A Groq-format key (``gsk_...``), overriding core's ``secret``;
    it must never appear in errors, reprs or stats."""
    return SECRET


@pytest.fixture
def groq(protocol_server: ProtocolServer, clock: FakeClock, secret: str) -> Iterator[Backend]:
    """The groq backend pointed at the loopback server (host only: /openai/v1 is appended)."""
    backend = get_backend("groq", api_key=secret, base_url=protocol_server.base_url, clock=clock)
    yield backend
    backend.close()
