"""The benchmark suite's code that takes core apart (benchmarks/run.py, section 4's table of
pipeline steps) still fits core: a refactor that breaks it fails here, not as an "n/a" row in
the next docs/benchmarks.md. Nothing here is timed against a target."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench_run() -> ModuleType:
    """benchmarks/run.py, imported under its own name (it puts benchmarks/ on sys.path for
    its sibling modules: put back afterwards)."""
    path = list(sys.path)
    try:
        spec = importlib.util.spec_from_file_location("benchmarks_run", BENCHMARKS / "run.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = path
    return module


def test_pipeline_steps_table_runs(bench_run: Any) -> None:
    rows = bench_run.bench_steps(0.01)  # every step checked, then a few iterations of each
    labels = [label for label, _, _ in rows]
    assert labels[0].startswith("whole call")
    assert any("Attempts.start" in label for label in labels)
    assert any("HttpExecutor.attempt" in label for label in labels)
    for label, us, where in rows:
        assert us > 0, label
        assert ":" in where and "n/a" not in where, (label, where)


def test_a_step_that_breaks_fails_loudly(bench_run: Any) -> None:
    from ipfs_accelerate_py.backend import Backend

    def broken() -> None:
        _, _, _ = (1, 2, 3, 4)  # type: ignore[misc]  # what the last refactor did to it

    with pytest.raises(bench_run.StepsBroken, match="too many values to unpack"):
        bench_run.check_steps([("a step", broken, Backend.chat, True)])


def test_a_step_off_the_call_path_fails_loudly(bench_run: Any) -> None:
    import httpx

    with pytest.raises(bench_run.StepsBroken, match="no longer runs"):
        bench_run.check_steps([("a step", lambda: None, httpx.Client.post, True)])
