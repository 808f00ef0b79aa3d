"""Pytest plugin (entry point ``pytest11: ipfs_accelerate``): the ``protocol_server`` fixture.

Installed automatically with ipfs-accelerate-core; any test can ask for it::

    def test_retry(protocol_server):
        protocol_server.on("POST", "/v1/x", Reply.json({}, status=503), Reply.json({"ok": 1}))
        ...
        assert len(protocol_server.requests_to("/v1/x")) == 2
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ipfs_accelerate_py.testing.server import ProtocolServer

__all__ = ["protocol_server"]


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
