"""Fallback chains: the providers of a role tried in order, over the four fakes."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from tests.engine.llm.conftest import Sleeps
from tests.fakes.llm import (
    FakeAnthropic,
    FakeDeepSeek,
    FakeGemini,
    FakeOpenAI,
    llm_settings,
    timeout_transport,
)
from virtuna.engine.baseline import CalibrationBaseline
from virtuna.engine.llm import (
    FallbackChain,
    GeminiAnalysis,
    Providers,
    RuleEvaluations,
    content_task,
    rules_task,
)
from virtuna.engine.schema import ContentPayload

Fakes = tuple[FakeGemini, FakeDeepSeek, FakeAnthropic, FakeOpenAI]


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    """All four fakes, running."""
    with FakeGemini() as g, FakeDeepSeek() as d, FakeAnthropic() as a, FakeOpenAI() as o:
        yield g, d, a, o


def providers(fakes: Fakes, sleeps: Sleeps, **overrides: object) -> Providers:
    """Providers on every fake, timeouts chosen by the fakes."""
    gemini, deepseek, anthropic, openai = fakes
    settings = llm_settings(gemini, deepseek, anthropic=anthropic, openai=openai, **overrides)
    return Providers.from_settings(settings, transport=timeout_transport(), sleep=sleeps)


async def test_first_fails_second_times_out_third_answers(
    fakes: Fakes, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    gemini, deepseek, anthropic, openai = fakes
    gemini.status(500, "An internal error has occurred.", times=3)
    anthropic.timeout()
    async with providers(fakes, sleeps) as p:
        reply = await p.run(content_task(payload, baseline))

    assert reply.ok and isinstance(reply.value, GeminiAnalysis) and reply.fallback_used
    assert (reply.provider, reply.model) == ("openai", "gpt-6-luna")
    assert [(c.provider, c.status) for c in reply.calls] == [
        ("gemini", "error"),
        ("gemini", "error"),
        ("gemini", "error"),
        ("anthropic", "timeout"),
        ("openai", "ok"),
    ]
    assert reply.cost_cents == sum((c.cost_cents for c in reply.calls), Decimal(0)) > 0
    warning = reply.warning or ""
    assert warning.startswith("Gemini request failed after 3 attempts: HTTP 500 INTERNAL")
    assert "Anthropic fallback failed too: Anthropic request failed after 1 attempt: " in warning
    assert "timed out after 2 s" in warning
    assert warning.endswith("answered by the OpenAI fallback (gpt-6-luna)")
    assert deepseek.requests == []  # the chain stopped at the first answer
    assert [len(f.requests) for f in (gemini, anthropic, openai)] == [3, 1, 1]


async def test_an_open_breaker_skips_its_provider_without_a_request(
    fakes: Fakes, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    gemini, _, anthropic, _ = fakes
    gemini.status(503, "The model is overloaded.")
    async with providers(
        fakes, sleeps, breaker_failure_threshold=1, breaker_backoff_s="60", llm_max_retries=0
    ) as p:
        first = await p.run(content_task(payload, baseline))
        assert first.provider == "anthropic" and p.gemini.breaker.state == "open"
        second = await p.run(content_task(payload, baseline))
    assert len(gemini.requests) == 1  # the open breaker refused without calling Gemini
    assert second.ok and second.provider == "anthropic"
    assert (second.warning or "").startswith("Gemini circuit breaker open; next probe in")
    assert [c.provider for c in second.calls] == ["anthropic"]
    assert len(anthropic.requests) == 2


async def test_unconfigured_providers_are_skipped_and_named(
    sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    with FakeOpenAI() as openai:
        settings = llm_settings(openai=openai)
        async with Providers.from_settings(settings, sleep=sleeps) as p:
            reply = await p.run(content_task(payload, baseline))
    assert reply.ok and reply.provider == "openai"
    assert reply.warning == (
        "Gemini not configured (GEMINI_API_KEY); "
        "no Anthropic fallback (ANTHROPIC_API_KEY not configured); "
        "answered by the OpenAI fallback (gpt-6-luna)"
    )
    assert [c.provider for c in reply.calls] == ["openai"]


async def test_the_first_answer_needs_no_warning(
    fakes: Fakes, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    async with providers(fakes, sleeps) as p:
        reply = await p.run(content_task(payload, baseline))
    assert reply.ok and reply.provider == "gemini" and reply.warning is None
    assert not reply.fallback_used
    assert [len(f.requests) for f in fakes] == [1, 0, 0, 0]


async def test_when_none_answers_every_reason_is_kept(
    fakes: Fakes, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    for fake in fakes:
        fake.status(500, "down", times=3)
    async with providers(fakes, sleeps) as p:
        reply = await p.run(content_task(payload, baseline))
    assert reply.status == "failed" and reply.value is None and not reply.fallback_used
    assert reply.provider == "gemini"  # the chain's first provider
    assert len(reply.calls) == 12 and {c.provider for c in reply.calls} == {
        "gemini",
        "deepseek",
        "anthropic",
        "openai",
    }
    assert (reply.warning or "").count("fallback failed too") == 3


async def test_rules_fall_back_from_deepseek(fakes: Fakes, sleeps: Sleeps) -> None:
    gemini, deepseek, anthropic, _ = fakes
    deepseek.status(402, "Insufficient Balance")
    async with providers(fakes, sleeps, llm_rules_order="deepseek,anthropic") as p:
        reply = await p.run(rules_task("Wait for it...", [("Loop Structure", "Loops?")]))
    assert isinstance(reply.value, RuleEvaluations) and reply.provider == "anthropic"
    assert [c.purpose for c in reply.calls] == ["rule-evaluation"] * 2
    assert gemini.requests == [] and len(anthropic.requests) == 1


async def test_a_chain_needs_a_provider() -> None:
    with pytest.raises(ValueError, match="at least one provider"):
        FallbackChain("content", [])
