"""Fixtures for the Gemini plugin tests: a loopback Gemini server and a backend aimed at it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing.server import ProtocolServer

sys.path.insert(0, str(Path(__file__).parent))  # gemini_wire, under --import-mode=importlib

SECRET = "AIzaSy-test-0123456789SECRETabcd"


@pytest.fixture(autouse=True)
def _no_dotenv(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``.env`` and no real Gemini settings from the environment leak into a test."""
    monkeypatch.setenv("IPFS_ACCELERATE_NO_DOTENV", "1")
    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GEMINI_MODEL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def secret() -> str:
    """A Google-format key (``AIza...``), overriding core's ``secret``;
    it must never appear in errors, reprs or stats."""
    return SECRET


@pytest.fixture
def gemini(protocol_server: ProtocolServer, clock: FakeClock, secret: str) -> Iterator[Backend]:
    """The gemini backend pointed at the loopback server (``/v1beta`` appended by the spec)."""
    backend = get_backend("gemini", api_key=secret, base_url=protocol_server.base_url, clock=clock)
    yield backend
    backend.close()
