"""JSON decoding for replies and stream events: orjson when it is installed (the ``speed``
extra; about twice as fast per stream event), else the standard library.

Both raise ``ValueError`` subclasses on bad input. orjson is strict where ``json`` is lenient
(``NaN``, ``Infinity``), so text orjson rejects is tried once more with ``json`` before the
error stands.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["loads"]

_fast_loads: Callable[[str | bytes], Any] | None
try:
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - depends on the installed extras
    _fast_loads = None


def _loads_with_fallback(data: str | bytes) -> Any:
    assert _fast_loads is not None
    try:
        return _fast_loads(data)
    except ValueError:
        return json.loads(data)


loads: Callable[[str | bytes], Any] = json.loads if _fast_loads is None else _loads_with_fallback
