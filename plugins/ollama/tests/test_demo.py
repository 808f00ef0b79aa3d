"""``ipfs-accelerate demo ollama``: every step of the scenario works and no token is shown."""

from __future__ import annotations

from ipfs_accelerate_ollama.demo import TOKEN
from ipfs_accelerate_py.testing.demo import run_demo


def test_demo_runs_every_step() -> None:
    run = run_demo("ollama")
    text, lines = run.text, run.lines
    assert "Hello! I am a loopback Ollama." in lines["chat"]  # after a 429 and a 503
    assert "Streaming works too.  [done: stop]" in lines["stream"]
    assert "The sky is blue." in lines["generate"]
    assert "[[0.1, 0.2], [0.3, 0.4]]" in lines["embeddings"]
    assert "['llama3.2:latest', 'all-minilm']" in lines["list_models"]
    assert "ollama pull mistral" in lines["missing"]
    assert "$0.00 (self-hosted); circuit CLOSED; server saw 8 requests" in lines["usage"]
    assert "FAIL" not in text
    assert "ollama       7/7" in text
    assert TOKEN not in text + run.stderr
