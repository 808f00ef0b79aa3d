"""``ipfs-accelerate demo claude``: the scenario runs every step against a loopback server."""

from __future__ import annotations

import subprocess
import sys

from ipfs_accelerate_claude.demo import KEY


def test_the_demo_runs_every_step() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ipfs_accelerate_py.cli", "demo", "claude"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "claude       5/5" in out.stdout
    assert "FAIL" not in out.stdout
    assert KEY not in out.stdout + out.stderr
