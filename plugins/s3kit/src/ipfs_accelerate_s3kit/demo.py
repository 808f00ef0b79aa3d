"""The S3 Kit demo: a small model folder uploaded, listed and downloaded back against a
local moto S3 server (``pip install "moto[server]"``), with no key and no network."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ipfs_accelerate_py.calls import Credential
from ipfs_accelerate_py.core import get_backend
from ipfs_accelerate_py.demo import DemoReport

from .kit import S3Kit
from .testing import moto_server

DEMO_CREDENTIAL = Credential("demo-secret-not-a-real-key-0000", id="AKIADEMO0000")


def run(report: DemoReport) -> None:
    """Run the scenario, reporting each step."""
    try:
        import moto.server  # noqa: F401
    except ImportError:
        report.note('the S3 demo needs moto: pip install "moto[server]"')
        return
    with moto_server() as url, tempfile.TemporaryDirectory() as tmp:
        report.note(f"local moto S3 server at {url}")
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        backend = get_backend("s3_kit", api_key=DEMO_CREDENTIAL, base_url=url)
        s3 = S3Kit(backend)
        model = Path(tmp, "tiny-model")
        (model / "tokenizer").mkdir(parents=True)
        (model / "config.json").write_text('{"hidden_size": 8}')
        (model / "model.safetensors").write_bytes(os.urandom(256 * 1024))
        (model / "tokenizer" / "vocab.txt").write_text("hello\nworld\n")
        with backend:
            report.step("create bucket", lambda: s3.create_bucket("models")["bucket"])
            report.step(
                "upload folder",
                lambda: f"uploaded {len(s3.upload_folder(model, 'models', 'tiny')['uploaded'])}",
            )
            report.step(
                "upload again (skipped)",
                lambda: f"skipped {len(s3.upload_folder(model, 'models', 'tiny')['skipped'])}",
            )
            report.step(
                "list objects",
                lambda: [o["key"] for o in s3.list_objects("models", "tiny/")],
            )
            back = Path(tmp, "back")

            def download() -> str:
                got = s3.download_folder("models", "tiny", back)
                same = all(
                    (back / p.relative_to(model)).read_bytes() == p.read_bytes()
                    for p in model.rglob("*")
                    if p.is_file()
                )
                return f"downloaded {len(got['downloaded'])}, identical: {same}"

            report.step("download folder", download)
            report.step(
                "presigned URL",
                lambda: s3.create_presigned_url("models", "tiny/config.json", 60).split("?")[0],
            )

            def usage() -> str:
                stats = backend.get_usage_stats()
                return f"{stats['total_requests']} requests; circuit {backend.circuit_state}"

            report.step("usage", usage)
