"""The one plugin manager, and lazy discovery through entry points.

Installed plugins publish entry points in the group ``ipfs_accelerate.backends``; the entry's
name is the backend's name and its value the plugin module. Listing backends reads only the
entry-point metadata; a plugin module is imported the first time its backend is asked for.
``IPFS_ACCELERATE_PLUGINS=openai,groq`` limits which installed plugins may load.
"""

from __future__ import annotations

import os
import threading
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from . import handlers, hookspecs
from .config import BackendSpec
from .errors import BackendNotInstalledError, ConfigurationError, UnknownBackendError

ENTRY_POINT_GROUP = "ipfs_accelerate.backends"

KNOWN_PACKAGES = {
    "openai": "ipfs-accelerate-openai",
    "claude": "ipfs-accelerate-claude",
    "groq": "ipfs-accelerate-groq",
    "ollama": "ipfs-accelerate-ollama",
    "hf_tgi": "ipfs-accelerate-hf",
    "hf_tei": "ipfs-accelerate-hf",
    "gemini": "ipfs-accelerate-gemini",
    "llvm": "ipfs-accelerate-local",
    "ovms": "ipfs-accelerate-local",
    "opea": "ipfs-accelerate-local",
    "s3_kit": "ipfs-accelerate-s3kit",
}
ALIASES = {"openai_api": "openai", "anthropic": "claude", "s3kit": "s3_kit"}

pm = pluggy.PluginManager("ipfs_accelerate")
pm.add_hookspecs(hookspecs)
pm.register(handlers, name="ipfs_accelerate_py.handlers")

_lock = threading.RLock()
_specs: dict[str, BackendSpec] = {}


def canonical_name(name: str) -> str:
    """The backend name with aliases (``openai_api``, ``anthropic``) resolved."""
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"a backend name must be a non-empty string, got {name!r}")
    return ALIASES.get(name, name)


def _allowed() -> set[str] | None:
    raw = os.environ.get("IPFS_ACCELERATE_PLUGINS")
    if raw is None:
        return None
    return {n.strip() for n in raw.split(",") if n.strip()}


def _entry_points() -> dict[str, EntryPoint]:
    allowed = _allowed()
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if allowed is None or ep.name in allowed:
            found.setdefault(ep.name, ep)
    return found


def register(plugin: Any, name: str | None = None) -> list[BackendSpec]:
    """Register a plugin object or module and return the backends it declares.

    Installed plugins are registered this way on first use; call it directly for a plugin
    that is not installed (a local module in development, a test double).
    """
    with _lock:
        if not pm.is_registered(plugin):
            pm.register(plugin, name=name)
        declared: list[BackendSpec] = []
        impl = getattr(plugin, "register_backends", None)
        if impl is None:
            raise ConfigurationError(
                f"plugin {plugin!r} has no register_backends hook, so it declares no backend"
            )
        impl(declared.append)
        for spec in declared:
            if not isinstance(spec, BackendSpec):
                raise ConfigurationError(
                    f"plugin {plugin!r} registered {spec!r}, which is not a BackendSpec"
                )
            _specs[spec.name] = spec
        return declared


def unregister(plugin: Any) -> None:
    """Remove a plugin registered with :func:`register` and forget its backends."""
    with _lock:
        impl = getattr(plugin, "register_backends", None)
        if impl is not None:
            gone: list[BackendSpec] = []
            impl(gone.append)
            for spec in gone:
                _specs.pop(spec.name, None)
        if pm.is_registered(plugin):
            pm.unregister(plugin)


def installed_backends() -> list[str]:
    """Names of every backend available: registered ones and installed, not yet loaded ones."""
    with _lock:
        return sorted(set(_specs) | set(_entry_points()))


def load_spec(name: str) -> BackendSpec:
    """The spec of backend ``name``, importing its plugin on first use."""
    name = canonical_name(name)
    spec = _specs.get(name)
    if spec is not None:
        return spec
    with _lock:
        if name in _specs:
            return _specs[name]
        ep = _entry_points().get(name)
        if ep is None:
            raise _unknown(name)
        try:
            plugin = ep.load()
        except ImportError as exc:
            raise BackendNotInstalledError(
                f"the plugin for {name!r} is installed but failed to import: {exc}"
            ) from exc
        register(plugin, name=f"{ENTRY_POINT_GROUP}:{ep.name}")
        if name not in _specs:
            raise ConfigurationError(
                f"the plugin loaded for {name!r} ({ep.value}) did not register a backend "
                f"named {name!r}"
            )
        return _specs[name]


def _unknown(name: str) -> UnknownBackendError:
    have = installed_backends()
    listing = ", ".join(have) if have else "none"
    package = KNOWN_PACKAGES.get(name)
    if package:
        return BackendNotInstalledError(
            f"backend {name!r} is not installed: pip install {package} "
            f"(installed backends: {listing})"
        )
    known = ", ".join(sorted(KNOWN_PACKAGES))
    return UnknownBackendError(
        f"no backend named {name!r}; installed backends: {listing}; known backends: {known}"
    )
