"""Semantic cache, embedding batching and the local embedder: measure, and write docs/cache.md.

    .venv/bin/python benchmarks/cache.py [--quick] [--st-python PATH]

``benchmarks/run.py`` calls :func:`main` after its own page. Sections:

1. the labelled prompt pairs (core's testing/cache_pairs.tsv): precision and hit rate at
   several thresholds, with and without the guard, using the local embedder;
2. cache lookup time (excluding the embedding) at 1k, 10k and 100k entries in one scope;
3. 1,000 concurrent single embeds against a loopback server that takes 20 ms per request and
   allows 8 at once, batched (max_batch_size=100) versus not;
4. the local numpy embedder against sentence-transformers on torch CPU, side by side in
   fresh processes: load time, resident memory after load, ms per short prompt, ms per text
   in batches of 64, and the lowest cosine between their vectors on 100 texts.
   sentence-transformers runs in ``--st-python`` (or ``$ST_PYTHON``; a throwaway venv with
   torch CPU and sentence-transformers), skipped when absent.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAIRS = ROOT / "core/src/ipfs_accelerate_py/testing/cache_pairs.tsv"
THRESHOLDS = (0.75, 0.8, 0.84, 0.86, 0.88, 0.9, 0.92, 0.95)


def log(msg: str) -> None:
    print(f"[cache] {msg}", file=sys.stderr, flush=True)


# -- 1. labelled pairs -------------------------------------------------------------------------
def bench_pairs() -> dict[str, Any]:
    from ipfs_accelerate_py.embedder import local_embedder
    from ipfs_accelerate_py.resilience.guard import compatible

    rows = [ln.split("\t") for ln in PAIRS.read_text("utf-8").splitlines() if ln and ln[0] != "#"]
    emb = local_embedder()
    a, b = emb.embed([r[2] for r in rows]), emb.embed([r[3] for r in rows])
    sims = (a * b).sum(1)
    guard = [compatible(r[2], r[3]) for r in rows]
    paraphrases = sum(r[0] == "hit" for r in rows)
    table = []
    for t in THRESHOLDS:
        for guarded in (True, False):
            pred = [s >= t and (g or not guarded) for s, g in zip(sims, guard, strict=True)]
            tp = sum(p and r[0] == "hit" for p, r in zip(pred, rows, strict=True))
            fp = [r for p, r in zip(pred, rows, strict=True) if p and r[0] == "miss"]
            table.append(
                {"threshold": t, "guard": guarded, "precision": tp / max(tp + len(fp), 1),
                 "hit_rate": tp / paraphrases, "false_hits": len(fp),
                 "false_categories": sorted({r[1] for r in fp})}
            )  # fmt: skip
    guide = float(sims[0])  # the first pair is the guide's
    cats: dict[str, int] = {}
    for r in rows:
        cats[r[1]] = cats.get(r[1], 0) + 1
    return {"rows": len(rows), "categories": cats, "table": table, "guide_cosine": guide}


# -- 2. lookups --------------------------------------------------------------------------------
def bench_lookup(quick: bool) -> list[dict[str, Any]]:
    import numpy as np

    from ipfs_accelerate_py.resilience.cache import SemanticCache
    from ipfs_accelerate_py.resilience.clock import FakeClock
    from ipfs_accelerate_py.types import ChatResponse

    rng = np.random.default_rng(7)
    out = []
    answer = ChatResponse(text="x")
    for n in (1_000, 10_000, 100_000):
        cache = SemanticCache(similarity_threshold=0.88, cache_size=n, ttl=None, clock=FakeClock())
        vectors = rng.standard_normal((n, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        for i in range(n):
            cache.put("scope", f"prompt {i}", vectors[i], answer, 0.0)
        probes = vectors[rng.integers(0, n, 200 if quick else 1000)]
        samples = []
        for j, v in enumerate(probes):
            noisy = v + np.float32(0.01) * rng.standard_normal(384).astype(np.float32)
            noisy /= np.linalg.norm(noisy)
            t0 = time.perf_counter_ns()
            cache.search("scope", f"probe {j}", noisy)
            samples.append(time.perf_counter_ns() - t0)
        samples.sort()
        out.append({"entries": n, "p50_ms": samples[len(samples) // 2] / 1e6,
                    "p99_ms": samples[int(len(samples) * 0.99)] / 1e6,
                    "hits": cache.hits})  # fmt: skip
        log(f"lookup at {n}: p50 {out[-1]['p50_ms']:.3f} ms")
    return out


# -- 3. batching throughput ----------------------------------------------------------------------
class _SlowEmbeddings(BaseHTTPRequestHandler):
    """An OpenAI-style /v1/embeddings that takes 20 ms a request and serves 8 at once."""

    slots = threading.BoundedSemaphore(8)
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        with self.slots:
            time.sleep(0.02)
        data = [{"object": "embedding", "index": i, "embedding": [float(len(t)), 1.0]}
                for i, t in enumerate(texts)]  # fmt: skip
        usage = {"prompt_tokens": len(texts), "total_tokens": len(texts)}
        reply = {"object": "list", "data": data, "model": "e", "usage": usage}
        out = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def bench_batching(quick: bool) -> dict[str, Any]:
    from ipfs_accelerate_py.core import get_backend

    n = 300 if quick else 1000
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowEmbeddings)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    results: dict[str, Any] = {"calls": n}
    try:
        for mode in ("single", "batched"):
            backend = get_backend(
                "openai", api_key="sk-bench", base_url=url, max_concurrent_requests=8, queue_size=n
            )
            if mode == "batched":
                backend.enable_embedding_batching(max_batch_size=100, batch_timeout=0.01)

            async def main(b: Any = backend) -> float:
                t0 = time.perf_counter()
                await asyncio.gather(*(b.aembed(input=f"text {i}", model="e") for i in range(n)))
                return time.perf_counter() - t0

            elapsed = asyncio.run(main())
            results[mode] = {"seconds": elapsed, "per_s": n / elapsed,
                             "batches": backend.get_batching_stats()["batches"]}  # fmt: skip
            backend.close()
            log(f"{mode}: {n / elapsed:.0f} embeds/s")
    finally:
        server.shutdown()
    results["speedup"] = results["batched"]["per_s"] / results["single"]["per_s"]
    return results


# -- 4. embedders side by side ---------------------------------------------------------------------
_PROBE = r"""
import json, os, sys, time
t0 = time.perf_counter()
kind, model_dir, quick = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
if kind == "numpy":
    from ipfs_accelerate_py.embedder import local_embedder
    emb = local_embedder()
    encode = emb.embed
else:
    import torch
    from sentence_transformers import SentenceTransformer
    m = SentenceTransformer(model_dir, device="cpu")
    encode = lambda t: m.encode(t, normalize_embeddings=True, convert_to_numpy=True)
load = time.perf_counter() - t0
rss = int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) / 1024
prompt = "Explain quantum computing in simple terms"
for _ in range(5):
    encode([prompt])
n = 30 if quick else 200
t0 = time.perf_counter()
for _ in range(n):
    encode([prompt])
single = (time.perf_counter() - t0) / n * 1000
texts = [f"This is sample text number {i} about a topic of some interest" for i in range(64)]
encode(texts)
reps = 2 if quick else 6
t0 = time.perf_counter()
for _ in range(reps):
    encode(texts)
batch = (time.perf_counter() - t0) / reps / 64 * 1000
vectors = encode(json.load(open(sys.argv[4])))
import numpy
numpy.save(sys.argv[5], vectors)
print(json.dumps(
    {"load_s": load, "rss_mb": rss, "single_ms": single, "batch64_ms_per_text": batch}
))
"""


def bench_embedders(quick: bool, st_python: str | None) -> dict[str, Any]:
    import tempfile

    import numpy as np

    from ipfs_accelerate_py.embedder import find_model_dir

    sys.path.insert(0, str(ROOT / "core/tests"))
    from test_embedder import varied_texts

    model_dir = str(find_model_dir("mini"))
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        texts = Path(tmp, "texts.json")
        texts.write_text(json.dumps(varied_texts()))
        env = {**os.environ, "PYTHONPATH": str(ROOT / "core/src")}
        pythons = {"numpy": sys.executable}
        if st_python:
            pythons["sentence-transformers"] = st_python
        for kind, python in pythons.items():
            vec = Path(tmp, f"{kind}.npy")
            run = subprocess.run(
                [python, "-c", _PROBE, "numpy" if kind == "numpy" else "st", model_dir,
                 "1" if quick else "0", str(texts), str(vec)],
                capture_output=True, text=True, env=env, timeout=900,
            )  # fmt: skip
            if run.returncode:
                log(f"{kind} failed: {run.stderr[-400:]}")
                continue
            out[kind] = json.loads(run.stdout.strip().splitlines()[-1])
            out[kind]["vectors"] = np.load(vec)
            log(f"{kind}: {out[kind]['single_ms']:.1f} ms per prompt")
        if "sentence-transformers" in out:
            a, b = out["numpy"]["vectors"], out["sentence-transformers"]["vectors"]
            out["min_cosine"] = float(((a * b).sum(1) / np.linalg.norm(b, axis=1)).min())
        for v in out.values():
            if isinstance(v, dict):
                v.pop("vectors", None)
    return out


# -- the page ----------------------------------------------------------------------------------
def render(r: dict[str, Any]) -> str:
    from ipfs_accelerate_py.caching import DEFAULT_SIMILARITY_THRESHOLD as default

    p = r["pairs"]
    lines = [
        "# Semantic cache, embedding batching and the local embedder",
        "",
        "Generated by `benchmarks/cache.py` (also run by `benchmarks/run.py`); "
        "do not edit by hand.",
        "",
        f"Machine: {r['machine']}; {r['date']}; {'quick' if r['quick'] else 'full'} run.",
        "",
        "## How it behaves",
        "",
        "- `enable_semantic_cache(similarity_threshold=0.88, cache_size=1000, ttl=3600, "
        'embedding_model="mini", *, cache_sampled=False, path=None)` on any backend or guide '
        "class. A hit is answered before the queue: no slot, no key, no request.",
        "- Scope: backend, endpoint, model, every generation parameter (tools included), the "
        "system prompt and earlier turns, and the pipeline extras (`extra_body`...) must be equal; "
        "only the last user message is compared, first exactly (whitespace-normalised, no "
        "embedding), then by cosine, then through the guard (numbers, dates, quoted strings, "
        "named entities, negations and polar words, order). Messages with images are not cached.",
        "- Sampling: a request with an explicit `temperature > 0` (or `n > 1`) is neither looked "
        "up nor stored unless `cache_sampled=True`; a request without `temperature` is cached "
        "(the guide's example passes none).",
        "- `stream()` / `astream()`: a hit is replayed as a stream (the text, then the closing "
        "chunk with finish reason and usage); a streamed miss is stored once it completes (not "
        "when cut short, nor when it carried tool calls).",
        "- `cost_savings`: the price-file cost of each answer served from the cache. `path=`: "
        "entries also live in an SQLite file and are read back on the next enable.",
        "- Embedding batching: `enable_embedding_batching(max_batch_size=20, batch_timeout=0.1, "
        "auto_batching=True)`; no request carries more texts than "
        "`BackendSpec.max_batch_inputs` (a longer `input` list is sent in consecutive requests). "
        "`cost_savings` is 0: embedding prices are per token, so a batch costs what its texts "
        "cost alone; `requests_saved` counts the requests not sent.",
        "- Single-flight: on by default (`backend.single_flight = False` turns it off) for "
        "embeds and for chats with `temperature=0`; streams are never shared.",
        "",
        "## Match quality on the labelled pairs",
        "",
        f"{p['rows']} prompt pairs written for this (core's `testing/cache_pairs.tsv`): "
        + ", ".join(f"{k} {v}" for k, v in sorted(p["categories"].items()))
        + ". *paraphrase* pairs should hit; every other category must never hit. Precision is "
        "the share of hits that were paraphrases; hit rate the share of paraphrases that hit. "
        'Vectors from the local embedder (`embedding_model="mini"`).',
        "",
        "| threshold | guard | precision | paraphrase hit rate | false hits | their categories |",
        "|---|---|---|---|---|---|",
    ]
    for row in p["table"]:
        lines.append(
            f"| {row['threshold']:.2f} | {'on' if row['guard'] else 'off'} | "
            f"{row['precision']:.3f} | {row['hit_rate']:.3f} | {row['false_hits']} | "
            f"{', '.join(row['false_categories']) or '-'} |"
        )
    lines += [
        "",
        f"**Default threshold: {default}.** The guard does most of the work: without it no "
        "threshold reaches 0.99 precision at a useful hit rate (numbers, entities, negations and "
        "reversed orders sit at cosine 0.9 to 0.99). With it, the lowest threshold without a "
        "false hit here is 0.86; the default keeps a margin above the closest related-but-"
        "different pair that only the threshold stops (a solar / lunar eclipse, 0.854), at a "
        "paraphrase hit rate above 0.8. The guard's word lists were written against these same "
        "pairs, so treat the guarded precision as optimistic for other traffic.",
        "",
        f'The guide\'s pair "Explain quantum computing" / "What is quantum computing?" has '
        f"cosine {p['guide_cosine']:.3f} under all-MiniLM-L6-v2: it hits at the default "
        f"{default} but **not at the guide's 0.92** — the guide says only that the second request "
        "*might* use the cached answer; MiniLM places an imperative and a question about one "
        "topic below 0.92. `similarity_threshold=0.92` stays valid and simply matches fewer "
        "paraphrases (see the table).",
        "",
        "## Cache lookup (excluding the embedding)",
        "",
        "One scope, random unit vectors, a probe near a stored entry (cosine ~0.98). Up to "
        "16,384 rows: one float32 matrix-vector product over the scope. Beyond: 384-bit sign "
        "codes (SimHash) pick the rows within a Hamming cut-off derived from the threshold, "
        "and only those are compared exactly; a hit is still decided by the exact cosine and "
        "the guard. The full product at 100k rows reads 154 MB per lookup, which no memory "
        "bus does in 2 ms; the codes read 4.8 MB.",
        "",
        "| entries | p50 | p99 | target |",
        "|---|---|---|---|",
    ]
    for row in r["lookup"]:
        target = "≤ 2 ms p50" if row["entries"] == 100_000 else ""
        met = "" if not target else (" **met**" if row["p50_ms"] <= 2 else " **NOT met**")
        lines.append(
            f"| {row['entries']:,} | {row['p50_ms']:.3f} ms | {row['p99_ms']:.3f} ms "
            f"| {target}{met} |"
        )
    b = r["batching"]
    lines += [
        "",
        "## Embedding batching",
        "",
        f"{b['calls']:,} concurrent single `aembed` calls (asyncio) against a loopback server "
        "that takes 20 ms per request and serves 8 at once (the backend's gate also allows 8).",
        "",
        "| mode | requests | wall time | embeds/s |",
        "|---|---|---|---|",
        f"| one request per call | {b['calls']:,} | {b['single']['seconds']:.2f} s "
        f"| {b['single']['per_s']:.0f} |",
        f"| batched (max_batch_size=100, batch_timeout=0.01) | {b['batched']['batches']} | "
        f"{b['batched']['seconds']:.2f} s | {b['batched']['per_s']:.0f} |",
        "",
        f"Throughput x{b['speedup']:.1f} "
        f"(target ≥ 10x: **{'met' if b['speedup'] >= 10 else 'NOT met'}**).",
        "",
        "## Local embedder (numpy) against sentence-transformers (torch CPU)",
        "",
    ]
    e = r["embedders"]
    if "sentence-transformers" not in e:
        lines.append("sentence-transformers was not available for this run (pass `--st-python`).")
        lines.append("")
    lines += [
        "Each in a fresh process on the same machine: load (imports + weights), resident memory "
        "after load, a 7-token prompt embedded alone, and 64 texts in one call.",
        "",
        "| | load | RSS after load | one short prompt | batch of 64, per text |",
        "|---|---|---|---|---|",
    ]
    for kind in ("numpy", "sentence-transformers"):
        if kind in e:
            x = e[kind]
            lines.append(
                f"| {kind} | {x['load_s']:.2f} s | {x['rss_mb']:.0f} MB | "
                f"{x['single_ms']:.1f} ms | {x['batch64_ms_per_text']:.2f} ms |"
            )
    if "min_cosine" in e:
        lines += ["", f"Lowest cosine between the two on 100 varied texts: {e['min_cosine']:.6f}."]
    lines += [
        "",
        "Targets: a short prompt no slower than sentence-transformers; a batch of 64 faster "
        "per text than single prompts; under 200 MB after load; load under 0.5 s.",
        "",
    ]
    return "\n".join(lines)


def main(quick: bool = False, st_python: str | None = None, out: str | None = None) -> int:
    """Run every section and write docs/cache.md (or ``out``)."""
    st_python = st_python or os.environ.get("ST_PYTHON")
    results: dict[str, Any] = {
        "quick": quick,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load {os.getloadavg()[0]:.2f}",
    }
    log("labelled pairs")
    results["pairs"] = bench_pairs()
    log("lookups")
    results["lookup"] = bench_lookup(quick)
    log("batching")
    results["batching"] = bench_batching(quick)
    log("embedders")
    results["embedders"] = bench_embedders(quick, st_python)
    page = render(results)
    Path(out or ROOT / "docs" / "cache.md").write_text(page)
    log(f"wrote {out or 'docs/cache.md'}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--st-python", help="a python with sentence-transformers and torch CPU")
    parser.add_argument("--out", help="the page to write (default docs/cache.md)")
    args = parser.parse_args()
    sys.exit(main(args.quick, args.st_python, args.out))
