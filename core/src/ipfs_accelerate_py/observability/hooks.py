"""User hooks: ``on_request``, ``on_response``, ``on_error`` and ``on_retry`` callbacks, sync
or async, registered globally, per backend, or for a block of code (a router's).

Each hook receives a :class:`~.views.CallView` (no secret in it). A hook that raises is
logged on the ``ipfs_accelerate_py.hooks`` logger and the call goes on. An async hook is
awaited where the call is async and at a point that can await (request, response, error);
``on_retry`` fires from the pipeline's synchronous decisions, so an async ``on_retry`` runs
as a task on the running loop; on a thread with no loop, an async hook runs to completion
with ``asyncio.run``.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import InvalidArgumentError

if TYPE_CHECKING:
    from .views import CallView

__all__ = ["KINDS", "HookFn", "HookGroups", "Hooks", "afire", "fire", "scoped_hooks"]

log = logging.getLogger("ipfs_accelerate_py.hooks")

HookFn = Callable[["CallView"], Any]
"""A hook: called with a :class:`~.views.CallView`; may return an awaitable."""

KINDS = ("on_request", "on_response", "on_error", "on_retry")

_tasks: set[Any] = set()  # async on_retry tasks, kept alive until done


def _check(name: str, fn: Any) -> HookFn | None:
    if fn is not None and not callable(fn):
        raise InvalidArgumentError(f"{name} must be callable, got {type(fn).__name__}")
    return fn  # type: ignore[no-any-return]


@attrs.frozen(slots=True, eq=False)
class Hooks:
    """One group of callbacks, as registered together; ``None`` for a kind it does not
    handle. Compared by identity."""

    on_request: HookFn | None = None
    on_response: HookFn | None = None
    on_error: HookFn | None = None
    on_retry: HookFn | None = None

    @classmethod
    def of(
        cls,
        *,
        on_request: Any = None,
        on_response: Any = None,
        on_error: Any = None,
        on_retry: Any = None,
    ) -> Hooks:
        """A checked group: each given hook must be callable; at least one is needed."""
        if on_request is None and on_response is None and on_error is None and on_retry is None:
            raise InvalidArgumentError(
                "add_hooks needs at least one of on_request, on_response, on_error, on_retry"
            )
        return cls(
            _check("on_request", on_request),
            _check("on_response", on_response),
            _check("on_error", on_error),
            _check("on_retry", on_retry),
        )


class HookGroups:
    """Registered groups, in registration order (copy-on-write: readers never lock)."""

    __slots__ = ("_lock", "groups")

    def __init__(self) -> None:
        self.groups: tuple[Hooks, ...] = ()
        self._lock = threading.Lock()

    def add(self, hooks: Hooks) -> None:
        """Append a group."""
        with self._lock:
            self.groups = (*self.groups, hooks)

    def remove(self, hooks: Hooks) -> None:
        """Remove a group (by identity)."""
        with self._lock:
            self.groups = tuple(g for g in self.groups if g is not hooks)

    def any(self) -> bool:
        """Whether any group is registered."""
        return bool(self.groups)


_SCOPE: contextvars.ContextVar[tuple[Hooks, ...]] = contextvars.ContextVar(
    "ipfs_accelerate_hooks", default=()
)


@contextlib.contextmanager
def scoped_hooks(hooks: Hooks) -> Iterator[None]:
    """Apply ``hooks`` to the calls made inside the block (in this thread or task), after the
    global and per-backend ones: how a router attaches its own hooks to the backend calls it
    makes on the caller's behalf."""
    from . import _on_scope_change, state

    if not isinstance(hooks, Hooks):
        raise InvalidArgumentError(f"scoped_hooks needs a Hooks, got {type(hooks).__name__}")
    token = _SCOPE.set((*_SCOPE.get(), hooks))
    state.SCOPE_HOOKS.append(1)
    _on_scope_change()
    try:
        yield
    finally:
        _SCOPE.reset(token)
        state.SCOPE_HOOKS.pop()
        _on_scope_change()


def scope() -> tuple[Hooks, ...]:
    """The groups of the enclosing :func:`scoped_hooks` blocks."""
    return _SCOPE.get()


def _failed(kind: str, fn: HookFn) -> None:
    name = getattr(fn, "__qualname__", repr(fn))
    log.exception("the %s hook %s raised; the call goes on", kind, name)


def fire(kind: str, groups: tuple[Hooks, ...], view: CallView) -> None:
    """Call every ``kind`` hook of ``groups`` with ``view`` from synchronous code."""
    for group in groups:
        fn = getattr(group, kind)
        if fn is None:
            continue
        try:
            result = fn(view)
            if inspect.isawaitable(result):
                _run_awaitable(kind, fn, result)
        except Exception:
            _failed(kind, fn)


async def afire(kind: str, groups: tuple[Hooks, ...], view: CallView) -> None:
    """Call every ``kind`` hook of ``groups`` with ``view``, awaiting async ones."""
    for group in groups:
        fn = getattr(group, kind)
        if fn is None:
            continue
        try:
            result = fn(view)
            if inspect.isawaitable(result):
                await result
        except Exception:
            _failed(kind, fn)


def _run_awaitable(kind: str, fn: HookFn, awaitable: Any) -> None:
    import asyncio

    async def guarded() -> None:
        try:
            await awaitable
        except Exception:
            _failed(kind, fn)

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(guarded())
        return
    task = loop.create_task(guarded())
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
