"""Embedding vectors as callers receive them: lists of floats, or one 2-D numpy array.

``backend.embed(..., output="list")`` (the default) gives ``EmbeddingResponse.embeddings`` as
a list of lists of Python floats; ``output="numpy"`` gives one ``numpy.ndarray`` of shape
``(texts, dimensions)`` and dtype float32 (what OpenAI-compatible servers compute and send).
OpenAI's ``base64`` wire format (each vector's little-endian float32 bytes, base64-encoded)
decodes straight into either: one buffer viewed by numpy, or the stdlib's ``array`` for
lists. numpy is imported only by a call that asks for numpy output; without it installed
such a call fails at once, naming the extra to install.
"""

from __future__ import annotations

import binascii
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from .errors import ConfigurationError, InvalidArgumentError, MalformedResponseError

if TYPE_CHECKING:
    from types import ModuleType

__all__ = [
    "NUMPY_INSTALL",
    "OUTPUTS",
    "EmbedOutput",
    "check_output",
    "conform",
    "decode_base64",
    "from_floats",
    "join",
]

EmbedOutput = Literal["list", "numpy"]
"""What ``embed(output=...)`` returns vectors as."""

OUTPUTS: tuple[str, ...] = ("list", "numpy")
NUMPY_INSTALL = 'pip install "ipfs-accelerate-core[numpy]"'
_LITTLE = sys.byteorder == "little"


def _numpy() -> ModuleType:
    try:
        import numpy
    except ImportError:
        raise ConfigurationError(
            f'output="numpy" needs numpy, which is not installed: {NUMPY_INSTALL}'
        ) from None
    return numpy


def check_output(output: Any) -> None:
    """Refuse an unknown ``output``, and ``"numpy"`` when numpy is not installed, before
    anything is sent."""
    if not isinstance(output, str) or output not in OUTPUTS:
        raise InvalidArgumentError(f"output must be 'list' or 'numpy', got {output!r}")
    if output == "numpy":
        _numpy()


if sys.version_info >= (3, 11):

    def _unbase64(text: str) -> bytes:
        return binascii.a2b_base64(text, strict_mode=True)  # C speed, rejects stray characters

else:  # pragma: no cover - Python 3.10
    import base64

    def _unbase64(text: str) -> bytes:
        return base64.b64decode(text, validate=True)


def _bytes_of(
    strings: Sequence[Any], provider: str | None, positions: Sequence[int] | None
) -> list[bytes]:
    """Each string's decoded bytes, with a clear error naming the first bad one."""
    raws = []
    for i, text in enumerate(strings):
        try:
            raw = _unbase64(text)
        except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
            where = i if positions is None else positions[i]
            raise MalformedResponseError(
                f"embedding {where} is not valid base64: {exc}", provider=provider
            ) from None
        if len(raw) % 4:
            where = i if positions is None else positions[i]
            raise MalformedResponseError(
                f"base64 embedding {where} has {len(raw)} bytes, not a whole number of "
                "float32 values (4 bytes each)",
                provider=provider,
            )
        raws.append(raw)
    return raws


def decode_base64(
    strings: Sequence[str],
    output: str = "list",
    *,
    provider: str | None = None,
    positions: Sequence[int] | None = None,
) -> Any:
    """Base64 float32 vectors (OpenAI's ``encoding_format="base64"``) decoded: a list of
    lists of floats, or for ``output="numpy"`` one writable ``(n, dim)`` float32 array.
    ``positions`` are the vectors' indices in the reply, for error messages."""
    raws = _bytes_of(strings, provider, positions)
    if output != "numpy":
        from array import array

        out = []
        for raw in raws:
            values = array("f", raw)
            if not _LITTLE:  # pragma: no cover - big-endian hosts
                values.byteswap()
            out.append(values.tolist())
        return out
    np = _numpy()
    if not raws:
        return np.empty((0, 0), dtype=np.float32)
    size = len(raws[0])
    for i, raw in enumerate(raws):
        if len(raw) != size:
            where = i if positions is None else positions[i]
            raise MalformedResponseError(
                f"base64 embedding {where} has {len(raw) // 4} values where the first has "
                f"{size // 4}: the vectors do not form one array",
                provider=provider,
            )
    # one copy into a writable buffer, viewed (not copied again) as the array
    array2d = np.frombuffer(bytearray().join(raws), dtype="<f4").reshape(len(raws), size // 4)
    return array2d if _LITTLE else array2d.astype(np.float32)


def from_floats(vectors: Any, output: str = "list", *, provider: str | None = None) -> Any:
    """Float vectors (lists of numbers) in the representation ``output`` asks for: as they are
    for ``"list"``, one ``(n, dim)`` float32 array for ``"numpy"``."""
    if output != "numpy":
        return vectors
    np = _numpy()
    try:
        array2d = np.asarray(vectors, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        lengths = sorted({len(v) for v in vectors if hasattr(v, "__len__")})
        what = (
            f"vectors of different lengths ({', '.join(map(str, lengths[:5]))})"
            if len(lengths) > 1
            else str(exc)
        )
        raise MalformedResponseError(
            f"the embeddings do not form one float32 array: {what}", provider=provider
        ) from None
    if array2d.ndim != 2:
        raise MalformedResponseError(
            f"the embeddings do not form one 2-D array (shape {array2d.shape})", provider=provider
        )
    return array2d


def conform(vectors: Any, output: str, *, provider: str | None = None) -> Any:
    """``vectors`` (lists or an array, from any plugin) as ``output`` asks for them."""
    if output != "numpy":
        if type(vectors) is list:
            return vectors
        tolist = getattr(vectors, "tolist", None)
        return tolist() if tolist is not None else list(vectors)
    np = sys.modules.get("numpy")
    if np is not None and isinstance(vectors, np.ndarray):
        if vectors.ndim == 2 and vectors.dtype == np.float32:
            return vectors
        return from_floats(vectors, "numpy", provider=provider)
    return from_floats(list(vectors), "numpy", provider=provider)


def join(parts: Sequence[Any]) -> Any:
    """The vectors of consecutive parts of one request, in order: one list, or one array
    when any part is an array."""
    np = sys.modules.get("numpy")
    if np is not None and any(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate([conform(p, "numpy") for p in parts])
    return [v for part in parts for v in part]
