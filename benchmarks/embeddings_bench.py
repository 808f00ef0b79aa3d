"""Embeddings: 256 texts, 384-dimension vectors, against raw httpx asking for the same
format (``float``: ``client.post(...).json()``), and with ``encoding_format="base64"`` on the
wire (decoded to the same floats)."""

from __future__ import annotations

import statistics
import time
from typing import Any

import httpx
from clients import AUTH, KEY

MODEL = "text-embedding-3-small"
INPUTS = [f"text number {i}" for i in range(256)]


def bench_embeddings(port: int, rounds: int) -> dict[str, list[float]]:
    """ms per call: raw float, ours float, raw base64 (+ decoding), ours base64."""
    from ipfs_accelerate_py.core import get_backend
    from ipfs_accelerate_py.types import decode_base64_floats

    base = f"http://127.0.0.1:{port}/v1"
    client = httpx.Client()
    ours = get_backend("openai", api_key=KEY, base_url=base)
    body = {"model": MODEL, "input": INPUTS, "encoding_format": "float"}
    b64_body = {**body, "encoding_format": "base64"}

    def raw() -> Any:
        return client.post(base + "/embeddings", json=body, headers=AUTH).json()

    def raw_b64() -> Any:
        reply = client.post(base + "/embeddings", json=b64_body, headers=AUTH).json()
        return [decode_base64_floats(d["embedding"]) for d in reply["data"]]

    fns = {
        "raw float": raw,
        "ours float": lambda: ours.embed(input=INPUTS, model=MODEL),
        "raw base64": raw_b64,
        "ours base64": lambda: ours.embed(input=INPUTS, model=MODEL, encoding_format="base64"),
    }
    assert len(ours.embed(input=INPUTS, model=MODEL).embeddings) == 256
    out: dict[str, list[float]] = {n: [] for n in fns}
    try:
        for i in range(rounds):
            names = list(fns)
            for name in names[i % 4 :] + names[: i % 4]:
                t0 = time.perf_counter()
                fns[name]()
                out[name].append((time.perf_counter() - t0) * 1000)
    finally:
        client.close()
        ours.close()
    return out


def render(r: dict[str, list[float]]) -> list[str]:
    """The markdown section."""
    med = {k: statistics.median(v) for k, v in r.items()}
    return [
        "## Embeddings: 256 texts, 384 dimensions",
        "",
        "| | raw httpx ms | ours ms | ours / raw |",
        "|---|---:|---:|---:|",
        f"| `float` | {med['raw float']:.2f} | {med['ours float']:.2f} | "
        f"{med['ours float'] / med['raw float']:.2f}x |",
        f"| `base64` (decoded to floats) | {med['raw base64']:.2f} | {med['ours base64']:.2f} | "
        f"{med['ours base64'] / med['raw base64']:.2f}x |",
        "",
        "A plugin whose server supports it can ask for base64 on the wire whatever the caller "
        'asked (`openai_compat.embed_call(..., wire_format="base64")`): compare the two raw '
        "rows for what that saves.",
        "",
    ]


def summary(r: dict[str, list[float]]) -> list[tuple[str, str, bool]]:
    """The target: float embeddings ≤ 1.0x raw httpx."""
    ratio = statistics.median(r["ours float"]) / statistics.median(r["raw float"])
    return [("embeddings (float) ≤ 1.0x raw httpx", f"{ratio:.2f}x", ratio <= 1.0)]
