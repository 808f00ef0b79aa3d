"""The registry entry: :func:`get_backend` and :func:`list_backends`.

>>> from ipfs_accelerate_py.core import get_backend
>>> openai = get_backend("openai", api_key="sk-...")         # doctest: +SKIP
>>> openai.chat(messages=[{"role": "user", "content": "Hi"}], model="gpt-4o-mini")["text"]
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backend import Backend
    from .calls import Credential
    from .resilience.clock import Clock

__all__ = ["get_backend", "list_backends"]

# resilience.shared's SHARED_NAMES (a test keeps them equal): shared state loads only when
# one of them is given or IPFS_ACCELERATE_REDIS_URL is set
_SHARED_NAMES = frozenset(("shared_state", "shared_namespace", "rpm", "tpm", "rate_window"))


def get_backend(
    name: str,
    *,
    api_key: str | Credential | None = None,
    base_url: str | None = None,
    model: str | None = None,
    timeout: float | None = None,
    metadata: dict[str, Any] | None = None,
    clock: Clock | None = None,
    **settings: Any,
) -> Backend:
    """Return a backend by name (``"openai"``, ``"claude"``...), loading its plugin on first use.

    Explicit arguments override ``metadata``, which overrides the environment and ``.env``.
    Further keywords are endpoint settings: ``max_concurrent_requests``, ``queue_size``,
    ``max_retries``, ``failure_threshold``, ``key_selection_strategy``... An unknown name
    raises :class:`~.errors.UnknownBackendError` listing the installed backends (and the
    package to install, for a known one).
    """
    from . import plugins
    from .backend import Backend
    from .config import resolve_settings
    from .endpoint import normalize_policy
    from .resilience.clock import SYSTEM_CLOCK

    spec = plugins.load_spec(name)
    shared = None
    if os.environ.get("IPFS_ACCELERATE_REDIS_URL") or not _SHARED_NAMES.isdisjoint(settings):
        from .resilience.shared import pop_shared_settings

        shared = pop_shared_settings(settings)  # shared_state=, rpm=, tpm=: resilience/shared.py
    policy = normalize_policy(settings)
    resolved = resolve_settings(
        spec, api_key=api_key, base_url=base_url, model=model, timeout=timeout, metadata=metadata
    )
    return Backend(spec, resolved, clock=clock or SYSTEM_CLOCK, policy=policy, shared=shared)


def list_backends() -> list[str]:
    """Names of the installed backends (plugins are not imported to find them)."""
    from . import plugins

    return plugins.installed_backends()
