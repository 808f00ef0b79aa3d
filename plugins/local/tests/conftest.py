"""Fixtures: backends for llvm, vllm, ovms and opea aimed at the loopback server."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing.server import ProtocolServer


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No configuration leaks in from the machine running the tests."""
    monkeypatch.setenv("IPFS_ACCELERATE_NO_DOTENV", "1")
    for prefix in ("LLVM", "VLLM", "OVMS", "OPEA"):
        for suffix in ("BASE_URL", "API_KEY", "MODEL"):
            monkeypatch.delenv(f"{prefix}_{suffix}", raising=False)


@pytest.fixture
def make(protocol_server: ProtocolServer, clock: FakeClock) -> Iterator[Callable[..., Backend]]:
    """``make(name, path="", **kw)``: a backend aimed at the loopback server."""
    made: list[Backend] = []

    def build(name: str, path: str = "", **kw: object) -> Backend:
        backend = get_backend(name, base_url=protocol_server.url(path or "/"), clock=clock, **kw)  # type: ignore[arg-type]
        made.append(backend)
        return backend

    yield build
    for backend in made:
        backend.close()


@pytest.fixture
def llvm(make: Callable[..., Backend]) -> Backend:
    """The llvm backend at the loopback server's ``/v1``, no key."""
    return make("llvm", "/v1")


@pytest.fixture
def ovms(make: Callable[..., Backend]) -> Backend:
    """The ovms backend at the loopback server's root."""
    return make("ovms")


@pytest.fixture
def opea(make: Callable[..., Backend]) -> Backend:
    """The opea backend at the loopback server's root."""
    return make("opea")
