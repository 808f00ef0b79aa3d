"""Bulk work: a TEI ``batch_embed`` of 10,000 texts and an S3 folder upload of 200 files.

    .venv/bin/python benchmarks/transfers.py [--quick]   # prints the markdown section
    (benchmarks/run.py calls :func:`bench` and :func:`render` for docs/benchmarks.md)

- **TEI**: a loopback TEI server (core's ProtocolServer) whose ``/info`` says
  ``max_client_batch_size`` 32 and whose ``/embed`` takes 20 ms per request; the endpoint
  allows 4 requests at once (``max_concurrent_requests=4``). The ideal is
  ceil(texts / 32) / 4 round trips of 20 ms; the figure is our time against that ideal.
- **S3**: 200 files of 1 MiB uploaded to a moto server on loopback (moto's server mode, in
  its own process),
  with ``s3_kit.upload_folder`` (concurrent, verified) against the same files put one by
  one with plain boto3 (``aws s3 cp --recursive`` style, sequential). Skipped when moto or
  boto3 is not installed.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["bench", "render"]

TEI_BATCH = 32
TEI_CONCURRENCY = 4
TEI_DELAY = 0.02


def _loopback() -> None:
    for name in ("NO_PROXY", "no_proxy"):
        os.environ[name] = ",".join(filter(None, [os.environ.get(name), "127.0.0.1"]))


def bench_tei(texts: int) -> dict[str, Any]:
    """Time ``hf_tei.batch_embed`` of ``texts`` texts against the ideal."""
    from ipfs_accelerate_py.api_backends import hf_tei
    from ipfs_accelerate_py.core import get_backend
    from ipfs_accelerate_py.testing.server import ProtocolServer, RecordedRequest, Reply

    _loopback()

    def embed(request: RecordedRequest) -> Reply:
        inputs = request.json()["inputs"]
        return Reply.json([[float(len(t)), 1.0] for t in inputs], delay=TEI_DELAY)

    with ProtocolServer() as server:
        server.on("GET", "/info", default=Reply.json({"max_client_batch_size": TEI_BATCH}))
        server.on("POST", "/embed", default=embed)
        backend = get_backend(
            "hf_tei", base_url=server.base_url, max_concurrent_requests=TEI_CONCURRENCY
        )
        client = hf_tei(backend=backend)
        words = [f"text number {i}" for i in range(texts)]
        client.batch_embed(None, words[:TEI_BATCH])  # warm: /info and the connections
        start = time.perf_counter()
        vectors = client.batch_embed(None, words)
        took = time.perf_counter() - start
        assert [v[0] for v in vectors] == [float(len(t)) for t in words]
        requests = len(server.requests_to("/embed"))
        backend.close()
    trips = math.ceil(texts / TEI_BATCH) / TEI_CONCURRENCY
    ideal = trips * TEI_DELAY
    return {
        "texts": texts,
        "seconds": took,
        "ideal": ideal,
        "ratio": took / ideal,
        "requests": requests - 1,
        "max_in_flight": server.max_in_flight,
    }


def bench_s3(files: int, size: int) -> dict[str, Any] | None:
    """Upload a folder with s3_kit and with sequential boto3 puts; None without moto."""
    try:
        import boto3
        import moto.server  # noqa: F401
    except ImportError:
        return None
    import socket
    import subprocess

    from ipfs_accelerate_py.api_backends import s3_kit
    from ipfs_accelerate_py.core import get_backend

    _loopback()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with socket.socket() as probe:  # a free port for the server process
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # the server in its own process, as a real store is: not competing for this one's GIL
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp, "model")
            folder.mkdir()
            for i in range(files):
                Path(folder, f"shard-{i:04d}.bin").write_bytes(os.urandom(size))
            plain = boto3.client("s3", endpoint_url=url)
            plain.create_bucket(Bucket="sequential")
            start = time.perf_counter()
            for path in sorted(folder.iterdir()):
                plain.upload_file(str(path), "sequential", f"model/{path.name}")
            sequential = time.perf_counter() - start
            kit = s3_kit(backend=get_backend("s3_kit", base_url=url))
            kit.create_bucket("kit")
            start = time.perf_counter()
            kit.upload_folder(str(folder), "kit", "model")
            ours = time.perf_counter() - start
            listed = kit.list_objects("kit", "model/")
            assert len(listed) == files
    finally:
        server.terminate()
        server.wait(10)
    return {"files": files, "size": size, "ours": ours, "sequential": sequential}


def bench(quick: bool = False) -> dict[str, Any]:
    """Both measurements (smaller in quick mode)."""
    return {
        "tei": bench_tei(2_000 if quick else 10_000),
        "s3": bench_s3(40 if quick else 200, 1024 * 1024),
    }


def render(r: dict[str, Any]) -> str:
    """The markdown section for docs/benchmarks.md."""
    tei = r["tei"]
    lines = [
        "## Bulk transfers",
        "",
        f"**TEI batch_embed** of {tei['texts']:,} texts, server batch limit {TEI_BATCH}, "
        f"{TEI_CONCURRENCY} requests at once, {TEI_DELAY * 1000:.0f} ms per request: "
        f"{tei['seconds']:.2f} s against an ideal of {tei['ideal']:.2f} s "
        f"(**{tei['ratio']:.2f}x** the ideal; {tei['requests']} requests, at most "
        f"{tei['max_in_flight']} in flight).",
        "",
    ]
    s3 = r["s3"]
    if s3 is None:
        lines.append("**S3 folder upload**: skipped (moto or boto3 not installed).")
    else:
        speedup = s3["sequential"] / s3["ours"]
        lines.append(
            f"**S3 folder upload** of {s3['files']} files of {s3['size'] // 1024 // 1024} MiB "
            f"to a loopback moto server: s3_kit `upload_folder` {s3['ours']:.2f} s, "
            f"sequential boto3 puts {s3['sequential']:.2f} s (**{speedup:.1f}x** the speed). "
            "moto answers from one Python process, which caps both sides here; against a real "
            "store the concurrent upload's gain grows with the store's own parallelism."
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    """Print the section."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sys.stdout.write(render(bench(args.quick)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
