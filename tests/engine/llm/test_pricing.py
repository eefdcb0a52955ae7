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
    usage_from_anthropic,
    usage_from_deepseek,
    usage_from_gemini,
    usage_from_openai,
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


def test_fallback_rows_name_their_source_and_cache_write_price() -> None:
    claude = price("anthropic", "claude-haiku-5-5")
    gpt = price("openai", "gpt-6-luna")
    assert claude.source.startswith("https://platform.claude.com/")
    assert gpt.source.startswith("https://developers.openai.com/")
    for row in (claude, gpt):
        assert (row.input, row.cached_input, row.output, row.cache_write) == (
            Decimal("0.10"),
            Decimal("0.01"),
            Decimal("0.50"),
            Decimal("0.125"),
        )
    with pytest.raises(UnknownModelError, match="first price effective 2026-10-07"):
        price("anthropic", "claude-haiku-5-5", date(2026, 10, 6))


def test_cache_writes_bill_at_their_own_price_and_default_to_input() -> None:
    usage = Usage(input_tokens=10_000, cached_tokens=2_000, cache_write_tokens=4_000)
    # (4000 * 0.10 + 2000 * 0.01 + 4000 * 0.125) / 1e6 USD, in cents
    assert cost_cents("anthropic", "claude-haiku-5-5", usage) == Decimal("0.092")
    # Gemini has no cache-write price: written tokens bill as plain input
    at = date(2025, 5, 1)
    plain = Usage(input_tokens=10_000, cached_tokens=2_000)
    assert cost_cents("gemini", "gemini-2.5-flash", usage, at) == cost_cents(
        "gemini", "gemini-2.5-flash", plain, at
    )


def test_usage_from_anthropic_adds_the_cache_back_into_input() -> None:
    usage = usage_from_anthropic(
        {
            "input_tokens": 50,
            "cache_creation_input_tokens": 1_200,
            "cache_read_input_tokens": 3_000,
            "output_tokens": 700,
        }
    )
    assert usage == Usage(
        input_tokens=4_250, cached_tokens=3_000, output_tokens=700, cache_write_tokens=1_200
    )
    assert usage_from_anthropic(None) == Usage()


def test_usage_from_openai_splits_reasoning_out_of_completion() -> None:
    usage = usage_from_openai(
        {
            "prompt_tokens": 2_000,
            "completion_tokens": 900,
            "prompt_tokens_details": {"cached_tokens": 1_024},
            "completion_tokens_details": {"reasoning_tokens": 512},
        }
    )
    assert usage == Usage(2_000, 1_024, 388, 512)
    assert usage_from_openai({"prompt_tokens": 5}) == Usage(5, 0, 0, 0)
