"""Run ``ipfs-accelerate demo <backend>`` as a user does, for a plugin's demo test::

run = run_demo("ollama")
assert "Hello" in run.lines["chat"]     # keyed by the first word of each step's name
"""

from __future__ import annotations

import subprocess
import sys

import attrs

__all__ = ["DemoRun", "run_demo"]


@attrs.frozen
class DemoRun:
    """What the command printed: ``text`` (stdout), ``stderr``, and ``lines``, the line of
    each step that worked keyed by the first word of the step's name."""

    text: str
    stderr: str
    lines: dict[str, str]


def run_demo(backend: str, *, timeout: float = 60) -> DemoRun:
    """Run the demo of ``backend`` in a subprocess; fail the test unless every step worked."""
    out = subprocess.run(
        [sys.executable, "-m", "ipfs_accelerate_py.cli", "demo", backend],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "FAIL" not in out.stdout, out.stdout
    text = out.stdout
    lines = {line.split()[2]: line for line in text.splitlines() if line.startswith("  ok ")}
    return DemoRun(text, out.stderr, lines)
