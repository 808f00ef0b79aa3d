"""``ipfs-accelerate demo <backend>`` for llvm, vllm, ovms and opea: every step works and the
(optional) key is never shown."""

from __future__ import annotations

import importlib.util

import pytest

from ipfs_accelerate_local.demo import KEY
from ipfs_accelerate_py.testing.demo import run_demo

HAS_NUMPY = importlib.util.find_spec("numpy") is not None
EXPECTED = {
    "llvm": {
        "chat": "Hello! I am a loopback vLLM.",
        "stream": "Streaming works too.  [done: stop]",
        "embeddings": "[[0.1, 0.2, 0.3]]",
        "generate": "blue, because of Rayleigh scattering.",
        "list_models": "['Qwen/Qwen2.5-1.5B-Instruct']",
        "usage": "(self-hosted); circuit CLOSED; server saw 7 requests",
    },
    "ovms": {
        "chat": "Hello! I am a loopback OVMS.",
        "stream": "Streaming works too.  [done: stop]",
        "embeddings": "[[0.4, 0.5]]",
        "list_models": "['OpenVINO/Phi-3.5-mini-instruct-int4-ov']",
        "server": "True",
        **({"infer": "float32 [1, 2] [[0.25, 0.75]]"} if HAS_NUMPY else {}),
        "usage": f"circuit CLOSED; server saw {9 if HAS_NUMPY else 7} requests",
    },
    "opea": {
        "chat": "About $51.2 billion.",
        "stream": "Nike's revenue was $51.2B — über  [done: None]",
        "embeddings": "[[0.7, 0.8]]",
        "usage": "$0.00 (self-hosted); circuit CLOSED; server saw 5 requests",
    },
}
EXPECTED["vllm"] = EXPECTED["llvm"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_demo_runs_every_step(name: str) -> None:
    run = run_demo(name)
    text, lines = run.text, run.lines
    expected = EXPECTED[name]
    assert list(lines) == list(expected)
    for step, detail in expected.items():
        assert detail in lines[step]
    assert "after a 429 and a 503" in lines["chat"]
    assert "FAIL" not in text
    assert f"{name:10} {len(expected):3}/{len(expected):<4}" in text
    if name == "ovms" and not HAS_NUMPY:
        assert "numpy is not installed: infer skipped" in text
    assert KEY not in text + run.stderr
