"""Gemini embeddings (one text, a batch) and the model list over every page."""

from __future__ import annotations

import asyncio

from ipfs_accelerate_py.backend import Backend
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply


def test_embed_one_text_uses_embed_content(
    gemini: Backend, protocol_server: ProtocolServer, secret: str
) -> None:
    path = "/v1beta/models/gemini-embedding-001:embedContent"
    protocol_server.on("POST", path, Reply.json({"embedding": {"values": [0.1, -0.2, 3]}}))
    result = gemini.embed(
        input="hello", model="gemini-embedding-001", task_type="RETRIEVAL_QUERY", dimensions=3
    )
    [req] = protocol_server.requests
    assert req.headers["x-goog-api-key"] == secret
    assert req.json() == {
        "model": "models/gemini-embedding-001",
        "content": {"parts": [{"text": "hello"}]},
        "taskType": "RETRIEVAL_QUERY",
        "outputDimensionality": 3,
    }
    assert result.embedding == [0.1, -0.2, 3.0]
    assert result["embedding"] == [0.1, -0.2, 3.0]
    assert result.model == "gemini-embedding-001"


def test_embed_many_texts_in_order(gemini: Backend, protocol_server: ProtocolServer) -> None:
    path = "/v1beta/models/text-embedding-004:batchEmbedContents"
    vectors = [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]
    protocol_server.on(
        "POST", path, default=Reply.json({"embeddings": [{"values": v} for v in vectors]})
    )
    texts = ["a", "b", "c"]
    result = gemini.embed(input=texts, model="text-embedding-004")
    assert result.embeddings == vectors
    assert protocol_server.requests[0].json() == {
        "requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": t}]}}
            for t in texts
        ]
    }
    again = asyncio.run(gemini.aembed(input=texts, model="text-embedding-004"))
    assert again.embeddings == vectors


def _models_page(names: list[str], token: str | None = None) -> dict[str, object]:
    page: dict[str, object] = {
        "models": [
            {
                "name": f"models/{n}",
                "displayName": n.upper(),
                "description": f"about {n}",
                "inputTokenLimit": 1048576,
                "outputTokenLimit": 65536,
                "supportedGenerationMethods": ["embedContent"]
                if "embedding" in n
                else ["generateContent", "countTokens"],
            }
            for n in names
        ]
    }
    if token:
        page["nextPageToken"] = token
    return page


def test_list_models_follows_every_page(gemini: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on(
        "GET",
        "/v1beta/models",
        Reply.json(_models_page(["gemini-2.5-pro", "gemini-2.5-flash"], "tok-2")),
        Reply.json(
            {"error": {"code": 503, "message": "busy", "status": "UNAVAILABLE"}}, status=503
        ),
        Reply.json(_models_page(["gemini-embedding-001"], "tok-3")),
        Reply.json(_models_page(["gemini-2.0-flash"])),
    )
    models = gemini.list_models()
    assert [m.id for m in models] == [
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "gemini-embedding-001",
        "gemini-2.0-flash",
    ]
    assert models[0].raw["name"] == "models/gemini-2.5-pro"
    assert models[0].context_window == 1048576
    assert models[0].description == "about gemini-2.5-pro"
    assert [m.category for m in models] == ["chat", "chat", "embedding", "chat"]
    queries = [r.query for r in protocol_server.requests]
    assert queries == [
        {"pageSize": "1000"},
        {"pageSize": "1000", "pageToken": "tok-2"},
        {"pageSize": "1000", "pageToken": "tok-2"},  # the 503 was retried
        {"pageSize": "1000", "pageToken": "tok-3"},
    ]


def test_alist_models(gemini: Backend, protocol_server: ProtocolServer) -> None:
    protocol_server.on(
        "GET",
        "/v1beta/models",
        Reply.json(_models_page(["a"], "t")),
        Reply.json(_models_page(["b"])),
    )
    models = asyncio.run(gemini.alist_models())
    assert [m.id for m in models] == ["a", "b"]
