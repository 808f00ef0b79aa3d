"""The process-wide observability state: the configuration, the hook registries and the
current call (a context variable). Plain data; the package's functions change it."""

from __future__ import annotations

import contextvars
import weakref
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgumentError
from .config import ObservabilityConfig
from .hooks import HookGroups, Hooks

if TYPE_CHECKING:
    from .call import Observation

__all__ = ["BACKEND_HOOKS", "CONFIG", "CURRENT", "GLOBAL_HOOKS", "register", "unregister"]

CONFIG = ObservabilityConfig()
"""The settings in force (inactive until :func:`~ipfs_accelerate_py.observability.configure`)."""

GLOBAL_HOOKS = HookGroups()
"""Hooks for every call."""

BACKEND_HOOKS: weakref.WeakKeyDictionary[Any, HookGroups] = weakref.WeakKeyDictionary()
"""Hooks per backend, keyed by the backend's usage tracker (shared by all its endpoints)."""

SCOPE_HOOKS: list[int] = []
"""One entry per open :func:`~.hooks.scoped_hooks` block (a router's hooks), anywhere."""

CURRENT: contextvars.ContextVar[Observation | None] = contextvars.ContextVar(
    "ipfs_accelerate_call", default=None
)
"""The call being made in this context, for :func:`~ipfs_accelerate_py.observability.event`."""


def _owner(backend: Any) -> Any:
    usage = getattr(backend, "usage", None)
    if usage is None or not hasattr(backend, "endpoints"):
        raise InvalidArgumentError(
            f"backend= must be a Backend (from get_backend), got {type(backend).__name__}"
        )
    return usage


def register(hooks: Hooks, backend: Any) -> None:
    """Add ``hooks`` globally (``backend`` None) or for one backend."""
    if backend is None:
        GLOBAL_HOOKS.add(hooks)
        return
    owner = _owner(backend)
    groups = BACKEND_HOOKS.get(owner)
    if groups is None:
        groups = BACKEND_HOOKS[owner] = HookGroups()
    groups.add(hooks)


def unregister(hooks: Hooks, backend: Any) -> None:
    """Remove ``hooks`` (a no-op if it is not registered there)."""
    if backend is None:
        GLOBAL_HOOKS.remove(hooks)
        return
    groups = BACKEND_HOOKS.get(_owner(backend))
    if groups is not None:
        groups.remove(hooks)


def any_backend_hooks() -> bool:
    """Whether any backend has hooks."""
    return any(g.any() for g in list(BACKEND_HOOKS.values()))
