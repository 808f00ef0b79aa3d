"""The quickstart guide's "6. Request Batching" block, run as written with the openai_api
class against a loopback OpenAI server: ten threaded single embeds become one request."""

from __future__ import annotations

import pytest

from ipfs_accelerate_py.testing import openai_wire as wire
from ipfs_accelerate_py.testing.guide import python_blocks, run_block
from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply


def _vectors(request: RecordedRequest) -> Reply:
    texts = request.json()["input"]
    texts = texts if isinstance(texts, list) else [texts]
    return Reply.json(wire.embeddings([[float(t.rsplit(" ", 1)[-1]), 1.0] for t in texts]))


def test_request_batching_block_runs_as_written(
    protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", protocol_server.url("/v1"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    monkeypatch.setenv("IPFS_ACCELERATE_NO_DOTENV", "1")
    protocol_server.on("POST", "/v1/embeddings", default=_vectors)
    [block] = python_blocks("6. Request Batching")
    scope: dict[str, object] = {"__name__": "__guide__"}
    printed = run_block(block, scope).splitlines()
    results = scope["results"]
    assert [r["embedding"][0] for r in results] == [float(i) for i in range(10)]  # type: ignore[attr-defined]
    requests = protocol_server.requests
    assert 1 <= len(requests) <= 2  # ten threads within 0.1 s: one batch, two at worst
    assert sum(len(r.json()["input"]) for r in requests) == 10
    assert requests[0].json()["model"] == "text-embedding-3-small"
    assert printed[0] == f"Batches processed: {len(requests)}"
    assert printed[1] == "Requests batched: 10"
    assert printed[3] == "Estimated savings: $0.0000"
    scope["client"].close()  # type: ignore[attr-defined]
