"""The model catalogue: the live listing merged with models.json, categories, compatibility."""

from __future__ import annotations

import asyncio
import json
from importlib import resources

import pytest

from ipfs_accelerate_groq import catalog, wire
from ipfs_accelerate_py import errors
from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply
from ipfs_accelerate_py.types import ModelInfo

GUIDE_MODELS = {
    "llama3-8b-8192": "chat",
    "llama3-70b-8192": "chat",
    "gemma2-9b-it": "chat",
    "mixtral-8x7b-32768": "chat",
    "llama-3.3-70b-versatile": "chat",
    "llama-3.1-8b-instant": "chat",
    "mistral-saba-24b": "chat",
    "whisper-large-v3": "audio",
    "meta-llama/llama-4-scout-17b-16e-instruct": "vision",
    "meta-llama/llama-4-maverick-17b-128e-instruct": "vision",
}


def test_data_file_is_well_formed() -> None:
    text = resources.files("ipfs_accelerate_groq").joinpath("models.json").read_text()
    models = json.loads(text)["models"]
    for model_id, entry in models.items():
        assert set(entry) == {"description", "context_window", "categories"}, model_id
        assert isinstance(entry["description"], str) and entry["description"], model_id
        assert isinstance(entry["context_window"], int) and entry["context_window"] > 0
        assert entry["categories"] and set(entry["categories"]) <= set(catalog.CATEGORIES)
    for model_id, category in GUIDE_MODELS.items():
        assert models[model_id]["categories"][0] == category


def test_list_models_merges_live_listing_with_file(
    groq: Backend, protocol_server: ProtocolServer, secret: str
) -> None:
    protocol_server.on("GET", wire.MODELS, default=Reply.json(wire.LISTING, headers=wire.HEADERS))
    models = {m.id: m for m in groq.list_models()}
    req = protocol_server.requests[0]
    assert (req.method, req.path) == ("GET", wire.MODELS)
    assert req.headers["authorization"] == f"Bearer {secret}"
    assert "llama3-8b-8192" not in models  # active: false
    assert len(models) == 8
    scout = models["meta-llama/llama-4-scout-17b-16e-instruct"]
    assert scout["category"] == "vision"
    assert scout["description"].startswith("Meta Llama 4 Scout")
    assert scout["context_window"] == 131072
    assert scout.owned_by == "Meta"
    assert models["whisper-large-v3"]["category"] == "audio"
    assert models["whisper-large-v3"]["context_window"] == 448
    unknown = models["compound-beta-new"]
    assert (unknown.category, unknown.description, unknown.context_window) == (
        "chat",
        None,
        131072,
    )
    assert unknown.raw["max_completion_tokens"] == 32768
    assert groq.get_usage_stats()["total_tokens"] == 0
    again = asyncio.run(groq.alist_models())
    assert [m.id for m in again] == list(models)


def test_live_context_window_wins_and_file_fills_gaps(
    groq: Backend, protocol_server: ProtocolServer
) -> None:
    entry = wire.model_entry("gemma2-9b-it", 8192, "Google")
    gap = {k: v for k, v in wire.model_entry("mistral-saba-24b").items() if k != "context_window"}
    protocol_server.on(
        "GET", wire.MODELS, Reply.json(wire.models({**entry, "context_window": 9000}, gap))
    )
    gemma, saba = groq.list_models()
    assert gemma.context_window == 9000
    assert saba.context_window == 32768


def test_select_by_category() -> None:
    models = catalog.enrich(
        [
            *map(
                _info,
                ["llama-3.1-8b-instant", "meta-llama/llama-4-maverick-17b-128e-instruct"],
            ),
            _info("whisper-large-v3-turbo"),
            _info("playai-tts"),
        ]
    )
    assert [m.id for m in catalog.select(models, "vision")] == [
        "meta-llama/llama-4-maverick-17b-128e-instruct"
    ]
    assert len(catalog.select(models, "chat")) == 2  # vision models chat too
    assert [m.id for m in catalog.select(models, "audio")] == [
        "whisper-large-v3-turbo",
        "playai-tts",
    ]
    assert len(catalog.select(models)) == 4
    with pytest.raises(errors.InvalidArgumentError, match="category"):
        catalog.select(models, "video")


def _info(model_id: str) -> ModelInfo:
    return ModelInfo(id=model_id, raw={"id": model_id, "active": True})


def test_is_compatible_uses_file_then_live_listing(
    groq: Backend, protocol_server: ProtocolServer
) -> None:
    url = groq.settings.base_url
    assert catalog.is_compatible("mistral-saba-24b", "chat", url)
    assert not catalog.is_compatible("mistral-saba-24b", "vision", url)
    assert catalog.is_compatible("meta-llama/llama-4-scout-17b-16e-instruct", "chat", url)
    assert catalog.is_compatible("whisper-large-v3", "audio", url)
    assert not catalog.is_compatible("whisper-large-v3", "chat", url)
    assert not catalog.is_compatible("compound-beta-new", "chat", url)  # not listed yet
    protocol_server.on("GET", wire.MODELS, Reply.json(wire.LISTING))
    groq.list_models()
    assert catalog.is_compatible("compound-beta-new", "chat", url)
    assert not catalog.is_compatible("compound-beta-new", "chat", "http://other.invalid")
    assert not catalog.is_compatible("", "chat", url)
    with pytest.raises(errors.InvalidArgumentError, match="category"):
        catalog.is_compatible("mistral-saba-24b", "embedding", url)


@pytest.mark.parametrize(
    ("reply", "cls"),
    [
        (wire.error_reply(401), errors.AuthenticationError),
        (Reply.json({"object": "list"}), errors.MalformedResponseError),
        (Reply.json({"data": [{"object": "model"}]}), errors.MalformedResponseError),
        (Reply.raw(b"<html>oops</html>", content_type="text/html"), errors.MalformedResponseError),
    ],
    ids=["401", "no-data", "no-id", "html"],
)
def test_list_models_failures_are_core_errors(
    groq: Backend, protocol_server: ProtocolServer, reply: Reply, cls: type
) -> None:
    protocol_server.on("GET", wire.MODELS, default=reply)
    with pytest.raises(cls):
        groq.list_models()
    with pytest.raises(cls):
        asyncio.run(groq.alist_models())


def test_list_models_retries_503(groq: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on("GET", wire.MODELS, wire.error_reply(503), Reply.json(wire.LISTING))
    assert len(groq.list_models()) == 8
    assert len(protocol_server.requests) == 2


def test_guide_list_models_and_compatibility(
    protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ipfs_accelerate_py.api_backends import groq

    monkeypatch.setenv("GROQ_BASE_URL", protocol_server.base_url)
    protocol_server.on("GET", wire.MODELS, default=Reply.json(wire.LISTING))
    client = groq(resources={}, metadata={"groq_api_key": "gsk_guide_0000000"})
    assert len(client.list_models()) == 8
    assert len(client.list_models("chat")) == 6  # the vision model chats too
    assert [m["id"] for m in client.list_models("vision")] == [
        "meta-llama/llama-4-scout-17b-16e-instruct"
    ]
    assert len(client.list_models(category="audio")) == 2
    assert client.is_compatible_model("compound-beta-new", "chat")
    assert not client.is_compatible_model("whisper-large-v3", "chat")
    sent = len(protocol_server.requests)
    with pytest.raises(errors.InvalidArgumentError, match="category"):
        client.list_models("images")
    assert len(protocol_server.requests) == sent  # refused before sending
    client.close()


def test_catalogue_answers_without_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    from ipfs_accelerate_py.api_backends import groq

    monkeypatch.setenv("GROQ_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    client = groq(metadata={"groq_api_key": "gsk_x"})
    assert client.is_compatible_model("llama-3.3-70b-versatile", "chat")
    assert client.is_compatible_model("whisper-large-v3", "audio")


def test_spec_is_registered() -> None:
    backend = get_backend("groq", api_key="gsk_x")
    assert backend.spec.capabilities == frozenset({"chat", "stream", "list_models"})
    assert backend.spec.seed_class == "ipfs_accelerate_groq.guide:groq"
