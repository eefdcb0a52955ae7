"""AnthropicClient against FakeAnthropic over real HTTP: wire format, usage and cost."""

from __future__ import annotations

from decimal import Decimal

from tests.engine.llm.conftest import Sleeps, bare_reasoning_task
from tests.fakes.llm import (
    FakeAnthropic,
    llm_settings,
    valid_deepseek_reasoning,
    valid_gemini_analysis,
)
from virtuna.engine.baseline import CalibrationBaseline
from virtuna.engine.llm import (
    AnthropicClient,
    DeepSeekReasoning,
    GeminiAnalysis,
    RuleEvaluations,
    Usage,
)
from virtuna.engine.llm.tasks import content_task, rules_task
from virtuna.engine.schema import ContentPayload


def client(fake: FakeAnthropic | None, sleeps: Sleeps, **overrides: object) -> AnthropicClient:
    """A client on the fake."""
    return AnthropicClient(llm_settings(anthropic=fake, **overrides), sleep=sleeps)


async def test_content_factors_request_format_usage_and_cost(
    fake_anthropic: FakeAnthropic,
    sleeps: Sleeps,
    payload: ContentPayload,
    baseline: CalibrationBaseline,
) -> None:
    usage = {
        "input_tokens": 1000,
        "cache_read_input_tokens": 4000,
        "cache_creation_input_tokens": 2000,
        "output_tokens": 900,
    }
    fake_anthropic.ok(valid_gemini_analysis(), usage=usage)
    claude = client(fake_anthropic, sleeps)
    reply = await claude.run(content_task(payload, baseline))
    await claude.aclose()

    assert reply.ok and reply.warning is None
    assert (reply.provider, reply.model) == ("anthropic", "claude-haiku-5-5")
    assert isinstance(reply.value, GeminiAnalysis) and len(reply.value.factors) == 5
    # input_tokens exclude the cache: 1000 + 4000 read + 2000 written went in
    assert reply.calls[0].usage == Usage(7000, 4000, 900, 0, 2000)
    # (1000 * 0.10 + 4000 * 0.01 + 2000 * 0.125 + 900 * 0.50) / 1e6 USD, in cents
    assert reply.cost_cents == Decimal("0.084")

    [sent] = fake_anthropic.requests
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == fake_anthropic.api_key
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["content-type"] == "application/json"
    assert "authorization" not in sent.headers
    assert sent.json["model"] == "claude-haiku-5-5" and sent.json["max_tokens"] > 2000
    assert [m["role"] for m in sent.json["messages"]] == ["user"]
    assert "tools" not in sent.json and "tool_choice" not in sent.json
    fmt = sent.json["output_config"]["format"]
    assert fmt["type"] == "json_schema"
    assert fmt["schema"]["additionalProperties"] is False
    assert set(fmt["schema"]["required"]) == {"factors", "overall_impression", "content_summary"}


async def test_every_role_is_served_with_its_reply_model(
    fake_anthropic: FakeAnthropic,
    sleeps: Sleeps,
    payload: ContentPayload,
    baseline: CalibrationBaseline,
) -> None:
    claude = client(fake_anthropic, sleeps)
    reasoning = await claude.run(bare_reasoning_task(payload, baseline))
    rules = await claude.run(rules_task("Wait for it...", [("Loop Structure", "Loops?")]))
    await claude.aclose()
    assert isinstance(reasoning.value, DeepSeekReasoning)
    assert isinstance(rules.value, RuleEvaluations)
    assert [e.rule_name for e in rules.value.evaluations] == ["Loop Structure"]
    # thinking is billed as output: Anthropic counts it inside output_tokens
    assert reasoning.calls[0].usage.output_tokens > fake_anthropic.thinking_tokens
    assert [c.purpose for c in reasoning.calls + rules.calls] == [
        "behavioral-reasoning",
        "rule-evaluation",
    ]


async def test_the_pydantic_schema_as_is_would_be_refused(
    fake_anthropic: FakeAnthropic, sleeps: Sleeps
) -> None:
    claude = client(fake_anthropic, sleeps)
    reply = await claude.request(
        "Answer in JSON.",
        GeminiAnalysis,
        model=claude.model,
        purpose="test",
        schema=GeminiAnalysis.model_json_schema(),
    )
    await claude.aclose()
    assert reply.status == "failed" and "400 invalid_request_error" in (reply.warning or "")
    assert "additionalProperties" in (reply.warning or "")
    assert claude.breaker.failures == 0  # our request's fault, not the provider's


async def test_a_fenced_reply_without_schema_still_parses(
    fake_anthropic: FakeAnthropic, sleeps: Sleeps
) -> None:
    fake_anthropic.fenced(valid_deepseek_reasoning())
    claude = client(fake_anthropic, sleeps)
    reply = await claude.request(
        "Answer in JSON.", DeepSeekReasoning, model=claude.model, purpose="test"
    )
    await claude.aclose()
    assert reply.ok and "output_config" not in fake_anthropic.requests[0].json
