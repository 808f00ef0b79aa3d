"""Tests for pricing lookup and usage/cost tracking."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from ipfs_accelerate_py.errors import ConfigurationError
from ipfs_accelerate_py.resilience.keys import KeyPool
from ipfs_accelerate_py.resilience.usage import PRICING_ENV_VAR, Pricing, UsageTracker
from ipfs_accelerate_py.types import Usage


@pytest.fixture(autouse=True)
def _no_user_pricing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PRICING_ENV_VAR, raising=False)


@pytest.fixture
def pricing() -> Pricing:
    return Pricing.load()


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_packaged_prices_cover_the_main_providers(pricing: Pricing) -> None:
    assert pricing.price("openai", "gpt-4o") == (2.5, 10.0)
    assert pricing.price("openai", "gpt-4o-mini") == (0.15, 0.6)
    assert pricing.price("openai", "text-embedding-ada-002") == (0.1, 0.0)
    assert pricing.price("claude", "claude-3-5-haiku") == (0.8, 4.0)
    assert pricing.price("groq", "llama-3.3-70b-versatile") == (0.59, 0.79)
    assert pricing.price("gemini", "gemini-1.5-flash") == (0.075, 0.3)
    assert pricing.price("gemini", "text-embedding-004") == (0.0, 0.0)


def test_cost_math_is_exact(pricing: Pricing) -> None:
    # 1000 * $2.50/M + 500 * $10/M = $0.0025 + $0.005
    assert pricing.cost("openai", "gpt-4o", 1000, 500) == 0.0075
    assert pricing.cost("claude", "claude-3-opus-20240229", 1_000_000, 1_000_000) == 90.0
    assert pricing.cost("openai", "no-such-model", 10, 10) is None


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        ("openai", "gpt-4o-2024-08-06", (2.5, 10.0)),
        ("openai", "gpt-4o-mini-2024-07-18", (0.15, 0.6)),  # longest prefix wins
        ("openai", "gpt-4o-2024-05-13", (5.0, 15.0)),  # an exact entry beats the prefix
        ("openai", "gpt-4.1-nano-2025-04-14", (0.1, 0.4)),
        ("openai", "GPT-4o", (2.5, 10.0)),
        ("claude", "claude-3-5-sonnet-20241022", (3.0, 15.0)),
        ("claude", "claude-opus-4-20250514", (15.0, 75.0)),
        ("claude", "claude-opus-4-1-20250805", (15.0, 75.0)),
        ("gemini", "models/gemini-1.5-pro-latest", (1.25, 5.0)),
        ("gemini", "models/gemini-1.5-flash-8b", (0.0375, 0.15)),
        ("gemini", "gemini-2.0-flash-001", (0.1, 0.4)),
        ("openai", "gpt-4o:custom", (2.5, 10.0)),
        ("openai", "gpt-4o@2024", (2.5, 10.0)),
        ("openai", "gpt-4oextra", None),  # no separator after the known name
        ("openai", "gpt-4o-", (2.5, 10.0)),
        ("ollama", "llama3:8b", None),
        ("openai", "llama3", None),
    ],
)
def test_prefix_lookup(
    pricing: Pricing, provider: str, model: str, expected: tuple[float, float] | None
) -> None:
    assert pricing.price(provider, model) == expected


def test_set_price_overrides_at_runtime(pricing: Pricing) -> None:
    assert pricing.price("openai", "gpt-4o-2024-11-20") == (2.5, 10.0)  # now cached
    pricing.set_price("openai", "gpt-4o", 3.0, 12.0)
    assert pricing.price("openai", "gpt-4o-2024-11-20") == (3.0, 12.0)
    pricing.set_price("ollama", "llama3", 0.0, 0.0)
    assert pricing.cost("ollama", "llama3:8b", 100, 100) == 0.0
    with pytest.raises(ConfigurationError):
        pricing.set_price("openai", "gpt-4o", -1.0, 1.0)


def test_unknown_model_costs_nothing_and_is_listed_unpriced(pricing: Pricing) -> None:
    tracker = UsageTracker("ollama", pricing)
    assert tracker.record("llama3:8b", 100, 50) == 0.0
    tracker.record("gpt-4o", 10, 10)  # an openai name means nothing for ollama
    stats = tracker.stats()
    assert stats["estimated_cost_usd"] == 0.0
    assert stats["priced_requests"] == 0
    assert stats["unpriced_models"] == ["gpt-4o", "llama3:8b"]
    assert stats["total_tokens"] == 170


def test_record_returns_cost_and_stats_add_up(pricing: Pricing) -> None:
    tracker = UsageTracker("openai", pricing)
    assert tracker.record("gpt-4o", 1000, 500) == 0.0075
    assert tracker.record("gpt-4o-mini", 2000, 1000) == pytest.approx(0.0009)
    tracker.record("my-finetune", 5, 5)
    tracker.record_failure()
    stats = tracker.stats()
    assert stats["total_requests"] == 4
    assert stats["successful_requests"] == 3
    assert stats["failed_requests"] == 1
    assert stats["prompt_tokens"] == 3005
    assert stats["completion_tokens"] == 1505
    assert stats["total_tokens"] == 4510
    assert stats["estimated_cost_usd"] == 0.0084
    assert stats["priced_requests"] == 2
    assert stats["unpriced_models"] == ["my-finetune"]
    assert stats["by_model"]["gpt-4o"] == {
        "requests": 1,
        "prompt_tokens": 1000,
        "completion_tokens": 500,
        "total_tokens": 1500,
        "estimated_cost_usd": 0.0075,
    }
    assert list(stats["by_model"]) == ["gpt-4o", "gpt-4o-mini", "my-finetune"]


@pytest.mark.parametrize(
    ("prompt", "completion", "total", "expected"),
    [
        (-9_998_000, 5, None, (0, 5, 5)),
        (10, -1, -9_998_000, (10, 0, 10)),  # a nonsense total is the sum
        (10**13, 7, 10**13 + 7, (0, 7, 7)),  # absurd counts are ignored, not believed
        (12.9, "30", None, (12, 30, 42)),  # fractions truncated, digit strings read
        (float("nan"), float("inf"), "lots", (0, 0, 0)),
        (True, [3], {"n": 1}, (0, 0, 0)),
        (None, None, None, (0, 0, 0)),
        (3, 4, 100, (3, 4, 100)),  # a larger total (reasoning, cached tokens) is kept
        (3, 4, 5, (3, 4, 7)),  # a total below the sum is the sum
        ("²", "٣", "9" * 5000, (0, 0, 0)),  # digits int() refuses, or too many for it
        (" 12 ", "0013", None, (12, 13, 25)),
    ],
)
def test_usage_of_clamps_nonsense_counts(
    prompt: object, completion: object, total: object, expected: tuple[int, int, int]
) -> None:
    usage = Usage.of(prompt, completion, total)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == expected


def test_record_never_counts_negative_or_absurd_tokens(pricing: Pricing) -> None:
    tracker = UsageTracker("openai", pricing)
    assert tracker.record("gpt-4o", -9_998_000, 10**15) == 0.0
    assert tracker.record("gpt-4o", 1000.0, "x") > 0  # type: ignore[arg-type]
    stats = tracker.stats()
    assert stats["prompt_tokens"] == 1000 and stats["completion_tokens"] == 0
    assert stats["estimated_cost_usd"] >= 0
    pool = KeyPool()
    pool.add("a", "sk-aaaaaaaaaaaaaaaa")
    pool.release(pool.acquire(), ok=True, prompt_tokens=-50, completion_tokens=10, cost=-3.75)
    key = pool.stats()["a"]
    assert (key["prompt_tokens"], key["completion_tokens"], key["cost"]) == (0, 10, 0.0)


def test_slices_by_endpoint_and_key(pricing: Pricing) -> None:
    tracker = UsageTracker("openai", pricing)
    tracker.record("gpt-4o", 1000, 0, endpoint_id="e1", key_name="k1")
    tracker.record("gpt-4o", 2000, 0, endpoint_id="e1", key_name="k2")
    tracker.record("gpt-4o-mini", 4000, 0, endpoint_id="e2", key_name="k1")
    tracker.record_failure(endpoint_id="e1", key_name="k2")
    tracker.record_failure(endpoint_id="e2", key_name="k1")

    e1 = tracker.stats(endpoint_id="e1")
    assert (e1["successful_requests"], e1["failed_requests"], e1["prompt_tokens"]) == (2, 1, 3000)
    k1 = tracker.stats(key_name="k1")
    assert (k1["successful_requests"], k1["failed_requests"], k1["prompt_tokens"]) == (2, 1, 5000)
    assert sorted(k1["by_model"]) == ["gpt-4o", "gpt-4o-mini"]
    both = tracker.stats(endpoint_id="e1", key_name="k2")
    assert (both["successful_requests"], both["failed_requests"], both["prompt_tokens"]) == (
        1,
        1,
        2000,
    )
    assert both["estimated_cost_usd"] == 0.005
    none = tracker.stats(endpoint_id="e3")
    assert none["total_requests"] == 0
    assert none["by_model"] == {}
    assert none["estimated_cost_usd"] == 0.0
    assert tracker.stats()["total_requests"] == 5


def test_reset_forgets_everything(pricing: Pricing) -> None:
    tracker = UsageTracker("openai", pricing)
    tracker.record("gpt-4o", 10, 10, endpoint_id="e")
    tracker.record_failure()
    tracker.reset()
    stats = tracker.stats()
    assert stats["total_requests"] == 0
    assert stats["by_model"] == {}
    assert stats["unpriced_models"] == []


def test_pricing_is_loaded_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    real_load = Pricing.load.__func__  # type: ignore[attr-defined]

    def counting_load(cls: type[Pricing], path: object = None) -> Pricing:
        calls.append(path)
        return real_load(cls, path)  # type: ignore[no-any-return]

    monkeypatch.setattr(Pricing, "load", classmethod(counting_load))
    tracker = UsageTracker("openai")
    assert calls == []
    assert tracker.record("gpt-4o", 1000, 500) == 0.0075
    tracker.record("gpt-4o", 1, 1)
    assert calls == [None]


def test_overlay_file_from_env_var(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    overlay = write_json(
        tmp_path / "prices.json",
        {
            "_comment": "mine",
            "openai": {"gpt-4o": {"input": 1.0, "output": 2.0}, "_note": "skipped"},
            "ollama": {"llama3": {"input": 0.1, "output": 0.2}},
        },
    )
    monkeypatch.setenv(PRICING_ENV_VAR, str(overlay))
    pricing = Pricing.load()
    assert pricing.price("openai", "gpt-4o") == (1.0, 2.0)  # user wins
    assert pricing.price("openai", "gpt-4o-mini") == (0.15, 0.6)  # the rest is kept
    assert pricing.price("ollama", "llama3:70b") == (0.1, 0.2)
    tracker = UsageTracker("openai")
    assert tracker.record("gpt-4o", 1_000_000, 1_000_000) == 3.0


def test_explicit_path_overlays_packaged_data(tmp_path: Path) -> None:
    overlay = write_json(tmp_path / "p.json", {"groq": {"new-model": {"input": 1, "output": 1}}})
    pricing = Pricing.load(overlay)
    assert pricing.price("groq", "new-model") == (1.0, 1.0)
    assert pricing.price("groq", "gemma2-9b-it") == (0.2, 0.2)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "top level"),
        ('{"openai": [1]}', "'openai'"),
        ('{"openai": {"gpt-4o": 2.5}}', "openai/gpt-4o"),
        ('{"openai": {"gpt-4o": {"input": 2.5}}}', "no 'output'"),
        ('{"openai": {"gpt-4o": {"input": "2.5", "output": 1}}}', "'2.5'"),
        ('{"openai": {"gpt-4o": {"input": -1, "output": 1}}}', "-1"),
        ('{"openai": {"gpt-4o": {"input": true, "output": 1}}}', "True"),
    ],
)
def test_bad_file_names_file_and_problem(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: str, problem: str
) -> None:
    bad = tmp_path / "bad-prices.json"
    bad.write_text(content, encoding="utf-8")
    monkeypatch.setenv(PRICING_ENV_VAR, str(bad))
    with pytest.raises(ConfigurationError) as info:
        Pricing.load()
    assert "bad-prices.json" in str(info.value)
    assert problem in str(info.value)


def test_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"missing\.json"):
        Pricing.load(tmp_path / "missing.json")


def test_threaded_record_totals_are_exact(pricing: Pricing) -> None:
    tracker = UsageTracker("openai", pricing)
    threads, per_thread = 8, 2500
    start = threading.Barrier(threads)

    def work(index: int) -> None:
        start.wait()
        for i in range(per_thread):
            tracker.record("gpt-4o", 100, 10, endpoint_id=f"e{index % 2}", key_name=f"k{i % 3}")
            if i % 10 == 0:
                tracker.record_failure(endpoint_id=f"e{index % 2}")

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stats = tracker.stats()
    total = threads * per_thread
    assert stats["successful_requests"] == total
    assert stats["failed_requests"] == threads * (per_thread // 10)
    assert stats["prompt_tokens"] == 100 * total
    assert stats["completion_tokens"] == 10 * total
    assert stats["estimated_cost_usd"] == pytest.approx(total * 0.00035)
    halves = [tracker.stats(endpoint_id=f"e{n}")["successful_requests"] for n in range(2)]
    assert halves == [total // 2, total // 2]
    keys = [tracker.stats(key_name=f"k{n}")["successful_requests"] for n in range(3)]
    assert sum(keys) == total
