"""LLM providers (Gemini, DeepSeek, Anthropic, OpenAI) over their REST APIs, each behind its
own circuit breaker, and one ordered fallback chain per role.

    async with Providers.from_settings(get_settings()) as providers:
        analysis = await providers.run(content_task(payload, baseline))
        rules = await providers.run(rules_task(content_text, semantic_rules))
        reasoning = await providers.run(reasoning_task(payload, gemini=analysis.value, ...))

A task (`tasks`) goes down its role's provider order (LLM_CONTENT_ORDER, LLM_REASONING_ORDER,
LLM_RULES_ORDER) until a provider answers; an unconfigured provider is skipped and the warning
says so. A single client (`providers.gemini.run(task)`, `providers.gemini.analyze_content`,
`providers.deepseek.evaluate_rules`) asks one provider only. Requests never raise for provider
trouble: they return an `LLMReply` whose `status` is ok, not-configured, failed or
circuit-open, with a warning, the per-attempt `calls` (each naming its provider) and the exact
`cost_cents` (Decimal, from the dated price table in `pricing`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TypeVar

import httpx
from pydantic import BaseModel

from virtuna.config import Settings
from virtuna.engine.llm.anthropic import AnthropicClient
from virtuna.engine.llm.base import (
    RETRY_INSTRUCTION,
    InvalidReply,
    LLMCallRecord,
    LLMReply,
    ProviderClient,
    ProviderError,
    Role,
    Sleep,
    Task,
    parse_reply,
    strip_fences,
)
from virtuna.engine.llm.breaker import CircuitBreaker, CircuitOpenError
from virtuna.engine.llm.chain import FallbackChain
from virtuna.engine.llm.deepseek import DeepSeekClient
from virtuna.engine.llm.gemini import GeminiClient
from virtuna.engine.llm.openai import OpenAIClient
from virtuna.engine.llm.pricing import (
    PriceRow,
    UnknownModelError,
    Usage,
    cost_cents,
    price,
    usage_from_anthropic,
    usage_from_deepseek,
    usage_from_gemini,
    usage_from_openai,
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
    strict_schema,
)
from virtuna.engine.llm.tasks import content_task, reasoning_task, rules_task

M = TypeVar("M", bound=BaseModel)

__all__ = [
    "FACTOR_NAMES",
    "RETRY_INSTRUCTION",
    "AnthropicClient",
    "BehavioralPredictions",
    "CircuitBreaker",
    "CircuitOpenError",
    "ComponentScores",
    "DeepSeekClient",
    "DeepSeekReasoning",
    "FallbackChain",
    "GeminiAnalysis",
    "GeminiClient",
    "GeminiFactor",
    "InvalidReply",
    "LLMCallRecord",
    "LLMReply",
    "OpenAIClient",
    "PriceRow",
    "ProviderClient",
    "ProviderError",
    "Providers",
    "Role",
    "RuleEvaluation",
    "RuleEvaluations",
    "Suggestion",
    "Task",
    "UnknownModelError",
    "Usage",
    "content_task",
    "cost_cents",
    "parse_reply",
    "price",
    "reasoning_task",
    "rules_task",
    "strict_schema",
    "strip_fences",
    "usage_from_anthropic",
    "usage_from_deepseek",
    "usage_from_gemini",
    "usage_from_openai",
]


@dataclass
class Providers:
    """The four clients, each with its own HTTP connection pool, and each role's chain.

    One pool per provider, not one shared: httpcore's pool does bookkeeping over every
    connection for every queued request, so a burst of concurrent analyses (two calls each at
    once) on one shared pool cost more CPU than the engine itself (bench/engine.py, part 2)."""

    gemini: GeminiClient
    deepseek: DeepSeekClient
    anthropic: AnthropicClient
    openai: OpenAIClient
    pools: tuple[httpx.AsyncClient, ...]
    chains: dict[Role, FallbackChain]

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> Providers:
        """Clients from settings, chained in each role's configured order."""
        timeouts = (
            settings.gemini_timeout_s,
            settings.deepseek_timeout_s,
            settings.anthropic_timeout_s,
            settings.openai_timeout_s,
        )
        pools = {
            name: httpx.AsyncClient(
                transport=transport,
                timeout=httpx.Timeout(max(timeouts)),
                headers={"User-Agent": "virtuna"},
            )
            for name in ("gemini", "deepseek", "anthropic", "openai")
        }
        clients: dict[str, ProviderClient] = {
            "gemini": GeminiClient(settings, http=pools["gemini"], sleep=sleep),
            "deepseek": DeepSeekClient(settings, http=pools["deepseek"], sleep=sleep),
            "anthropic": AnthropicClient(settings, http=pools["anthropic"], sleep=sleep),
            "openai": OpenAIClient(settings, http=pools["openai"], sleep=sleep),
        }
        roles: tuple[Role, ...] = ("content", "reasoning", "rules")
        chains = {
            role: FallbackChain(role, [clients[name] for name in settings.provider_order(role)])
            for role in roles
        }
        return cls(pools=tuple(pools.values()), chains=chains, **clients)  # type: ignore[arg-type]

    @property
    def clients(self) -> tuple[ProviderClient, ...]:
        """Every client (Gemini, DeepSeek, Anthropic, OpenAI)."""
        return self.gemini, self.deepseek, self.anthropic, self.openai

    @property
    def breakers(self) -> tuple[CircuitBreaker, ...]:
        """Each client's own breaker."""
        return tuple(client.breaker for client in self.clients)

    def reset_breakers(self) -> None:
        """Close every breaker (tests, or an operator after an outage)."""
        for breaker in self.breakers:
            breaker.reset()

    async def run(self, task: Task[M]) -> LLMReply[M]:
        """The first answer to task down its role's provider order."""
        return await self.chains[task.role].run(task)

    async def aclose(self) -> None:
        """Close the HTTP clients."""
        for pool in self.pools:
            await pool.aclose()

    async def __aenter__(self) -> Providers:
        """Use as `async with Providers.from_settings(s) as providers:`."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close on exit."""
        await self.aclose()
