"""LLM providers (Gemini, DeepSeek) over their REST APIs, behind circuit breakers.

    providers = Providers.from_settings(get_settings())
    try:
        analysis = await providers.gemini.analyze_content(payload, baseline)
        reasoning = await providers.deepseek.reason(payload, gemini=analysis.value, ...)
    finally:
        await providers.aclose()

Requests never raise for provider trouble: they return an `LLMReply` whose `status` is ok,
not-configured, failed or circuit-open, with a warning, the per-attempt `calls` and the
exact `cost_cents` (Decimal, from the dated price table in `pricing`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from virtuna.config import Settings
from virtuna.engine.llm.base import (
    RETRY_INSTRUCTION,
    InvalidReply,
    LLMCallRecord,
    LLMReply,
    ProviderError,
    Sleep,
    parse_reply,
    strip_fences,
)
from virtuna.engine.llm.breaker import CircuitBreaker, CircuitOpenError
from virtuna.engine.llm.deepseek import DeepSeekClient
from virtuna.engine.llm.gemini import GeminiClient
from virtuna.engine.llm.pricing import (
    PriceRow,
    UnknownModelError,
    Usage,
    cost_cents,
    price,
    usage_from_deepseek,
    usage_from_gemini,
)
from virtuna.engine.llm.schemas import (
    FACTOR_NAMES,
    BehavioralPredictions,
    ComponentScores,
    DeepSeekReasoning,
    GeminiAnalysis,
    GeminiFactor,
    RuleEvaluation,
    RuleEvaluations,
    Suggestion,
)

__all__ = [
    "FACTOR_NAMES",
    "RETRY_INSTRUCTION",
    "BehavioralPredictions",
    "CircuitBreaker",
    "CircuitOpenError",
    "ComponentScores",
    "DeepSeekClient",
    "DeepSeekReasoning",
    "GeminiAnalysis",
    "GeminiClient",
    "GeminiFactor",
    "InvalidReply",
    "LLMCallRecord",
    "LLMReply",
    "PriceRow",
    "ProviderError",
    "Providers",
    "RuleEvaluation",
    "RuleEvaluations",
    "Suggestion",
    "UnknownModelError",
    "Usage",
    "cost_cents",
    "parse_reply",
    "price",
    "strip_fences",
    "usage_from_deepseek",
    "usage_from_gemini",
]


@dataclass
class Providers:
    """Both clients sharing one HTTP connection pool, each with its own circuit breaker."""

    gemini: GeminiClient
    deepseek: DeepSeekClient
    http: httpx.AsyncClient

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> Providers:
        """Clients from settings; DeepSeek falls back to this Gemini client."""
        http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(max(settings.gemini_timeout_s, settings.deepseek_timeout_s)),
            headers={"User-Agent": "virtuna"},
        )
        gemini = GeminiClient(settings, http=http, sleep=sleep)
        deepseek = DeepSeekClient(settings, http=http, gemini=gemini, sleep=sleep)
        return cls(gemini=gemini, deepseek=deepseek, http=http)

    @property
    def breakers(self) -> tuple[CircuitBreaker, CircuitBreaker]:
        """The Gemini and DeepSeek breakers."""
        return self.gemini.breaker, self.deepseek.breaker

    def reset_breakers(self) -> None:
        """Close both breakers (tests, or an operator after an outage)."""
        for breaker in self.breakers:
            breaker.reset()

    async def aclose(self) -> None:
        """Close the shared HTTP client."""
        await self.http.aclose()

    async def __aenter__(self) -> Providers:
        """Use as `async with Providers.from_settings(s) as providers:`."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close on exit."""
        await self.aclose()
