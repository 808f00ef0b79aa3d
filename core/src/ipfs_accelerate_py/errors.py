"""Errors raised by ipfs_accelerate_py, one class per kind of failure.

Every error derives from :class:`BackendError`, which derives from ``ValueError`` so that code
written against the quickstart guide (``except ValueError`` and a look for "Authentication
error" or "Rate limit" in the message) keeps working::

    BackendError (ValueError)
     ├── ConfigurationError              bad settings, missing API key
     │    └── UnknownBackendError (LookupError)
     │         └── BackendNotInstalledError (ImportError)
     ├── InvalidArgumentError            bad input to a call, caught before anything is sent
     ├── APIStatusError                  the provider answered with an error status
     │    ├── InvalidRequestError        400, 413, 422 and other 4xx
     │    ├── AuthenticationError        401
     │    │    └── PermissionDeniedError 403
     │    ├── NotFoundError              404
     │    ├── ConflictError              409
     │    ├── RateLimitError             429
     │    └── ServerError                5xx
     │         └── OverloadedError       529 (and provider "overloaded" errors)
     ├── TimeoutError (builtins.TimeoutError)      408, connect/read timeouts
     ├── ConnectionError (builtins.ConnectionError) refused, reset, stream cut mid-way
     ├── MalformedResponseError          a reply that is not what the protocol promises
     ├── CircuitOpenError                the endpoint's breaker is open: failed fast
     └── QueueFullError                  the endpoint's queue is full: refused at once

Each error carries the structured fields ``provider``, ``status_code``, ``code``,
``request_id`` (ours: caller-supplied or generated), ``provider_request_id`` (the id the
provider's reply carried) and ``retry_after`` (seconds), and a message naming the provider,
the status, the provider's own message and both ids. Secrets never appear in any of them.
"""

from __future__ import annotations

import builtins
from typing import Any

__all__ = [
    "APIStatusError",
    "AuthenticationError",
    "BackendError",
    "BackendNotInstalledError",
    "CircuitOpenError",
    "ConfigurationError",
    "ConflictError",
    "ConnectionError",
    "InvalidArgumentError",
    "InvalidRequestError",
    "MalformedResponseError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "QueueFullError",
    "RateLimitError",
    "ServerError",
    "TimeoutError",
    "UnknownBackendError",
    "error_for_status",
]


class BackendError(ValueError):
    """Root of every error this library raises.

    ``retryable`` says whether the retry loop may try the call again; the class sets the
    default and an instance may override it (for example from ``x-should-retry``).
    """

    label = "API error"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        provider_request_id: str | None = None,
        retry_after: float | None = None,
        body: Any = None,
        retryable: bool | None = None,
    ) -> None:
        self.message = message
        self.provider = provider
        self.status_code = status_code
        self.code = code
        self.request_id = request_id
        self.provider_request_id = provider_request_id
        self.retry_after = retry_after
        self.body = body
        if retryable is not None:
            self.retryable = retryable
        super().__init__(message)

    def __str__(self) -> str:
        """The message with the label, provider, status, code and ids, rendered from the
        fields as they are now (the pipeline fills in ids and notes as it learns them)."""
        return self._render()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._render()!r})"

    @property
    def args(self) -> tuple[str, ...]:
        """``(str(self),)``: always the rendered, redacted message, never a stale one."""
        return (self._render(),)

    @args.setter
    def args(self, value: tuple[Any, ...]) -> None:
        self.message = str(value[0]) if value else ""

    def _render(self) -> str:
        parts = [self.label]
        if self.provider:
            parts.append(f" from {self.provider}")
        if self.status_code is not None:
            parts.append(f" (HTTP {self.status_code})")
        parts.append(f": {self.message}")
        if self.code:
            parts.append(f" [code: {self.code}]")
        if self.request_id:
            parts.append(f" [request id: {self.request_id}]")
        if self.provider_request_id and self.provider_request_id != self.request_id:
            parts.append(f" [provider request id: {self.provider_request_id}]")
        return "".join(parts)

    def __reduce__(self) -> Any:  # keep keyword fields through pickling (multiprocessing)
        return (_rebuild, (type(self), self.message, self.__dict__.copy()))


def _rebuild(cls: type[BackendError], message: str, state: dict[str, Any]) -> BackendError:
    err = cls.__new__(cls)
    err.__dict__.update(state)
    ValueError.__init__(err, message)
    return err


class ConfigurationError(BackendError):
    """Settings are missing or wrong: no API key, a bad base URL, an unknown option."""

    label = "Configuration error"


class UnknownBackendError(ConfigurationError, LookupError):
    """No installed plugin provides the requested backend name."""

    label = "Unknown backend"


class BackendNotInstalledError(UnknownBackendError, ImportError):
    """The backend is a known one, but the package that provides it is not installed."""

    label = "Backend not installed"


class InvalidArgumentError(BackendError):
    """A call's arguments are wrong (bad messages, a parameter of the wrong type); nothing
    was sent."""

    label = "Invalid argument"


class APIStatusError(BackendError):
    """The provider answered with an HTTP error status."""

    label = "API error"


class InvalidRequestError(APIStatusError):
    """The provider rejected the request as malformed (400, 413, 422 and other 4xx)."""

    label = "Invalid request"


class AuthenticationError(APIStatusError):
    """The API key is missing, invalid or expired (401)."""

    label = "Authentication error"


class PermissionDeniedError(AuthenticationError):
    """The API key is valid but may not do this (403)."""

    label = "Authentication error (permission denied)"


class NotFoundError(APIStatusError):
    """The model, route or resource does not exist (404)."""

    label = "Not found"


class ConflictError(APIStatusError):
    """The provider reported a conflicting concurrent change (409); retried."""

    label = "Conflict"
    retryable = True


class RateLimitError(APIStatusError):
    """The provider refused the call for rate or quota reasons (429); retried."""

    label = "Rate limit exceeded"
    retryable = True


class ServerError(APIStatusError):
    """The provider failed (5xx); retried."""

    label = "Server error"
    retryable = True


class OverloadedError(ServerError):
    """The provider is overloaded (Anthropic's 529); retried."""

    label = "Server overloaded"


class TimeoutError(BackendError, builtins.TimeoutError):
    """The call timed out: connecting, waiting for the reply, or a 408 from the server."""

    label = "Timeout"
    retryable = True


class ConnectionError(BackendError, builtins.ConnectionError):
    """The connection failed: refused, reset, or a stream cut before it ended."""

    label = "Connection error"
    retryable = True


class MalformedResponseError(BackendError):
    """The reply does not follow the provider's protocol: bad JSON, missing fields."""

    label = "Malformed response"


class CircuitOpenError(BackendError):
    """The endpoint's circuit breaker is open; the call failed fast without a request.

    ``retry_after`` holds the seconds until the breaker lets a probe through.
    """

    label = "Circuit open"


class QueueFullError(BackendError):
    """The endpoint's queue is full; the call was refused at once and nothing was sent."""

    label = "Queue full"


_BY_STATUS: dict[int, type[BackendError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: TimeoutError,
    409: ConflictError,
    413: InvalidRequestError,
    422: InvalidRequestError,
    429: RateLimitError,
    529: OverloadedError,
}


def error_for_status(status_code: int) -> type[BackendError]:
    """Return the error class for an HTTP error status."""
    cls = _BY_STATUS.get(status_code)
    if cls is not None:
        return cls
    if status_code >= 500:
        return ServerError
    if status_code >= 400:
        return InvalidRequestError
    return APIStatusError
