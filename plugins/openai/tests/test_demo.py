"""The README's main job: ``ipfs-accelerate demo`` runs every OpenAI call against loopback."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_every_call() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ipfs_accelerate_py.cli", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "chat (after a 429 and a 503, retried): Hello!" in text
    assert "stream: Streaming works too.  [done: stop]" in text
    assert "embedding: [0.1, 0.2, 0.3]" in text
    assert "image urls: ['https://example.invalid/lake.png']" in text
    assert "models: ['gpt-4o', 'dall-e-3']" in text
    assert "async stream: 'Streaming works too.'" in text
    assert "circuit CLOSED; server saw 9 requests" in text
    assert "sk-demo-not-a-real-key-0000" not in text + out.stderr
