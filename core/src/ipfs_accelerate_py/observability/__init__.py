"""Observability: OpenTelemetry GenAI traces and metrics, user hooks, per-call log lines.

Everything is off until asked for, and costs one attribute read per call while off
(:data:`ENABLED`, checked by the pipeline's runners). Nothing here imports OpenTelemetry
until :func:`configure` turns tracing or metrics on; only ``opentelemetry-api`` is needed
(``pip install 'ipfs-accelerate-core[otel]'``), with whatever SDK and exporters the
application already configured as global providers (or passes in)::

    from ipfs_accelerate_py import observability
    observability.configure()                       # spans + metrics on the global providers
    observability.configure(log_calls=True, log_json=True)      # one JSON log line per call
    observability.add_hooks(on_retry=lambda view: print(view.error, view.delay))
    observability.add_hooks(on_response=audit, backend=backend)  # this backend only

Other components (the cache, the router, batching) annotate the current call with
:func:`event` (``observability.event("cache.hit", key_hash=...)``), which is a no-op while
observability is off.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # loaded on first use (module __getattr__), so importing costs nothing
    from ..attempts import CallOptions
    from .hooks import HookFn, Hooks, scoped_hooks
    from .latency import latency_summary, reset_latency
    from .views import CallView

_LAZY = {
    "state": "state",
    "CallView": "views",
    "HookFn": "hooks",
    "Hooks": "hooks",
    "scoped_hooks": "hooks",
    "latency_summary": "latency",
    "reset_latency": "latency",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = importlib.import_module(f"{__name__}.{module}")
    return value if name == module else getattr(value, name)


__all__ = [
    "ENABLED",
    "CallView",
    "HookFn",
    "Hooks",
    "add_hooks",
    "configure",
    "disable",
    "event",
    "describe",
    "latency_summary",
    "remove_hooks",
    "replace",
    "reset_latency",
    "scoped_hooks",
]

ENABLED = False
"""True while anything observes calls (tracing, metrics, log lines, latency, hooks). The
pipeline reads it once per call; when False nothing else in this package runs."""

_lock = threading.Lock()


def _refresh() -> None:
    global ENABLED
    from . import state

    ENABLED = (
        state.CONFIG.active
        or state.GLOBAL_HOOKS.any()
        or state.any_backend_hooks()
        or bool(state.SCOPE_HOOKS)
    )


def configure(
    *,
    tracing: bool = True,
    metrics: bool = True,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    capture_content: bool = False,
    log_calls: bool = False,
    log_json: bool = False,
    latency: bool = True,
) -> None:
    """Turn observation on (calling it again replaces the settings).

    ``tracing`` / ``metrics``: emit GenAI spans / metrics through ``tracer_provider`` /
    ``meter_provider`` (default: OpenTelemetry's global ones); both need
    ``opentelemetry-api``, else ConfigurationError. ``capture_content``: record prompts and
    completions on spans (off by default; keys are never recorded). ``log_calls``: one INFO
    line per call on the ``ipfs_accelerate_py.calls`` logger, as JSON with ``log_json``.
    ``latency``: keep per-backend latency samples for :func:`latency_summary`.
    """
    from .config import ObservabilityConfig

    cfg = ObservabilityConfig.build(
        tracing=tracing,
        metrics=metrics,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        capture_content=capture_content,
        log_calls=log_calls,
        log_json=log_json,
        latency=latency,
    )
    from . import state

    with _lock:
        state.CONFIG = cfg
        _refresh()


def disable() -> None:
    """Turn tracing, metrics, log lines and latency sampling off (hooks stay registered)."""
    from . import state
    from .config import ObservabilityConfig

    with _lock:
        state.CONFIG = ObservabilityConfig()
        _refresh()


def add_hooks(
    *,
    on_request: HookFn | None = None,
    on_response: HookFn | None = None,
    on_error: HookFn | None = None,
    on_retry: HookFn | None = None,
    backend: Any = None,
) -> Hooks:
    """Register callbacks (sync or async), globally or for one ``backend`` (a
    :class:`~ipfs_accelerate_py.backend.Backend`). Each receives a :class:`CallView` with no
    secret in it; an exception in a hook is logged and never breaks the call. Global hooks
    run before a backend's, and each group in registration order. Returns the group, for
    :func:`remove_hooks`."""
    from . import state
    from .hooks import Hooks

    hooks = Hooks.of(
        on_request=on_request, on_response=on_response, on_error=on_error, on_retry=on_retry
    )
    with _lock:
        state.register(hooks, backend)
        _refresh()
    return hooks


def remove_hooks(hooks: Hooks, *, backend: Any = None) -> None:
    """Unregister a group returned by :func:`add_hooks` (with the same ``backend``)."""
    from . import state

    with _lock:
        state.unregister(hooks, backend)
        _refresh()


def event(name: str, **attributes: Any) -> None:
    """Record ``name`` with ``attributes`` on the current call's span (or, outside a call,
    on the current OpenTelemetry span), for the cache (``cache.hit`` / ``cache.miss``), the
    router (``router.fallback``) and batching (``batch.member``). These names also feed
    metrics (cache hit rate, fallbacks). A no-op while observability is off; values that
    are not str/bool/int/float (or lists of them) are recorded as strings."""
    if not ENABLED:
        return
    from .events import record_event

    record_event(name, attributes)


def _on_scope_change() -> None:
    """A :func:`scoped_hooks` block opened or closed."""
    with _lock:
        _refresh()


# what a call's kind of request is, by the GenAI conventions' operation names
_OPERATIONS = {
    "chat": "chat",
    "stream": "chat",
    "embed": "embeddings",
    "text": "text_completion",
    "image": "image_generation",
    "list_models": "list_models",
}


_FIELDS: tuple[str, ...] = ()


def replace(opts: CallOptions, name: str, value: Any) -> CallOptions:
    """``opts`` with one field replaced: ``attrs.evolve`` without its per-call introspection
    (a third of its cost)."""
    global _FIELDS
    cls = type(opts)
    if not _FIELDS:
        import attrs

        _FIELDS = tuple(f.name for f in attrs.fields(cls))
    new = object.__new__(cls)
    for field in _FIELDS:
        object.__setattr__(new, field, getattr(opts, field))
    object.__setattr__(new, name, value)
    return new


def describe(opts: CallOptions, kind: str) -> CallOptions:
    """``opts`` naming the call's operation (``kind``: a request hook's name, or a
    ``generate`` kind: ``text``/``image``), for the span; called by the backend only while
    :data:`ENABLED`."""
    return replace(opts, "operation", _OPERATIONS.get(kind, kind))


# -- the pipeline's entry points (only while ENABLED) ------------------------------------------
def observed_run(*args: Any) -> Any:
    """:func:`.runners.run`."""
    from . import runners

    return runners.run(*args)


def observed_arun(*args: Any) -> Any:
    """:func:`.runners.arun` (a coroutine)."""
    from . import runners

    return runners.arun(*args)


def observed_stream(*args: Any) -> Any:
    """:func:`.runners.run_stream` (a generator)."""
    from . import runners

    return runners.run_stream(*args)


def observed_astream(*args: Any) -> Any:
    """:func:`.runners.arun_stream` (an async generator)."""
    from . import runners

    return runners.arun_stream(*args)
