"""Side by side: raw httpx, ours, and (with ``--compare``, where installed) the official
``openai`` client and ``litellm``, against the same loopback server, interleaved.

Three measurements, and the plot that shows them with the concurrency sweep:

* latency of one sync chat call (p50);
* time to read a 1,000-chunk stream (the floor: raw httpx ``iter_lines`` + decoding each
  event with orjson, or json without it);
* cold start: a fresh interpreter imports the client, builds it and gets its first reply.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from clients import AUTH, BODY, KEY, MESSAGES, MODEL, chat_client, installed, stream_client
from clients import loads_floor as floor_loads

STREAM_BODY = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
STREAM_BODY.pop("max_tokens")


def _interleave(fns: dict[str, Any], rounds: int, warmup: int) -> dict[str, list[float]]:
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    names = list(fns)
    out: dict[str, list[float]] = {n: [] for n in names}
    for i in range(rounds):
        for j in range(len(names)):
            name = names[(i + j) % len(names)]
            t0 = time.perf_counter()
            fns[name]()
            out[name].append((time.perf_counter() - t0) * 1e6)
    return out


def bench_chat(port: int, rounds: int, compare: bool) -> dict[str, list[float]]:
    """µs per sync chat call for each client."""
    from ipfs_accelerate_py.core import get_backend

    base = f"http://127.0.0.1:{port}/v1"
    client = httpx.Client()
    ours = get_backend("openai", api_key=KEY, base_url=base)
    fns: dict[str, Any] = {
        "raw httpx": lambda: client.post(
            base + "/chat/completions", json=BODY, headers=AUTH
        ).json(),
        "ours": lambda: ours.chat(messages=MESSAGES, model=MODEL, max_tokens=16),
    }
    closers = [client.close, ours.close]
    for name in ("openai", "litellm") if compare else ():
        made = chat_client(name, base)
        if made is not None:
            fns[name], close = made
            closers.append(close)
    try:
        slow = "litellm" in fns
        return _interleave(fns, rounds // 4 if slow else rounds, warmup=20)
    finally:
        for close in closers:
            close()


def bench_stream(port: int, rounds: int, compare: bool) -> dict[str, list[float]]:
    """µs per 1,000-chunk stream (one SSE event per HTTP chunk) for each client."""
    from ipfs_accelerate_py.core import get_backend

    base = f"http://127.0.0.1:{port}/c1000/v1"
    url = base + "/chat/completions"
    client = httpx.Client()
    ours = get_backend("openai", api_key=KEY, base_url=base)

    def floor() -> int:
        n = 0
        with client.stream("POST", url, json=STREAM_BODY, headers=AUTH) as r:
            for line in r.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    floor_loads(line[6:])
                    n += 1
        return n

    def mine() -> int:
        return sum(1 for _ in ours.stream(messages=MESSAGES, model=MODEL))

    fns: dict[str, Any] = {"raw httpx + JSON": floor, "ours": mine}
    closers = [client.close, ours.close]
    for name in ("openai", "litellm") if compare else ():
        made = stream_client(name, base)
        if made is not None:
            fns[name], close = made
            closers.append(close)
    try:
        return _interleave(fns, rounds, warmup=2)
    finally:
        for close in closers:
            close()


_COLD = {
    "raw httpx": (
        "import httpx\nc = httpx.Client()\n"
        "c.post(BASE + '/chat/completions', json=BODY, headers=AUTH).json()\n"
    ),
    "ours": (
        "from ipfs_accelerate_py.core import get_backend\n"
        "b = get_backend('openai', api_key=KEY, base_url=BASE)\n"
        "b.chat(messages=BODY['messages'], model=BODY['model'], max_tokens=16)\n"
    ),
    "openai": (
        "import openai\nc = openai.OpenAI(api_key=KEY, base_url=BASE, max_retries=0)\n"
        "c.chat.completions.create(**BODY)\n"
    ),
    "litellm": (
        "import os\nos.environ['LITELLM_LOCAL_MODEL_COST_MAP'] = 'True'\nimport litellm\n"
        "litellm.completion(model='openai/' + BODY['model'], messages=BODY['messages'], "
        "max_tokens=16, api_base=BASE, api_key=KEY)\n"
    ),
}


def bench_cold(port: int, runs: int, compare: bool, cwd: str, env: dict[str, str]) -> Any:
    """ms from interpreter start of the timed code to the first reply, per client, in
    ``runs`` rounds of fresh processes (one per client each round, the order alternating):
    ``{"wall": {client: [ms...]}, "cpu": {client: [ms...]}}``, the CPU time being the
    process's own (``time.process_time``) over the same code, which other processes on a
    shared machine disturb much less than the wall clock."""
    base = f"http://127.0.0.1:{port}/v1"
    # bytecode cached, as after `pip install` (which compiles): a private cache, so that
    # PYTHONDONTWRITEBYTECODE cannot make our editable sources compile at every start
    env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(Path(cwd) / "pycache")
    names = ["raw httpx", "ours"] + [
        n for n in (("openai", "litellm") if compare else ()) if installed(n)
    ]
    head = f"BASE = {base!r}\nKEY = {KEY!r}\nBODY = {BODY!r}\nAUTH = {AUTH!r}\n"
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for i in range(runs + 1):  # the first round fills the bytecode and file caches
        for name in names if i % 2 else names[::-1]:
            code = (
                head
                + "import time\n_t0, _c0 = time.perf_counter(), time.process_time()\n"
                + _COLD[name]
                + "print(time.perf_counter() - _t0, time.process_time() - _c0)\n"
            )
            proc = subprocess.run(
                [sys.executable, "-c", code],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            if i:
                seconds, cpu_seconds = proc.stdout.split()[-2:]
                wall[name].append(float(seconds) * 1000)
                cpu[name].append(float(cpu_seconds) * 1000)
    return {"wall": wall, "cpu": cpu}


def over_raw(by_client: dict[str, list[float]], name: str) -> float:
    """The median, over rounds, of ``name``'s time minus raw httpx's in the same round (less
    sensitive to a slow stretch of the machine than the difference of the medians)."""
    raw = by_client.get("raw httpx", [])
    ours = by_client.get(name, [])
    if not raw or not ours:
        return float("nan")
    return statistics.median(b - a for a, b in zip(raw, ours, strict=False))


def _p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def render(r: dict[str, Any]) -> list[str]:
    """The markdown section for the side-by-side numbers."""
    chat, stream, cold = r["chat"], r["stream"], r["cold"]
    cold_cpu = r.get("cold_cpu", {})
    raw_chat = _p50(chat["raw httpx"])
    floor = _p50(stream["raw httpx + JSON"])
    rounds = len(cold.get("raw httpx", []))
    out = [
        "## Side by side: ours, the official openai client, LiteLLM",
        "",
        "One process, the same loopback server, calls interleaved client by client. Chat: "
        "one sync call, p50. Stream: a 1,000-chunk chat stream, one SSE event per HTTP chunk, "
        "read to the end (the floor is raw httpx `iter_lines` + decoding each event, with "
        "orjson when installed, as core does then). "
        "Cold start: a fresh interpreter imports the client, builds it and gets its first "
        f"reply ({rounds} rounds of one fresh process per client, the order alternating; "
        "bytecode cached, as after `pip install`): the median time, and the median over "
        "rounds of the time over raw httpx's in the same round, by the wall clock and in the "
        "process's own CPU time (`process_time`), which other processes on this shared "
        "machine disturb much less. Rows for clients not installed are left out.",
        "",
        "Read the chat column with care: interleaved with litellm in one process, every "
        "client's call gets slower (litellm leaves background work running), raw httpx's the "
        "most (in a check: 1,024 µs against 563 µs without litellm; ours 670 against 593). "
        "Our overhead over raw httpx is section 1's figure; this table compares the clients "
        "with each other.",
        "",
        "| client | chat p50 µs | over raw httpx | stream ms p50 | / floor | first reply ms "
        "| over raw httpx | CPU over raw |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    names = list(dict.fromkeys([*chat, *cold]))
    for name in names:
        c = _p50(chat.get(name, []))
        s_key = "raw httpx + JSON" if name == "raw httpx" else name
        s = _p50(stream.get(s_key, []))
        k = _p50(cold.get(name, []))
        out.append(
            f"| {name} | {c:,.0f} | {c - raw_chat:+,.0f} µs | {s / 1000:,.1f} | "
            f"{s / floor:.2f}x | {k:,.0f} | {over_raw(cold, name):+,.0f} ms | "
            f"{over_raw(cold_cpu, name):+,.0f} ms |"
        )
    out += ["", "![latency, stream, throughput, cold start](benchmarks.png)", ""]
    return out


def plot(r: dict[str, Any], sweep: dict[str, Any] | None, path: Path) -> bool:
    """Four panels in one PNG; False when matplotlib is not installed."""
    if not installed("matplotlib"):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    colors = {
        "raw httpx": "#888888",
        "raw httpx + JSON": "#888888",
        "raw aiohttp": "#bbbbbb",
        "raw aiohttp, 100 at a time": "#7f7f7f",
        "ours": "#1f77b4",
        "ours (httpx pool)": "#9ecae1",
        "openai": "#2ca02c",
        "litellm": "#d62728",
    }

    def bars(
        ax: Any, data: dict[str, list[float]], scale: float, title: str, unit: str, log: bool
    ) -> None:
        names = list(data)
        values = [_p50(data[n]) * scale for n in names]
        ax.barh(names, values, color=[colors.get(n, "#444444") for n in names])
        if log:
            ax.set_xscale("log")
        ax.set_title(title)
        ax.set_xlabel(unit + (" (log scale)" if log else ""))
        ax.invert_yaxis()
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:,.1f}", va="center", fontsize=8)

    bars(axes[0][0], r["chat"], 1.0, "sync chat call, p50", "µs", False)
    bars(axes[0][1], r["stream"], 0.001, "1,000-chunk stream, p50", "ms", True)
    bars(axes[1][1], r["cold"], 1.0, "import + client + first reply", "ms", False)
    ax = axes[1][0]
    if sweep:
        for name, by in sweep["rps"].items():
            levels = sweep["levels"]
            ax.plot(
                levels,
                [max(by[lvl]) if by[lvl] else float("nan") for lvl in levels],
                marker="o",
                label=name,
                color=colors.get(name, "#444444"),
                linestyle="--" if "raw" in name or "pool" in name else "-",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    ax.set_title("async throughput vs requests in flight")
    ax.set_xlabel("requests in flight")
    ax.set_ylabel("req/s")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
