"""Fixtures for the Hugging Face plugin tests: loopback TGI/TEI servers and backends."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ipfs_accelerate_hf import tgi
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing.server import ProtocolServer

sys.path.insert(0, str(Path(__file__).parent))  # the helper module hf_wire (importlib mode)


SECRET = "hf_test0123456789SECRETabcdWXYZ"
HF_ENV = ("HF_API_TOKEN", "HF_TOKEN", "HF_TGI_BASE_URL", "HF_TEI_BASE_URL")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No token, server or .env from the machine running the tests."""
    for name in (*HF_ENV, "HF_TGI_MODEL", "HF_TEI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IPFS_ACCELERATE_NO_DOTENV", "1")


@pytest.fixture
def secret() -> str:
    """A Hugging Face-format token (``hf_...``), overriding core's ``secret``;
    it must never appear in errors, reprs or stats."""
    return SECRET


@pytest.fixture
def tgi_backend(
    protocol_server: ProtocolServer, clock: FakeClock, secret: str
) -> Iterator[Backend]:
    """``hf_tgi`` aimed at the loopback server as a self-hosted TGI."""
    backend = get_backend("hf_tgi", api_key=secret, base_url=protocol_server.base_url, clock=clock)
    yield backend
    backend.close()


@pytest.fixture
def tei_backend(
    protocol_server: ProtocolServer, clock: FakeClock, secret: str
) -> Iterator[Backend]:
    """``hf_tei`` aimed at the loopback server as a self-hosted TEI."""
    backend = get_backend("hf_tei", api_key=secret, base_url=protocol_server.base_url, clock=clock)
    yield backend
    backend.close()


@pytest.fixture
def hosted(protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make the loopback server stand in for ``https://router.huggingface.co``: a backend
    given its URL speaks the hosted router's paths."""
    monkeypatch.setattr(tgi, "HOSTED_BASE_URL", protocol_server.base_url)
    return protocol_server.base_url


@pytest.fixture
def tgi_client(tgi_backend: Backend) -> Any:
    """The guide's ``hf_tgi`` over :func:`tgi_backend`."""
    from ipfs_accelerate_hf.guide import hf_tgi

    return hf_tgi(backend=tgi_backend)


@pytest.fixture
def tei_client(tei_backend: Backend) -> Any:
    """The guide's ``hf_tei`` over :func:`tei_backend`."""
    from ipfs_accelerate_hf.guide import hf_tei

    return hf_tei(backend=tei_backend)
