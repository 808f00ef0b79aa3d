"""Fixtures: a moto S3 server (server mode, 127.0.0.1, a free port), fake AWS credentials
in the environment, a fake clock, and S3 Kit backends aimed at moto or at the loopback
ProtocolServer (for faults moto cannot produce)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ipfs_accelerate_py.calls import Credential
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing.server import ProtocolServer
from ipfs_accelerate_s3kit import S3Kit, testing

KEY_ID = "AKIATESTKEYID0000001"
SECRET = "s3-test-SECRET-0123456789abcdefSECRET"

_CLEARED = (
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
    "S3_SESSION_TOKEN",
    "S3_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
)


@pytest.fixture
def secret() -> str:
    """An S3 secret access key (paired with ``KEY_ID``), overriding core's ``secret``: never in
    errors, reprs or stats."""
    return SECRET


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto S3 server in server mode; yields its URL. Loopback is kept off proxies and
    the environment holds fake AWS credentials only."""
    pytest.importorskip("moto.server")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("NO_PROXY", "no_proxy"):
            current = os.environ.get(name, "")
            mp.setenv(name, ",".join(filter(None, [current, "127.0.0.1", "localhost"])))
        for name in _CLEARED:
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_CONFIG_FILE", os.devnull)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        mp.setenv("IPFS_ACCELERATE_NO_DOTENV", "1")
        with testing.moto_server() as url:
            yield url


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test: no S3/AWS endpoint or key from the developer's environment."""
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("IPFS_ACCELERATE_NO_DOTENV", "1")
    for name in ("NO_PROXY", "no_proxy"):
        current = os.environ.get(name, "")
        monkeypatch.setenv(name, ",".join(filter(None, [current, "127.0.0.1", "localhost"])))


@pytest.fixture
def moto(moto_server: str) -> Iterator[str]:
    """The moto server's URL, emptied after the test."""
    yield moto_server
    testing.moto_api(moto_server, "reset")


@pytest.fixture
def s3(moto: str, clock: FakeClock, secret: str) -> Iterator[S3Kit]:
    """S3 Kit on moto, with a bucket ``models``."""
    credential = Credential(secret, id=KEY_ID)
    kit = S3Kit(get_backend("s3_kit", api_key=credential, base_url=moto, clock=clock))  # type: ignore[arg-type]
    kit.create_bucket("models")
    yield kit
    kit.backend.close()


@pytest.fixture
def loop_s3(protocol_server: ProtocolServer, clock: FakeClock, secret: str) -> Iterator[S3Kit]:
    """S3 Kit on the loopback ProtocolServer (scripted S3 replies and faults)."""
    backend = get_backend(
        "s3_kit",
        api_key=Credential(secret, id=KEY_ID),
        base_url=protocol_server.base_url,
        clock=clock,  # type: ignore[arg-type]
    )
    yield S3Kit(backend)
    backend.close()
