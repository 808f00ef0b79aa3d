"""``ipfs-accelerate demo claude``: the scenario runs every step against a loopback server."""

from __future__ import annotations

from ipfs_accelerate_claude.demo import KEY
from ipfs_accelerate_py.testing.demo import run_demo


def test_the_demo_runs_every_step() -> None:
    run = run_demo("claude")
    assert "claude       5/5" in run.text
    assert KEY not in run.text + run.stderr
