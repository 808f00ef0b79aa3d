"""Test helpers for plugin authors: a loopback protocol server with fault injection."""

from ipfs_accelerate_py.testing.server import (
    Headers,
    ProtocolServer,
    RecordedRequest,
    Reply,
    ReplySource,
)

__all__ = ["Headers", "ProtocolServer", "RecordedRequest", "Reply", "ReplySource"]
