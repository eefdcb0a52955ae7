"""Each failure kind, against the Anthropic and OpenAI fakes alike: 429 with retry-after,
5xx (Anthropic's 529 overloaded_error among them), timeouts, a cut-off body, malformed and
wrong-schema JSON, refusals, a wrong key and a missing one."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.engine.llm.conftest import Sleeps
from tests.fakes.llm import FakeAnthropic, FakeOpenAI, llm_settings, timeout_transport
from virtuna.engine.baseline import CalibrationBaseline
from virtuna.engine.llm import (
    RETRY_INSTRUCTION,
    AnthropicClient,
    GeminiAnalysis,
    LLMReply,
    OpenAIClient,
)
from virtuna.engine.llm.tasks import content_task
from virtuna.engine.schema import ContentPayload

Fake = FakeAnthropic | FakeOpenAI
OVERLOADED = {"anthropic": 529, "openai": 503}


@pytest.fixture(params=["anthropic", "openai"])
def fake(request: pytest.FixtureRequest) -> Iterator[Fake]:
    """A running fake of each fallback provider in turn."""
    with FakeAnthropic() if request.param == "anthropic" else FakeOpenAI() as running:
        yield running


async def ask(
    fake: Fake | None,
    provider: str,
    sleeps: Sleeps,
    payload: ContentPayload,
    baseline: CalibrationBaseline,
    **overrides: object,
) -> tuple[LLMReply[GeminiAnalysis], AnthropicClient | OpenAIClient]:
    """The content factors asked of provider's client (on the fake, if any)."""
    settings = llm_settings(**{provider: fake}, **overrides)  # type: ignore[arg-type]
    http = httpx.AsyncClient(transport=timeout_transport())
    cls = AnthropicClient if provider == "anthropic" else OpenAIClient
    client = cls(settings, http=http, sleep=sleeps)
    try:
        return await client.run(content_task(payload, baseline)), client
    finally:
        await http.aclose()


async def test_429_waits_as_long_as_retry_after_says(
    fake: Fake, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    fake.status(429, "Rate limit reached", retry_after=2)
    reply, _ = await ask(fake, fake.provider, sleeps, payload, baseline)
    assert reply.ok and [c.status for c in reply.calls] == ["error", "ok"]
    assert sleeps == [2.0]  # longer than the first backoff step (1 s)
    assert "retry-after 2 s" in (reply.calls[0].error or "")


async def test_a_retry_after_beyond_the_backoff_is_left_to_the_fallback(
    fake: Fake, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    fake.status(429, "Rate limit reached", retry_after=30)
    reply, _ = await ask(fake, fake.provider, sleeps, payload, baseline)
    assert reply.status == "failed" and len(reply.calls) == 1 and sleeps == []
    assert "429" in (reply.warning or "") and "retry-after 30 s" in (reply.warning or "")


async def test_overloaded_is_retried_then_fails_as_one_breaker_failure(
    fake: Fake, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    code = OVERLOADED[fake.provider]
    fake.status(code, "Overloaded", times=3)
    reply, client = await ask(fake, fake.provider, sleeps, payload, baseline)
    assert reply.status == "failed" and sleeps == [1.0, 3.0]
    assert f"failed after 3 attempts: HTTP {code}" in (reply.warning or "")
    if fake.provider == "anthropic":
        assert "overloaded_error" in (reply.warning or "")
    assert client.breaker.failures == 1


async def test_a_5xx_then_an_answer(
    fake: Fake, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    fake.status(500, "Internal server error")
    reply, client = await ask(fake, fake.provider, sleeps, payload, baseline)
    assert reply.ok and [c.status for c in reply.calls] == ["error", "ok"]
    assert client.breaker.failures == 0


async def test_a_timeout_is_not_retried_and_its_cost_is_unknown(
    fake: Fake, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    fake.timeout()
    reply, _ = await ask(fake, fake.provider, sleeps, payload, baseline)
    assert reply.status == "failed" and "timed out after 2 s" in (reply.warning or "")
    [call] = reply.calls
    assert call.status == "timeout" and call.known_cost_cents is None


async def test_a_cut_off_body_is_retried(
    fake: Fake, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    fake.malformed()
    reply, _ = await ask(fake, fake.provider, sleeps, payload, baseline)
    assert reply.ok and "non-JSON body" in (reply.calls[0].error or "")


async def test_malformed_json_is_retried_with_the_instruction(
    fake: Fake, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    fake.ok('{"factors": [{"name": "Scroll-Stop Power", "score": ')
    reply, _ = await ask(fake, fake.provider, sleeps, payload, baseline)
    assert reply.ok and [c.status for c in reply.calls] == ["invalid", "ok"]
    assert fake.prompts[1].startswith(RETRY_INSTRUCTION) and sleeps == []


async def test_wrong_schema_json_fails_naming_the_field(
    fake: Fake, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    fake.invalid(times=3)  # a score above 10: structured outputs do not enforce bounds
    reply, _ = await ask(fake, fake.provider, sleeps, payload, baseline)
    assert reply.status == "failed" and "invalid after 3 attempts" in (reply.warning or "")
    assert "factors.0.score" in (reply.warning or "")
    assert all(c.status == "invalid" and c.cost_cents > 0 for c in reply.calls)  # billed


async def test_a_refusal_is_not_retried(
    fake: Fake, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    fake.refuse()
    reply, _ = await ask(fake, fake.provider, sleeps, payload, baseline)
    assert reply.status == "failed" and len(reply.calls) == 1
    assert "refus" in (reply.warning or "")


async def test_a_wrong_key_is_reported_and_scrubbed(
    fake: Fake, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    wrong = "sk-wrong-key-000000000000"
    reply, _ = await ask(
        fake, fake.provider, sleeps, payload, baseline, **{f"{fake.provider}_api_key": wrong}
    )
    variable = f"{fake.provider.upper()}_API_KEY"
    assert reply.status == "failed" and f"rejected the API key ({variable})" in (
        reply.warning or ""
    )
    assert wrong not in (reply.warning or "") and len(reply.calls) == 1


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
async def test_without_a_key_nothing_is_sent(
    provider: str, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    reply, client = await ask(None, provider, sleeps, payload, baseline)
    assert reply.status == "not-configured" and reply.calls == []
    assert reply.warning == f"{client.label} not configured ({client.key_variable})"
