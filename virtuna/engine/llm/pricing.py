"""One dated price table for every LLM cost, and exact (Decimal) cost arithmetic.

Prices are USD per million tokens. A model's price is the newest row whose `effective_from`
is on or before the day of the call, so a price change is a new row, never an edit.
Token counts come from the providers' own usage fields; missing usage gives zero tokens and is
flagged by the caller (no invented fallback counts, unlike the original's 2,000/800).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

__all__ = [
    "PRICES",
    "PriceRow",
    "UnknownModelError",
    "Usage",
    "cost_cents",
    "deepseek_usage_missing",
    "gemini_usage_missing",
    "price",
    "usage_from_deepseek",
    "usage_from_gemini",
]

_MILLION = Decimal(1_000_000)
_CENTS_PER_USD = Decimal(100)


@dataclass(frozen=True)
class PriceRow:
    """A model's price from a date on, USD per million tokens."""

    provider: str
    model: str
    effective_from: date
    input: Decimal
    cached_input: Decimal
    output: Decimal


PRICES: tuple[PriceRow, ...] = (
    # Gemini 2.5 Flash: the original's numbers (input 0.15, output 0.60); thinking is output.
    PriceRow(
        "gemini", "gemini-2.5-flash", date(2025, 4, 17),
        Decimal("0.15"), Decimal("0.0375"), Decimal("0.60"),
    ),
    # General availability (17 June 2025) raised the list price; thinking bills as output.
    PriceRow(
        "gemini", "gemini-2.5-flash", date(2025, 6, 17),
        Decimal("0.30"), Decimal("0.075"), Decimal("2.50"),
    ),
    # DeepSeek V3.2 (both models share one price since 2025-09-29).
    PriceRow(
        "deepseek", "deepseek-reasoner", date(2025, 9, 29),
        Decimal("0.28"), Decimal("0.028"), Decimal("0.42"),
    ),
    PriceRow(
        "deepseek", "deepseek-chat", date(2025, 1, 1),
        Decimal("0.14"), Decimal("0.014"), Decimal("0.28"),
    ),
    PriceRow(
        "deepseek", "deepseek-chat", date(2025, 9, 29),
        Decimal("0.28"), Decimal("0.028"), Decimal("0.42"),
    ),
)  # fmt: skip


class UnknownModelError(LookupError):
    """No price row covers this provider, model and day."""


@dataclass(frozen=True)
class Usage:
    """Tokens of one call: input INCLUDES cached input; output EXCLUDES thinking."""

    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Every token billed: input (with cached), output and thinking."""
        return self.input_tokens + self.output_tokens + self.thinking_tokens


def _model_key(model: str) -> str:
    """The table's spelling of a model name (Gemini's `models/` prefix dropped)."""
    return model.strip().removeprefix("models/")


def price(provider: str, model: str, at: date | None = None) -> PriceRow:
    """The newest row for provider and model effective on `at` (default: today, UTC)."""
    day = at or datetime.now(UTC).date()
    key = _model_key(model)
    rows = [r for r in PRICES if r.provider == provider and r.model == key]
    if not rows:
        known = ", ".join(sorted({f"{r.provider}/{r.model}" for r in PRICES}))
        raise UnknownModelError(
            f"no price for {provider} model {model!r}; add a row to "
            f"virtuna.engine.llm.pricing.PRICES (known: {known})"
        )
    eligible = [r for r in rows if r.effective_from <= day]
    if not eligible:
        first = min(r.effective_from for r in rows)
        raise UnknownModelError(
            f"no price for {provider} model {model!r} on {day.isoformat()} "
            f"(first price effective {first.isoformat()})"
        )
    return max(eligible, key=lambda r: r.effective_from)


def cost_cents(provider: str, model: str, usage: Usage, at: date | None = None) -> Decimal:
    """Exact cost of usage in US cents (not rounded): thinking billed as output."""
    row = price(provider, model, at)
    uncached = max(usage.input_tokens - usage.cached_tokens, 0)
    usd = (
        uncached * row.input
        + usage.cached_tokens * row.cached_input
        + (usage.output_tokens + usage.thinking_tokens) * row.output
    ) / _MILLION
    return usd * _CENTS_PER_USD


def _int(value: Any) -> int:
    """A token count from a usage field (absent or malformed -> 0)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and value.is_integer():
        return max(int(value), 0)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return 0


def usage_from_gemini(usage_metadata: dict[str, Any] | None) -> Usage:
    """Usage from Gemini's `usageMetadata` (prompt includes cached; thoughts apart)."""
    meta = usage_metadata if isinstance(usage_metadata, dict) else {}
    return Usage(
        input_tokens=_int(meta.get("promptTokenCount")),
        cached_tokens=_int(meta.get("cachedContentTokenCount")),
        output_tokens=_int(meta.get("candidatesTokenCount")),
        thinking_tokens=_int(meta.get("thoughtsTokenCount")),
    )


def usage_from_deepseek(usage: dict[str, Any] | None) -> Usage:
    """Usage from DeepSeek's `usage` (completion_tokens include the reasoning tokens)."""
    data = usage if isinstance(usage, dict) else {}
    details = data.get("completion_tokens_details")
    reasoning = _int(details.get("reasoning_tokens")) if isinstance(details, dict) else 0
    completion = _int(data.get("completion_tokens"))
    cached = _int(data.get("prompt_cache_hit_tokens"))
    if not cached:
        prompt_details = data.get("prompt_tokens_details")
        if isinstance(prompt_details, dict):
            cached = _int(prompt_details.get("cached_tokens"))
    reasoning = min(reasoning, completion)
    return Usage(
        input_tokens=_int(data.get("prompt_tokens")),
        cached_tokens=cached,
        output_tokens=completion - reasoning,
        thinking_tokens=reasoning,
    )


def gemini_usage_missing(usage_metadata: Any) -> bool:
    """Whether a Gemini reply carried no usable usageMetadata."""
    return not isinstance(usage_metadata, dict) or "promptTokenCount" not in usage_metadata


def deepseek_usage_missing(usage: Any) -> bool:
    """Whether a DeepSeek reply carried no usable usage object."""
    return not isinstance(usage, dict) or "prompt_tokens" not in usage
