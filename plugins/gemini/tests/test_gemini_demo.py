"""``ipfs-accelerate demo gemini``: every step of the scenario works and no key is shown."""

from __future__ import annotations

from ipfs_accelerate_gemini.demo import KEY
from ipfs_accelerate_py.testing.demo import run_demo


def test_demo_runs_every_step() -> None:
    run = run_demo("gemini")
    text, lines = run.text, run.lines
    assert "Hello! I am a loopback Gemini." in lines["chat"]  # after a 429 and a 503
    assert "Streaming works too.  [done: stop]" in lines["stream"]
    assert "[[0.1, 0.2, 0.3]]" in lines["embeddings"]  # after a 429 with RetryInfo only
    assert "[[0.1, 0.2], [0.3, 0.4]]" in lines["batch"]
    assert "['gemini-2.5-pro', 'gemini-2.5-flash', 'gemini-embedding-001']" in lines["list_models"]
    assert "AuthenticationError [API_KEY_INVALID]" in lines["invalid"]
    assert "circuit CLOSED; server saw 10 requests" in lines["usage"]
    assert "FAIL" not in text
    assert "gemini       7/7" in text
    assert KEY not in text + run.stderr
    assert "AIzaSy-wrong" not in text + run.stderr
