"""Google's error body -> core's error classes.

``{"error": {"code": 429, "message": ..., "status": "RESOURCE_EXHAUSTED", "details": [...]}}``
is classified by the ``ErrorInfo`` reason first (an invalid key is a 400 ``INVALID_ARGUMENT``
with reason ``API_KEY_INVALID``), then the rpc status, then the HTTP status; a ``RetryInfo``
``retryDelay`` becomes ``retry_after``. The same body arrives as an event inside a stream.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ipfs_accelerate_py.errors import (
    AuthenticationError,
    BackendError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    error_for_status,
)

__all__ = ["PROVIDER", "bad_reply", "error_class", "error_from_body", "map_error"]

PROVIDER = "gemini"


def bad_reply(what: str, body: Any) -> MalformedResponseError:
    """A MalformedResponseError quoting the start of ``body``."""
    try:
        excerpt = json.dumps(body)[:200]
    except (TypeError, ValueError):
        excerpt = repr(body)[:200]
    return MalformedResponseError(f"{what}; body starts {excerpt}", provider=PROVIDER)


# google.rpc status -> core error class (the HTTP status decides when none of these match)
_BY_STATUS: dict[str, type[BackendError]] = {
    "INVALID_ARGUMENT": InvalidRequestError,
    "FAILED_PRECONDITION": InvalidRequestError,
    "OUT_OF_RANGE": InvalidRequestError,
    "UNAUTHENTICATED": AuthenticationError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "NOT_FOUND": NotFoundError,
    "RESOURCE_EXHAUSTED": RateLimitError,
    "UNAVAILABLE": ServerError,
    "INTERNAL": ServerError,
    "UNKNOWN": ServerError,
}
_AUTH_REASONS = frozenset(("API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED"))


def _details(err: Mapping[str, Any]) -> tuple[str | None, float | None]:
    """The ``ErrorInfo`` reason and the ``RetryInfo`` delay (seconds) in ``details``."""
    reason, delay = None, None
    details = err.get("details")
    for item in details if isinstance(details, list) else ():
        if not isinstance(item, Mapping):
            continue
        if isinstance(item.get("reason"), str):
            reason = reason or item["reason"]
        retry = item.get("retryDelay")
        if isinstance(retry, str) and retry.endswith("s"):
            try:
                delay = float(retry[:-1])
            except ValueError:
                pass
    return reason, delay


def error_class(
    status: str | None, http_status: int | None, reason: str | None
) -> type[BackendError]:
    """The core error class for a Google error: the ``ErrorInfo`` reason first (an invalid
    key is a 400 ``INVALID_ARGUMENT`` with reason ``API_KEY_INVALID``), then the rpc status,
    then the HTTP status."""
    if reason in _AUTH_REASONS:
        return AuthenticationError
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if http_status:
        return error_for_status(http_status)
    return ServerError


def error_from_body(body: Any, *, http_status: int | None = None) -> BackendError:
    """The error for Google's ``{"error": {...}}`` body (a reply or an event in a stream)."""
    if isinstance(body, list) and body:
        body = body[0]
    err = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(err, Mapping):
        return bad_reply("an error reply without Google's error object", body)
    code = err.get("code")
    status = err.get("status") if isinstance(err.get("status"), str) else None
    reason, delay = _details(err)
    number = code if isinstance(code, int) and not isinstance(code, bool) else http_status
    cls = error_class(status, number, reason)
    where = "" if http_status else "error inside the stream: "
    return cls(
        f"{where}{err.get('message') or status or 'no message'}",
        provider=PROVIDER,
        status_code=number,  # in a stream, Google's code is the HTTP status it stands for
        code=reason or status,
        retry_after=delay,
        body=body,
    )


def map_error(error: BackendError) -> BackendError:
    """Re-classify an error core built from a Gemini error reply by status alone (a 400
    ``API_KEY_INVALID`` is an authentication error; a 429's ``RetryInfo`` gives the
    retry delay when the reply had no ``Retry-After``). The plugin's ``refine_error`` hook;
    ``error`` itself when there is nothing to refine."""
    if error.body is None or error.status_code is None:
        return error
    better = error_from_body(error.body, http_status=error.status_code)
    if isinstance(better, MalformedResponseError):
        return error
    if type(better) is type(error) and better.code == error.code and not better.retry_after:
        return error
    better.message = error.message
    better.request_id = error.request_id
    better.provider_request_id = error.provider_request_id
    better.retry_after = error.retry_after or better.retry_after
    if "retryable" in error.__dict__:
        better.retryable = error.retryable
    return better
