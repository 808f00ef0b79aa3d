"""The S3 operations, sync and async, on a backend's endpoints (``endpoint_id=``).

Single calls (head, delete, one listing page, a presigned URL) run through
``backend.request``/``arequest``; the composite ones (a multipart upload, a verified
download, a folder) are sequences of such calls, run from a worker thread on the async side,
so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.calls import CallableCall

from . import folders, transfer
from .runner import Runner

if TYPE_CHECKING:
    from ipfs_accelerate_py.backend import Backend

__all__ = ["S3Kit", "S3Operations", "listing_call"]


class Page(list[dict[str, Any]]):
    """One page of a listing, with the token of the next one."""

    token: str | None = None


def _iso(value: Any) -> Any:
    """A boto3 datetime as ISO 8601 text (anything else as it is)."""
    return value.isoformat() if hasattr(value, "isoformat") else value


def _object(item: dict[str, Any]) -> dict[str, Any]:
    modified = item.get("LastModified")
    return {
        "key": item["Key"],
        "size": item.get("Size", 0),
        "etag": str(item.get("ETag") or "").strip('"'),
        "last_modified": _iso(modified),
    }


def listing_call(
    runner: Runner, bucket: str, prefix: str | None, endpoint_id: str | None
) -> CallableCall:
    """The paginated ``ListObjectsV2`` call: one page per call, each retried on its own."""
    if not isinstance(bucket, str) or not bucket:
        raise errors.InvalidArgumentError(f"bucket must be a non-empty string, got {bucket!r}")
    if prefix is not None and not isinstance(prefix, str):
        raise errors.InvalidArgumentError(f"prefix must be a string, got {prefix!r}")
    runner.target(endpoint_id)  # an unknown endpoint fails here, before any call
    what = f"s3://{bucket}/{prefix or ''}"

    def page(token: str | None) -> CallableCall:
        def fetch(client: Any) -> Page:
            args: dict[str, Any] = {"Bucket": bucket}
            if prefix:
                args["Prefix"] = prefix
            if token:
                args["ContinuationToken"] = token
            reply = client.list_objects_v2(**args)
            if "IsTruncated" not in reply and "Name" not in reply:  # an HTML page, say
                raise errors.MalformedResponseError(
                    f"{what}: the reply is not a ListObjectsV2 result ({sorted(reply)})"
                )
            out = Page(_object(item) for item in reply.get("Contents") or [])
            out.token = reply.get("NextContinuationToken") if reply.get("IsTruncated") else None
            return out

        return runner.call(
            endpoint_id, what, fetch, next_page=lambda got: page(got.token) if got.token else None
        )

    return page(None)


def _head(reply: dict[str, Any], bucket: str, key: str) -> dict[str, Any]:
    modified = reply.get("LastModified")
    return {
        "bucket": bucket,
        "key": key,
        "size": reply.get("ContentLength", 0),
        "etag": str(reply.get("ETag") or "").strip('"'),
        "content_type": reply.get("ContentType"),
        "last_modified": _iso(modified),
        "metadata": dict(reply.get("Metadata") or {}),
    }


def _names(bucket: Any, key: Any) -> str:
    for name, value in (("bucket", bucket), ("key", key)):
        if not isinstance(value, str) or not value:
            raise errors.InvalidArgumentError(f"{name} must be a non-empty string, got {value!r}")
    return f"s3://{bucket}/{key}"


class S3Operations:
    """S3 operations over ``self._s3`` (a :class:`Runner`); mixed into the guide's class."""

    _s3: Runner

    # -- buckets and objects -------------------------------------------------------------
    def create_bucket(self, bucket: str, endpoint_id: str | None = None) -> dict[str, Any]:
        """Create ``bucket`` (an existing bucket of yours is fine)."""
        _names(bucket, "-")
        what = f"s3://{bucket}"

        def create(client: Any) -> Any:
            args: dict[str, Any] = {"Bucket": bucket}
            region = client.meta.region_name
            if region and region not in ("us-east-1", "aws-global"):
                args["CreateBucketConfiguration"] = {"LocationConstraint": region}
            try:
                return client.create_bucket(**args)
            except client.exceptions.BucketAlreadyOwnedByYou:
                return {}

        self._s3.run(endpoint_id, what, create)
        return {"bucket": bucket, "created": True}

    def upload_file(
        self, file_path: Any, bucket: str, key: str, endpoint_id: str | None = None
    ) -> dict[str, Any]:
        """Upload a file (multipart above 8 MiB), verified by MD5; returns size and ETag."""
        return transfer.upload_file(self._s3, file_path, bucket, key, endpoint_id=endpoint_id)

    def download_file(
        self, bucket: str, key: str, file_path: Any, endpoint_id: str | None = None
    ) -> dict[str, Any]:
        """Download an object to ``file_path`` via a verified temporary file."""
        return transfer.download_file(self._s3, bucket, key, file_path, endpoint_id=endpoint_id)

    def list_objects(
        self, bucket: str, prefix: str | None = None, endpoint_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Every object (``key``, ``size``, ``etag``, ``last_modified``), all pages."""
        call = listing_call(self._s3, bucket, prefix, endpoint_id)
        return list(self._s3.run_call(endpoint_id, call))

    def delete_object(
        self, bucket: str, key: str, endpoint_id: str | None = None
    ) -> dict[str, Any]:
        """Delete an object (S3 reports success for a missing key too)."""
        what = _names(bucket, key)
        self._s3.run(endpoint_id, what, lambda c: c.delete_object(Bucket=bucket, Key=key))
        return {"bucket": bucket, "key": key, "deleted": True}

    def head_object(self, bucket: str, key: str, endpoint_id: str | None = None) -> dict[str, Any]:
        """An object's size, ETag, content type, date and user metadata."""
        what = _names(bucket, key)
        reply = self._s3.run(endpoint_id, what, lambda c: c.head_object(Bucket=bucket, Key=key))
        return _head(reply, bucket, key)

    def create_presigned_url(
        self, bucket: str, key: str, expiration: int = 3600, endpoint_id: str | None = None
    ) -> str:
        """A URL that GETs the object without credentials for ``expiration`` seconds."""
        what = _names(bucket, key)
        if isinstance(expiration, bool) or not isinstance(expiration, int) or expiration <= 0:
            raise errors.InvalidArgumentError(f"expiration must be seconds > 0, got {expiration!r}")
        params = {"Bucket": bucket, "Key": key}
        return self._s3.run(  # type: ignore[no-any-return]
            endpoint_id,
            what,
            lambda c: c.generate_presigned_url("get_object", Params=params, ExpiresIn=expiration),
        )

    def test_s3_endpoint(self, endpoint_id: str | None = None) -> bool:
        """Whether the endpoint answers ``ListBuckets`` with these credentials."""
        try:
            self._s3.run(endpoint_id, "ListBuckets", lambda c: c.list_buckets())
        except errors.BackendError:
            return False
        return True

    # -- folders -----------------------------------------------------------------------------
    def upload_folder(
        self,
        folder: Any,
        bucket: str,
        prefix: str | None = None,
        endpoint_id: str | None = None,
        workers: int | None = None,
    ) -> dict[str, Any]:
        """Upload a model folder, files in parallel, skipping identical ones."""
        return folders.upload_folder(
            self._s3, folder, bucket, prefix, endpoint_id=endpoint_id, workers=workers
        )

    def download_folder(
        self,
        bucket: str,
        prefix: str | None,
        folder: Any,
        endpoint_id: str | None = None,
        workers: int | None = None,
    ) -> dict[str, Any]:
        """Download every object under ``prefix`` into ``folder``, skipping identical ones."""
        return folders.download_folder(
            self._s3, bucket, prefix, folder, endpoint_id=endpoint_id, workers=workers
        )

    # -- async -------------------------------------------------------------------------------
    async def alist_objects(
        self, bucket: str, prefix: str | None = None, endpoint_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Async :meth:`list_objects`."""
        call = listing_call(self._s3, bucket, prefix, endpoint_id)
        return list(await self._s3.arun_call(endpoint_id, call))

    async def ahead_object(
        self, bucket: str, key: str, endpoint_id: str | None = None
    ) -> dict[str, Any]:
        """Async :meth:`head_object`."""
        what = _names(bucket, key)
        fn = lambda c: c.head_object(Bucket=bucket, Key=key)  # noqa: E731
        return _head(await self._s3.arun(endpoint_id, what, fn), bucket, key)

    async def adelete_object(
        self, bucket: str, key: str, endpoint_id: str | None = None
    ) -> dict[str, Any]:
        """Async :meth:`delete_object`."""
        what = _names(bucket, key)
        await self._s3.arun(endpoint_id, what, lambda c: c.delete_object(Bucket=bucket, Key=key))
        return {"bucket": bucket, "key": key, "deleted": True}

    async def aupload_file(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Async :meth:`upload_file` (its calls run in a worker thread)."""
        return await asyncio.to_thread(self.upload_file, *args, **kwargs)

    async def adownload_file(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Async :meth:`download_file` (its calls run in a worker thread)."""
        return await asyncio.to_thread(self.download_file, *args, **kwargs)

    async def aupload_folder(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Async :meth:`upload_folder`."""
        return await asyncio.to_thread(self.upload_folder, *args, **kwargs)

    async def adownload_folder(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Async :meth:`download_folder`."""
        return await asyncio.to_thread(self.download_folder, *args, **kwargs)

    # -- the handler -------------------------------------------------------------------------
    def create_s3_endpoint_handler(
        self, endpoint_id: str | None = None
    ) -> Callable[..., Awaitable[Any]]:
        """``async handler(operation, **kwargs)`` running one operation by name
        (``"upload_file"``, ``"list_objects"``...) on ``endpoint_id``, off the event loop."""
        plain: dict[str, Callable[..., Any]] = {
            "create_bucket": self.create_bucket,
            "create_presigned_url": self.create_presigned_url,
            "test_s3_endpoint": self.test_s3_endpoint,
        }
        native: dict[str, Callable[..., Awaitable[Any]]] = {
            "list_objects": self.alist_objects,
            "head_object": self.ahead_object,
            "delete_object": self.adelete_object,
            "upload_file": self.aupload_file,
            "download_file": self.adownload_file,
            "upload_folder": self.aupload_folder,
            "download_folder": self.adownload_folder,
        }

        async def handler(operation: str, **kwargs: Any) -> Any:
            kwargs.setdefault("endpoint_id", endpoint_id)
            if operation in native:
                return await native[operation](**kwargs)
            if operation in plain:
                return await asyncio.to_thread(plain[operation], **kwargs)
            known = ", ".join(sorted([*native, *plain]))
            raise errors.InvalidArgumentError(f"unknown S3 operation {operation!r}; known: {known}")

        return handler


class S3Kit(S3Operations):
    """The S3 operations on a ``get_backend("s3_kit", ...)`` backend; other names
    (``create_endpoint``, ``add_api_key``, ``get_usage_stats``...) are the backend's."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._s3 = Runner(backend)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.backend, name)

    def __repr__(self) -> str:
        return f"<S3Kit {self.backend!r}>"
