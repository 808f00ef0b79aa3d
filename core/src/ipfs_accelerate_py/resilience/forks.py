"""Fork safety: a child forked while the parent has calls in flight starts clean.

A child process inherits a copy of every object, but none of the parent's other threads:
slots they held in a gate, key leases, half-open probes and locks they held would stay taken
forever, and pooled sockets would be shared with the parent (two processes reading one
connection get each other's answers). Objects holding such state call :func:`register`
when they are made; in a forked child (``os.register_at_fork(after_in_child=...)``) each
one's ``_after_fork()`` drops it: gates forget holders and waiters, key pools forget leases
in flight, breakers forget probes in flight, transports drop (without closing: the sockets
are the parent's) their clients, and every lock is new. Counters and settings are kept.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import Protocol

__all__ = ["register", "register_function"]


class _ForkAware(Protocol):
    def _after_fork(self) -> None: ...


_objects: weakref.WeakSet[_ForkAware] = weakref.WeakSet()


def register(obj: _ForkAware) -> None:
    """Have ``obj._after_fork()`` called in every child forked from now on."""
    _objects.add(obj)


_functions: list[Callable[[], None]] = []


def register_function(function: Callable[[], None]) -> None:
    """Have ``function()`` called in every child forked from now on (module state)."""
    _functions.append(function)


def _reset_in_child() -> None:
    for reset in [*_functions, *(o._after_fork for o in list(_objects))]:
        try:
            reset()
        except Exception:  # one object's failure must not stop the others' reset
            pass


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_reset_in_child)
