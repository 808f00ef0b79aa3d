"""The quickstart guide's classes: ``from ipfs_accelerate_py.api_backends import claude``.

Each name (``openai_api``, ``claude``, ``groq``, ``ollama``, ``hf_tgi``, ``hf_tei``,
``gemini``, ``llvm``, ``ovms``, ``opea``, ``s3_kit``) is a class ``cls(resources=None,
metadata=None)`` shipped by the backend's plugin and loaded on first use; a name whose plugin
is not installed raises an ImportError naming the package to install. Every class is a thin
layer over :func:`ipfs_accelerate_py.get_backend` (see :class:`.base.GuideClient`).
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import GuideClient

# the guide's class names and the backends they stand for
GUIDE_NAMES = {
    "openai_api": "openai",
    "claude": "claude",
    "groq": "groq",
    "ollama": "ollama",
    "hf_tgi": "hf_tgi",
    "hf_tei": "hf_tei",
    "gemini": "gemini",
    "llvm": "llvm",
    "vllm": "vllm",
    "ovms": "ovms",
    "opea": "opea",
    "s3_kit": "s3_kit",
}

__all__ = ["GuideClient", "guide_class", *GUIDE_NAMES]


def guide_class(backend: str) -> type[GuideClient]:
    """The guide's class for ``backend``, from its plugin's ``BackendSpec.seed_class``
    (a plain :class:`GuideClient` subclass when the plugin names none)."""
    from .. import plugins

    spec = plugins.load_spec(backend)
    if spec.seed_class:
        module, _, attr = spec.seed_class.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        if not (isinstance(cls, type) and issubclass(cls, GuideClient)):
            raise TypeError(f"{spec.seed_class} is not a GuideClient subclass")
        return cls
    return type(backend, (GuideClient,), {"backend_name": spec.name})


def __getattr__(name: str) -> Any:
    backend = GUIDE_NAMES.get(name)
    if backend is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    cls = guide_class(backend)
    globals()[name] = cls
    return cls
