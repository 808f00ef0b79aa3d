"""Fixtures for the Claude plugin tests: a loopback Anthropic server and a backend aimed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing.server import ProtocolServer

SECRET = "sk-ant-api03-test-0123456789SECRETabcd"


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Anthropic settings from the machine's environment or a .env file."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IPFS_ACCELERATE_NO_DOTENV", "1")


@pytest.fixture
def secret() -> str:
    """An Anthropic-format key (``sk-ant-api03-...``), overriding core's ``secret``;
    it must never appear in errors, reprs or stats."""
    return SECRET


@pytest.fixture
def claude(protocol_server: ProtocolServer, clock: FakeClock, secret: str) -> Iterator[Backend]:
    """The claude backend pointed at the loopback server (paths under ``/v1``)."""
    backend = get_backend("claude", api_key=secret, base_url=protocol_server.url("/"), clock=clock)
    yield backend
    backend.close()
