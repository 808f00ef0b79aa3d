"""Extra endpoints (own server, key, limits, breaker, usage slice) and usage and cost
accounting through the pipeline, with a bad pricing file refused when the backend is
made."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.resilience.usage import PRICING_ENV_VAR, Pricing
from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.pytest_plugin import DEFAULT_SECRET
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

user = wire.user
ok = wire.chat_reply

CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"
OTHER_KEY = "sk-other-ZZZZZZZZZZZZZZZZ9999"
DEFAULT_KEY = DEFAULT_SECRET  # the ``secret`` fixture


@pytest.fixture
def other_server() -> Iterator[ProtocolServer]:
    """A second loopback server, for a second endpoint."""
    with ProtocolServer() as server:
        yield server


# --------------------------------------------------------------------------- endpoints


def test_created_endpoint_has_its_own_server_key_and_limit(
    backend: Backend, protocol_server: ProtocolServer, other_server: ProtocolServer
) -> None:
    eid = backend.create_endpoint(
        api_key=OTHER_KEY, base_url=other_server.url("/v1"), max_concurrent_requests=2
    )
    assert isinstance(eid, str) and eid != "default"
    assert backend.get_queue_info(eid)["max_concurrent"] == 2
    assert backend.get_queue_info()["max_concurrent"] == 5
    protocol_server.on("POST", CHAT, default=ok("from default"))
    other_server.on("POST", CHAT, default=Reply.json(wire.chat_completion("other"), delay=0.05))

    assert backend.chat(messages=user(), model="m").text == "from default"
    callers = [
        threading.Thread(
            target=backend.chat, kwargs={"messages": user(), "model": "m", "endpoint_id": eid}
        )
        for _ in range(6)
    ]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join(10)
    assert backend.chat(messages=user(), model="m", endpoint_id=eid).text == "other"

    assert len(protocol_server.requests_to(CHAT)) == 1
    seen = other_server.requests_to(CHAT)
    assert len(seen) == 7
    assert {r.headers["Authorization"] for r in seen} == {f"Bearer {OTHER_KEY}"}
    assert protocol_server.requests_to(CHAT)[0].headers["Authorization"] == f"Bearer {DEFAULT_KEY}"
    assert other_server.max_in_flight == 2  # the endpoint's own gate
    assert backend.get_queue_info(eid)["active_requests"] == 0


def test_each_endpoint_has_its_own_breaker_and_usage_slice(
    backend: Backend, protocol_server: ProtocolServer, other_server: ProtocolServer
) -> None:
    eid = backend.create_endpoint(
        base_url=other_server.url("/v1"), failure_threshold=2, max_retries=0
    )
    protocol_server.on("POST", CHAT, default=ok(prompt_tokens=3, completion_tokens=4))
    other_server.on("POST", CHAT, default=wire.error_reply(500))
    for _ in range(2):
        with pytest.raises(errors.ServerError):
            backend.chat(messages=user(), model="m", endpoint_id=eid)
    assert backend.get_circuit_state(eid) == "OPEN"
    assert backend.get_circuit_state() == "CLOSED"
    with pytest.raises(errors.CircuitOpenError):
        backend.chat(messages=user(), model="m", endpoint_id=eid)
    assert len(other_server.requests_to(CHAT)) == 2
    backend.chat(messages=user(), model="m")  # the default endpoint still serves
    backend.chat(messages=user(), model="m")

    mine = backend.get_usage_stats(eid)
    assert mine["total_requests"] == 2 and mine["failed_requests"] == 2
    assert mine["successful_requests"] == 0 and mine["total_tokens"] == 0
    default = backend.get_usage_stats("default")
    assert default["total_requests"] == 2 and default["failed_requests"] == 0
    assert default["prompt_tokens"] == 6 and default["completion_tokens"] == 8
    assert backend.get_usage_stats()["total_requests"] == 4
    # the new endpoint copied the default key when given none
    assert other_server.requests_to(CHAT)[0].headers["Authorization"] == f"Bearer {DEFAULT_KEY}"


def test_unknown_endpoint_id_is_a_configuration_error(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    protocol_server.on("POST", CHAT, default=ok())
    with pytest.raises(errors.ConfigurationError, match="no endpoint 'nope'"):
        backend.chat(messages=user(), model="m", endpoint_id="nope")
    with pytest.raises(errors.ConfigurationError):
        backend.get_usage_stats("nope")
    with pytest.raises(errors.ConfigurationError):
        backend.get_circuit_state("nope")
    assert protocol_server.requests == []


# --------------------------------------------------------------------------- usage and cost


def test_tokens_and_cost_from_chat_stream_and_embed_are_summed(
    make_backend: Callable[..., Backend],
    protocol_server: ProtocolServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    packaged = Pricing.load().price("openai", "gpt-4o-mini")
    assert packaged is not None
    prices = {"loopback": {"gpt-4o-mini": {"input": packaged[0], "output": packaged[1]}}}
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(prices))
    monkeypatch.setenv(PRICING_ENV_VAR, str(path))
    price = Pricing.load().price("loopback", "gpt-4o-mini")
    assert price == packaged

    backend = make_backend()
    protocol_server.on(
        "POST", CHAT, ok(prompt_tokens=100_000, completion_tokens=50_000), wire.error_reply(400)
    )
    backend.chat(messages=user(), model="gpt-4o-mini")
    with pytest.raises(errors.InvalidRequestError):
        backend.chat(messages=user(), model="gpt-4o-mini")
    events = wire.chat_stream(["a", "b"], prompt_tokens=20_000, completion_tokens=10_000)
    protocol_server.on("POST", CHAT, Reply.sse(events))
    chunks = list(backend.stream(messages=user(), model="gpt-4o-mini"))
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 10_000
    protocol_server.on("POST", EMBED, Reply.json(wire.embeddings([[0.5]], prompt_tokens=8)))
    backend.embed(input="x", model="text-embedding-3-small")

    stats = backend.get_usage_stats()
    assert stats["total_requests"] == 4
    assert stats["successful_requests"] == 3 and stats["failed_requests"] == 1
    assert stats["prompt_tokens"] == 120_008
    assert stats["completion_tokens"] == 60_000
    assert stats["total_tokens"] == 180_008
    expected = (120_000 * price[0] + 60_000 * price[1]) / 1e6
    assert expected > 0
    assert stats["estimated_cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert stats["priced_requests"] == 2
    assert stats["unpriced_models"] == ["text-embedding-3-small"]
    assert stats["by_model"]["gpt-4o-mini"]["requests"] == 2
    assert stats["by_model"]["gpt-4o-mini"]["total_tokens"] == 180_000
    assert stats["by_model"]["text-embedding-3-small"]["prompt_tokens"] == 8
    key = backend.get_key_usage_stats()["default"]
    assert key["cost"] == pytest.approx(expected) and key["tokens"] == 180_008

    backend.reset_usage_stats()
    cleared = backend.get_usage_stats()
    assert cleared["total_requests"] == 0 and cleared["total_tokens"] == 0
    assert cleared["estimated_cost_usd"] == 0 and cleared["by_model"] == {}


def test_negative_token_counts_in_a_reply_cost_nothing(
    backend: Backend, protocol_server: ProtocolServer
) -> None:
    body = wire.chat_completion("ok")
    body["usage"] = {"prompt_tokens": -9_998_000, "completion_tokens": 4, "total_tokens": -1}
    protocol_server.on("POST", CHAT, Reply.json(body))
    backend.usage.pricing.set_price("loopback", "gpt-4o", 2.5, 10.0)
    reply = backend.chat(messages=user(), model="gpt-4o")
    assert reply.usage is not None
    assert reply.usage.to_dict() == {"prompt_tokens": 0, "completion_tokens": 4, "total_tokens": 4}
    stats = backend.get_usage_stats()
    assert stats["prompt_tokens"] == 0 and stats["total_tokens"] == 4
    assert stats["estimated_cost_usd"] == pytest.approx(4 * 10.0 / 1e6)
    assert backend.get_key_usage_stats()["default"]["cost"] >= 0


# --------------------------------------------------------------------------- pricing file


def test_bad_pricing_file_fails_when_the_backend_is_made(
    make_backend: Callable[..., Backend],
    protocol_server: ProtocolServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    path = tmp_path / "prices.json"
    path.write_text('{"loopback": {"m": {"input": 1,', encoding="utf-8")
    monkeypatch.setenv("IPFS_ACCELERATE_PRICING", str(path))
    protocol_server.on("POST", CHAT, default=ok())
    with pytest.raises(errors.ConfigurationError) as info:
        make_backend()
    assert str(path) in str(info.value)
    assert "not valid JSON" in str(info.value)
    assert protocol_server.requests == []
