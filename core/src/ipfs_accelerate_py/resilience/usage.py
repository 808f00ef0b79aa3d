"""Token usage and estimated cost, per model, endpoint and API key.

:class:`Pricing` holds list prices in USD per million tokens, read from the packaged
``pricing.json`` and overlaid by the file named in ``IPFS_ACCELERATE_PRICING``.
:class:`UsageTracker` counts requests and tokens and sums their estimated cost; models with
no known price (self-hosted ones: Ollama, HF, OVMS...) cost 0 and are listed as unpriced.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Mapping
from typing import Any

from ipfs_accelerate_py.errors import ConfigurationError
from ipfs_accelerate_py.resilience import forks
from ipfs_accelerate_py.types import MAX_TOKENS, token_count

__all__ = ["PRICING_ENV_VAR", "Pricing", "UsageTracker"]

PRICING_ENV_VAR = "IPFS_ACCELERATE_PRICING"
_SEPARATORS = ("-", ":", "@")

_Prices = dict[str, dict[str, tuple[float, float]]]


def _packaged_pricing() -> str:
    """The text of the packaged ``pricing.json``: read by this module's loader (a file next to
    this one, or a member of the same zip), which is what ``importlib.resources`` ends up doing
    for an installed package without importing its readers (and ``zipfile``) on the way to a
    first reply; ``importlib.resources`` itself for any other kind of loader."""
    get_data = getattr(getattr(__spec__, "loader", None), "get_data", None)
    if get_data is not None and __file__:
        try:
            data = get_data(os.path.join(os.path.dirname(__file__), "pricing.json"))
            if isinstance(data, bytes):
                return data.decode("utf-8")
        except OSError:
            pass
    from importlib import resources

    return (
        resources.files("ipfs_accelerate_py.resilience").joinpath("pricing.json").read_text("utf-8")
    )


class Pricing:
    """Prices per provider and model, as ``(input, output)`` USD per million tokens.

    Build one with :meth:`load`; ``Pricing(prices)`` takes ``{provider: {model: (in, out)}}``.
    """

    def __init__(
        self, prices: Mapping[str, Mapping[str, tuple[float, float]]] | None = None
    ) -> None:
        self._prices: _Prices = {
            provider.lower(): {model.lower(): (float(i), float(o)) for model, (i, o) in m.items()}
            for provider, m in (prices or {}).items()
        }
        self._resolved: dict[tuple[str, str], tuple[float, float] | None] = {}
        self._write_lock = threading.Lock()

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> Pricing:
        """The packaged prices overlaid by ``path`` or, if ``path`` is None, by the file named
        in ``IPFS_ACCELERATE_PRICING`` (if set). Overlay entries replace whole models."""
        packaged = _packaged_pricing()
        prices = _parse(_decode(packaged, "packaged pricing.json"), "packaged pricing.json")
        overlay = path if path is not None else os.environ.get(PRICING_ENV_VAR) or None
        if overlay is not None:
            name = os.fspath(overlay)
            try:
                with open(name, encoding="utf-8") as file:
                    text = file.read()
            except OSError as exc:
                raise ConfigurationError(f"cannot read pricing file {name}: {exc.strerror}")
            for provider, models in _parse(_decode(text, name), name).items():
                prices.setdefault(provider, {}).update(models)
        return cls(prices)

    def price(self, provider: str, model: str) -> tuple[float, float] | None:
        """``(input, output)`` USD per million tokens, or None if the model is unknown.

        Tries the exact name, then the longest known name that prefixes ``model`` followed
        by ``-``, ``:`` or ``@`` (``gpt-4o-2024-08-06`` -> ``gpt-4o``); a leading
        ``models/`` (Gemini) is ignored. Case does not matter.
        """
        cache, key = self._resolved, (provider, model)
        if key in cache:
            return cache[key]
        result = _lookup(self._prices.get(provider.lower()), model.lower())
        if len(cache) < 10_000:  # names come from code, not users; the cap is a safety net
            cache[key] = result
        return result

    def cost(
        self, provider: str, model: str, prompt_tokens: int, completion_tokens: int
    ) -> float | None:
        """Estimated USD cost of one call, or None if the model's price is unknown."""
        price = self.price(provider, model)
        if price is None:
            return None
        return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000

    def set_price(
        self, provider: str, model: str, input_per_million: float, output_per_million: float
    ) -> None:
        """Set or replace one model's price at runtime."""
        for value in (input_per_million, output_per_million):
            if not _is_price(value):
                raise ConfigurationError(f"price must be a non-negative number, got {value!r}")
        with self._write_lock:  # copy on write: readers never see a dict being changed
            models = dict(self._prices.get(provider.lower(), {}))
            models[model.lower()] = (float(input_per_million), float(output_per_million))
            self._prices = {**self._prices, provider.lower(): models}
            self._resolved = {}


def _lookup(models: dict[str, tuple[float, float]] | None, name: str) -> tuple[float, float] | None:
    if not models:
        return None
    name = name.removeprefix("models/")
    exact = models.get(name)
    if exact is not None:
        return exact
    best = ""
    for known in models:
        if (
            len(known) > len(best)
            and name.startswith(known)
            and name[len(known) : len(known) + 1] in _SEPARATORS
        ):
            best = known
    return models[best] if best else None


def _is_price(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _decode(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"pricing file {source} is not valid JSON: {exc}")


def _parse(data: Any, source: str) -> _Prices:
    """Check the ``{provider: {model: {"input": x, "output": y}}}`` shape; skip ``_`` keys."""

    def bad(what: str) -> ConfigurationError:
        return ConfigurationError(f"pricing file {source}: {what}")

    if not isinstance(data, dict):
        raise bad("the top level must be an object of providers")
    prices: _Prices = {}
    for provider, models in data.items():
        if provider.startswith("_"):
            continue
        if not isinstance(models, dict):
            raise bad(f"provider {provider!r} must map model names to prices")
        table = prices.setdefault(provider.lower(), {})
        for model, entry in models.items():
            if model.startswith("_"):
                continue
            if not isinstance(entry, dict):
                raise bad(f'{provider}/{model} must be {{"input": ..., "output": ...}}')
            for field in ("input", "output"):
                if field not in entry:
                    raise bad(f"{provider}/{model} has no {field!r} price")
                if not _is_price(entry[field]):
                    raise bad(
                        f"{provider}/{model} {field} must be a number >= 0, got {entry[field]!r}"
                    )
            table[model.lower()] = (float(entry["input"]), float(entry["output"]))
    return prices


class _Bucket:
    __slots__ = ("completion_tokens", "cost", "priced", "prompt_tokens", "requests")

    def __init__(self) -> None:
        self.requests = self.priced = self.prompt_tokens = self.completion_tokens = 0
        self.cost = 0.0


_FREE = (0.0, 0.0)


def _columns(bucket: _Bucket) -> tuple[int, int, int, int, float]:
    """A bucket's counters in ``stats`` column order."""
    return (
        bucket.requests,
        bucket.priced,
        bucket.prompt_tokens,
        bucket.completion_tokens,
        bucket.cost,
    )


class UsageTracker:
    """Counts one provider's requests, tokens and estimated cost, sliceable by endpoint and
    key. Thread-safe."""

    def __init__(
        self, provider: str, pricing: Pricing | None = None, *, free: bool = False
    ) -> None:
        self._provider = provider
        self._free = free  # a self-hosted backend: every model costs nothing
        self._pricing = pricing
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str | None, str | None, str], _Bucket] = {}
        self._failures: dict[tuple[str | None, str | None], int] = {}
        forks.register(self)

    def _after_fork(self) -> None:
        """In a forked child: a lock a parent's thread held would never be released."""
        self._lock = threading.Lock()

    @property
    def pricing(self) -> Pricing:
        """The prices in use; :meth:`Pricing.load` on first use unless given."""
        if self._pricing is None:
            self._pricing = Pricing.load()
        return self._pricing

    def record(
        self,
        model: str,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        *,
        endpoint_id: str | None = None,
        key_name: str | None = None,
    ) -> float:
        """Count one successful request; return its estimated cost (0.0 if unpriced).

        Token counts come from the provider's reply: negative, absurd (above
        ``types.MAX_TOKENS``) or non-numeric counts are counted as 0, so a nonsense reply
        can never make a cost negative or huge."""
        price = (
            _FREE if self._free else (self._pricing or self.pricing).price(self._provider, model)
        )
        prompt, completion = prompt_tokens, completion_tokens
        if not (type(prompt) is int and 0 <= prompt <= MAX_TOKENS):
            prompt = token_count(prompt)  # negative, absurd or junk: 0 (see Usage.of)
        if not (type(completion) is int and 0 <= completion <= MAX_TOKENS):
            completion = token_count(completion)
        cost = 0.0 if price is None else (prompt * price[0] + completion * price[1]) / 1e6
        key = (endpoint_id, key_name, model)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket()
            bucket.requests += 1
            bucket.priced += price is not None
            bucket.prompt_tokens += prompt
            bucket.completion_tokens += completion
            bucket.cost += cost
        return cost

    def record_failure(
        self, *, endpoint_id: str | None = None, key_name: str | None = None
    ) -> None:
        """Count one failed request."""
        key = (endpoint_id, key_name)
        with self._lock:
            self._failures[key] = self._failures.get(key, 0) + 1

    def stats(
        self, *, endpoint_id: str | None = None, key_name: str | None = None
    ) -> dict[str, Any]:
        """Totals, optionally only for one endpoint and/or key, with a ``by_model`` split."""

        def wanted(endpoint: str | None, name: str | None) -> bool:
            return (endpoint_id is None or endpoint == endpoint_id) and (
                key_name is None or name == key_name
            )

        with self._lock:
            buckets = [(k[2], _columns(b)) for k, b in self._buckets.items() if wanted(*k[:2])]
            failed = sum(n for k, n in self._failures.items() if wanted(*k))
        by_model: dict[str, list[float]] = {}
        for model, values in buckets:
            sums = by_model.setdefault(model, [0, 0, 0, 0, 0.0])
            for i, value in enumerate(values):
                sums[i] += value
        columns = zip(*by_model.values(), strict=True)
        ok, priced, prompt, completion, cost = [sum(c) for c in columns] or [0, 0, 0, 0, 0.0]
        return {
            "total_requests": int(ok) + failed,
            "successful_requests": int(ok),
            "failed_requests": failed,
            "prompt_tokens": int(prompt),
            "completion_tokens": int(completion),
            "total_tokens": int(prompt + completion),
            "estimated_cost_usd": round(cost, 6),
            "priced_requests": int(priced),
            "unpriced_models": sorted(m for m, s in by_model.items() if s[1] < s[0]),
            "by_model": {
                model: {
                    "requests": int(s[0]),
                    "prompt_tokens": int(s[2]),
                    "completion_tokens": int(s[3]),
                    "total_tokens": int(s[2] + s[3]),
                    "estimated_cost_usd": round(s[4], 6),
                }
                for model, s in sorted(by_model.items())
            },
        }

    def reset(self) -> None:
        """Forget every count."""
        with self._lock:
            self._buckets.clear()
            self._failures.clear()
