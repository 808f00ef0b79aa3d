"""The quickstart guide's "5. Semantic Caching" block, run as written with the claude class
against a loopback Anthropic server and the real local embedder."""

from __future__ import annotations

import pytest

from ipfs_accelerate_claude import testing_wire as wire
from ipfs_accelerate_py.testing.guide import python_blocks, run_block
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply

pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")
embedder = pytest.importorskip("ipfs_accelerate_py.embedder")
try:
    embedder.find_model_dir("mini")
except Exception:  # pragma: no cover - only where scripts/setup did not install the weights
    pytest.skip("all-MiniLM-L6-v2 weights not installed", allow_module_level=True)


@pytest.fixture
def guide_env(protocol_server: ProtocolServer, monkeypatch: pytest.MonkeyPatch) -> ProtocolServer:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", protocol_server.url("/"))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env-key-000000000000")
    protocol_server.on("POST", "/v1/messages", default=Reply.json(wire.message("Qubits...")))
    return protocol_server


def test_semantic_caching_block_runs_as_written(guide_env: ProtocolServer) -> None:
    [block] = python_blocks("5. Semantic Caching")
    scope: dict[str, object] = {"__name__": "__guide__"}
    printed = run_block(block, scope)
    # at the guide's 0.92 the pair (cosine 0.883 under MiniLM) is two misses: docs/cache.md
    assert printed.splitlines() == [
        "Cache hits: 0",
        "Cache misses: 2",
        "Hit rate: 0.00%",
        "Estimated savings: $0.0000",
    ]
    assert len(guide_env.requests) == 2
    client = scope["client"]
    # the same question again is an exact hit: no request, and savings from the price file
    again = client.chat([{"role": "user", "content": "Explain quantum computing"}])  # type: ignore[attr-defined]
    assert again["text"] == "Qubits..."
    assert len(guide_env.requests) == 2
    stats = client.get_cache_stats()  # type: ignore[attr-defined]
    assert stats["hits"] == 1 and stats["cost_savings"] > 0
    client.close()  # type: ignore[attr-defined]
