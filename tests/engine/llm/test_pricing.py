"""The dated price table and exact Decimal costs (no rounding, no invented token counts)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from virtuna.engine.llm.pricing import (
    PRICES,
    UnknownModelError,
    Usage,
    cost_cents,
    price,
    usage_from_deepseek,
    usage_from_gemini,
)


def test_every_price_is_a_decimal_per_million_tokens() -> None:
    for row in PRICES:
        assert all(isinstance(v, Decimal) for v in (row.input, row.cached_input, row.output))
    preview = price("gemini", "gemini-2.5-flash", date(2025, 5, 1))
    assert (preview.input, preview.cached_input, preview.output) == (
        Decimal("0.15"),
        Decimal("0.0375"),
        Decimal("0.60"),
    )
    general = price("gemini", "gemini-2.5-flash")
    assert (general.input, general.cached_input, general.output) == (
        Decimal("0.30"),
        Decimal("0.075"),
        Decimal("2.50"),
    )


def test_gemini_cost_is_exact_and_counts_thinking_as_output() -> None:
    usage = Usage(input_tokens=2000, output_tokens=800, thinking_tokens=200)
    # (2000 * 0.15 + (800 + 200) * 0.60) / 1e6 USD = 0.0009 USD = 0.09 cents (preview price)
    assert cost_cents("gemini", "gemini-2.5-flash", usage, date(2025, 5, 1)) == Decimal("0.09")
    # (2000 * 0.30 + (800 + 200) * 2.50) / 1e6 USD = 0.31 cents (general availability)
    assert cost_cents("gemini", "gemini-2.5-flash", usage) == Decimal("0.31")


def test_cached_input_is_billed_at_the_cached_price() -> None:
    usage = Usage(input_tokens=1000, cached_tokens=400, output_tokens=100)
    expected = (600 * Decimal("0.15") + 400 * Decimal("0.0375") + 100 * Decimal("0.60")) / 10_000
    at = date(2025, 5, 1)
    assert cost_cents("gemini", "gemini-2.5-flash", usage, at) == expected == Decimal("0.0165")


def test_cost_is_not_rounded_to_cents() -> None:
    usage = Usage(input_tokens=1, output_tokens=1)
    # (0.28 + 0.42) / 1e6 USD = 0.00007 cents
    cents = cost_cents("deepseek", "deepseek-reasoner", usage, date(2025, 10, 1))
    assert cents == Decimal("0.00007")


def test_the_row_is_chosen_by_date() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    old = cost_cents("deepseek", "deepseek-chat", usage, at=date(2025, 6, 1))
    new = cost_cents("deepseek", "deepseek-chat", usage, at=date(2025, 10, 1))
    assert old == Decimal("42")  # (0.14 + 0.28) USD
    assert new == Decimal("70")  # (0.28 + 0.42) USD
    assert price("deepseek", "deepseek-chat", date(2025, 9, 28)).input == Decimal("0.14")
    assert price("deepseek", "deepseek-chat", date(2025, 9, 29)).input == Decimal("0.28")


def test_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(UnknownModelError, match=r"gpt-5.*PRICES.*known"):
        price("openai", "gpt-5")
    with pytest.raises(UnknownModelError, match="first price effective 2025-01-01"):
        price("deepseek", "deepseek-chat", date(2024, 12, 31))


def test_gemini_models_prefix_is_accepted() -> None:
    assert price("gemini", "models/gemini-2.5-flash") == price("gemini", "gemini-2.5-flash")


def test_usage_from_gemini_reads_every_count() -> None:
    usage = usage_from_gemini(
        {
            "promptTokenCount": 1200,
            "cachedContentTokenCount": 1024,
            "candidatesTokenCount": 300,
            "thoughtsTokenCount": 450,
            "totalTokenCount": 1950,
        }
    )
    assert usage == Usage(1200, 1024, 300, 450)
    assert usage.total_tokens == 1950


def test_usage_from_deepseek_splits_reasoning_out_of_completion() -> None:
    usage = usage_from_deepseek(
        {
            "prompt_tokens": 3000,
            "completion_tokens": 2100,
            "total_tokens": 5100,
            "prompt_cache_hit_tokens": 2048,
            "prompt_cache_miss_tokens": 952,
            "completion_tokens_details": {"reasoning_tokens": 1600},
        }
    )
    assert usage == Usage(
        input_tokens=3000, cached_tokens=2048, output_tokens=500, thinking_tokens=1600
    )
    cents = cost_cents("deepseek", "deepseek-reasoner", usage, date(2025, 10, 1))
    expected = (952 * Decimal("0.28") + 2048 * Decimal("0.028") + 2100 * Decimal("0.42")) / 10_000
    assert cents == expected


def test_missing_usage_is_zero_tokens() -> None:
    assert usage_from_gemini(None) == Usage()
    assert usage_from_gemini({}) == Usage()
    assert usage_from_deepseek(None) == Usage()
    assert usage_from_deepseek({"prompt_tokens": "n/a"}) == Usage()
    assert cost_cents("gemini", "gemini-2.5-flash", Usage()) == Decimal(0)
