"""Test helpers for plugin authors: a loopback protocol server with fault injection."""

from ipfs_accelerate_py.testing.server import (
    Headers,
    ProtocolServer,
    RecordedRequest,
    Reply,
    ReplySource,
)
from ipfs_accelerate_py.testing.waiting import await_until, wait_until

__all__ = [
    "Headers",
    "ProtocolServer",
    "RecordedRequest",
    "Reply",
    "ReplySource",
    "await_until",
    "wait_until",
]
