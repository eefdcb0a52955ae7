"""One dated price table for every LLM cost, and exact (Decimal) cost arithmetic.

Prices are USD per million tokens. A model's price is the newest row whose `effective_from`
is on or before the day of the call, so a price change is a new row, never an edit. Rows added
since the fallback providers name the page they were read from (`source`).
Token counts come from the providers' own usage fields; missing usage gives zero tokens and is
flagged by the caller (no invented fallback counts, unlike the original's 2,000/800).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

__all__ = [
    "PRICES",
    "PriceRow",
    "UnknownModelError",
    "Usage",
    "anthropic_usage_missing",
    "chat_usage_missing",
    "cost_cents",
    "gemini_usage_missing",
    "price",
    "usage_from_anthropic",
    "usage_from_deepseek",
    "usage_from_gemini",
    "usage_from_openai",
]

_MILLION = Decimal(1_000_000)
_CENTS_PER_USD = Decimal(100)


@dataclass(frozen=True)
class PriceRow:
    """A model's price from a date on, USD per million tokens (cache writes: input if None)."""

    provider: str
    model: str
    effective_from: date
    input: Decimal
    cached_input: Decimal
    output: Decimal
    cache_write: Decimal | None = None
    source: str = ""


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
    # Claude Haiku 5.5 from its release, for prompts up to 100,000 tokens (longer ones bill
    # 5x; the engine's prompts stay far below: a draft is at most 10,000 characters). Cached
    # input is the cache-read price, cache_write the 5-minute write. The stored copy of the
    # page cuts off before the cache-read line; $0.01 is the figure Anthropic's other model
    # pages give as 10% of input and the one published Haiku 5.5 guides quote.
    PriceRow(
        "anthropic", "claude-haiku-5-5", date(2026, 10, 7),
        Decimal("0.10"), Decimal("0.01"), Decimal("0.50"), Decimal("0.125"),
        "https://platform.claude.com/docs/en/models/haiku-5-5/overview",
    ),
    # GPT-6 Luna from its release, for prompts up to 272K input tokens (longer ones bill 2x
    # input, 1.5x output). Reasoning tokens bill as output.
    PriceRow(
        "openai", "gpt-6-luna", date(2026, 9, 22),
        Decimal("0.10"), Decimal("0.01"), Decimal("0.50"), Decimal("0.125"),
        "https://developers.openai.com/api/docs/models/gpt-6-luna",
    ),
)  # fmt: skip


class UnknownModelError(LookupError):
    """No price row covers this provider, model and day."""


@dataclass(frozen=True)
class Usage:
    """Tokens of one call: input INCLUDES cached input and cache writes; output EXCLUDES
    thinking."""

    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Every token billed: input (with cached and written), output and thinking."""
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
    uncached = max(usage.input_tokens - usage.cached_tokens - usage.cache_write_tokens, 0)
    write_price = row.input if row.cache_write is None else row.cache_write
    usd = (
        uncached * row.input
        + usage.cached_tokens * row.cached_input
        + usage.cache_write_tokens * write_price
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


def _detail(data: dict[str, Any], section: str, name: str) -> int:
    """A count inside a `*_tokens_details` object (absent -> 0)."""
    details = data.get(section)
    return _int(details.get(name)) if isinstance(details, dict) else 0


def usage_from_openai(usage: dict[str, Any] | None) -> Usage:
    """Usage from a Chat Completions `usage`: prompt_tokens include the cached ones
    (prompt_tokens_details.cached_tokens), completion_tokens include the reasoning ones."""
    data = usage if isinstance(usage, dict) else {}
    completion = _int(data.get("completion_tokens"))
    reasoning = min(_detail(data, "completion_tokens_details", "reasoning_tokens"), completion)
    return Usage(
        input_tokens=_int(data.get("prompt_tokens")),
        cached_tokens=_detail(data, "prompt_tokens_details", "cached_tokens"),
        output_tokens=completion - reasoning,
        thinking_tokens=reasoning,
    )


def usage_from_deepseek(usage: dict[str, Any] | None) -> Usage:
    """Usage from DeepSeek's OpenAI-compatible `usage`; its prompt_cache_hit_tokens count
    the cached input when present."""
    base = usage_from_openai(usage)
    hits = _int(usage.get("prompt_cache_hit_tokens")) if isinstance(usage, dict) else 0
    return replace(base, cached_tokens=hits) if hits else base


def usage_from_anthropic(usage: dict[str, Any] | None) -> Usage:
    """Usage from an Anthropic `usage`. Its input_tokens EXCLUDE cache reads and writes, so
    they are added back; output_tokens include any thinking (billed as output, not split)."""
    data = usage if isinstance(usage, dict) else {}
    read = _int(data.get("cache_read_input_tokens"))
    written = _int(data.get("cache_creation_input_tokens"))
    return Usage(
        input_tokens=_int(data.get("input_tokens")) + read + written,
        cached_tokens=read,
        output_tokens=_int(data.get("output_tokens")),
        cache_write_tokens=written,
    )


def gemini_usage_missing(usage_metadata: Any) -> bool:
    """Whether a Gemini reply carried no usable usageMetadata."""
    return not isinstance(usage_metadata, dict) or "promptTokenCount" not in usage_metadata


def chat_usage_missing(usage: Any) -> bool:
    """Whether a Chat Completions reply (DeepSeek, OpenAI) carried no usable usage object."""
    return not isinstance(usage, dict) or "prompt_tokens" not in usage


def anthropic_usage_missing(usage: Any) -> bool:
    """Whether an Anthropic reply carried no usable usage object."""
    return not isinstance(usage, dict) or "input_tokens" not in usage
