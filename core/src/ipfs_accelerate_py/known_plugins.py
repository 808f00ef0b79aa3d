"""Find the entry point of a known backend without ``importlib.metadata``.

``importlib.metadata`` costs ~20-30 ms to import and its ``entry_points()`` reads every
installed distribution's metadata (~15-40 ms more with a few hundred packages): most of the
time from ``import`` to a first reply. For a backend whose distribution core knows
(``plugins.KNOWN_PACKAGES``), this looks only at that distribution's ``*.dist-info`` directory on
``sys.path`` and reads its ``entry_points.txt``. Anything else (another distribution, an egg,
a zip) returns ``None`` and the caller does the full scan, so the result never differs in
kind, only in cost.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from typing import Any

__all__ = ["FoundEntryPoint", "find"]


class FoundEntryPoint:
    """The few parts of ``importlib.metadata.EntryPoint`` the plugin loader uses."""

    __slots__ = ("dist", "group", "name", "value")

    class _Dist:
        __slots__ = ("name",)

        def __init__(self, name: str) -> None:
            self.name = name

    def __init__(self, name: str, value: str, group: str, dist: str) -> None:
        self.name = name
        self.value = value
        self.group = group
        self.dist = self._Dist(dist)

    def load(self) -> Any:
        """Import the module (and attribute, after a ``:``) the entry point names."""
        module, _, attr = self.value.partition(":")
        obj: Any = importlib.import_module(module.strip())
        for part in filter(None, attr.strip().split(".")):
            obj = getattr(obj, part)
        return obj


def _normalized(dist: str) -> str:
    """The dist-info directory prefix of a distribution name (PEP 503/427 style)."""
    return re.sub(r"[-_.]+", "_", dist).lower()


def _read_group(path: str, group: str) -> dict[str, str]:
    """The entries of ``[group]`` in an ``entry_points.txt``."""
    entries: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return entries
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            inside = line == f"[{group}]"
        elif inside and "=" in line:
            key, _, value = line.partition("=")
            entries.setdefault(key.strip(), value.strip())
    return entries


def find(name: str, dist: str, group: str) -> FoundEntryPoint | None:
    """Entry point ``name`` of ``group`` in distribution ``dist`` on ``sys.path``, or None."""
    prefix = _normalized(dist) + "-"
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for item in names:
            if item.endswith(".dist-info") and item.lower().startswith(prefix):
                value = _read_group(os.path.join(entry or ".", item, "entry_points.txt"), group)
                if name in value:
                    return FoundEntryPoint(name, value[name], group, dist)
                return None  # the distribution is here but does not declare it: full scan
    return None
