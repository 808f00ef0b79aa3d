"""The semantic cache: chat answers found by the meaning of the last user message.

An entry lives in a *scope* — backend, model, generation parameters, tools, system prompt
and earlier turns, hashed — and holds the last user message's text, its unit vector and the
answer. A lookup first tries the exact text (no embedding), then the vectors of the same
scope: one matrix-vector product on a float32 matrix, the best candidates at or above the
threshold checked by :func:`~.guard.compatible`. Entries expire after ``ttl`` seconds and the
least recently used go first beyond ``cache_size``. Thread-safe; with ``path`` the entries
are also written to an SQLite file and read back on start, so a cache survives a restart.
numpy is imported on first use.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import InvalidArgumentError
from ..types import ChatResponse, ToolCall, Usage
from .guard import compatible

if TYPE_CHECKING:
    import numpy as np

    from .clock import Clock
    from .redis_cache import CacheStore

__all__ = ["CacheEntry", "SemanticCache", "response_from_json", "response_to_json"]

SHARED_TTL = 86_400.0  # seconds an entry lives in the shared store when the cache has no ttl
_CANDIDATES = 8  # guard checks per lookup, best first
_PREFILTER_ROWS = 16_384  # above this many rows a scope is searched through its sign codes
_SHORTLIST = 4096  # most rows compared exactly after the sign-code prefilter
_rotations: dict[int, Any] = {}


def _rotation(dims: int) -> np.ndarray:
    """A fixed random projection to 384 sign bits (SimHash), one per dimension count."""
    import numpy as np

    rotation = _rotations.get(dims)
    if rotation is None:
        rng = np.random.default_rng(20_240_601)
        rotation = _rotations[dims] = rng.standard_normal((dims, 384)).astype(np.float32)
    return rotation


def _cutoff(threshold: float) -> int:
    """The most differing sign bits a row at cosine ``threshold`` shows, but rarely more."""
    p = math.acos(max(-1.0, min(1.0, threshold))) / math.pi
    return int(384 * p + 4.5 * math.sqrt(384 * p * (1 - p))) + 1


def _codes(vectors: np.ndarray) -> np.ndarray:
    """384-bit sign codes as six uint64 words per row."""
    import numpy as np

    bits = np.packbits(vectors @ _rotation(vectors.shape[-1]) > 0, axis=-1)
    return bits.view(np.uint64)


@attrs.define(slots=True)
class CacheEntry:
    """One cached answer."""

    scope: str
    text: str
    value: ChatResponse
    cost: float
    expires: float
    row: int = -1


def response_to_json(r: ChatResponse) -> str:
    """A chat response as JSON (the raw body is not kept)."""
    usage = r.usage
    return json.dumps(
        {
            "text": r.text,
            "model": r.model,
            "finish_reason": r.finish_reason,
            "usage": None
            if usage is None
            else [usage.prompt_tokens, usage.completion_tokens, usage.total_tokens],
            "tool_calls": [[c.id, c.name, c.arguments, c.type] for c in r.tool_calls],
            "id": r.id,
        }
    )


def response_from_json(text: str) -> ChatResponse:
    """The inverse of :func:`response_to_json`."""
    d = json.loads(text)
    u = d.get("usage")
    return ChatResponse(
        text=d["text"],
        model=d.get("model"),
        finish_reason=d.get("finish_reason"),
        usage=None if u is None else Usage(*u),
        tool_calls=tuple(ToolCall(*c) for c in d.get("tool_calls") or ()),
        id=d.get("id"),
    )


class _Index:
    """The unit vectors of one scope: rows of a growing float32 matrix."""

    __slots__ = ("codes", "free", "keys", "matrix", "used")

    def __init__(self, dims: int) -> None:
        import numpy as np

        self.matrix = np.zeros((16, dims), dtype=np.float32)
        self.codes = np.zeros((16, 6), dtype=np.uint64)
        self.keys: list[str | None] = []
        self.free: list[int] = []
        self.used = 0

    def add(self, text: str, vector: np.ndarray) -> int:
        import numpy as np

        if self.free:
            row = self.free.pop()
            self.keys[row] = text
        else:
            row = self.used
            if row == len(self.matrix):
                grown = np.zeros((2 * len(self.matrix), self.matrix.shape[1]), dtype=np.float32)
                grown[:row] = self.matrix
                self.matrix = grown
                codes = np.zeros((len(grown), 6), dtype=np.uint64)
                codes[:row] = self.codes
                self.codes = codes
            self.keys.append(text)
            self.used += 1
        self.matrix[row] = vector
        self.codes[row] = _codes(vector)
        return row

    def remove(self, row: int) -> None:
        self.matrix[row] = 0.0  # similarity 0: never above a threshold
        self.codes[row] = 0
        self.keys[row] = None
        self.free.append(row)

    def best(self, vector: np.ndarray, threshold: float) -> list[tuple[float, str]]:
        """Up to ``_CANDIDATES`` (similarity, text) at or above ``threshold``, best first."""
        import numpy as np

        rows = None
        if self.used > _PREFILTER_ROWS and hasattr(np, "bitwise_count"):
            # rows whose sign codes differ in few bits, then exact cosines: 48 bytes read per
            # row instead of 1,536. A row at cosine c differs in 384·acos(c)/π bits on average
            # (SimHash); the cut-off keeps 4.5 standard deviations above that for the
            # threshold, so a row at or above it is left out with odds below 1 in 100,000,
            # and a hit is still decided by the exact cosine.
            counts = np.bitwise_count(self.codes[: self.used] ^ _codes(vector))
            distance = counts[:, 0].astype(np.uint16)
            for word in range(1, 6):
                distance += counts[:, word]
            rows = np.flatnonzero(distance <= _cutoff(threshold))
            if len(rows) > _SHORTLIST:
                rows = rows[np.argpartition(distance[rows], _SHORTLIST)[:_SHORTLIST]]
            sims = self.matrix[rows] @ vector
        else:
            sims = self.matrix[: self.used] @ vector
        hits = np.flatnonzero(sims >= threshold)
        if len(hits) > _CANDIDATES:
            hits = hits[np.argpartition(sims[hits], -_CANDIDATES)[-_CANDIDATES:]]
        ranked = sorted(
            ((float(sims[i]), int(i if rows is None else rows[i])) for i in hits), reverse=True
        )
        return [(s, k) for s, i in ranked if (k := self.keys[i]) is not None]


class SemanticCache:
    """An LRU, TTL-bounded cache of chat answers keyed by scope and meaning."""

    def __init__(
        self,
        *,
        similarity_threshold: float,
        cache_size: int,
        ttl: float | None,
        clock: Clock,
        path: str | None = None,
        guard: bool = True,
        shared: CacheStore | None = None,
    ) -> None:
        if not isinstance(similarity_threshold, (int, float)) or not (
            0.0 < similarity_threshold <= 1.0
        ):
            raise InvalidArgumentError(
                f"similarity_threshold must be a number in (0, 1], got {similarity_threshold!r}"
            )
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
            raise InvalidArgumentError(f"cache_size must be a positive integer, got {cache_size!r}")
        if ttl is not None and (
            isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl <= 0
        ):
            raise InvalidArgumentError(f"ttl must be a positive number of seconds, got {ttl!r}")
        self.threshold = float(similarity_threshold)
        self.size = cache_size
        self.ttl = None if ttl is None else float(ttl)
        self.guard = guard
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], CacheEntry] = OrderedDict()
        self._indexes: dict[str, _Index] = {}
        self._db: sqlite3.Connection | None = None
        self.hits = self.misses = self.exact_hits = self.guard_rejections = 0
        self.shared_hits = 0
        self.cost_savings = 0.0
        self._shared = shared  # other processes' answers, through Redis
        if path is not None:
            self._open(path)

    # -- persistence ---------------------------------------------------------------------------
    def _open(self, path: str) -> None:
        import numpy as np

        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS entries (scope TEXT, text TEXT, vector BLOB, "
            "value TEXT, cost REAL, expires REAL, PRIMARY KEY (scope, text))"
        )
        now = self._clock.time()
        db.execute("DELETE FROM entries WHERE expires <= ?", (now,))
        rows = db.execute(
            "SELECT scope, text, vector, value, cost, expires FROM entries ORDER BY rowid"
        ).fetchall()
        for scope, text, blob, value, cost, expires in rows[-self.size :]:
            vector = np.frombuffer(blob, dtype=np.float32) if blob else None
            self._insert(scope, text, vector, response_from_json(value), cost, expires)
        self._db = db

    def close(self) -> None:
        """Close the SQLite file, if any (entries stay in memory)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- lookups -----------------------------------------------------------------------------
    def _expires(self) -> float:
        return float("inf") if self.ttl is None else self._clock.time() + self.ttl

    def _live(self, key: tuple[str, str]) -> CacheEntry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self._clock.time():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def exact(self, scope: str, text: str) -> ChatResponse | None:
        """The answer stored for exactly this text in this scope (no embedding), or None."""
        with self._lock:
            entry = self._live((scope, text))
            if entry is not None:
                self.exact_hits += 1
                return self._hit(entry)
        if self._shared is not None:
            found = self._from_shared(scope, text, None)
            if found is not None:
                with self._lock:
                    self.exact_hits += 1
                    return self._hit(found)
        return None

    # -- the shared store (Redis): another process's answers -----------------------------------
    def _from_shared(self, scope: str, text: str, vector: np.ndarray | None) -> CacheEntry | None:
        """An entry another process stored: by exact text, or (with ``vector``) by meaning,
        through the same threshold and guard; kept locally once found. A store that cannot
        answer is a miss, never an error."""
        assert self._shared is not None
        try:
            if vector is None:
                raw = self._shared.get(scope, text)
                found = [(text, raw)] if raw is not None else []
            else:
                hits = self._shared.search(scope, vector, 5, self.threshold)
                found = [(json.loads(p)["text"], p) for _, _, p in hits]
        except Exception:  # Redis down or slow: the local cache goes on alone
            return None
        for other, payload in found:
            if other != text and self.guard and not compatible(text, other):
                with self._lock:
                    self.guard_rejections += 1
                continue
            try:
                item = json.loads(payload)
                value = response_from_json(item["value"])
                cost = float(item["cost"])
            except (ValueError, KeyError, TypeError):
                continue
            with self._lock:
                self._insert(scope, other, vector, value, cost, self._expires())
                self.shared_hits += 1
                return self._entries[(scope, other)]
        return None

    def _to_shared(
        self, scope: str, text: str, vector: np.ndarray | None, value: ChatResponse, cost: float
    ) -> None:
        assert self._shared is not None
        payload = json.dumps(
            {"text": text, "value": response_to_json(value), "cost": cost}
        ).encode()
        ttl = self.ttl or SHARED_TTL
        try:
            self._shared.set(scope, text, payload, ttl)
            if vector is not None:
                self._shared.add_vectors(scope, [(text, vector, payload)], ttl)
        except Exception:  # not shared this time; the local entry stands
            pass

    def search(self, scope: str, text: str, vector: np.ndarray) -> ChatResponse | None:
        """The answer of the closest entry of this scope at or above the threshold that the
        guard lets match ``text``; counts a hit or a miss."""
        with self._lock:
            entry = self._live((scope, text))
            if entry is None:
                index = self._indexes.get(scope)
                for _, other in [] if index is None else index.best(vector, self.threshold):
                    if self.guard and not compatible(text, other):
                        self.guard_rejections += 1
                        continue
                    entry = self._live((scope, other))
                    if entry is not None:
                        break
            if entry is not None:
                return self._hit(entry)
        if self._shared is not None:
            found = self._from_shared(scope, text, vector)
            if found is not None:
                with self._lock:
                    return self._hit(found)
        with self._lock:
            self.misses += 1
            return None

    def miss(self) -> None:
        """Count a request that could not be looked up (an embedder failure)."""
        with self._lock:
            self.misses += 1

    def _hit(self, entry: CacheEntry) -> ChatResponse:
        self.hits += 1
        self.cost_savings += entry.cost
        return entry.value

    # -- updates -----------------------------------------------------------------------------
    def put(
        self, scope: str, text: str, vector: np.ndarray | None, value: ChatResponse, cost: float
    ) -> None:
        """Store an answer (``vector`` None: found by exact text only)."""
        expires = self._expires()
        with self._lock:
            self._insert(scope, text, vector, value, cost, expires)
            if self._db is not None:
                blob = None if vector is None else vector.astype("float32").tobytes()
                self._db.execute(
                    "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?)",
                    (scope, text, blob, response_to_json(value), cost, expires),
                )
        if self._shared is not None:
            self._to_shared(scope, text, vector, value, cost)

    def _insert(
        self,
        scope: str,
        text: str,
        vector: np.ndarray | None,
        value: ChatResponse,
        cost: float,
        expires: float,
    ) -> None:
        key = (scope, text)
        if key in self._entries:
            self._drop(key)
        entry = CacheEntry(scope, text, value, cost, expires)
        if vector is not None:
            index = self._indexes.get(scope)
            if index is None:
                index = self._indexes[scope] = _Index(len(vector))
            entry.row = index.add(text, vector)
        self._entries[key] = entry
        while len(self._entries) > self.size:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: tuple[str, str]) -> None:
        entry = self._entries.pop(key)
        if entry.row >= 0:
            index = self._indexes[entry.scope]
            index.remove(entry.row)
            if len(index.free) == index.used:
                del self._indexes[entry.scope]
        if self._db is not None:
            self._db.execute("DELETE FROM entries WHERE scope = ? AND text = ?", key)

    def clear(self) -> None:
        """Forget every entry (and the file's)."""
        with self._lock:
            self._entries.clear()
            self._indexes.clear()
            if self._db is not None:
                self._db.execute("DELETE FROM entries")

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> dict[str, Any]:
        """hits, misses, hit_rate (percent), cost_savings (USD), size and settings."""
        with self._lock:
            total = self.hits + self.misses
            return {
                "hits": self.hits,
                "misses": self.misses,
                "hit_rate": round(100.0 * self.hits / total, 2) if total else 0.0,
                "cost_savings": round(self.cost_savings, 6),
                "exact_hits": self.exact_hits,
                "shared_hits": self.shared_hits,
                "guard_rejections": self.guard_rejections,
                "size": len(self._entries),
                "max_size": self.size,
                "similarity_threshold": self.threshold,
                "ttl": self.ttl,
            }
