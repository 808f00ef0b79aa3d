"""S3 Kit: model storage and retrieval on any S3-compatible store through boto3.

S3 is not described as HTTP calls here: each operation is a
:class:`~ipfs_accelerate_py.calls.CallableCall` running boto3 with the leased
:class:`~ipfs_accelerate_py.calls.Credential` (see :mod:`.runner`), so it goes through the
same gate, breaker, retries and accounting as every other backend. The backend has none of
the LLM capabilities; its operations are :class:`~.kit.S3Kit`'s (and the guide's ``s3_kit``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ipfs_accelerate_py.config import BackendSpec
from ipfs_accelerate_py.hookspecs import hookimpl

from .config import EXTRA_CONFIG, NAME

if TYPE_CHECKING:
    from ipfs_accelerate_py.demo import DemoReport

SPEC = BackendSpec(
    name=NAME,
    display_name="S3 Kit",
    package="ipfs-accelerate-s3kit",
    default_base_url=None,
    api_key_required=False,  # without a credential, boto3's default chain applies
    model_required=False,
    capabilities=frozenset(),
    extra_config=EXTRA_CONFIG,
    seed_class="ipfs_accelerate_s3kit.guide:s3_kit",
    http=False,
)


@hookimpl
def register_backends(register: Callable[[BackendSpec], None]) -> None:
    """Declare the ``s3_kit`` backend."""
    register(SPEC)


@hookimpl
def demo(report: DemoReport) -> None:
    """A small model folder up, listed and down again on a local moto S3 server."""
    from . import demo as scenario

    scenario.run(report)
