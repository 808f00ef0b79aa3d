"""List prices of current Claude models in core's pricing table (USD per million tokens)."""

from __future__ import annotations

import pytest

from ipfs_accelerate_claude.plugin import DEFAULT_MODEL
from ipfs_accelerate_py.resilience.usage import Pricing


@pytest.mark.parametrize(
    ("model", "price"),
    [
        ("claude-3-haiku-20240307", (0.25, 1.25)),
        ("claude-3-5-haiku-20241022", (0.8, 4.0)),
        ("claude-3-5-haiku-latest", (0.8, 4.0)),
        ("claude-3-7-sonnet-20250219", (3.0, 15.0)),
        ("claude-sonnet-4-20250514", (3.0, 15.0)),
        ("claude-sonnet-4-5-20250929", (3.0, 15.0)),
        ("claude-sonnet-4-6", (3.0, 15.0)),
        ("claude-opus-4-20250514", (15.0, 75.0)),
        ("claude-opus-4-1-20250805", (15.0, 75.0)),
        ("claude-opus-4-5-20251101", (5.0, 25.0)),
        ("claude-opus-4-6", (5.0, 25.0)),
        ("claude-opus-4-7", (5.0, 25.0)),
        ("claude-opus-4-8", (5.0, 25.0)),
        ("claude-opus-5", (5.0, 25.0)),
        ("claude-opus-5-5", (4.0, 20.0)),
        ("claude-haiku-4-5-20251001", (1.0, 5.0)),
        ("claude-haiku-5-5", (0.1, 0.5)),  # the base tier (prompts up to 100k tokens)
        ("claude-sonnet-5", (2.0, 10.0)),
        ("claude-sonnet-5-5", (2.0, 10.0)),
        ("claude-fable-5", (10.0, 50.0)),
        ("claude-fable-5-1", (10.0, 50.0)),
        ("claude-mythos-5-1", (10.0, 50.0)),
    ],
)
def test_prices(model: str, price: tuple[float, float]) -> None:
    assert Pricing.load().price("claude", model) == price


def test_the_default_model_is_priced() -> None:
    assert Pricing.load().price("claude", DEFAULT_MODEL) is not None
