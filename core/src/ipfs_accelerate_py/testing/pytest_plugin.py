"""Pytest plugin (entry point ``pytest11: ipfs_accelerate``): the ``protocol_server``,
``clock`` and ``secret`` fixtures.

Installed automatically with ipfs-accelerate-core; any test, core's or a plugin's, can ask
for them::

    def test_retry(protocol_server, clock, secret):
        backend = get_backend("mine", api_key=secret, base_url=protocol_server.url("/v1"),
                              clock=clock)
        protocol_server.on("POST", "/v1/x", Reply.json({}, status=503), Reply.json({"ok": 1}))
        ...
        assert len(protocol_server.requests_to("/v1/x")) == 2 and clock.sleeps != []

A plugin whose keys have a format of their own overrides ``secret`` in its ``conftest.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing.server import ProtocolServer

__all__ = ["DEFAULT_SECRET", "clock", "protocol_server", "secret"]

DEFAULT_SECRET = "sk-test-0123456789SECRETabcd"
"""The value of the ``secret`` fixture unless a ``conftest.py`` overrides it."""


@pytest.fixture
def protocol_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProtocolServer]:
    """A started :class:`ProtocolServer` on 127.0.0.1, stopped after the test.

    Loopback is added to ``NO_PROXY`` for the test, so that a proxy configured in the
    environment (``HTTP_PROXY``) can never carry test traffic off the machine.
    """
    for name in ("NO_PROXY", "no_proxy"):
        current = os.environ.get(name, "")
        monkeypatch.setenv(name, ",".join(filter(None, [current, "127.0.0.1", "localhost"])))
    with ProtocolServer() as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    """A fresh :class:`FakeClock` (pass it as ``clock=`` to ``get_backend``): retries,
    backoff and cooldowns take no real time, and every sleep is recorded in ``clock.sleeps``."""
    return FakeClock()


@pytest.fixture
def secret() -> str:
    """The API key a test configures (:data:`DEFAULT_SECRET`), which must never appear in
    errors, reprs, logs or stats; override it in a ``conftest.py`` for another key format."""
    return DEFAULT_SECRET
