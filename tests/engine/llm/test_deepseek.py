"""DeepSeekClient against FakeDeepSeek (and FakeGemini as the next provider of its fallback
chain) over real HTTP."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.engine.llm.conftest import FakeClock, Sleeps
from tests.fakes.llm import (
    FakeDeepSeek,
    FakeGemini,
    llm_settings,
    valid_deepseek_reasoning,
    valid_gemini_analysis,
)
from virtuna.engine.baseline import CalibrationBaseline
from virtuna.engine.llm import (
    RETRY_INSTRUCTION,
    CircuitBreaker,
    DeepSeekClient,
    DeepSeekReasoning,
    FallbackChain,
    GeminiAnalysis,
    GeminiClient,
    LLMReply,
)
from virtuna.engine.llm.pricing import Usage
from virtuna.engine.llm.tasks import reasoning_task
from virtuna.engine.schema import ContentPayload

TREND_CONTEXT = "Trending now: #pastatok up 240% this week; sound 'Pasta La Vista' in 1.2k videos."
CREATOR_CONTEXT = "Creator chef_ana: 12k followers, median 8.1k views, posts 4x a week."
RULES = ["Question Hook", "Payoff Delay"]


def clients(
    deepseek: FakeDeepSeek | None,
    gemini: FakeGemini | None,
    sleeps: Sleeps,
    *,
    breaker: CircuitBreaker | None = None,
    **overrides: Any,
) -> tuple[DeepSeekClient, GeminiClient]:
    """A DeepSeek client and a Gemini client (its fallback when chained), both on the fakes."""
    settings = llm_settings(gemini=gemini, deepseek=deepseek, **overrides)
    backup = GeminiClient(settings, sleep=sleeps)
    return DeepSeekClient(settings, breaker=breaker, sleep=sleeps), backup


async def reason(
    client: DeepSeekClient,
    payload: ContentPayload,
    baseline: CalibrationBaseline,
    gemini: GeminiAnalysis | None = None,
    *,
    backup: GeminiClient | None = None,
) -> LLMReply[DeepSeekReasoning]:
    """The reasoning with the test contexts: DeepSeek alone, or chained to backup."""
    task = reasoning_task(
        payload,
        gemini=gemini,
        rule_names=RULES,
        trend_context=TREND_CONTEXT,
        creator_context=CREATOR_CONTEXT,
        baseline=baseline,
    )
    if backup is None:
        return await client.run(task)
    return await FallbackChain("reasoning", [client, backup]).run(task)


async def test_success_request_format_and_cost(
    fake_deepseek: FakeDeepSeek,
    sleeps: Sleeps,
    payload: ContentPayload,
    baseline: CalibrationBaseline,
) -> None:
    usage = {
        "prompt_tokens": 3000,
        "completion_tokens": 2100,
        "total_tokens": 5100,
        "prompt_cache_hit_tokens": 1000,
        "prompt_cache_miss_tokens": 2000,
        "completion_tokens_details": {"reasoning_tokens": 1600},
    }
    fake_deepseek.ok(valid_deepseek_reasoning(), usage=usage)
    deepseek, backup = clients(fake_deepseek, None, sleeps)
    reply = await reason(deepseek, payload, baseline)
    await deepseek.aclose()
    await backup.aclose()

    assert reply.ok and not reply.fallback_used and reply.warning is None
    assert (reply.provider, reply.model) == ("deepseek", "deepseek-reasoner")
    assert isinstance(reply.value, DeepSeekReasoning)
    assert reply.value.component_scores.hook_effectiveness == 7.0
    assert reply.calls[0].usage == Usage(3000, 1000, 500, 1600)
    # (2000 * 0.28 + 1000 * 0.028 + 2100 * 0.42) / 1e6 USD in cents
    assert reply.cost_cents == Decimal("0.147")

    [sent] = fake_deepseek.requests
    assert sent.path == "/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {fake_deepseek.api_key}"
    assert sent.json["model"] == "deepseek-reasoner"
    assert sent.json["response_format"] == {"type": "json_object"}
    assert sent.json["stream"] is False
    assert [m["role"] for m in sent.json["messages"]] == ["user"]


async def test_prompt_has_json_trends_creator_rules_and_no_gemini_scores(
    fake_deepseek: FakeDeepSeek,
    sleeps: Sleeps,
    payload: ContentPayload,
    baseline: CalibrationBaseline,
) -> None:
    analysis = GeminiAnalysis.model_validate(valid_gemini_analysis(score=8.7))
    deepseek, backup = clients(fake_deepseek, None, sleeps)
    await reason(deepseek, payload, baseline, gemini=analysis)
    await deepseek.aclose()
    await backup.aclose()
    [prompt] = fake_deepseek.prompts
    assert "json" in prompt.lower()
    assert TREND_CONTEXT in prompt
    assert CREATOR_CONTEXT in prompt
    assert "- Question Hook" in prompt and "- Payoff Delay" in prompt
    assert analysis.factors[0].rationale in prompt
    assert analysis.overall_impression in prompt
    assert "8.7" not in prompt  # qualitative only: no anchoring on Gemini's scores
    assert "p50 0.28%, p75 0.74%, p90 1.83%" in prompt  # share-rate percentiles
    assert "like_rate" in prompt and "caption_length" not in prompt  # top 5 differentiators


async def test_failure_falls_back_to_gemini(
    fake_deepseek: FakeDeepSeek,
    fake_gemini: FakeGemini,
    sleeps: Sleeps,
    payload: ContentPayload,
    baseline: CalibrationBaseline,
) -> None:
    fake_deepseek.status(503, "Server overloaded, please try again later.", times=3)
    deepseek, backup = clients(fake_deepseek, fake_gemini, sleeps)
    reply = await reason(deepseek, payload, baseline, backup=backup)
    await deepseek.aclose()
    await backup.aclose()

    assert reply.status == "ok" and reply.fallback_used
    assert (reply.provider, reply.model) == ("gemini", "gemini-2.5-flash")
    assert isinstance(reply.value, DeepSeekReasoning)
    assert reply.warning is not None
    assert "DeepSeek request failed after 3 attempts" in reply.warning
    assert "503" in reply.warning and "Gemini fallback" in reply.warning
    assert [c.provider for c in reply.calls] == ["deepseek"] * 3 + ["gemini"]
    assert reply.cost_cents == sum(c.cost_cents for c in reply.calls) > 0
    # the same prompt went to Gemini, without a response schema
    [fallback] = fake_gemini.requests
    assert fake_gemini.prompts[0] == fake_deepseek.prompts[0]
    assert "responseSchema" not in fallback.json["generationConfig"]


async def test_invalid_replies_retry_with_the_instruction_then_fall_back(
    fake_deepseek: FakeDeepSeek,
    fake_gemini: FakeGemini,
    sleeps: Sleeps,
    payload: ContentPayload,
    baseline: CalibrationBaseline,
) -> None:
    fake_deepseek.blank().invalid().fenced("{not json")
    deepseek, backup = clients(fake_deepseek, fake_gemini, sleeps)
    reply = await reason(deepseek, payload, baseline, backup=backup)
    await deepseek.aclose()
    await backup.aclose()
    assert reply.ok and reply.fallback_used
    assert [c.status for c in reply.calls] == ["invalid", "invalid", "invalid", "ok"]
    first, second, third = fake_deepseek.prompts
    assert not first.startswith(RETRY_INSTRUCTION)
    assert second.startswith(RETRY_INSTRUCTION) and third.startswith(RETRY_INSTRUCTION)
    # each nudge names the previous problem
    assert "blank" in second.split("\n\n")[0]
    assert "component_scores" in third.split("\n\n")[0]
    assert "reply invalid after 3 attempts" in (reply.warning or "")
    assert sleeps == []


async def test_timeout_falls_back_to_gemini(
    fake_deepseek: FakeDeepSeek,
    fake_gemini: FakeGemini,
    sleeps: Sleeps,
    payload: ContentPayload,
    baseline: CalibrationBaseline,
) -> None:
    fake_deepseek.delay(3, times=3)
    deepseek, backup = clients(
        fake_deepseek, fake_gemini, sleeps, deepseek_timeout_s=0.2, llm_max_retries=1
    )
    reply = await reason(deepseek, payload, baseline, backup=backup)
    await deepseek.aclose()
    await backup.aclose()
    assert reply.ok and reply.fallback_used and reply.provider == "gemini"
    assert [c.status for c in reply.calls] == ["timeout", "ok"]  # no retry: straight to Gemini
    assert "timed out after 0.2 s" in (reply.warning or "")


async def test_open_circuit_falls_back_to_gemini(
    fake_deepseek: FakeDeepSeek,
    fake_gemini: FakeGemini,
    sleeps: Sleeps,
    payload: ContentPayload,
    baseline: CalibrationBaseline,
) -> None:
    breaker = CircuitBreaker("deepseek", clock=FakeClock())
    fake_deepseek.status(500, "Internal server error", times=3)
    deepseek, backup = clients(
        fake_deepseek, fake_gemini, sleeps, breaker=breaker, llm_max_retries=0
    )
    for _ in range(3):
        assert (await reason(deepseek, payload, baseline, backup=backup)).fallback_used
    assert breaker.state == "open"
    served = fake_deepseek.served

    reply = await reason(deepseek, payload, baseline, backup=backup)
    await deepseek.aclose()
    await backup.aclose()
    assert fake_deepseek.served == served  # DeepSeek was not called
    assert reply.ok and reply.fallback_used and reply.provider == "gemini"
    assert "DeepSeek circuit breaker open" in (reply.warning or "")


async def test_both_failing_gives_failed_none_and_no_exception(
    fake_deepseek: FakeDeepSeek,
    fake_gemini: FakeGemini,
    sleeps: Sleeps,
    payload: ContentPayload,
    baseline: CalibrationBaseline,
) -> None:
    fake_deepseek.status(500, "Internal server error", times=3)
    fake_gemini.status(500, "An internal error has occurred.", times=3)
    deepseek, backup = clients(fake_deepseek, fake_gemini, sleeps)
    reply = await reason(deepseek, payload, baseline, backup=backup)
    await deepseek.aclose()
    await backup.aclose()
    assert reply.status == "failed" and reply.value is None and not reply.fallback_used
    assert reply.provider == "deepseek"
    assert "Gemini fallback failed too" in (reply.warning or "")
    assert len(reply.calls) == 6


async def test_failure_without_gemini_configured(
    fake_deepseek: FakeDeepSeek,
    sleeps: Sleeps,
    payload: ContentPayload,
    baseline: CalibrationBaseline,
) -> None:
    fake_deepseek.status(402, "Insufficient Balance")
    deepseek, backup = clients(fake_deepseek, None, sleeps)
    reply = await reason(deepseek, payload, baseline, backup=backup)
    await deepseek.aclose()
    await backup.aclose()
    assert reply.status == "failed" and reply.value is None
    assert "402" in (reply.warning or "") and "GEMINI_API_KEY not configured" in (
        reply.warning or ""
    )
    assert len(fake_deepseek.requests) == 1  # 402 is not retried


async def test_not_configured_is_skipped_and_says_so(
    fake_gemini: FakeGemini,
    sleeps: Sleeps,
    payload: ContentPayload,
    baseline: CalibrationBaseline,
) -> None:
    deepseek, backup = clients(None, fake_gemini, sleeps)
    alone = await reason(deepseek, payload, baseline)
    assert alone.status == "not-configured" and alone.value is None and alone.calls == []
    assert alone.warning == "DeepSeek not configured (DEEPSEEK_API_KEY)"
    assert fake_gemini.requests == []
    chained = await reason(deepseek, payload, baseline, backup=backup)
    await deepseek.aclose()
    await backup.aclose()
    assert chained.ok and chained.provider == "gemini" and chained.fallback_used
    assert chained.warning == (
        "DeepSeek not configured (DEEPSEEK_API_KEY); "
        "answered by the Gemini fallback (gemini-2.5-flash)"
    )


async def test_wrong_key_is_reported(
    fake_deepseek: FakeDeepSeek,
    sleeps: Sleeps,
    payload: ContentPayload,
    baseline: CalibrationBaseline,
) -> None:
    deepseek, backup = clients(fake_deepseek, None, sleeps, deepseek_api_key="sk-wrong-0000")
    reply = await reason(deepseek, payload, baseline)
    await deepseek.aclose()
    await backup.aclose()
    assert reply.status == "failed"
    assert "rejected the API key (DEEPSEEK_API_KEY)" in (reply.warning or "")
    assert "****0000" in (reply.warning or "")


async def test_evaluate_rules_is_one_batched_request(
    fake_deepseek: FakeDeepSeek, sleeps: Sleeps
) -> None:
    rules = [
        ("Loop Structure", "Evaluate if the content loops back to its start; 10 means seamless."),
        ("Emotional Arc", "Evaluate the emotional escalation; 10 means a strong arc."),
        ("Content Pacing", "Evaluate the pacing; 10 means no dead air."),
    ]
    deepseek, backup = clients(fake_deepseek, None, sleeps)
    reply = await deepseek.evaluate_rules("Wait for it... the pasta trick #cooking", rules)
    await deepseek.aclose()
    await backup.aclose()

    assert reply.ok and reply.model == "deepseek-chat"
    assert reply.value is not None
    assert set(reply.value.by_name()) == {"loop structure", "emotional arc", "content pacing"}
    [sent] = fake_deepseek.requests
    assert sent.json["model"] == "deepseek-chat"
    assert sent.json["response_format"] == {"type": "json_object"}
    prompt = fake_deepseek.prompts[0]
    for i, (name, evaluation_prompt) in enumerate(rules, 1):
        assert f"{i}. {name}: {evaluation_prompt}" in prompt
    assert '"evaluations"' in prompt
    # deepseek-chat has no reasoning tokens: output only
    assert reply.calls[0].usage.thinking_tokens == 0


async def test_evaluate_rules_alone_has_no_fallback(
    fake_deepseek: FakeDeepSeek, fake_gemini: FakeGemini, sleeps: Sleeps
) -> None:
    fake_deepseek.status(500, "Internal server error", times=3)
    deepseek, backup = clients(fake_deepseek, fake_gemini, sleeps)
    reply = await deepseek.evaluate_rules("text", [("Loop Structure", "Evaluate loops.")])
    await deepseek.aclose()
    await backup.aclose()
    assert reply.status == "failed" and not reply.fallback_used
    assert fake_gemini.requests == []


async def test_evaluate_rules_uses_the_short_timeout(
    fake_deepseek: FakeDeepSeek, sleeps: Sleeps
) -> None:
    fake_deepseek.delay(3, times=3)
    settings = llm_settings(deepseek=fake_deepseek, llm_max_retries=0)
    deepseek = DeepSeekClient(settings, sleep=sleeps, rules_timeout_s=0.2)
    reply = await deepseek.evaluate_rules("text", [("Loop Structure", "Evaluate loops.")])
    await deepseek.aclose()
    assert reply.status == "failed"
    assert "timed out after 0.2 s" in (reply.warning or "")


async def test_evaluate_rules_with_no_rules_sends_nothing(
    fake_deepseek: FakeDeepSeek, sleeps: Sleeps
) -> None:
    deepseek, backup = clients(fake_deepseek, None, sleeps)
    reply = await deepseek.evaluate_rules("text", [])
    await deepseek.aclose()
    await backup.aclose()
    assert reply.ok and reply.value is not None and reply.value.evaluations == []
    assert fake_deepseek.requests == []
