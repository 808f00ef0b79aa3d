"""Fixtures of the router tests: several loopback servers and routers over them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.router import Router
from ipfs_accelerate_py.testing.server import ProtocolServer

CHAT = "/v1/chat/completions"


@pytest.fixture
def servers() -> Iterator[list[ProtocolServer]]:
    """Four started loopback servers, one per deployment."""
    started = [ProtocolServer().start() for _ in range(4)]
    yield started
    for server in started:
        server.stop()


@pytest.fixture
def deploy(
    make_backend: Callable[..., Backend], servers: list[ProtocolServer]
) -> Callable[..., Backend]:
    """``deploy(i, **options)``: a loopback backend on server ``i`` with no retries."""

    def build(index: int, **options: Any) -> Backend:
        options.setdefault("max_retries", 0)
        return make_backend(server=servers[index], **options)

    return build


@pytest.fixture
def route(deploy: Callable[..., Backend], clock: Any) -> Callable[..., Router]:
    """``route(layout, **options)``: see :func:`router_over`."""
    return lambda layout, **options: router_over(deploy, layout, clock, **options)


def router_over(
    deploy: Callable[..., Backend],
    layout: dict[str, list[int]],
    clock: Any,
    **options: Any,
) -> Router:
    """A router with aliases over servers: ``{"smart": [0, 1], "cheap": [2]}``; deployment
    ids are ``d0``, ``d1``...; ``backend_options`` per server come from ``options.pop``."""
    per_server = options.pop("backend_options", {})
    router = Router(clock=clock, **options)
    for alias, indexes in layout.items():
        for i in indexes:
            router.add_deployment(
                alias, deploy(i, **per_server.get(i, {})), f"model-{i}", deployment_id=f"d{i}"
            )
    return router
