"""One file up or down, verified.

Upload: one ``PutObject`` up to ``threshold`` bytes, else a multipart upload whose parts are
each one call (retried on its own); every part carries its Content-MD5 (checked by the
server) and every returned ETag is checked against ours. The file's MD5 is also stored as
``x-amz-meta-md5`` so a download of a multipart object can be verified.

Download: the body is written to a temporary file beside the target, its size and MD5
checked, then renamed over the target; a failed or cut download (retried by the pipeline)
leaves no partial file and never touches an existing one.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ipfs_accelerate_py import errors

if TYPE_CHECKING:
    from .runner import Runner

__all__ = ["MiB", "Digest", "digest_file", "download_file", "upload_file"]

MiB = 1024 * 1024
DEFAULT_THRESHOLD = 8 * MiB
DEFAULT_PART_SIZE = 8 * MiB
MAX_PARTS = 10_000
_READ = 1 * MiB


class Digest:
    """A local file's size, MD5 and the ETag S3 gives it when uploaded like we upload it."""

    def __init__(self, size: int, md5: bytes, parts: list[bytes], part_size: int) -> None:
        self.size = size
        self.md5 = md5
        self.parts = parts
        self.part_size = part_size

    @property
    def md5_hex(self) -> str:
        """The whole file's MD5 in hex."""
        return self.md5.hex()

    def etag(self, multipart: bool) -> str:
        """The ETag of a single-part (MD5) or multipart (MD5 of part MD5s, ``-N``) upload."""
        if not multipart:
            return self.md5_hex
        return f"{hashlib.md5(b''.join(self.parts)).hexdigest()}-{len(self.parts)}"


def _checked_file(file_path: Any) -> Path:
    if not isinstance(file_path, (str, os.PathLike)) or not str(file_path):
        raise errors.InvalidArgumentError(f"file_path must be a path, got {file_path!r}")
    path = Path(file_path)
    if not path.is_file():
        raise errors.InvalidArgumentError(f"no such file: {str(path)!r}")
    return path


def _checked_names(bucket: Any, key: Any) -> str:
    for name, value in (("bucket", bucket), ("key", key)):
        if not isinstance(value, str) or not value:
            raise errors.InvalidArgumentError(f"{name} must be a non-empty string, got {value!r}")
    return f"s3://{bucket}/{key}"


def part_size_for(size: int, part_size: int) -> int:
    """``part_size``, raised when needed so that ``size`` fits in S3's 10,000 parts."""
    return max(part_size, 5 * MiB, -(-size // MAX_PARTS))


def digest_file(path: Path, part_size: int = DEFAULT_PART_SIZE) -> Digest:
    """Size, MD5 and per-part MD5s of a file, read once."""
    whole = hashlib.md5()
    parts: list[bytes] = []
    size = 0
    try:
        with path.open("rb") as f:
            while chunk := f.read(part_size):
                whole.update(chunk)
                parts.append(hashlib.md5(chunk).digest())
                size += len(chunk)
    except OSError as exc:
        raise errors.InvalidArgumentError(f"cannot read {str(path)!r}: {exc}") from None
    return Digest(size, whole.digest(), parts, part_size)


def _read(path: Path, offset: int, length: int) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read(length)
    except OSError as exc:
        raise errors.InvalidArgumentError(f"cannot read {str(path)!r}: {exc}") from None


def _etag(value: Any) -> str:
    return str(value or "").strip('"')


def _md5_etag(reply: dict[str, Any]) -> bool:
    """Whether the object's ETag is its MD5 (not under SSE-KMS or customer keys)."""
    return reply.get("ServerSideEncryption") != "aws:kms" and not reply.get("SSECustomerAlgorithm")


def _check_etag(reply: dict[str, Any], expected: str, what: str) -> str:
    got = _etag(reply.get("ETag"))
    if _md5_etag(reply) and got and got != expected:
        raise errors.MalformedResponseError(
            f"{what}: the stored object's ETag {got!r} does not match ours {expected!r}",
            retryable=True,
        )
    return got


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def upload_file(
    runner: Runner,
    file_path: Any,
    bucket: str,
    key: str,
    *,
    endpoint_id: str | None = None,
    threshold: int = DEFAULT_THRESHOLD,
    part_size: int = DEFAULT_PART_SIZE,
    digest: Digest | None = None,
) -> dict[str, Any]:
    """Upload ``file_path`` to ``bucket``/``key``, verified; returns what was stored."""
    what = _checked_names(bucket, key)
    path = _checked_file(file_path)
    size = path.stat().st_size
    part_size = part_size_for(size, part_size)
    if digest is None or digest.part_size != part_size:
        digest = digest_file(path, part_size)
    meta = {"md5": digest.md5_hex}
    if digest.size <= threshold:

        def put(client: Any) -> Any:
            body = _read(path, 0, digest.size)
            if hashlib.md5(body).digest() != digest.md5:
                raise errors.InvalidArgumentError(f"{str(path)!r} changed while uploading")
            return client.put_object(
                Bucket=bucket, Key=key, Body=body, ContentMD5=_b64(digest.md5), Metadata=meta
            )

        reply = runner.run(endpoint_id, what, put)
        etag = _check_etag(reply, digest.etag(False), what)
        return _stored(bucket, key, digest, etag, parts=1)
    created = runner.run(
        endpoint_id,
        what,
        lambda c: c.create_multipart_upload(Bucket=bucket, Key=key, Metadata=meta),
    )
    upload_id = created["UploadId"]
    try:
        done = [
            _upload_part(runner, endpoint_id, path, bucket, key, upload_id, digest, number)
            for number in range(1, len(digest.parts) + 1)
        ]
        reply = runner.run(
            endpoint_id,
            what,
            lambda c: c.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
            ),
        )
    except BaseException:
        with contextlib.suppress(Exception):
            runner.run(
                endpoint_id,
                what,
                lambda c: c.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id),
            )
        raise
    etag = _check_etag(reply, digest.etag(True), what)
    return _stored(bucket, key, digest, etag, parts=len(digest.parts))


def _upload_part(
    runner: Runner,
    endpoint_id: str | None,
    path: Path,
    bucket: str,
    key: str,
    upload_id: str,
    digest: Digest,
    number: int,
) -> dict[str, Any]:
    md5 = digest.parts[number - 1]

    def send(client: Any) -> Any:
        body = _read(path, (number - 1) * digest.part_size, digest.part_size)
        if hashlib.md5(body).digest() != md5:
            raise errors.InvalidArgumentError(f"{str(path)!r} changed while uploading")
        return client.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
            ContentMD5=_b64(md5),
        )

    what = f"s3://{bucket}/{key} part {number}"
    reply = runner.run(endpoint_id, what, send)
    etag = _check_etag(reply, md5.hex(), what)
    return {"PartNumber": number, "ETag": f'"{etag}"'}


def _stored(bucket: str, key: str, digest: Digest, etag: str, parts: int) -> dict[str, Any]:
    return {
        "bucket": bucket,
        "key": key,
        "size": digest.size,
        "etag": etag,
        "md5": digest.md5_hex,
        "parts": parts,
    }


def download_file(
    runner: Runner, bucket: str, key: str, file_path: Any, *, endpoint_id: str | None = None
) -> dict[str, Any]:
    """Download ``bucket``/``key`` to ``file_path`` through a verified temporary file."""
    what = _checked_names(bucket, key)
    if not isinstance(file_path, (str, os.PathLike)) or not str(file_path):
        raise errors.InvalidArgumentError(f"file_path must be a path, got {file_path!r}")
    target = Path(file_path)
    if target.is_dir():
        raise errors.InvalidArgumentError(f"{str(target)!r} is a directory")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise errors.InvalidArgumentError(f"cannot create {str(target.parent)!r}: {exc}") from None

    def fetch(client: Any) -> dict[str, Any]:
        reply = client.get_object(Bucket=bucket, Key=key)
        return _write_verified(reply, target, what)

    return {"bucket": bucket, "key": key, **runner.run(endpoint_id, what, fetch)}


def _write_verified(reply: dict[str, Any], target: Path, what: str) -> dict[str, Any]:
    body = reply["Body"]
    md5 = hashlib.md5()
    size = 0
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    except OSError as exc:
        body.close()
        raise errors.InvalidArgumentError(f"cannot write in {str(target.parent)!r}: {exc}")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in body.iter_chunks(_READ):
                md5.update(chunk)
                size += len(chunk)
                try:
                    out.write(chunk)
                except OSError as exc:  # a local failure (disk full): not the server's
                    raise errors.InvalidArgumentError(f"cannot write {tmp!r}: {exc}") from None
        expected_size = reply.get("ContentLength")
        if expected_size is not None and size != expected_size:
            raise errors.ConnectionError(f"{what}: got {size} of {expected_size} bytes")
        etag = _etag(reply.get("ETag"))
        stored_md5 = (reply.get("Metadata") or {}).get("md5")
        expected = etag if "-" not in etag and _md5_etag(reply) else stored_md5
        if expected and len(expected) == 32 and md5.hexdigest() != expected.lower():
            raise errors.MalformedResponseError(
                f"{what}: the downloaded bytes' MD5 {md5.hexdigest()} does not match {expected}",
                retryable=True,
            )
        os.replace(tmp, target)
    except BaseException:
        body.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return {"file_path": str(target), "size": size, "etag": etag, "md5": md5.hexdigest()}
