"""The quickstart guide's ``s3_kit`` class: S3 storage and retrieval with the guide's names.

>>> from ipfs_accelerate_py.api_backends import s3_kit
>>> s3 = s3_kit(metadata={"s3cfg": {"accessKey": "...", "secretKey": "...",
...                                 "endpoint": "https://s3.example.com"}})  # doctest: +SKIP
>>> s3.upload_file("model.safetensors", "models", "llama/model.safetensors")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ipfs_accelerate_py.api_backends.base import GuideClient
from ipfs_accelerate_py.backend import Backend

from .kit import S3Operations
from .runner import Runner

__all__ = ["s3_kit"]


class s3_kit(GuideClient, S3Operations):
    """S3 Kit: the operations are :class:`~.kit.S3Operations`; the resilience settings,
    ``create_endpoint`` and the usage statistics are the backend's."""

    backend_name = "s3_kit"

    def __init__(
        self,
        resources: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        backend: Backend | None = None,
    ) -> None:
        super().__init__(resources, metadata, backend=backend)
        object.__setattr__(self, "_s3", Runner(self.backend))
