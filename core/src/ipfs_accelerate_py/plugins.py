"""The one plugin manager, lazy discovery through entry points, and dispatch by registration.

Installed plugins publish entry points in the group ``ipfs_accelerate.backends``; the entry's
name is the backend's name and its value the plugin module. Listing backends reads only the
entry-point metadata; a plugin module is imported the first time its backend is asked for.
``IPFS_ACCELERATE_PLUGINS=openai,groq`` limits which installed plugins may load.

A backend's calls go only to the plugin that registered it (a :class:`Registration` knows its
plugin and that plugin's hook functions), so hooks need no ``if backend != NAME`` guard and
one plugin cannot answer for another's backend. A plugin that fails to import, implements a
hook that does not exist (a misspelling), declares something that is not a ``BackendSpec``, or
registers a name another plugin already has, gives a warning naming its distribution; the
other backends keep working.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

from . import handlers, hookspecs, known_plugins
from .config import BackendSpec
from .errors import BackendNotInstalledError, ConfigurationError, UnknownBackendError

if TYPE_CHECKING:
    from attrs import frozen
else:
    from .fastattrs import frozen

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
    "vllm": "ipfs-accelerate-local",
    "ovms": "ipfs-accelerate-local",
    "opea": "ipfs-accelerate-local",
    "s3_kit": "ipfs-accelerate-s3kit",
}
ALIASES = {"openai_api": "openai", "anthropic": "claude", "s3kit": "s3_kit"}

log = logging.getLogger("ipfs_accelerate_py")

pm = pluggy.PluginManager("ipfs_accelerate")
pm.add_hookspecs(hookspecs)
pm.register(handlers, name="ipfs_accelerate_py.handlers")

_lock = threading.RLock()
_registrations: dict[str, Registration] = {}
_failures: dict[str, str] = {}  # backend name -> why its plugin could not be loaded

HookFunction = Callable[..., Any]


class PluginWarning(UserWarning):
    """A plugin could not be loaded or registered; other backends are not affected."""


@frozen(eq=False)
class Registration:
    """A backend as registered: its spec, the plugin object that declared it, the
    distribution it came from, and that plugin's hook functions by hook name."""

    spec: BackendSpec
    plugin: Any
    source: str
    hooks: dict[str, HookFunction]

    def hook(self, name: str) -> HookFunction | None:
        """The plugin's implementation of hook ``name``, called with keyword arguments
        (only those the implementation takes are passed), or ``None``."""
        return self.hooks.get(name)


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


if TYPE_CHECKING:  # importlib.metadata loads only for a full scan (see known_plugins)
    from importlib.metadata import EntryPoint


def _known_entry_point(name: str) -> known_plugins.FoundEntryPoint | None:
    """The entry point of a backend whose distribution core knows, found without scanning
    every installed distribution; None means "do the full scan"."""
    package = KNOWN_PACKAGES.get(name)
    allowed = _allowed()
    if package is None or (allowed is not None and name not in allowed):
        return None
    return known_plugins.find(name, package, ENTRY_POINT_GROUP)


def _entry_points() -> dict[str, EntryPoint]:
    from importlib.metadata import entry_points

    allowed = _allowed()
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if allowed is None or ep.name in allowed:
            found.setdefault(ep.name, ep)
    return found


def _bind(function: HookFunction, argnames: tuple[str, ...]) -> HookFunction:
    """Call ``function`` with just the keyword arguments it declares (as pluggy would)."""

    def call(**kwargs: Any) -> Any:
        return function(*[kwargs[name] for name in argnames])

    call.__wrapped__ = function  # type: ignore[attr-defined]
    return call


def _hook_functions(plugin: Any) -> dict[str, HookFunction]:
    hooks: dict[str, HookFunction] = {}
    for caller in pm.get_hookcallers(plugin) or ():
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin:
                hooks[caller.name] = _bind(impl.function, tuple(impl.argnames))
    return hooks


def _warn(message: str) -> None:
    log.warning(message)
    warnings.warn(message, PluginWarning, stacklevel=3)


def register(
    plugin: Any, name: str | None = None, *, source: str | None = None
) -> list[BackendSpec]:
    """Register a plugin object or module and return the backends it declares.

    Installed plugins are registered this way on first use; call it directly for a plugin
    that is not installed (a local module in development, a test double). A hook whose name
    is not one of core's hooks, a declaration that is not a ``BackendSpec``, or a backend
    name another plugin already registered is refused with a ConfigurationError.
    """
    label = source or name or repr(plugin)
    with _lock:
        if pm.is_registered(plugin):
            return [r.spec for r in _registrations.values() if r.plugin is plugin]
        impl = getattr(plugin, "register_backends", None)
        if impl is None:
            raise ConfigurationError(
                f"plugin {label} has no register_backends hook, so it declares no backend"
            )
        try:
            pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise ConfigurationError(f"plugin {label} has an invalid hook: {exc}") from None
        try:
            pm.check_pending()
            declared: list[Any] = []
            impl(declared.append)
            for spec in declared:
                if not isinstance(spec, BackendSpec):
                    raise ConfigurationError(
                        f"plugin {label} registered {spec!r}, which is not a BackendSpec"
                    )
                taken = _registrations.get(spec.name)
                if taken is not None and taken.plugin is not plugin:
                    raise ConfigurationError(
                        f"plugin {label} registers backend {spec.name!r}, which "
                        f"{taken.source} already provides"
                    )
        except pluggy.PluginValidationError as exc:
            pm.unregister(plugin)
            raise ConfigurationError(
                f"plugin {label} implements a hook that does not exist: {exc}"
            ) from None
        except BaseException:
            pm.unregister(plugin)
            raise
        hooks = _hook_functions(plugin)
        for spec in declared:
            _registrations[spec.name] = Registration(spec, plugin, label, hooks)
        return declared


def unregister(plugin: Any) -> None:
    """Remove a plugin registered with :func:`register` and forget its backends."""
    with _lock:
        for key in [k for k, r in _registrations.items() if r.plugin is plugin]:
            del _registrations[key]
        if pm.is_registered(plugin):
            pm.unregister(plugin)


def installed_backends() -> list[str]:
    """Names of every backend available: registered ones and installed, not yet loaded ones."""
    with _lock:
        return sorted(set(_registrations) | set(_entry_points()))


def load(name: str) -> Registration:
    """The registration of backend ``name``, importing its plugin on first use."""
    name = canonical_name(name)
    found = _registrations.get(name)
    if found is not None:
        return found
    with _lock:
        if name in _registrations:
            return _registrations[name]
        if name in _failures:
            raise BackendNotInstalledError(_failures[name])
        ep: EntryPoint | known_plugins.FoundEntryPoint | None = _known_entry_point(name)
        if ep is None:
            ep = _entry_points().get(name)
        if ep is None:
            raise _unknown(name)
        dist = getattr(ep.dist, "name", None) or ep.value
        try:
            plugin = ep.load()
            register(plugin, name=f"{ENTRY_POINT_GROUP}:{ep.name}", source=f"{dist}")
        except Exception as exc:
            why = f"the plugin for {name!r} ({dist}) could not be loaded: {exc}"
            _failures[name] = why
            _warn(why)
            raise BackendNotInstalledError(why) from None
        if name not in _registrations:
            why = (
                f"the plugin loaded for {name!r} ({dist}, {ep.value}) did not register a "
                f"backend named {name!r}"
            )
            _failures[name] = why
            _warn(why)
            raise ConfigurationError(why)
        return _registrations[name]


def load_spec(name: str) -> BackendSpec:
    """The spec of backend ``name``, importing its plugin on first use."""
    return load(name).spec


def install_command(package: str) -> str:
    """The command that installs a known plugin from a checkout of the repository (the
    plugins are installed from their folders, not from PyPI)."""
    return f"pip install ./plugins/{package.removeprefix('ipfs-accelerate-')}"


def install_hint(package: str) -> str:
    """How to install a known plugin: the command, and its distribution's name."""
    return f"{install_command(package)} from a checkout of the repository ({package})"


def _unknown(name: str) -> UnknownBackendError:
    have = installed_backends()
    listing = ", ".join(have) if have else "none"
    package = KNOWN_PACKAGES.get(name)
    if package:
        return BackendNotInstalledError(
            f"backend {name!r} is not installed: {install_hint(package)}; "
            f"installed backends: {listing}"
        )
    known = ", ".join(sorted(KNOWN_PACKAGES))
    return UnknownBackendError(
        f"no backend named {name!r}; installed backends: {listing}; known backends: {known}"
    )
