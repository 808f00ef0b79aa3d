"""The shared store behind the exact-match and semantic caches: :class:`RedisCacheStore`.

The cache module (another capability) decides what to cache and when; this is where entries
live when processes share them. Its interface, :class:`CacheStore`, is small: exact entries
by key (``get``/``set`` with a TTL) and vectors with a payload (``add_vectors``/``search``).

How vector search stays fast without a Redis search module: each space is one Redis stream of
entries (id, float16 vector, payload, expiry). Every process keeps a numpy mirror of it (a
float32 matrix, rows L2-normalised); a search first reads what was appended since its last
look (one ``XREAD``, usually empty), then ranks by one matrix-vector product in process.
100k x 384 dims is ~77 MB in Redis (float16) and ~150 MB per mirror; a top-1 search takes a
few milliseconds (benchmarks/shared_state.py measures it). Expired entries are skipped at
search and trimmed from the stream (``XTRIM MINID``) as new ones arrive. numpy loads lazily.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

__all__ = ["CacheStore", "RedisCacheStore"]


@runtime_checkable
class CacheStore(Protocol):
    """Where cache entries live: exact entries by key, and vectors with payloads."""

    def get(self, name: str, key: str) -> bytes | None:
        """The value stored under ``key`` in cache ``name``, or None (absent or expired)."""
        ...

    def set(self, name: str, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds."""
        ...

    def add_vectors(self, space: str, items: Iterable[tuple[str, Any, bytes]], ttl: float) -> None:
        """Add (id, vector, payload) entries to ``space`` for ``ttl`` seconds."""
        ...

    def search(
        self, space: str, vector: Any, k: int = 1, min_score: float = -1.0
    ) -> list[tuple[str, float, bytes]]:
        """The ``k`` best (id, cosine similarity, payload) of live entries, best first."""
        ...

    def clear(self, space: str) -> None:
        """Drop every entry of ``space``."""
        ...


class _Mirror:
    """One process's copy of a vector space."""

    def __init__(self, dim: int) -> None:
        import numpy as np

        self.dim = dim
        self.matrix = np.zeros((0, dim), dtype=np.float32)
        self.ids: list[str] = []
        self.payloads: list[bytes] = []
        self.expiry = np.zeros(0, dtype=np.float64)
        self.last = "0-0"


class RedisCacheStore:
    """A :class:`CacheStore` in Redis (see the module docstring)."""

    def __init__(self, url: str, *, namespace: str = "ipfs_accelerate", timeout: float = 0.5):
        import redis

        self.namespace = namespace
        self._client: Any = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._mirrors: dict[str, _Mirror] = {}
        self._lock = threading.Lock()

    def _key(self, name: str, key: str) -> str:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return f"{self.namespace}:cache:{name}:{digest}"

    def get(self, name: str, key: str) -> bytes | None:
        """An exact entry, or None."""
        value = self._client.get(self._key(name, key))
        return value if isinstance(value, bytes) else None

    def set(self, name: str, key: str, value: bytes, ttl: float) -> None:
        """Store an exact entry with a TTL (milliseconds precision)."""
        self._client.set(self._key(name, key), value, px=max(int(ttl * 1000), 1))

    def _stream(self, space: str) -> str:
        return f"{self.namespace}:vectors:{space}"

    def add_vectors(self, space: str, items: Iterable[tuple[str, Any, bytes]], ttl: float) -> None:
        """Append entries (float16 vectors) in one pipelined round trip."""
        import numpy as np

        expires = time.time() + ttl
        pipe = self._client.pipeline(transaction=False)
        stream = self._stream(space)
        for ident, vector, payload in items:
            v = np.asarray(vector, dtype=np.float32)
            norm = float(np.linalg.norm(v)) or 1.0
            fields = {
                "i": ident,
                "v": (v / norm).astype(np.float16).tobytes(),
                "p": payload,
                "e": repr(expires),
            }
            pipe.xadd(stream, fields)
        oldest = int((time.time() - max(ttl, 1.0)) * 1000)
        pipe.xtrim(stream, minid=f"{oldest}-0", approximate=True)
        pipe.execute()

    def _refresh(self, space: str, dim: int) -> _Mirror:
        import numpy as np

        with self._lock:
            mirror = self._mirrors.get(space)
            if mirror is None or mirror.dim != dim:
                mirror = self._mirrors[space] = _Mirror(dim)
            got: Any = self._client.xread({self._stream(space): mirror.last}, count=1_000_000)
            if not got:
                return mirror
            entries = got[0][1]
            rows = np.frombuffer(b"".join(e[1][b"v"] for e in entries), dtype=np.float16)
            mirror.matrix = np.vstack([mirror.matrix, rows.reshape(-1, dim).astype(np.float32)])
            mirror.ids.extend(e[1][b"i"].decode() for e in entries)
            mirror.payloads.extend(e[1][b"p"] for e in entries)
            new_expiry = np.array([float(e[1][b"e"]) for e in entries])
            mirror.expiry = np.concatenate([mirror.expiry, new_expiry])
            mirror.last = entries[-1][0].decode()
            live = mirror.expiry > time.time()
            if not live.all() and (~live).sum() > len(live) // 4:  # compact the mirror
                mirror.matrix = mirror.matrix[live]
                mirror.ids = [i for i, keep in zip(mirror.ids, live, strict=True) if keep]
                mirror.payloads = [p for p, keep in zip(mirror.payloads, live, strict=True) if keep]
                mirror.expiry = mirror.expiry[live]
            return mirror

    def search(
        self, space: str, vector: Any, k: int = 1, min_score: float = -1.0
    ) -> list[tuple[str, float, bytes]]:
        """Best live entries by cosine similarity, best first."""
        import numpy as np

        query = np.asarray(vector, dtype=np.float32)
        query = query / (float(np.linalg.norm(query)) or 1.0)
        mirror = self._refresh(space, int(query.shape[0]))
        if not mirror.ids:
            return []
        scores = mirror.matrix @ query
        scores[mirror.expiry <= time.time()] = -np.inf
        k = min(k, len(mirror.ids))
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best])]
        return [
            (mirror.ids[i], float(scores[i]), mirror.payloads[i])
            for i in best
            if scores[i] >= min_score and np.isfinite(scores[i])
        ]

    def clear(self, space: str) -> None:
        """Drop the space's stream and this process's mirror."""
        self._client.delete(self._stream(space))
        with self._lock:
            self._mirrors.pop(space, None)
