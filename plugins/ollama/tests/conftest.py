"""Fixtures for the Ollama plugin tests: a loopback Ollama and a backend aimed at it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing.server import ProtocolServer

sys.path.insert(0, str(Path(__file__).parent))  # ollama_wire


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Ollama variable of the machine leaks into a test."""
    for name in ("OLLAMA_HOST", "OLLAMA_API_URL", "OLLAMA_MODEL", "OLLAMA_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IPFS_ACCELERATE_NO_DOTENV", "1")


@pytest.fixture
def ollama(protocol_server: ProtocolServer, clock: FakeClock) -> Iterator[Backend]:
    """The ollama backend pointed at the loopback server (the host URL, no ``/api``)."""
    backend = get_backend("ollama", base_url=protocol_server.base_url, clock=clock)
    yield backend
    backend.close()
