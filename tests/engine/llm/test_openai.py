"""OpenAIClient against FakeOpenAI over real HTTP: wire format, strict schema, usage, cost."""

from __future__ import annotations

from decimal import Decimal

from tests.engine.llm.conftest import Sleeps
from tests.fakes.llm import FakeOpenAI, llm_settings, valid_deepseek_reasoning
from virtuna.engine.baseline import CalibrationBaseline
from virtuna.engine.llm import DeepSeekReasoning, GeminiAnalysis, OpenAIClient, Usage
from virtuna.engine.llm.tasks import content_task, reasoning_task
from virtuna.engine.schema import ContentPayload


def client(fake: FakeOpenAI | None, sleeps: Sleeps, **overrides: object) -> OpenAIClient:
    """A client on the fake."""
    return OpenAIClient(llm_settings(openai=fake, **overrides), sleep=sleeps)


async def test_reasoning_request_format_usage_and_cost(
    fake_openai: FakeOpenAI,
    sleeps: Sleeps,
    payload: ContentPayload,
    baseline: CalibrationBaseline,
) -> None:
    usage = {
        "prompt_tokens": 3000,
        "completion_tokens": 1400,
        "total_tokens": 4400,
        "prompt_tokens_details": {"cached_tokens": 2048, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 600, "audio_tokens": 0},
    }
    fake_openai.ok(valid_deepseek_reasoning(), usage=usage)
    gpt = client(fake_openai, sleeps)
    task = reasoning_task(
        payload,
        gemini=None,
        rule_names=["Question Hook"],
        trend_context="#pasta trending",
        creator_context="new creator",
        baseline=baseline,
    )
    reply = await gpt.run(task)
    await gpt.aclose()

    assert reply.ok and reply.warning is None
    assert (reply.provider, reply.model) == ("openai", "gpt-6-luna")
    assert isinstance(reply.value, DeepSeekReasoning)
    assert reply.calls[0].usage == Usage(3000, 2048, 800, 600)
    # (952 * 0.10 + 2048 * 0.01 + 1400 * 0.50) / 1e6 USD, in cents (reasoning is output)
    assert reply.cost_cents == Decimal("0.081568")

    [sent] = fake_openai.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {fake_openai.api_key}"
    assert sent.json["model"] == "gpt-6-luna"
    assert [m["role"] for m in sent.json["messages"]] == ["user"]
    response_format = sent.json["response_format"]
    assert response_format["type"] == "json_schema"
    spec = response_format["json_schema"]
    assert (spec["name"], spec["strict"]) == ("DeepSeekReasoning", True)
    # strict mode: every property required, defaults included ("warnings" has one)
    assert "warnings" in spec["schema"]["required"]


async def test_content_factors_schema_is_strict_everywhere(
    fake_openai: FakeOpenAI,
    sleeps: Sleeps,
    payload: ContentPayload,
    baseline: CalibrationBaseline,
) -> None:
    gpt = client(fake_openai, sleeps)
    reply = await gpt.run(content_task(payload, baseline))
    await gpt.aclose()
    assert isinstance(reply.value, GeminiAnalysis)
    schema = fake_openai.requests[0].json["response_format"]["json_schema"]["schema"]
    factor = schema["$defs"]["GeminiFactor"]
    assert factor["additionalProperties"] is False
    assert factor["required"] == ["name", "score", "rationale", "improvement_tip"]
    # the bound lives on in the description, and pydantic enforces it on the reply
    assert "maximum" not in factor["properties"]["score"]
    assert "maximum 10" in factor["properties"]["score"]["description"]


async def test_a_non_strict_schema_is_refused_as_the_api_does(
    fake_openai: FakeOpenAI, sleeps: Sleeps
) -> None:
    gpt = client(fake_openai, sleeps)
    schema = {"name": "DeepSeekReasoning", "strict": True}
    schema["schema"] = DeepSeekReasoning.model_json_schema()
    reply = await gpt.request(
        "Answer in JSON.", DeepSeekReasoning, model=gpt.model, purpose="test", schema=schema
    )
    await gpt.aclose()
    assert reply.status == "failed" and "400 invalid_request_error" in (reply.warning or "")
    assert "Invalid schema for response_format" in (reply.warning or "")
    assert gpt.breaker.failures == 0 and len(reply.calls) == 1


async def test_cached_input_is_priced_at_the_cached_rate(
    fake_openai: FakeOpenAI, sleeps: Sleeps, payload: ContentPayload, baseline: CalibrationBaseline
) -> None:
    fake_openai.cached_tokens = 10**6
    gpt = client(fake_openai, sleeps)
    reply = await gpt.run(content_task(payload, baseline))
    await gpt.aclose()
    usage = reply.calls[0].usage
    assert usage.cached_tokens == usage.input_tokens > 0  # the whole prompt from the cache
    expected = (
        usage.input_tokens * Decimal("0.01")
        + (usage.output_tokens + usage.thinking_tokens) * Decimal("0.50")
    ) / 10_000
    assert reply.cost_cents == expected
