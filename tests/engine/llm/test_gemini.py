"""GeminiClient against FakeGemini over real HTTP: format, costs, retries, failures, breaker."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.engine.llm.conftest import FakeClock, Sleeps, make_payload
from tests.fakes.llm import FakeGemini, llm_settings, valid_gemini_analysis
from virtuna.engine.baseline import CalibrationBaseline
from virtuna.engine.llm import (
    FACTOR_NAMES,
    RETRY_INSTRUCTION,
    CircuitBreaker,
    GeminiAnalysis,
    GeminiClient,
    UnknownModelError,
    cost_cents,
)
from virtuna.engine.llm.pricing import Usage
from virtuna.engine.schema import ContentPayload


def client(fake: FakeGemini, sleeps: Sleeps, **overrides: Any) -> GeminiClient:
    """A GeminiClient on the fake with recorded sleeps and a short timeout."""
    breaker = overrides.pop("breaker", None)
    return GeminiClient(llm_settings(gemini=fake, **overrides), breaker=breaker, sleep=sleeps)


USAGE = {
    "promptTokenCount": 1500,
    "candidatesTokenCount": 400,
    "thoughtsTokenCount": 600,
    "totalTokenCount": 2500,
}


async def test_success_request_format_and_cost(
    fake_gemini: FakeGemini, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    fake_gemini.ok(valid_gemini_analysis(score=7.25), usage=USAGE)
    gemini = client(fake_gemini, sleeps)
    reply = await gemini.analyze_content(payload, baseline)
    await gemini.aclose()

    assert reply.status == "ok" and reply.ok and reply.warning is None
    assert isinstance(reply.value, GeminiAnalysis)
    assert [f.name for f in reply.value.factors] == list(FACTOR_NAMES)
    assert reply.value.factors[0].score == 7.2  # one decimal
    assert (reply.provider, reply.model) == ("gemini", "gemini-2.5-flash")
    # At today's list price: (1500 * 0.30 + (400 + 600) * 2.50) / 1e6 USD = 0.295 cents, exact
    assert reply.cost_cents == Decimal("0.295")
    [call] = reply.calls
    assert call.status == "ok" and call.attempt == 1 and not call.usage_missing
    assert call.usage == Usage(1500, 0, 400, 600)
    assert sleeps == []

    [sent] = fake_gemini.requests
    assert sent.method == "POST"
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == fake_gemini.api_key
    assert fake_gemini.api_key not in sent.path
    config = sent.json["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    schema = config["responseSchema"]
    assert schema["properties"]["factors"]["items"]["properties"]["name"]["enum"] == list(
        FACTOR_NAMES
    )
    assert sent.json["contents"][0]["role"] == "user"


async def test_prompt_quotes_the_baseline_and_the_niche(
    fake_gemini: FakeGemini, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    gemini = client(fake_gemini, sleeps)
    await gemini.analyze_content(payload, baseline)
    await gemini.aclose()
    [prompt] = fake_gemini.prompts
    for name in FACTOR_NAMES:
        assert f'"{name}"' in prompt
    assert "7,321 analysed TikTok videos" in prompt
    assert "1.83%" in prompt  # share-rate p90
    assert "23.97%" in prompt  # weighted-engagement p90
    assert "12-34 s" in prompt  # duration sweet spot
    # the top 3 differentiators by |difference|, not the others
    assert "share_rate" in prompt and "comment_rate" in prompt and "save_rate" in prompt
    assert "like_rate" not in prompt and "caption_length" not in prompt
    assert "home cooking niche" in prompt
    assert payload.content_text in prompt


async def test_fenced_json_is_accepted(
    fake_gemini: FakeGemini, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    fake_gemini.fenced(valid_gemini_analysis())
    gemini = client(fake_gemini, sleeps)
    reply = await gemini.analyze_content(payload, baseline)
    await gemini.aclose()
    assert reply.ok and len(reply.calls) == 1


async def test_blank_reply_is_retried_with_the_instruction(
    fake_gemini: FakeGemini, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    fake_gemini.blank()
    gemini = client(fake_gemini, sleeps)
    reply = await gemini.analyze_content(payload, baseline)
    await gemini.aclose()
    assert reply.ok
    assert [c.status for c in reply.calls] == ["invalid", "ok"]
    assert "blank" in (reply.calls[0].error or "")
    first, second = fake_gemini.prompts
    assert not first.startswith(RETRY_INSTRUCTION)
    assert second.startswith(RETRY_INSTRUCTION)
    assert second.endswith(first)
    assert sleeps == []  # invalid replies are retried at once
    # the invalid attempt cost money too (the fake bills its prompt and thinking tokens)
    assert reply.calls[0].cost_cents > 0
    assert reply.cost_cents == reply.calls[0].cost_cents + reply.calls[1].cost_cents


@pytest.mark.parametrize(
    "bad",
    [
        {**valid_gemini_analysis(), "factors": valid_gemini_analysis()["factors"][:4]},
        valid_gemini_analysis(score=11),
        "Sure! Here is my analysis: the hook is great.",
    ],
    ids=["four-factors", "score-11", "prose"],
)
async def test_schema_violation_is_invalid_then_retried(
    fake_gemini: FakeGemini,
    sleeps: Sleeps,
    payload: ContentPayload,
    baseline: CalibrationBaseline,
    bad: Any,
) -> None:
    fake_gemini.invalid(bad)
    gemini = client(fake_gemini, sleeps)
    reply = await gemini.analyze_content(payload, baseline)
    await gemini.aclose()
    assert reply.ok
    assert [c.status for c in reply.calls] == ["invalid", "ok"]
    assert fake_gemini.prompts[1].startswith(RETRY_INSTRUCTION)


async def test_invalid_reply_names_the_failing_fields(
    fake_gemini: FakeGemini, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    fake_gemini.invalid(valid_gemini_analysis(score=11), times=3)
    gemini = client(fake_gemini, sleeps)
    reply = await gemini.analyze_content(payload, baseline)
    await gemini.aclose()
    assert reply.status == "failed" and reply.value is None
    assert "factors.0.score" in (reply.warning or "")
    assert "invalid after 3 attempts" in (reply.warning or "")
    assert [c.status for c in reply.calls] == ["invalid"] * 3


async def test_429_then_success_backs_off(
    fake_gemini: FakeGemini, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    fake_gemini.status(429, "Resource has been exhausted (e.g. check quota).")
    gemini = client(fake_gemini, sleeps)
    reply = await gemini.analyze_content(payload, baseline)
    await gemini.aclose()
    assert reply.ok
    assert [c.status for c in reply.calls] == ["error", "ok"]
    assert "429 RESOURCE_EXHAUSTED" in (reply.calls[0].error or "")
    assert sleeps == [1.0]
    assert fake_gemini.prompts[0] == fake_gemini.prompts[1]  # the same prompt, no nudge


async def test_an_invalid_reply_then_a_500_waits_the_first_backoff_step(
    fake_gemini: FakeGemini, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    fake_gemini.blank().status(500, "An internal error has occurred.")
    gemini = client(fake_gemini, sleeps)
    reply = await gemini.analyze_content(payload, baseline)
    await gemini.aclose()
    assert reply.ok
    assert [c.status for c in reply.calls] == ["invalid", "error", "ok"]
    assert [c.attempt for c in reply.calls] == [1, 2, 3]
    assert sleeps == [1.0]  # the invalid reply was retried at once and does not count
    first, second, third = fake_gemini.prompts
    assert second.startswith(RETRY_INSTRUCTION) and third == first  # no nudge after a 500


async def test_three_500s_give_a_failed_reply_not_an_exception(
    fake_gemini: FakeGemini, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    fake_gemini.status(500, "An internal error has occurred.", times=3)
    gemini = client(fake_gemini, sleeps)
    reply = await gemini.analyze_content(payload, baseline)
    await gemini.aclose()
    assert reply.status == "failed" and reply.value is None
    assert reply.warning is not None
    assert "failed after 3 attempts" in reply.warning and "500 INTERNAL" in reply.warning
    assert sleeps == [1.0, 3.0]
    assert reply.cost_cents == 0
    assert not reply.usage_missing  # an error answer bills nothing
    assert gemini.breaker.failures == 1  # one request, one failure


async def test_timeout_gives_a_failed_reply(
    fake_gemini: FakeGemini, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    fake_gemini.delay(3, times=3)
    gemini = client(fake_gemini, sleeps, gemini_timeout_s=0.2)
    reply = await gemini.analyze_content(payload, baseline)
    await gemini.aclose()
    assert reply.status == "failed"
    assert [c.status for c in reply.calls] == ["timeout"]  # a timeout is not retried
    assert "timed out after 0.2 s" in (reply.warning or "")
    assert all(c.latency_ms < 1500 for c in reply.calls)
    assert reply.usage_missing  # a timed-out request may still have been billed


async def test_missing_usage_is_flagged_and_costs_zero(
    fake_gemini: FakeGemini, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    fake_gemini.ok(valid_gemini_analysis(), omit_usage=True)
    gemini = client(fake_gemini, sleeps)
    reply = await gemini.analyze_content(payload, baseline)
    await gemini.aclose()
    assert reply.ok
    assert reply.usage_missing and reply.calls[0].usage_missing
    assert reply.cost_cents == Decimal(0)


async def test_not_configured_sends_nothing(
    fake_gemini: FakeGemini, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    settings = llm_settings(gemini=fake_gemini, gemini_api_key=None)
    gemini = GeminiClient(settings, sleep=sleeps)
    reply = await gemini.analyze_content(payload, baseline)
    await gemini.aclose()
    assert reply.status == "not-configured" and reply.value is None
    assert reply.warning == "Gemini not configured (GEMINI_API_KEY)"
    assert fake_gemini.requests == []
    assert gemini.breaker.failures == 0


async def test_wrong_key_fails_clearly_without_retries(
    fake_gemini: FakeGemini, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    gemini = client(fake_gemini, sleeps, gemini_api_key="AIza-wrong-key")
    reply = await gemini.analyze_content(payload, baseline)
    await gemini.aclose()
    assert reply.status == "failed"
    assert reply.warning is not None
    assert "rejected the API key (GEMINI_API_KEY)" in reply.warning
    assert "API key not valid" in reply.warning
    assert len(fake_gemini.requests) == 1  # 4xx: no retry
    assert gemini.breaker.failures == 1  # the provider is unusable: it counts


async def test_bad_request_is_not_retried_nor_a_breaker_failure(
    fake_gemini: FakeGemini, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    fake_gemini.status(400, "Invalid JSON payload received.")
    gemini = client(fake_gemini, sleeps)
    reply = await gemini.analyze_content(payload, baseline)
    await gemini.aclose()
    assert reply.status == "failed"
    assert len(fake_gemini.requests) == 1
    assert gemini.breaker.failures == 0


async def test_generate_json_sends_no_schema(fake_gemini: FakeGemini, sleeps: Sleeps) -> None:
    fake_gemini.ok(valid_gemini_analysis())
    gemini = client(fake_gemini, sleeps)
    reply = await gemini.generate_json("Answer in JSON.", GeminiAnalysis, purpose="test")
    await gemini.aclose()
    assert reply.ok
    config = fake_gemini.requests[0].json["generationConfig"]
    assert config == {"responseMimeType": "application/json"}


async def test_open_circuit_refuses_then_one_probe_for_fifty_callers(
    fake_gemini: FakeGemini, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("gemini", clock=clock)
    fake_gemini.status(503, "The model is overloaded.", times=3)
    gemini = client(fake_gemini, sleeps, breaker=breaker, llm_max_retries=0)
    for _ in range(3):
        assert (await gemini.analyze_content(payload, baseline)).status == "failed"
    assert breaker.state == "open"

    refused = await gemini.analyze_content(payload, baseline)
    assert refused.status == "circuit-open" and refused.calls == []
    assert "circuit breaker open" in (refused.warning or "")
    assert fake_gemini.served == 3

    clock.advance(1.0)
    fake_gemini.latency = 0.1  # the probe stays in flight while the others arrive
    replies = await asyncio.gather(*(gemini.analyze_content(payload, baseline) for _ in range(50)))
    await gemini.aclose()
    assert fake_gemini.served == 4  # exactly one of the 50 reached the provider
    assert sum(r.status == "ok" for r in replies) == 1
    assert sum(r.status == "circuit-open" for r in replies) == 49
    assert breaker.state == "closed"


async def test_factor_names_are_canonicalised(
    fake_gemini: FakeGemini, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    reply_body = valid_gemini_analysis()
    reply_body["factors"] = list(reversed(reply_body["factors"]))
    reply_body["factors"][0]["name"] = "emotional  charge"
    fake_gemini.ok(json.dumps(reply_body))
    gemini = client(fake_gemini, sleeps)
    reply = await gemini.analyze_content(payload, baseline)
    await gemini.aclose()
    assert reply.value is not None
    assert [f.name for f in reply.value.factors] == list(FACTOR_NAMES)


async def test_prompt_without_niche_or_measured_baseline(
    fake_gemini: FakeGemini, sleeps: Sleeps
) -> None:
    from virtuna.engine.baseline import FALLBACK_BASELINE

    gemini = client(fake_gemini, sleeps)
    await gemini.analyze_content(make_payload(niche=None), FALLBACK_BASELINE)
    await gemini.aclose()
    [prompt] = fake_gemini.prompts
    assert "niche" not in prompt.lower().split("draft:")[1]
    assert "reference values" in prompt
    assert "no differentiators measured" in prompt


def test_unpriced_model_fails_at_construction(fake_gemini: FakeGemini) -> None:
    settings = llm_settings(gemini=fake_gemini, gemini_model="gemini-9-ultra")
    with pytest.raises(UnknownModelError, match="gemini-9-ultra"):
        GeminiClient(settings)
    # without a key the model is never used, so it need not be priced
    GeminiClient(llm_settings(gemini_model="gemini-9-ultra"))


def test_cost_helper_matches_the_client() -> None:
    usage = Usage(1500, 0, 400, 600)
    assert cost_cents("gemini", "gemini-2.5-flash", usage) == Decimal("0.295")


async def test_blocked_prompt_is_not_retried(
    sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    sent: list[httpx.Request] = []

    def blocked(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(
            200,
            json={
                "promptFeedback": {"blockReason": "SAFETY"},
                "usageMetadata": {"promptTokenCount": 900, "totalTokenCount": 900},
            },
        )

    http = httpx.AsyncClient(transport=httpx.MockTransport(blocked))
    settings = llm_settings(gemini_api_key="k", gemini_base_url="https://gemini.test")
    reply = await GeminiClient(settings, http=http, sleep=sleeps).analyze_content(payload, baseline)
    await http.aclose()
    assert reply.status == "failed" and len(sent) == 1
    assert "prompt blocked: SAFETY" in (reply.warning or "")
    assert reply.cost_cents == Decimal(900) * Decimal("0.30") / 10_000  # the prompt is billed
