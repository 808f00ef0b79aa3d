"""Running ``ipfs-accelerate`` as a user does: a subprocess with a clean environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import attrs

SCRIPT = Path(sys.executable).with_name("ipfs-accelerate")


@attrs.frozen
class Ran:
    """A finished command: exit code, stdout, stderr."""

    code: int
    out: str
    err: str


def base_env(**extra: str) -> dict[str, str]:
    """PATH and HOME only (no key or URL from the machine), no .env, loopback off proxies."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "SYSTEMROOT", "LANG") if k in os.environ}
    env.update(
        {
            "IPFS_ACCELERATE_NO_DOTENV": "1",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "PYTHONIOENCODING": "utf-8",
        }
    )
    env.update(extra)
    return env


def command() -> list[str]:
    """The installed console script, or ``python -m`` when it is not on disk."""
    if SCRIPT.exists():
        return [str(SCRIPT)]
    found = shutil.which("ipfs-accelerate")
    return [found] if found else [sys.executable, "-m", "ipfs_accelerate_py.cli"]


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Ran:
    """Run ``ipfs-accelerate ARGS`` with ``env`` and ``stdin`` (none: /dev/null)."""
    proc = subprocess.run(
        [*command(), *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env if env is not None else base_env(),
        timeout=60,
        check=False,
    )
    return Ran(proc.returncode, proc.stdout, proc.stderr)
