"""ipfs_accelerate_py: one interface to many LLM API providers, with production resilience.

>>> from ipfs_accelerate_py import get_backend, BackendError
>>> openai = get_backend("openai")            # doctest: +SKIP

The names below load lazily: importing the package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .backend import Backend
    from .calls import CallableCall, Credential, HttpCall
    from .core import get_backend, list_backends
    from .errors import (
        AuthenticationError,
        BackendError,
        BackendNotInstalledError,
        CircuitOpenError,
        ConfigurationError,
        ConnectionError,
        InvalidArgumentError,
        InvalidRequestError,
        MalformedResponseError,
        NotFoundError,
        OverloadedError,
        PermissionDeniedError,
        QueueFullError,
        RateLimitError,
        ServerError,
        TimeoutError,
        UnknownBackendError,
    )
    from .router import Router
    from .types import (
        ChatResponse,
        EmbeddingResponse,
        GenerateResponse,
        ImageResponse,
        Message,
        ModelInfo,
        StreamChunk,
        Usage,
    )

_ERRORS = (
    "AuthenticationError",
    "BackendError",
    "BackendNotInstalledError",
    "CircuitOpenError",
    "ConfigurationError",
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
)
_TYPES = (
    "ChatResponse",
    "EmbeddingResponse",
    "GenerateResponse",
    "ImageResponse",
    "Message",
    "ModelInfo",
    "StreamChunk",
    "Usage",
)
_WHERE = {
    "get_backend": "core",
    "list_backends": "core",
    "Backend": "backend",
    "Router": "router",
    "HttpCall": "calls",
    "CallableCall": "calls",
    "Credential": "calls",
    **dict.fromkeys(_ERRORS, "errors"),
    **dict.fromkeys(_TYPES, "types"),
}

__all__ = [
    "AuthenticationError",
    "Backend",
    "BackendError",
    "BackendNotInstalledError",
    "CallableCall",
    "ChatResponse",
    "CircuitOpenError",
    "ConfigurationError",
    "ConnectionError",
    "Credential",
    "EmbeddingResponse",
    "GenerateResponse",
    "HttpCall",
    "ImageResponse",
    "InvalidArgumentError",
    "InvalidRequestError",
    "MalformedResponseError",
    "Message",
    "ModelInfo",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "QueueFullError",
    "RateLimitError",
    "Router",
    "ServerError",
    "StreamChunk",
    "TimeoutError",
    "UnknownBackendError",
    "Usage",
    "__version__",
    "get_backend",
    "list_backends",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
