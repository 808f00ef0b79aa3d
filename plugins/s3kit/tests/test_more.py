"""Downloads split at any byte boundary, an aborted multipart upload, the async side's
errors, and the demo (with and without moto)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import subprocess
import sys
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.calls import Credential
from ipfs_accelerate_py.demo import DemoReport
from ipfs_accelerate_py.resilience.clock import FakeClock
from ipfs_accelerate_py.testing.server import ProtocolServer, Reply
from ipfs_accelerate_s3kit import S3Kit, transfer
from ipfs_accelerate_s3kit.testing import s3_error

CREDENTIAL = Credential("more-secret-0123456789abcdef", id="AKIAMORE0001")
MiB = 1024 * 1024


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    body=st.binary(min_size=1, max_size=4096),
    cuts=st.lists(st.integers(min_value=1, max_value=4095), max_size=8),
)
def test_downloads_split_at_any_byte_boundary_arrive_whole(
    loop_s3: S3Kit, protocol_server: ProtocolServer, tmp_path: Path, body: bytes, cuts: list[int]
) -> None:
    points = [0, *sorted({c for c in cuts if c < len(body)}), len(body)]
    chunks = [body[a:b] for a, b in itertools.pairwise(points) if b > a]
    md5 = hashlib.md5(body).hexdigest()
    reply = Reply(
        headers={"content-type": "binary/octet-stream", "ETag": f'"{md5}"'}, chunks=chunks
    )
    protocol_server.on("GET", "/models/k", default=reply)
    got = loop_s3.download_file("models", "k", tmp_path / "k")
    assert (tmp_path / "k").read_bytes() == body and got["md5"] == md5
    assert [p.name for p in tmp_path.iterdir()] == ["k"]


def test_a_failed_multipart_upload_is_aborted(
    loop_s3: S3Kit, protocol_server: ProtocolServer, tmp_path: Path
) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(b"\x01" * (6 * MiB))
    created = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<InitiateMultipartUploadResult '
        'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>models</Bucket>'
        f"<Key>big.bin</Key><UploadId>{escape('UP-1')}</UploadId></InitiateMultipartUploadResult>"
    )
    first = hashlib.md5(b"\x01" * (5 * MiB)).hexdigest()
    protocol_server.on(
        "POST", "/models/big.bin", default=Reply.text(created, content_type="application/xml")
    )
    protocol_server.on(
        "PUT",
        "/models/big.bin",
        Reply.text("", headers={"ETag": f'"{first}"'}),
        default=s3_error("AccessDenied", "Access Denied", 403),
    )
    protocol_server.on("DELETE", "/models/big.bin", default=Reply(status=204))
    denied = r"Access Denied \(UploadPart s3://models/big\.bin part 2\)"
    with pytest.raises(errors.PermissionDeniedError, match=denied):
        transfer.upload_file(
            loop_s3._s3, src, "models", "big.bin", threshold=MiB, part_size=5 * MiB
        )
    got = [(r.method, r.query) for r in protocol_server.requests]
    assert got == [
        ("POST", {"uploads": ""}),
        ("PUT", {"partNumber": "1", "uploadId": "UP-1"}),
        ("PUT", {"partNumber": "2", "uploadId": "UP-1"}),
        ("DELETE", {"uploadId": "UP-1"}),
    ]
    assert len(protocol_server.requests[1].body) == 5 * MiB


def test_async_calls_raise_core_errors_and_retry(
    loop_s3: S3Kit, protocol_server: ProtocolServer, clock: FakeClock, tmp_path: Path
) -> None:
    protocol_server.on(
        "HEAD",
        "/models/k",
        Reply(status=503, headers={"x-amz-request-id": "R1"}),
        default=Reply(status=404, headers={"x-amz-request-id": "R2"}),
    )
    protocol_server.on(
        "GET",
        "/models",
        default=s3_error("NoSuchBucket", "The specified bucket does not exist", 404),
    )
    handler = loop_s3.create_s3_endpoint_handler()

    async def main() -> None:
        with pytest.raises(errors.NotFoundError) as info:
            await loop_s3.ahead_object("models", "k")
        assert info.value.provider_request_id == "R2"
        with pytest.raises(errors.NotFoundError, match="The specified bucket does not exist"):
            await handler("list_objects", bucket="models")
        with pytest.raises(errors.InvalidArgumentError, match="no such file"):
            await handler("upload_file", file_path=tmp_path / "nope", bucket="models", key="k")

    asyncio.run(main())
    assert len(protocol_server.requests_to("/models/k")) == 2  # the 503 was retried
    assert len(clock.sleeps) == 1


def test_the_demo_uploads_lists_and_downloads_a_folder() -> None:
    pytest.importorskip("moto.server")
    out = subprocess.run(
        [sys.executable, "-m", "ipfs_accelerate_py.cli", "demo", "s3_kit"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "uploaded 3" in text and "skipped 3" in text
    assert "['tiny/config.json', 'tiny/model.safetensors', 'tiny/tokenizer/vocab.txt']" in text
    assert "downloaded 3, identical: True" in text
    assert "s3_kit       7/7" in text and "FAIL" not in text
    assert "demo-secret-not-a-real-key-0000" not in text + out.stderr


def test_the_demo_says_it_needs_moto_when_moto_is_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    from ipfs_accelerate_s3kit import demo

    monkeypatch.setitem(sys.modules, "moto.server", None)
    out = io.StringIO()
    report = DemoReport("s3_kit", out)
    demo.run(report)
    assert report.steps == []
    assert 'the S3 demo needs moto: pip install "moto[server]"' in out.getvalue()
