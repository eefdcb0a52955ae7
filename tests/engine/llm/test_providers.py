"""The Providers container and its role chains, one log line and breadcrumb per request,
stage costs."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import sentry_sdk
from structlog.testing import capture_logs

from tests.engine.llm.conftest import Sleeps, bare_reasoning_task
from tests.fakes.llm import (
    FakeDeepSeek,
    FakeGemini,
    llm_settings,
    valid_deepseek_reasoning,
    valid_gemini_analysis,
)
from virtuna.engine.baseline import CalibrationBaseline
from virtuna.engine.llm import DeepSeekReasoning, Providers
from virtuna.engine.llm.tasks import reasoning_task
from virtuna.engine.schema import ContentPayload
from virtuna.log import stage


async def test_from_settings_gives_each_provider_its_own_pool_and_breaker(
    fake_gemini: FakeGemini, fake_deepseek: FakeDeepSeek, sleeps: Sleeps
) -> None:
    providers = Providers.from_settings(llm_settings(fake_gemini, fake_deepseek), sleep=sleeps)
    # One pool per provider: a burst on one does not make the others' bookkeeping grow.
    assert [client._http for client in providers.clients] == list(providers.pools)
    assert len({id(pool) for pool in providers.pools}) == 4
    assert len({id(breaker) for breaker in providers.breakers}) == 4
    assert [b.name for b in providers.breakers] == ["gemini", "deepseek", "anthropic", "openai"]
    assert providers.gemini.breaker.failure_threshold == 3
    assert providers.deepseek.breaker.backoff_s == (1.0, 3.0, 9.0)
    assert {role: chain.providers for role, chain in providers.chains.items()} == {
        "content": ["gemini", "anthropic", "openai", "deepseek"],
        "reasoning": ["deepseek", "gemini", "anthropic", "openai"],
        "rules": ["deepseek", "gemini", "anthropic", "openai"],
    }
    # a chain holds the same clients (and so the same breakers) as the container
    assert providers.chains["reasoning"].clients[1] is providers.gemini
    await providers.aclose()
    assert all(pool.is_closed for pool in providers.pools)


async def test_orders_come_from_settings(sleeps: Sleeps) -> None:
    settings = llm_settings(llm_content_order="openai, Anthropic", llm_rules_order="gemini")
    async with Providers.from_settings(settings, sleep=sleeps) as providers:
        assert providers.chains["content"].providers == ["openai", "anthropic"]
        assert providers.chains["rules"].providers == ["gemini"]


async def test_breakers_come_from_settings_and_reset(
    fake_gemini: FakeGemini, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    settings = llm_settings(
        fake_gemini, breaker_failure_threshold=1, breaker_backoff_s="30", llm_max_retries=0
    )
    fake_gemini.status(500, "An internal error has occurred.")
    async with Providers.from_settings(settings, sleep=sleeps) as providers:
        assert (await providers.gemini.analyze_content(payload, baseline)).status == "failed"
        assert providers.gemini.breaker.state == "open"
        refused = await providers.gemini.analyze_content(payload, baseline)
        assert refused.status == "circuit-open"
        providers.reset_breakers()
        assert (await providers.gemini.analyze_content(payload, baseline)).ok


async def test_transport_is_used(payload: ContentPayload, baseline: CalibrationBaseline) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        text = json.dumps(valid_gemini_analysis())
        return httpx.Response(
            200,
            json={
                "candidates": [{"content": {"parts": [{"text": text}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5},
            },
        )

    settings = llm_settings(gemini_api_key="k", gemini_base_url="https://gemini.test")
    async with Providers.from_settings(settings, transport=httpx.MockTransport(handler)) as p:
        reply = await p.gemini.analyze_content(payload, baseline)
    assert reply.ok
    assert str(seen[0].url) == (
        "https://gemini.test/v1beta/models/gemini-2.5-flash:generateContent"
    )


async def test_one_log_line_and_breadcrumb_per_request(
    fake_gemini: FakeGemini,
    sleeps: Sleeps,
    payload: ContentPayload,
    baseline: CalibrationBaseline,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crumbs: list[dict[str, Any]] = []
    monkeypatch.setattr(sentry_sdk, "add_breadcrumb", lambda **crumb: crumbs.append(crumb))
    fake_gemini.blank()
    async with Providers.from_settings(llm_settings(fake_gemini), sleep=sleeps) as providers:
        with capture_logs() as logs:
            reply = await providers.gemini.analyze_content(payload, baseline)
    lines = [line for line in logs if line["event"] == "llm request"]
    assert len(lines) == 1  # one line for the request, whatever its attempts
    [line] = lines
    assert line["provider"] == "gemini" and line["model"] == "gemini-2.5-flash"
    assert line["purpose"] == "content-analysis" and line["status"] == "ok"
    assert line["attempts"] == 2
    assert line["cost_cents"] == float(reply.cost_cents)
    assert isinstance(line["duration_ms"], float)
    gemini_crumbs = [c for c in crumbs if c.get("category") == "engine.gemini"]
    assert len(gemini_crumbs) == 1 and gemini_crumbs[0]["data"]["status"] == "ok"


async def test_failed_request_logs_a_warning_with_the_reason(
    fake_deepseek: FakeDeepSeek,
    sleeps: Sleeps,
    payload: ContentPayload,
    baseline: CalibrationBaseline,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crumbs: list[dict[str, Any]] = []
    monkeypatch.setattr(sentry_sdk, "add_breadcrumb", lambda **crumb: crumbs.append(crumb))
    fake_deepseek.status(500, "Internal server error", times=3)
    async with Providers.from_settings(llm_settings(None, fake_deepseek), sleep=sleeps) as p:
        with capture_logs() as logs:
            reply = await p.deepseek.run(bare_reasoning_task(payload, baseline))
    assert reply.status == "failed"
    [line] = [line for line in logs if line["event"] == "llm request"]
    assert line["log_level"] == "warning" and line["status"] == "failed"
    assert "500" in line["warning"]
    assert [c["category"] for c in crumbs if c["category"].startswith("engine.deepseek")] == [
        "engine.deepseek"
    ]


async def test_request_cost_is_added_to_the_running_stage(
    fake_gemini: FakeGemini,
    fake_deepseek: FakeDeepSeek,
    sleeps: Sleeps,
    payload: ContentPayload,
    baseline: CalibrationBaseline,
) -> None:
    fake_deepseek.status(503, "Server overloaded", times=3)
    async with Providers.from_settings(llm_settings(fake_gemini, fake_deepseek), sleep=sleeps) as p:
        with stage("llm") as running:
            analysis = await p.gemini.analyze_content(payload, baseline)
            reasoning = await p.run(
                reasoning_task(
                    payload,
                    gemini=analysis.value,
                    rule_names=["Question Hook"],
                    trend_context="#pasta trending",
                    creator_context="new creator",
                    baseline=baseline,
                )
            )
    assert reasoning.fallback_used
    total = analysis.cost_cents + reasoning.cost_cents
    assert running.cost_cents == pytest.approx(float(total))


async def test_fallback_value_matches_the_deepseek_schema(
    fake_gemini: FakeGemini,
    fake_deepseek: FakeDeepSeek,
    sleeps: Sleeps,
    payload: ContentPayload,
    baseline: CalibrationBaseline,
) -> None:
    fake_deepseek.status(401, "Authentication Fails")
    fake_gemini.ok(valid_deepseek_reasoning(confidence="low"))
    async with Providers.from_settings(llm_settings(fake_gemini, fake_deepseek), sleep=sleeps) as p:
        reply = await p.run(bare_reasoning_task(payload, baseline))
    assert isinstance(reply.value, DeepSeekReasoning) and reply.value.confidence == "low"
    assert reply.fallback_used and reply.model == "gemini-2.5-flash"


async def test_deepseek_prompts_must_mention_json(
    fake_deepseek: FakeDeepSeek, sleeps: Sleeps
) -> None:
    async with Providers.from_settings(llm_settings(None, fake_deepseek), sleep=sleeps) as p:
        with pytest.raises(ValueError, match="json"):
            await p.deepseek.request(
                "Rate this.", DeepSeekReasoning, model="deepseek-chat", purpose="test"
            )
    assert fake_deepseek.requests == []
