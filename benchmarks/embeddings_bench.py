"""Embeddings: 256 texts, 384-dimension vectors, ours against raw httpx for the same result.

Lists of floats: raw httpx asks for ``float`` and reads ``client.post(...).json()``; ours by
default asks for ``base64`` on the wire (as the official openai SDK does) and decodes it to
the same floats. A float32 array: raw httpx asks for ``base64`` and decodes each vector with
``np.frombuffer``, stacked into one array; ours is ``embed(..., output="numpy")``. Two
informational rows pin the wire format on both sides (``float``; ``base64`` decoded with the
stdlib's ``array``, as the SDK does without numpy).

    .venv/bin/python benchmarks/embeddings_bench.py [--quick]   # this section alone
"""

from __future__ import annotations

import statistics
import sys
import time
from array import array
from base64 import b64decode
from collections.abc import Callable
from typing import Any

import httpx
from clients import AUTH, KEY

MODEL = "text-embedding-3-small"
INPUTS = [f"text number {i}" for i in range(256)]
N, DIM = 256, 384

# (row label, raw variant, ours variant, is it a target?)
ROWS = [
    ("lists of floats: raw `float`, ours default (`base64` on the wire)", "raw float",
     "ours default", True),
    ("float32 array: raw `base64` + `np.frombuffer`, ours `output=\"numpy\"`", "raw numpy",
     "ours numpy", True),
    ("lists, `float` on both wires", "raw float", "ours float", False),
    ("lists, `base64` on both wires (raw: stdlib `array`)", "raw base64", "ours base64", False),
]  # fmt: skip


def bench_embeddings(port: int, rounds: int) -> dict[str, list[float]]:
    """ms per call of each variant, interleaved (the order rotates every round)."""
    import numpy as np

    from ipfs_accelerate_py.core import get_backend

    base = f"http://127.0.0.1:{port}/v1"
    client = httpx.Client()
    ours = get_backend("openai", api_key=KEY, base_url=base)
    body = {"model": MODEL, "input": INPUTS, "encoding_format": "float"}
    b64_body = {**body, "encoding_format": "base64"}
    url = base + "/embeddings"

    def raw_float() -> Any:
        return client.post(url, json=body, headers=AUTH).json()

    def raw_base64() -> Any:
        reply = client.post(url, json=b64_body, headers=AUTH).json()
        return [array("f", b64decode(d["embedding"])).tolist() for d in reply["data"]]

    def raw_numpy() -> Any:
        reply = client.post(url, json=b64_body, headers=AUTH).json()
        data = reply["data"]
        return np.stack([np.frombuffer(b64decode(d["embedding"]), dtype="<f4") for d in data])

    fns: dict[str, Callable[[], Any]] = {
        "raw float": raw_float,
        "ours default": lambda: ours.embed(input=INPUTS, model=MODEL),
        "raw numpy": raw_numpy,
        "ours numpy": lambda: ours.embed(input=INPUTS, model=MODEL, output="numpy"),
        "ours float": lambda: ours.embed(input=INPUTS, model=MODEL, encoding_format="float"),
        "raw base64": raw_base64,
        "ours base64": lambda: ours.embed(input=INPUTS, model=MODEL, encoding_format="base64"),
    }
    # the same vectors whichever way they came (the server's floats are float32 values)
    expected = raw_numpy()
    assert expected.shape == (N, DIM)
    assert np.array_equal(fns["ours numpy"]().embeddings, expected)
    for name in ("raw base64", "ours default", "ours float", "ours base64"):
        got = fns[name]()
        assert np.array_equal(np.asarray(getattr(got, "embeddings", got), np.float32), expected)
    out: dict[str, list[float]] = {n: [] for n in fns}
    out["bytes float"] = [float(len(client.post(url, json=body, headers=AUTH).content))]
    out["bytes base64"] = [float(len(client.post(url, json=b64_body, headers=AUTH).content))]
    names = list(fns)
    try:
        for i in range(rounds + 2):
            k = i % len(names)
            for name in names[k:] + names[:k]:
                t0 = time.perf_counter()
                fns[name]()
                if i >= 2:  # two warm-up rounds
                    out[name].append((time.perf_counter() - t0) * 1000)
    finally:
        client.close()
        ours.close()
    return out


def _ratio(r: dict[str, list[float]], raw: str, ours: str) -> float:
    return statistics.median(r[ours]) / statistics.median(r[raw])


def render(r: dict[str, list[float]]) -> list[str]:
    """The markdown section."""
    med = {k: statistics.median(v) for k, v in r.items()}
    lines = [
        "## Embeddings: 256 texts, 384 dimensions",
        "",
        "One `/embeddings` call returning 256 vectors of 384 float32 values from the loopback "
        f"server (a fixed reply in the format the request asks for: "
        f"{med['bytes float'] / 1e6:.2f} MB of JSON numbers for `float`, "
        f"{med['bytes base64'] / 1e6:.2f} MB for `base64`), against raw httpx producing the "
        f"same result; medians of {len(r['raw float'])} interleaved rounds.",
        "",
        "| the caller gets | raw httpx ms | ours ms | ours / raw | target |",
        "|---|---:|---:|---:|---|",
    ]
    for label, raw, ours, target in ROWS:
        ratio = med[ours] / med[raw]
        lines.append(
            f"| {label} | {med[raw]:.2f} | {med[ours]:.2f} | {ratio:.2f}x | "
            f"{'≤ 1.0x: ' + ('met' if ratio <= 1.0 else '**NOT met**') if target else ''} |"
        )
    lines += [
        "",
        "Unless the caller names an `encoding_format`, the OpenAI, vLLM/llama.cpp and OVMS "
        "plugins ask for `base64` (a quarter of the bytes, no JSON number parsing) and decode "
        "it with `binascii` into the stdlib's `array` (lists) or one numpy buffer (`output="
        '"numpy"`, no per-vector copy); numpy is imported only by a call that asks for it.',
        "",
    ]
    return lines


def summary(r: dict[str, list[float]]) -> list[tuple[str, str, bool]]:
    """The targets: ours ≤ 1.0x raw httpx for the same result, lists and numpy."""
    lists = _ratio(r, "raw float", "ours default")
    arrays = _ratio(r, "raw numpy", "ours numpy")
    return [
        ("embeddings, lists of floats ≤ 1.0x raw httpx (`float`)", f"{lists:.2f}x", lists <= 1.0),
        ("embeddings, numpy ≤ 1.0x raw httpx (`base64` + numpy)", f"{arrays:.2f}x", arrays <= 1.0),
    ]


if __name__ == "__main__":
    from run import loopback_server

    with loopback_server() as port:
        results = bench_embeddings(port, 10 if "--quick" in sys.argv else 40)
    print("\n".join(render(results)))
    for name, value, met in summary(results):
        print(f"{name}: {value} ({'met' if met else 'NOT met'})")
