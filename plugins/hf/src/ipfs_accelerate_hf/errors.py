"""TGI's and TEI's ``{"error": ..., "error_type": ...}`` -> core's error classes.

Replies: core picks the class by HTTP status, which is right for every status these
servers send but one. A 424 (Failed Dependency) is how both report that the model itself
failed: TGI's ``generation`` error (``Request failed during generation: CUDA OOM``) and TEI's
``Backend`` error (``Inference failed``). That is a server-side failure, not a fault of the
request, so the plugin's ``refine_error`` hook makes it a retryable ServerError. Every other
status already gives the class ``error_type`` names (429 ``overloaded`` a RateLimitError,
which honours ``retry-after``; 413/422 ``validation`` / ``tokenizer`` an InvalidRequestError;
503 ``unhealthy`` a ServerError), so the hook leaves them alone.

Events inside a TGI stream carry no status: the class comes from ``error_type`` alone, read
case-insensitively (TGI writes ``overloaded``, TEI ``Overloaded``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ipfs_accelerate_py.errors import (
    BackendError,
    InvalidRequestError,
    OverloadedError,
    ServerError,
)

__all__ = ["refine", "stream_error"]

FAILED_DEPENDENCY = 424

_BY_TYPE: dict[str, type[BackendError]] = {
    "overloaded": OverloadedError,
    "validation": InvalidRequestError,
    "tokenizer": InvalidRequestError,
    "empty": InvalidRequestError,
}  # anything else (generation, incomplete_generation, backend, unhealthy): ServerError


def stream_error(obj: Mapping[str, Any], provider: str) -> BackendError:
    """The error for TGI's ``{"error", "error_type"}`` event inside a stream."""
    message = str(obj.get("error"))
    kind = str(obj.get("error_type") or "")
    cls = _BY_TYPE.get(kind.lower(), ServerError)
    return cls(
        f"error inside the stream: {message}", provider=provider, code=kind or None, body=obj
    )


def refine(error: BackendError) -> BackendError | None:
    """A 424 reply (the model failed) as a retryable ServerError; ``None`` for any other."""
    if error.status_code != FAILED_DEPENDENCY or isinstance(error, ServerError):
        return None
    return ServerError(
        error.message,
        provider=error.provider,
        status_code=error.status_code,
        code=error.code,
        request_id=error.request_id,
        provider_request_id=error.provider_request_id,
        retry_after=error.retry_after,
        body=error.body,
        retryable=True,
    )
