"""Every provider plugin: chat overhead and a 1,000-chunk stream in its own framing, against
raw httpx sending the very same request.

The raw request is the plugin's own: one call through the backend records the URL, headers and
body bytes it sends (an httpx request hook), and raw httpx replays exactly those. For streams
the floor is raw httpx reading the same lines and decoding each event's JSON (SSE ``data:``
lines, or every NDJSON line). Anthropic, Gemini and Ollama replies come in their own framing
(benchmarks/plugin_wire.py); groq, hf_tgi (TGI's Messages API) and llvm speak OpenAI's.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import httpx
from clients import KEY
from clients import loads_floor as floor_loads

# name, base URL after the server root and size prefix, model, stream framing
PLUGINS = (
    ("openai", "/v1", "gpt-4o-mini", "sse"),
    ("groq", "/openai/v1", "llama-3.3-70b-versatile", "sse"),
    ("hf_tgi", "", "tgi", "sse"),
    ("llvm", "/v1", "local-model", "sse"),
    ("claude", "", "claude-sonnet-4-5", "sse"),
    ("gemini", "/v1beta", "gemini-2.5-flash", "sse"),
    ("ollama", "/api", "llama3.2", "ndjson"),
)
MESSAGES = [{"role": "user", "content": "Say hello."}]
TARGET_CHAT_US = 100.0
TARGET_STREAM = 1.2


def _recorded(backend: Any, action: Any) -> httpx.Request:
    """Run ``action`` and return the last request the backend's sync client sent."""
    seen: list[httpx.Request] = []
    client = backend.default_endpoint.transport.client()
    client.event_hooks["request"].append(seen.append)
    try:
        action()
    finally:
        client.event_hooks["request"].remove(seen.append)
    return seen[-1]


def _floor(client: httpx.Client, request: httpx.Request, framing: str) -> int:
    n = 0
    with client.stream(
        request.method, request.url, content=request.content, headers=request.headers
    ) as r:
        for line in r.iter_lines():
            if framing == "ndjson":
                if line:
                    floor_loads(line)
                    n += 1
            elif line.startswith("data:"):
                data = line[5:].lstrip()
                if data != "[DONE]":
                    floor_loads(data)
                    n += 1
    return n


def _interleave(fns: dict[str, Any], rounds: int, warmup: int) -> dict[str, list[float]]:
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    names = list(fns)
    out: dict[str, list[float]] = {n: [] for n in names}
    for i in range(rounds):
        for j in range(len(names)):
            name = names[(i + j) % len(names)]
            t0 = time.perf_counter_ns()
            fns[name]()
            out[name].append((time.perf_counter_ns() - t0) / 1000)
    return out


def bench_plugins(port: int, chat_rounds: int, stream_rounds: int) -> dict[str, Any]:
    """{plugin: {"chat": {raw, ours}, "stream": {floor, ours}, "chunks"}} for every installed
    plugin, and the names of those not installed."""
    from ipfs_accelerate_py import errors
    from ipfs_accelerate_py.core import get_backend

    results: dict[str, Any] = {}
    missing: list[str] = []
    client = httpx.Client()
    for name, suffix, model, framing in PLUGINS:
        chat_base = f"http://127.0.0.1:{port}{suffix}"
        stream_base = f"http://127.0.0.1:{port}/c1000{suffix}"
        try:
            chat_b = get_backend(name, api_key=KEY, base_url=chat_base, model=model)
            stream_b = get_backend(name, api_key=KEY, base_url=stream_base, model=model)
        except errors.BackendNotInstalledError:
            missing.append(name)
            continue
        try:

            def ours_chat(b: Any = chat_b) -> Any:
                return b.chat(messages=MESSAGES)

            def ours_stream(b: Any = stream_b) -> int:
                return sum(1 for _ in b.stream(messages=MESSAGES))

            chat_req = _recorded(chat_b, ours_chat)
            stream_req = _recorded(stream_b, ours_stream)

            def raw_chat(req: httpx.Request = chat_req) -> Any:
                return client.post(req.url, content=req.content, headers=req.headers).json()

            chunks = ours_stream()
            floor_events = _floor(client, stream_req, framing)
            chat = (
                _interleave({"raw": raw_chat, "ours": ours_chat}, chat_rounds, 50)
                if chat_rounds
                else {}
            )
            stream = _interleave(
                {
                    "floor": lambda r=stream_req, f=framing: _floor(client, r, f),
                    "ours": ours_stream,
                },
                stream_rounds,
                2,
            )
            results[name] = {
                "chat": chat,
                "stream": stream,
                "chunks": chunks,
                "events": floor_events,
                "path": chat_req.url.path,
                "stream_path": stream_req.url.raw_path.decode(),
            }
        finally:
            chat_b.close()
            stream_b.close()
    client.close()
    return {"plugins": results, "missing": missing}


def bench_stdjson(port: int, stream_rounds: int) -> dict[str, float]:
    """The streams once more in a fresh interpreter that cannot import orjson, so that the
    floor and core both decode with the standard library: {plugin: ours / floor}."""
    code = (
        "import json, statistics, sys; sys.modules['orjson'] = None; "
        f"sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
        "import plugins_bench as pb; "
        f"r = pb.bench_plugins({port}, 0, {stream_rounds}); "
        "print(json.dumps({n: statistics.median(v['stream']['ours']) "
        "/ statistics.median(v['stream']['floor']) for n, v in r['plugins'].items()}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.splitlines()[-1]))


def _stats(r: dict[str, Any]) -> tuple[float, float, float]:
    chat = statistics.median(r["chat"]["ours"]) - statistics.median(r["chat"]["raw"])
    floor = statistics.median(r["stream"]["floor"])
    return chat, floor, statistics.median(r["stream"]["ours"]) / floor


def render(res: dict[str, Any]) -> list[str]:
    """The markdown section."""
    out = [
        "## Every plugin: chat overhead and a 1,000-chunk stream in its own framing",
        "",
        "Raw httpx replays the exact request the plugin sends (URL, headers, body bytes); the "
        "stream floor is raw httpx `iter_lines` + decoding each event (SSE `data:` lines, "
        "or NDJSON lines) with orjson when installed (core uses it then), else `json`. "
        "Interleaved, sync, p50. The last column is the same stream measured again in a fresh "
        "interpreter that cannot import orjson (floor and ours both on the standard library's "
        "`json`).",
        "",
        "| plugin | chat path | chat Δ p50 over raw | stream path | events | floor ms | "
        "ours ms | ours / floor | ours / floor, `json` |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    stdjson = res.get("stdjson", {})
    for name, r in res["plugins"].items():
        chat, floor, ratio = _stats(r)
        ours = statistics.median(r["stream"]["ours"])
        std = f"{stdjson[name]:.2f}x" if name in stdjson else "-"
        out.append(
            f"| {name} | `{r['path']}` | {chat:+.0f} µs | `{r['stream_path']}` | {r['events']} "
            f"| {floor / 1000:.2f} | {ours / 1000:.2f} | {ratio:.2f}x | {std} |"
        )
    if res["missing"]:
        out += ["", "Not installed, so not measured: " + ", ".join(res["missing"]) + "."]
    out.append("")
    return out


def summary(res: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """Per plugin: ≤ 100 µs chat overhead and stream ≤ 1.2x the floor (orjson and json)."""
    rows = []
    stdjson = res.get("stdjson", {})
    for name, r in res["plugins"].items():
        chat, _, ratio = _stats(r)
        std = stdjson.get(name)
        rows.append(
            (
                f"{name}: chat ≤ 100 µs over raw, stream ≤ 1.2x the floor (orjson; json)",
                f"{chat:+.0f} µs, {ratio:.2f}x; " + ("-" if std is None else f"{std:.2f}x"),
                chat <= TARGET_CHAT_US
                and ratio <= TARGET_STREAM
                and (std is None or std <= TARGET_STREAM),
            )
        )
    return rows
