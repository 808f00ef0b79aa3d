"""S3 Kit for ipfs_accelerate_py: model storage and retrieval on any S3-compatible store."""

from __future__ import annotations

from .kit import S3Kit

__all__ = ["S3Kit"]
