"""``ipfs-accelerate demo hf_tgi`` / ``hf_tei``: every step works and no token is shown."""

from __future__ import annotations

import pytest

from ipfs_accelerate_hf.demo import KEY
from ipfs_accelerate_py.testing.demo import run_demo

EXPECTED = {
    "hf_tgi": {
        "chat": "Hello! I am a loopback TGI.",
        "stream": "Streaming works too.  [done: stop]",
        "generate_text": "qubits hold 0 and 1 at once.",
        "stream_generate": "Qubits are fun.  [done: eos_token, 4 tokens]",
        "list_models": "['mistralai/Mistral-7B-Instruct-v0.2']",
        "usage": "circuit CLOSED; server saw 8 requests",
    },
    "hf_tei": {
        "embed": "[[13.0, 0.5]]",
        "batch_embed": "[3.0, 5.0, 5.0, 7.0, 9.0] in 3 requests of <= 2",
        "rerank": "[{'index': 1, 'score': 0.98}, {'index': 0, 'score': 0.02}]",
        "usage": "circuit CLOSED; server saw 9 requests",
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_demo_runs_every_step(name: str) -> None:
    run = run_demo(name)
    text, lines = run.text, run.lines
    assert list(lines) == list(EXPECTED[name])
    for step, detail in EXPECTED[name].items():
        assert detail in lines[step]
    assert "FAIL" not in text
    assert f"{name:10} {len(lines):3}/{len(lines):<4}" in text
    assert KEY not in text + run.stderr
