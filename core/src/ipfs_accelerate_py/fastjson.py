"""JSON decoding for replies and stream events: orjson when it is installed (the ``speed``
extra; about twice as fast per stream event), else the standard library.

Both raise ``ValueError`` on bad input (a document nested too deeply included), and both give
the same values: orjson is strict where ``json`` is lenient (``NaN``, ``Infinity``), so text
orjson rejects is tried once more with ``json``; and orjson reads integers beyond 64 bits as
floats, so text with a run of 19 or more digits goes to ``json``, which keeps them exact.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["BYTES_FIRST", "DIGITS", "LONG_RUN", "fast_loads", "loads"]

_fast_loads: Callable[[str | bytes], Any] | None
try:
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - depends on the installed extras
    _fast_loads = None

fast_loads = _fast_loads
"""orjson's ``loads`` when installed, else None. Use it only on text in which
``LONG_RUN in text.translate(DIGITS)`` is False (no integer it would read as a float)."""

# every ASCII digit to "0", every other byte to " ": a run of 19 zeros is a long number
DIGITS = _DIGITS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
LONG_RUN = _LONG = b"0" * 19


def _std_loads(data: str | bytes) -> Any:
    """The standard library's decoder; a document nested too deeply is a ValueError too."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("the JSON document is nested too deeply") from None


def _loads_with_fallback(data: str | bytes) -> Any:
    assert _fast_loads is not None
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if _LONG in raw.translate(_DIGITS):  # C-speed; a regex search costs four times as much
        return _std_loads(data)
    try:
        return _fast_loads(data)  # orjson refuses deep nesting with a ValueError itself
    except ValueError:
        return _std_loads(data)


loads: Callable[[str | bytes], Any] = _std_loads if _fast_loads is None else _loads_with_fallback
"""Decode JSON; any failure, a document nested too deeply included, is a ValueError."""

BYTES_FIRST = _fast_loads is not None
"""True when :data:`loads` is at least as fast on UTF-8 bytes as on text (orjson): a decoder
that holds an event's bytes then passes them rather than encoding the text again."""
