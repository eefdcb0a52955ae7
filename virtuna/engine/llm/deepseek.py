"""DeepSeek over its OpenAI-compatible REST API: the 5-step behavioural reasoning (with a
Gemini fallback) and the batched semantic-rule evaluation.

Fixes against the original: a timeout or an OPEN circuit falls back to Gemini too (the
original returned nothing), the fallback reply names the provider and model that actually
answered, one request is one breaker failure, and DeepSeek sees the real trend context.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx

from virtuna.config import Settings
from virtuna.engine.baseline import CalibrationBaseline
from virtuna.engine.llm.base import (
    Extracted,
    LLMReply,
    ProviderClient,
    ProviderError,
    Sleep,
)
from virtuna.engine.llm.breaker import CircuitBreaker
from virtuna.engine.llm.gemini import GeminiClient
from virtuna.engine.llm.pricing import deepseek_usage_missing, usage_from_deepseek
from virtuna.engine.llm.prompts import reasoning_prompt, rules_prompt
from virtuna.engine.llm.schemas import DeepSeekReasoning, GeminiAnalysis, RuleEvaluations
from virtuna.engine.schema import ContentPayload
from virtuna.log import get_logger

__all__ = ["RULES_TIMEOUT_S", "DeepSeekClient"]

RULES_TIMEOUT_S = 15.0
REASONING_SOFT_CAP_CENTS = Decimal("1.0")  # warn-only, as the original

log = get_logger(__name__)


class DeepSeekClient(ProviderClient):
    """DeepSeek's chat/completions endpoint (JSON mode) behind a circuit breaker."""

    provider = "deepseek"
    label = "DeepSeek"
    key_variable = "DEEPSEEK_API_KEY"

    def __init__(
        self,
        settings: Settings,
        *,
        http: httpx.AsyncClient | None = None,
        breaker: CircuitBreaker | None = None,
        gemini: GeminiClient | None = None,
        sleep: Sleep = asyncio.sleep,
        rules_timeout_s: float = RULES_TIMEOUT_S,
    ) -> None:
        """A client from settings; gemini (optional) answers when DeepSeek fails."""
        key = settings.deepseek_api_key.get_secret_value() if settings.deepseek_api_key else None
        super().__init__(
            api_key=key,
            base_url=settings.deepseek_base_url,
            timeout_s=settings.deepseek_timeout_s,
            max_retries=settings.llm_max_retries,
            http=http,
            breaker=breaker
            or CircuitBreaker(
                "deepseek",
                failure_threshold=settings.breaker_failure_threshold,
                backoff_s=settings.breaker_backoff(),
            ),
            sleep=sleep,
            secret_values=settings.secret_values(),
        )
        self.model = settings.deepseek_model
        self.rules_model = settings.deepseek_rules_model
        self.rules_timeout_s = min(rules_timeout_s, settings.deepseek_timeout_s)
        self.gemini = gemini
        self._check_priced(self.model, self.rules_model)

    async def reason(
        self,
        payload: ContentPayload,
        *,
        gemini: GeminiAnalysis | None,
        rule_names: list[str],
        trend_context: str,
        creator_context: str,
        baseline: CalibrationBaseline,
    ) -> LLMReply[DeepSeekReasoning]:
        """Behavioural predictions via the 5-step prompt; Gemini answers if DeepSeek fails."""
        prompt = reasoning_prompt(
            payload,
            gemini=gemini,
            rule_names=rule_names,
            trend_context=trend_context,
            creator_context=creator_context,
            baseline=baseline,
        )
        reply = await self.request(
            prompt,
            DeepSeekReasoning,
            model=self.model,
            purpose="behavioral-reasoning",
            soft_cap_cents=REASONING_SOFT_CAP_CENTS,
        )
        if reply.status in ("ok", "not-configured"):
            return reply
        return await self._fallback(prompt, reply)

    async def _fallback(
        self, prompt: str, failed: LLMReply[DeepSeekReasoning]
    ) -> LLMReply[DeepSeekReasoning]:
        """Send the same prompt to Gemini and parse it with the same schema."""
        why = failed.warning or f"DeepSeek {failed.status}"
        if self.gemini is None or not self.gemini.configured:
            failed.warning = f"{why}; no Gemini fallback (GEMINI_API_KEY not configured)"
            return failed
        backup = await self.gemini.generate_json(
            prompt, DeepSeekReasoning, purpose="deepseek-fallback"
        )
        calls = failed.calls + backup.calls
        cost = failed.cost_cents + backup.cost_cents
        if backup.ok:
            log.info("deepseek fallback used", reason=why, gemini_model=backup.model)
            return LLMReply(
                value=backup.value,
                provider=backup.provider,
                model=backup.model,
                status="ok",
                cost_cents=cost,
                warning=f"{why}; answered by the Gemini fallback ({backup.model})",
                calls=calls,
                fallback_used=True,
            )
        return LLMReply(
            value=None,
            provider=failed.provider,
            model=failed.model,
            status=failed.status,
            cost_cents=cost,
            warning=f"{why}; Gemini fallback failed too: {backup.warning}",
            calls=calls,
        )

    async def evaluate_rules(
        self, content_text: str, rules: list[tuple[str, str]]
    ) -> LLMReply[RuleEvaluations]:
        """Score every (name, evaluation_prompt) rule in ONE request to the rules model."""
        if not rules:
            return LLMReply(RuleEvaluations(evaluations=[]), self.provider, self.rules_model, "ok")
        return await self.request(
            rules_prompt(content_text, rules),
            RuleEvaluations,
            model=self.rules_model,
            purpose="rule-evaluation",
            timeout_s=self.rules_timeout_s,
        )

    # ------------------------------------------------------------------ wire format

    def _url(self, model: str) -> str:
        """POST {base}/chat/completions."""
        return f"{self.base_url}/chat/completions"

    def _headers(self) -> dict[str, str]:
        """Bearer authentication."""
        return {
            "Authorization": f"Bearer {self._api_key or ''}",
            "Content-Type": "application/json",
        }

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

    def _extract(self, data: Any) -> Extracted:
        """choices[0].message.content (reasoning_content ignored) and usage."""
        data = data if isinstance(data, dict) else {}
        raw_usage = data.get("usage")
        usage, missing = usage_from_deepseek(raw_usage), deepseek_usage_missing(raw_usage)
        choices = data.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            return Extracted(None, usage, missing, "no choices")
        choice = choices[0]
        message = choice.get("message") or {}
        content = message.get("content") if isinstance(message, dict) else None
        finish = str(choice.get("finish_reason") or "")
        note = None if finish in ("stop", "") else f"finish_reason {finish}"
        return Extracted(content if isinstance(content, str) else None, usage, missing, note)

    def _error(self, response: httpx.Response) -> ProviderError:
        """{"error": {"message", "type", "code"}} as a ProviderError."""
        code = response.status_code
        message, kind = "", ""
        try:
            error = response.json().get("error") or {}
            message = str(error.get("message") or "")
            kind = str(error.get("type") or "")
        except (ValueError, AttributeError):
            message = response.text[:200]
        auth = code in (401, 403) or kind == "authentication_error"
        text = f"HTTP {code}" + (f" {kind}" if kind else "") + (f": {message}" if message else "")
        return ProviderError(
            text,
            kind="http",
            status_code=code,
            retryable=code == 429 or code >= 500,
            caller_fault=code in (400, 404, 413, 422) and not auth,
            auth=auth,
        )
