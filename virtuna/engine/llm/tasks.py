"""The three roles' tasks, built once whichever provider answers them.

A task holds the prompt, the reply model and the purpose recorded in `llm_calls`; each
provider adds its own model, response schema and timeout when it runs one (`ProviderClient.run`).
"""

from __future__ import annotations

from decimal import Decimal

from virtuna.engine.baseline import CalibrationBaseline
from virtuna.engine.llm.base import LLMReply, Task
from virtuna.engine.llm.prompts import content_analysis_prompt, reasoning_prompt, rules_prompt
from virtuna.engine.llm.schemas import DeepSeekReasoning, GeminiAnalysis, RuleEvaluations
from virtuna.engine.schema import ContentPayload

__all__ = [
    "ANALYSIS_SOFT_CAP_CENTS",
    "REASONING_SOFT_CAP_CENTS",
    "content_task",
    "no_rules",
    "reasoning_task",
    "rules_task",
]

ANALYSIS_SOFT_CAP_CENTS = Decimal("0.5")  # warn-only, as the original
REASONING_SOFT_CAP_CENTS = Decimal("1.0")  # warn-only, as the original


def content_task(payload: ContentPayload, baseline: CalibrationBaseline) -> Task[GeminiAnalysis]:
    """Score the draft on the 5 content factors."""
    return Task(
        "content",
        content_analysis_prompt(payload, baseline),
        GeminiAnalysis,
        "content-analysis",
        ANALYSIS_SOFT_CAP_CENTS,
    )


def reasoning_task(
    payload: ContentPayload,
    *,
    gemini: GeminiAnalysis | None,
    rule_names: list[str],
    trend_context: str,
    creator_context: str,
    baseline: CalibrationBaseline,
) -> Task[DeepSeekReasoning]:
    """Predict behaviour with the 5-step prompt, seeing the trend and creator context."""
    prompt = reasoning_prompt(
        payload,
        gemini=gemini,
        rule_names=rule_names,
        trend_context=trend_context,
        creator_context=creator_context,
        baseline=baseline,
    )
    return Task(
        "reasoning", prompt, DeepSeekReasoning, "behavioral-reasoning", REASONING_SOFT_CAP_CENTS
    )


def rules_task(content_text: str, rules: list[tuple[str, str]]) -> Task[RuleEvaluations]:
    """Score every (name, evaluation_prompt) rule in one request."""
    return Task("rules", rules_prompt(content_text, rules), RuleEvaluations, "rule-evaluation")


def no_rules(provider: str, model: str) -> LLMReply[RuleEvaluations]:
    """The answer to an empty rule list, given without any request."""
    return LLMReply(RuleEvaluations(evaluations=[]), provider, model, "ok")
