"""Pytest plugin (entry point ``pytest11: ipfs_accelerate``): the ``protocol_server`` fixture.

Installed automatically with ipfs-accelerate-core; any test can ask for it::

    def test_retry(protocol_server):
        protocol_server.on("POST", "/v1/x", Reply.json({}, status=503), Reply.json({"ok": 1}))
        ...
        assert len(protocol_server.requests_to("/v1/x")) == 2
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ipfs_accelerate_py.testing.server import ProtocolServer

__all__ = ["protocol_server"]


@pytest.fixture
def protocol_server() -> Iterator[ProtocolServer]:
    """A started :class:`ProtocolServer` on 127.0.0.1, stopped after the test."""
    with ProtocolServer() as server:
        yield server
