"""boto3 clients (one per credential and endpoint, cached) and the mapping of botocore's
exceptions onto core's errors.

boto3 is imported only when a call runs, and its own retries are off
(``total_max_attempts=1``): the pipeline retries, so a failure is never retried twice over.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ipfs_accelerate_py import errors
from ipfs_accelerate_py.calls import Credential

from .config import NAME, Target

__all__ = ["classifier", "client_for"]

_MAX_CLIENTS = 64
_lock = threading.Lock()
_clients: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_session: Any = None


def _digest(text: str | None) -> str | None:
    return hashlib.sha256(text.encode()).hexdigest() if text else None


def _boto3() -> Any:
    try:
        import boto3  # type: ignore[import-untyped]
    except ImportError:
        raise errors.ConfigurationError(
            "the s3_kit backend needs boto3: pip install boto3", provider=NAME
        ) from None
    return boto3


def client_for(credential: Credential | None, target: Target) -> Any:
    """The boto3 S3 client for ``credential`` at ``target`` (built once, then cached)."""
    if credential is not None and not credential.id:
        raise errors.ConfigurationError(
            "an S3 credential needs an access key id and a secret key: pass "
            "Credential(secret=<secret key>, id=<access key id>)",
            provider=NAME,
        )
    token = credential.extra.get("session_token") if credential else None
    key = (
        target,
        credential.id if credential else None,
        _digest(credential.secret) if credential else None,
        _digest(token),
    )
    with _lock:
        client = _clients.get(key)
        if client is not None:
            _clients.move_to_end(key)
            return client
    boto3 = _boto3()
    from botocore.config import Config  # type: ignore[import-untyped]

    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=target.connect_timeout,
        read_timeout=target.read_timeout,
        s3={"addressing_style": target.addressing_style},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=32,
        signature_version="s3v4",
    )
    global _session
    with _lock:  # a boto3 session is not thread-safe: clients are made under the lock
        if _session is None:  # one session: its loaded service models serve every client
            _session = boto3.session.Session()
        client = _session.client(
            "s3",
            region_name=target.region,
            endpoint_url=target.endpoint,
            aws_access_key_id=credential.id if credential else None,
            aws_secret_access_key=credential.secret if credential else None,
            aws_session_token=token,
            config=config,
        )
        _clients[key] = client
        while len(_clients) > _MAX_CLIENTS:
            _clients.popitem(last=False)
    return client


_THROTTLED = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottledException",
    }
)
_BAD_CREDENTIALS = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "AuthFailure",
    }
)
_DENIED = frozenset({"AccessDenied", "AllAccessDisabled", "AccountProblem", "InvalidObjectState"})
_NOT_FOUND = frozenset({"NoSuchBucket", "NoSuchKey", "NoSuchUpload", "NoSuchVersion", "NotFound"})


def _client_error(exc: Any, what: str) -> errors.BackendError:
    """A botocore ClientError: the server's code and message, mapped by code then status."""
    response = getattr(exc, "response", None) or {}
    error = response.get("Error") or {}
    meta = response.get("ResponseMetadata") or {}
    headers = meta.get("HTTPHeaders") or {}
    status = meta.get("HTTPStatusCode")
    code = str(error.get("Code") or status or "Unknown")
    message = str(error.get("Message") or "").strip()
    if code.isdigit():  # no S3 error body: botocore also turns unreadable 200 XML into a 500
        message = (
            f"HTTP {code} without an S3 error body"
            + (" (or a reply whose XML could not be read)" if code == "500" else "")
            + (f": {message}" if message and message != code else "")
        )
    text = f"{message} ({exc.operation_name} {what})" if what else message
    retry_after = None
    try:
        retry_after = float(headers["retry-after"]) if "retry-after" in headers else None
    except ValueError:
        pass
    fields: dict[str, Any] = {
        "status_code": status,
        "code": code,
        "provider_request_id": meta.get("RequestId") or headers.get("x-amz-request-id"),
        "retry_after": retry_after,
    }
    cls: type[errors.BackendError]
    if code in _THROTTLED:
        cls = errors.RateLimitError
    elif code in _BAD_CREDENTIALS:
        cls = errors.AuthenticationError
    elif code in _DENIED:
        cls = errors.PermissionDeniedError
    elif code in _NOT_FOUND or status == 404:
        cls = errors.NotFoundError
    elif code == "RequestTimeout":
        cls = errors.TimeoutError
    elif code in ("BadDigest", "IncompleteBody"):  # corrupted or cut on the way: send again
        return errors.InvalidRequestError(text, retryable=True, **fields)
    elif status == 409:
        return errors.ConflictError(text, retryable=code == "OperationAborted", **fields)
    elif isinstance(status, int):
        cls = errors.error_for_status(status)
    else:
        cls = errors.ServerError
    return cls(text, **fields)


def _classify(exc: BaseException, target: Target, what: str) -> errors.BackendError | None:
    try:
        from botocore import exceptions as bx  # type: ignore[import-untyped]
    except ImportError:
        return None
    where = target.label
    if isinstance(exc, bx.ClientError):
        return _client_error(exc, what)
    if isinstance(exc, bx.ConnectTimeoutError):
        return errors.TimeoutError(f"connecting to the S3 endpoint {where} timed out: {exc}")
    if isinstance(exc, bx.ReadTimeoutError):
        return errors.TimeoutError(f"the S3 endpoint {where} did not answer in time: {exc}")
    if isinstance(exc, bx.EndpointConnectionError):
        return errors.ConnectionError(f"could not connect to the S3 endpoint {where}: {exc}")
    if isinstance(
        exc,
        (
            bx.ConnectionClosedError,
            bx.HTTPClientError,
            bx.IncompleteReadError,
            getattr(bx, "ResponseStreamingError", bx.HTTPClientError),
        ),
    ):
        return errors.ConnectionError(f"the connection to {where} failed ({what}): {exc}")
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return errors.ConfigurationError(
            f"no S3 credentials found: pass api_key=Credential(secret=..., id=...), set "
            f"metadata['s3cfg'], S3_ACCESS_KEY/S3_SECRET_KEY or the AWS variables ({exc})"
        )
    from botocore.parsers import ResponseParserError  # type: ignore[import-untyped]

    if isinstance(exc, ResponseParserError):
        return errors.MalformedResponseError(f"{what}: the reply from {where} is not S3's: {exc}")
    if isinstance(exc, bx.ParamValidationError):
        return errors.InvalidArgumentError(f"{what}: {exc}")
    if isinstance(exc, bx.ChecksumError) or type(exc).__name__ == "FlexibleChecksumError":
        return errors.MalformedResponseError(f"{what}: {exc}", retryable=True)
    return None


def classifier(target: Target, what: str) -> Callable[[BaseException], errors.BackendError | None]:
    """The ``classify`` of a call on ``target`` about ``what`` (``s3://bucket/key``)."""
    return lambda exc: _classify(exc, target, what)
