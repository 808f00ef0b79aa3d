"""A whole model folder up or down: many files at once, files already identical skipped.

A file is identical to an object when the sizes match and the object's ETag is the file's
MD5 (single-part) or the multipart ETag our part size gives it. Each file is one
:func:`~.transfer.upload_file` / :func:`~.transfer.download_file`, so each call in it goes
through the pipeline and is retried on its own.
"""

from __future__ import annotations

import os
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TextIO

from ipfs_accelerate_py import errors

from . import transfer
from .progress import Progress

if TYPE_CHECKING:
    from .runner import Runner

__all__ = ["download_folder", "upload_folder"]


def _prefix(prefix: str | None) -> str:
    if prefix is None:
        return ""
    if not isinstance(prefix, str):
        raise errors.InvalidArgumentError(f"prefix must be a string, got {prefix!r}")
    return prefix.strip("/") + "/" if prefix.strip("/") else ""


def _identical(digest: transfer.Digest, obj: dict[str, Any] | None, threshold: int) -> bool:
    if obj is None or obj.get("size") != digest.size:
        return False
    return obj.get("etag") == digest.etag(digest.size > threshold)


def _workers(runner: Runner, workers: int | None) -> int:
    if workers is not None:
        return max(1, int(workers))
    return max(2, min(16, runner.backend.default_endpoint.gate.max_concurrent * 2))


def upload_folder(
    runner: Runner,
    folder: Any,
    bucket: str,
    prefix: str | None = None,
    *,
    endpoint_id: str | None = None,
    workers: int | None = None,
    threshold: int = transfer.DEFAULT_THRESHOLD,
    part_size: int = transfer.DEFAULT_PART_SIZE,
    progress: TextIO | None = None,
) -> dict[str, Any]:
    """Upload every file under ``folder`` to ``bucket`` under ``prefix``."""
    root = Path(folder) if isinstance(folder, (str, os.PathLike)) else None
    if root is None or not root.is_dir():
        raise errors.InvalidArgumentError(f"no such folder: {folder!r}")
    base = _prefix(prefix)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    existing = {o["key"]: o for o in list_all(runner, bucket, base, endpoint_id)}
    bar = Progress(
        f"upload {root.name}", len(files), sum(p.stat().st_size for p in files), progress
    )
    uploaded: list[str] = []
    skipped: list[str] = []

    def one(path: Path) -> None:
        key = base + path.relative_to(root).as_posix()
        size = path.stat().st_size
        digest = transfer.digest_file(path, transfer.part_size_for(size, part_size))
        if _identical(digest, existing.get(key), threshold):
            skipped.append(key)
        else:
            transfer.upload_file(
                runner,
                path,
                bucket,
                key,
                endpoint_id=endpoint_id,
                threshold=threshold,
                part_size=part_size,
                digest=digest,
            )
            uploaded.append(key)
        bar.advance(size)

    _run_all(one, files, _workers(runner, workers))
    return {
        "bucket": bucket,
        "prefix": base,
        "uploaded": sorted(uploaded),
        "skipped": sorted(skipped),
        "files": len(files),
    }


def download_folder(
    runner: Runner,
    bucket: str,
    prefix: str | None,
    folder: Any,
    *,
    endpoint_id: str | None = None,
    workers: int | None = None,
    threshold: int = transfer.DEFAULT_THRESHOLD,
    part_size: int = transfer.DEFAULT_PART_SIZE,
    progress: TextIO | None = None,
) -> dict[str, Any]:
    """Download every object under ``prefix`` into ``folder``, keeping the relative paths."""
    if not isinstance(folder, (str, os.PathLike)) or not str(folder):
        raise errors.InvalidArgumentError(f"folder must be a path, got {folder!r}")
    root = Path(folder)
    base = _prefix(prefix)
    objects = [o for o in list_all(runner, bucket, base, endpoint_id) if not o["key"].endswith("/")]
    plan = [(o, _local(root, o["key"][len(base) :])) for o in objects]
    bar = Progress(
        f"download {base or bucket}", len(plan), sum(o["size"] for o in objects), progress
    )
    downloaded: list[str] = []
    skipped: list[str] = []

    def one(item: tuple[dict[str, Any], Path]) -> None:
        obj, path = item
        if path.is_file() and path.stat().st_size == obj["size"]:
            size = obj["size"]
            digest = transfer.digest_file(path, transfer.part_size_for(size, part_size))
            if _identical(digest, obj, threshold):
                skipped.append(obj["key"])
                bar.advance(size)
                return
        transfer.download_file(runner, bucket, obj["key"], path, endpoint_id=endpoint_id)
        downloaded.append(obj["key"])
        bar.advance(obj["size"])

    _run_all(one, plan, _workers(runner, workers))
    return {
        "bucket": bucket,
        "prefix": base,
        "downloaded": sorted(downloaded),
        "skipped": sorted(skipped),
        "files": len(plan),
    }


def _local(root: Path, relative: str) -> Path:
    """The local path for an object, refusing keys that would escape ``root``."""
    parts = PurePosixPath(relative).parts
    if not parts or any(p in ("..", "") for p in parts) or PurePosixPath(relative).is_absolute():
        raise errors.InvalidArgumentError(f"object key {relative!r} escapes the target folder")
    return root.joinpath(*parts)


def _run_all(fn: Any, items: list[Any], workers: int) -> None:
    """Run ``fn`` over ``items`` concurrently; after a failure, the files not started are
    skipped and the first failure is raised once the running ones finished."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3kit") as pool:
        futures = [pool.submit(fn, item) for item in items]
        wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:  # after a failure, files not started yet are not started
            future.cancel()
    for future in futures:
        if not future.cancelled() and future.exception() is not None:
            raise future.exception()  # type: ignore[misc]


def list_all(
    runner: Runner, bucket: str, prefix: str, endpoint_id: str | None
) -> list[dict[str, Any]]:
    """Every object under ``prefix`` (all pages)."""
    from .kit import listing_call

    call = listing_call(runner, bucket, prefix, endpoint_id)
    return runner.run_call(endpoint_id, call)  # type: ignore[no-any-return]
