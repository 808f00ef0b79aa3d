"""Dispatch by registration: a backend's calls go only to the plugin that registered it;
broken plugins are refused with a clear message naming them; credentials are placed by the
plugin; paginated HTTP listings; the public API at the package root."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import ipfs_accelerate_py
from ipfs_accelerate_py import errors, openai_compat, plugins
from ipfs_accelerate_py.calls import Credential, HttpCall
from ipfs_accelerate_py.config import BackendSpec
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.hookspecs import hookimpl
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply
from ipfs_accelerate_py.types import ChatRequest, ModelInfo


def spec(name: str, **kw: Any) -> BackendSpec:
    kw.setdefault("default_base_url", None)
    return BackendSpec(name=name, package=f"test-{name}", **kw)


class Greedy:
    """A plugin with no name guard: under pluggy's broadcast it would answer for everyone."""

    @hookimpl
    def register_backends(self, register: Callable[[BackendSpec], None]) -> None:
        register(spec("greedy", api_key_required=False))

    @hookimpl
    def chat(self, request: ChatRequest) -> HttpCall:
        return openai_compat.chat_call(request, "greedy", path="/greedy")


@pytest.fixture
def greedy() -> Iterator[Greedy]:
    plugin = Greedy()
    plugins.register(plugin)
    yield plugin
    plugins.unregister(plugin)


def test_calls_go_only_to_the_registering_plugin(
    greedy: Greedy, make_backend: Callable[..., Any], protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", "/v1/chat/completions", default=wire.chat_reply("mine"))
    protocol_server.on("POST", "/v1/greedy", default=wire.chat_reply("greedy"))
    backend = make_backend()
    assert backend.chat(messages=[{"role": "user", "content": "hi"}], model="m").text == "mine"
    other = get_backend("greedy", base_url=protocol_server.url("/v1"))
    assert other.chat(messages=[{"role": "user", "content": "hi"}], model="m").text == "greedy"
    with pytest.raises(errors.InvalidArgumentError, match="does not implement embed"):
        other.embed(input="x", model="m")


def test_a_misspelled_hook_is_refused_by_name(loopback_plugin: Any) -> None:
    class Typo:
        @hookimpl
        def register_backends(self, register: Callable[[BackendSpec], None]) -> None:
            register(spec("typo"))

        @hookimpl
        def chatt(self, request: ChatRequest) -> None:  # not a hook
            return None

    with pytest.raises(errors.ConfigurationError, match=r"hook that does not exist.*chatt"):
        plugins.register(Typo(), source="typo-dist")
    assert "typo" not in plugins.installed_backends()
    assert "loopback" in plugins.installed_backends()


def test_a_taken_name_and_a_malformed_spec_are_refused(loopback_plugin: Any) -> None:
    class Thief:
        @hookimpl
        def register_backends(self, register: Callable[[Any], None]) -> None:
            register(spec("loopback"))

    class Sloppy:
        @hookimpl
        def register_backends(self, register: Callable[[Any], None]) -> None:
            register({"name": "sloppy"})

    with pytest.raises(errors.ConfigurationError, match="thief-dist registers backend 'loopback'"):
        plugins.register(Thief(), source="thief-dist")
    with pytest.raises(errors.ConfigurationError, match="not a BackendSpec"):
        plugins.register(Sloppy(), source="sloppy-dist")
    assert plugins.load("loopback").plugin is loopback_plugin


def test_a_plugin_that_fails_to_import_warns_and_others_keep_working(
    monkeypatch: pytest.MonkeyPatch, loopback_plugin: Any
) -> None:
    class Dist:
        name = "ipfs-accelerate-broken"

    class BrokenEntryPoint:
        name = "broken"
        value = "broken_plugin.module"
        dist = Dist()

        def load(self) -> Any:
            raise RuntimeError("boom at import")

    real = plugins._entry_points
    monkeypatch.setattr(plugins, "_entry_points", lambda: {**real(), "broken": BrokenEntryPoint()})
    monkeypatch.setattr(plugins, "_failures", {})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(errors.BackendNotInstalledError, match=r"ipfs-accelerate-broken.*boom"):
            get_backend("broken")
    assert any("ipfs-accelerate-broken" in str(w.message) for w in caught)
    assert "broken" in plugins.installed_backends()
    assert plugins.load("loopback").plugin is loopback_plugin


class QueryKey:
    """Places the key in the query string and signs the body, as some providers want."""

    @hookimpl
    def register_backends(self, register: Callable[[BackendSpec], None]) -> None:
        register(spec("querykey"))

    @hookimpl
    def list_models(self) -> HttpCall:
        def page(token: str | None) -> HttpCall:
            return HttpCall(
                "GET",
                "/models",
                params={"pageToken": token} if token else None,
                parse=lambda body: [ModelInfo(id=m) for m in body["models"]],
                next_page=lambda body: page(body["next"]) if body.get("next") else None,
            )

        return page(None)

    @hookimpl
    def authorize(self, request: httpx.Request, credential: Credential) -> None:
        request.url = request.url.copy_add_param("key", credential.secret)
        request.headers["x-signature"] = f"sig({credential.id}:{request.method})"


@pytest.fixture
def querykey(protocol_server: ProtocolServer, clock: FakeClock) -> Iterator[Any]:
    plugin = QueryKey()
    plugins.register(plugin)
    backend = get_backend(
        "querykey",
        api_key=Credential("qk-0123456789abcdef", id="ID1"),
        base_url=protocol_server.url("/v1"),
        clock=clock,
    )
    yield backend
    backend.close()
    plugins.unregister(plugin)


def test_the_plugin_places_the_credential_and_pages_are_retried_alone(
    querykey: Any, protocol_server: ProtocolServer
) -> None:
    protocol_server.on(
        "GET",
        "/v1/models",
        Reply.json({"models": ["a", "b"], "next": "p2"}),
        Reply.json({"error": {"message": "busy"}}, status=503),
        Reply.json({"models": ["c"], "next": "p3"}),
        Reply.json({"models": ["d"]}),
    )
    assert [m.id for m in querykey.list_models()] == ["a", "b", "c", "d"]
    seen = protocol_server.requests_to("/v1/models")
    assert [r.query.get("pageToken") for r in seen] == [None, "p2", "p2", "p3"]
    assert all(r.query["key"] == "qk-0123456789abcdef" for r in seen)
    assert all(r.headers["x-signature"] == "sig(ID1:GET)" for r in seen)
    assert all("authorization" not in r.headers for r in seen)
    protocol_server.on("GET", "/v1/models", Reply.json({"models": ["z"]}))
    assert [m.id for m in asyncio.run(querykey.alist_models())] == ["z"]


def test_base_urls_in_the_providers_own_forms(loopback_plugin: Any) -> None:
    from ipfs_accelerate_py.config import normalize_base_url

    ollama_like = spec("x", default_base_url="http://localhost:11434")
    assert normalize_base_url("localhost:11434", "", "OLLAMA_HOST", ollama_like) == (
        "http://localhost:11434"
    )
    assert normalize_base_url("0.0.0.0", "", "OLLAMA_HOST", ollama_like) == "http://0.0.0.0:11434"
    assert normalize_base_url("example.com:80/api", "", "h", ollama_like) == (
        "http://example.com:80/api"
    )
    with pytest.raises(errors.ConfigurationError):
        normalize_base_url("ftp://example.com", "", "h", ollama_like)


def test_a_backend_may_serve_one_model(protocol_server: ProtocolServer, clock: FakeClock) -> None:
    class OneModel(Greedy):
        @hookimpl
        def register_backends(self, register: Callable[[BackendSpec], None]) -> None:
            register(spec("onemodel", api_key_required=False, model_required=False))

    plugin = OneModel()
    plugins.register(plugin)
    try:
        protocol_server.on("POST", "/v1/greedy", default=wire.chat_reply("served"))
        backend = get_backend("onemodel", base_url=protocol_server.url("/v1"), clock=clock)
        assert backend.chat(messages=[{"role": "user", "content": "hi"}]).text == "served"
        assert "model" not in protocol_server.requests_to("/v1/greedy")[0].json()
    finally:
        plugins.unregister(plugin)


def test_the_public_api_is_at_the_package_root() -> None:
    from ipfs_accelerate_py import BackendError, RateLimitError, get_backend

    assert get_backend is ipfs_accelerate_py.core.get_backend
    assert issubclass(RateLimitError, BackendError) and issubclass(BackendError, ValueError)
    assert set(ipfs_accelerate_py.__all__) >= {"get_backend", "list_backends", "CallableCall"}
    with pytest.raises(AttributeError):
        ipfs_accelerate_py.nothing_here  # noqa: B018
