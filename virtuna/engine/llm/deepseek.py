"""DeepSeek over its OpenAI-compatible REST API (JSON mode): first for the 5-step behavioural
reasoning (`client.run(reasoning_task(...))`) and the batched semantic-rule evaluation (on the
rules model, with a short timeout), and a fallback for the content factors.

Fixes against the original: every request goes through DeepSeek's own circuit breaker (one
request is one breaker failure), DeepSeek sees the real trend context, and a failure, timeout
or open circuit moves the task to the next provider of the role's fallback order (`chain`),
whose reply names the provider and model that actually answered.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from virtuna.config import Settings
from virtuna.engine.llm.base import RULES_TIMEOUT_S, LLMReply, Role, Sleep
from virtuna.engine.llm.breaker import CircuitBreaker
from virtuna.engine.llm.openai import ChatCompletionsClient
from virtuna.engine.llm.pricing import Usage, usage_from_deepseek
from virtuna.engine.llm.schemas import RuleEvaluations
from virtuna.engine.llm.tasks import no_rules, rules_task

__all__ = ["RULES_TIMEOUT_S", "DeepSeekClient"]


class DeepSeekClient(ChatCompletionsClient):
    """DeepSeek's chat/completions endpoint (JSON mode) behind a circuit breaker."""

    path = "/chat/completions"
    provider = "deepseek"
    label = "DeepSeek"
    key_variable = "DEEPSEEK_API_KEY"

    def __init__(
        self,
        settings: Settings,
        *,
        http: httpx.AsyncClient | None = None,
        breaker: CircuitBreaker | None = None,
        sleep: Sleep = asyncio.sleep,
        rules_timeout_s: float = RULES_TIMEOUT_S,
    ) -> None:
        """A client from settings, with the rules model and its short timeout."""
        super().__init__(settings, http=http, breaker=breaker, sleep=sleep)
        self.rules_model = settings.deepseek_rules_model
        self.rules_timeout_s = min(rules_timeout_s, self.timeout_s)
        self._check_priced(self.rules_model)

    async def evaluate_rules(
        self, content_text: str, rules: list[tuple[str, str]]
    ) -> LLMReply[RuleEvaluations]:
        """Score every (name, evaluation_prompt) rule in ONE request to the rules model."""
        if not rules:
            return no_rules(self.provider, self.rules_model)
        return await self.run(rules_task(content_text, rules))

    def _model_for(self, role: Role) -> str:
        """The rules on the rules model; other roles on the main model."""
        return self.rules_model if role == "rules" else self.model

    # ------------------------------------------------------------------ wire format

    def _usage(self, raw: Any) -> Usage:
        """DeepSeek's usage (its prompt_cache_hit_tokens count the cached input)."""
        return usage_from_deepseek(raw)

    def _check_prompt(self, prompt: str) -> None:
        """JSON mode needs the word 'json' in the prompt (the API answers 400 otherwise)."""
        if "json" not in prompt.lower():
            raise ValueError("a DeepSeek JSON-mode prompt must contain the word 'json'")

    def _body(self, prompt: str, model: str, schema: dict[str, Any] | None) -> dict[str, Any]:
        """One user message in JSON mode."""
        return {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "response_format": {"type": "json_object"},
            "stream": False,
        }
