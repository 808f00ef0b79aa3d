"""JSON decoding for replies and stream events: orjson when it is installed (the ``speed``
extra; about twice as fast per stream event), else the standard library.

Both raise ``ValueError`` subclasses on bad input, and both give the same values: orjson is
strict where ``json`` is lenient (``NaN``, ``Infinity``), so text orjson rejects is tried once
more with ``json``; and orjson reads integers beyond 64 bits as floats, so text with a run of
19 or more digits goes to ``json``, which keeps them exact.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

__all__ = ["loads"]

_fast_loads: Callable[[str | bytes], Any] | None
try:
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - depends on the installed extras
    _fast_loads = None


_LONG_DIGITS = re.compile(r"\d{19}")
_LONG_DIGITS_B = re.compile(rb"\d{19}")


def _loads_with_fallback(data: str | bytes) -> Any:
    assert _fast_loads is not None
    if (_LONG_DIGITS_B if isinstance(data, bytes) else _LONG_DIGITS).search(data):  # type: ignore[arg-type]
        return json.loads(data)
    try:
        return _fast_loads(data)
    except ValueError:
        return json.loads(data)


loads: Callable[[str | bytes], Any] = json.loads if _fast_loads is None else _loads_with_fallback
