"""``ipfs-accelerate demo``: every installed backend against a loopback server of its protocol.

Each plugin contributes its scenario through the ``demo`` hook: it starts a
:class:`~ipfs_accelerate_py.testing.server.ProtocolServer` scripted with its provider's wire
format (faults included), points its backend there and runs each step through
:meth:`DemoReport.step`. No key and no network are needed. The command prints each step as it
runs and a table per backend at the end; it exits non-zero when a step failed.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import attrs

__all__ = ["DemoReport", "DemoStep", "run_demos"]


@attrs.define
class DemoStep:
    """One step of a scenario: what it did, whether it worked, how long it took."""

    backend: str
    name: str
    ok: bool
    seconds: float
    detail: str


class DemoReport:
    """What a scenario reports its steps to."""

    def __init__(self, backend: str, out: TextIO | None = None) -> None:
        self.backend = backend
        self.out = out or sys.stdout
        self.steps: list[DemoStep] = []

    def step(self, name: str, action: Callable[[], Any]) -> Any:
        """Run ``action`` (returning a short description of what came back), time it and
        record it; a failure is recorded with its error, not raised."""
        start = time.perf_counter()
        try:
            result = action()
        except Exception as exc:  # a failed step is the report's business, not a crash
            elapsed = time.perf_counter() - start
            self._add(name, False, elapsed, f"{type(exc).__name__}: {exc}")
            return None
        self._add(name, True, time.perf_counter() - start, str(result))
        return result

    def note(self, text: str) -> None:
        """Print a line of context (the server's address, what is injected)."""
        print(f"  {self.backend}: {text}", file=self.out)

    def _add(self, name: str, ok: bool, seconds: float, detail: str) -> None:
        self.steps.append(DemoStep(self.backend, name, ok, seconds, detail))
        mark = "ok  " if ok else "FAIL"
        detail = detail if len(detail) <= 90 else detail[:87] + "..."
        print(
            f"  {mark} {self.backend:8} {name:28} {seconds * 1000:8.1f} ms  {detail}", file=self.out
        )


def keep_off_proxies() -> None:
    """Loopback servers are never reached through a configured proxy."""
    for name in ("NO_PROXY", "no_proxy"):
        current = os.environ.get(name)
        os.environ[name] = ",".join(filter(None, [current, "127.0.0.1", "localhost"]))


def run_demos(names: list[str] | None = None, out: TextIO | None = None) -> list[DemoStep]:
    """Run the demo scenario of each installed backend (or of ``names``)."""
    from . import plugins

    out = out or sys.stdout
    keep_off_proxies()
    steps: list[DemoStep] = []
    for name in names or plugins.installed_backends():
        report = DemoReport(name, out)
        try:
            registration = plugins.load(name)
        except Exception as exc:
            report._add("load the plugin", False, 0.0, str(exc))
        else:
            scenario = registration.hook("demo")
            if scenario is None:
                report.note("its plugin has no demo scenario")
                continue
            print(f"{registration.spec.display_name or name}:", file=out)
            try:
                scenario(backend=name, report=report)
            except Exception as exc:
                report._add("scenario", False, 0.0, f"{type(exc).__name__}: {exc}")
        steps.extend(report.steps)
    _table(steps, out)
    return steps


def _table(steps: list[DemoStep], out: TextIO) -> None:
    by_backend: dict[str, list[DemoStep]] = {}
    for step in steps:
        by_backend.setdefault(step.backend, []).append(step)
    print("\nbackend    steps ok   total ms   failed", file=out)
    for name, items in by_backend.items():
        good = sum(s.ok for s in items)
        total = sum(s.seconds for s in items) * 1000
        failed = ", ".join(s.name for s in items if not s.ok) or "-"
        print(f"{name:10} {good:3}/{len(items):<4} {total:9.1f}   {failed}", file=out)
