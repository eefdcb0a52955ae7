"""Reply parsing: code fences, typed InvalidReply errors naming fields, schema normalisation,
and the strict response schemas sent to OpenAI and Anthropic."""

from __future__ import annotations

import json

import pytest

from tests.fakes.llm import valid_deepseek_reasoning, valid_gemini_analysis
from virtuna.engine.llm import (
    RETRY_INSTRUCTION,
    DeepSeekReasoning,
    GeminiAnalysis,
    InvalidReply,
    RuleEvaluations,
    parse_reply,
    strict_schema,
    strip_fences,
)
from virtuna.engine.llm.base import retry_prompt


@pytest.mark.parametrize(
    "text",
    [
        '```json\n{"a": 1}\n```',
        '```\n{"a": 1}\n```',
        '  ```JSON\n{"a": 1}```  ',
        '{"a": 1}',
        '\n{"a": 1}\n',
    ],
)
def test_strip_fences(text: str) -> None:
    assert strip_fences(text) == '{"a": 1}'


def test_parse_valid_and_fenced() -> None:
    body = json.dumps(valid_gemini_analysis())
    assert parse_reply(body, GeminiAnalysis).overall_impression
    assert parse_reply(f"```json\n{body}\n```", GeminiAnalysis).content_summary


def test_prose_around_the_json_is_tolerated() -> None:
    body = json.dumps(valid_deepseek_reasoning())
    assert parse_reply(f"Here you go:\n{body}\nHope this helps!", DeepSeekReasoning).confidence


@pytest.mark.parametrize("text", [None, "", "   ", "```json\n```"])
def test_blank_is_invalid(text: str | None) -> None:
    with pytest.raises(InvalidReply) as info:
        parse_reply(text, GeminiAnalysis)
    assert info.value.kind == "blank"


def test_non_json_is_invalid() -> None:
    with pytest.raises(InvalidReply, match="not JSON") as info:
        parse_reply("The hook is strong.", GeminiAnalysis)
    assert info.value.kind == "not-json"


def test_schema_violation_names_the_fields() -> None:
    bad = valid_deepseek_reasoning(suggestions=[], confidence="very")
    del bad["component_scores"]["originality"]
    bad["behavioral_predictions"]["share_pct"] = 140
    with pytest.raises(InvalidReply) as info:
        parse_reply(json.dumps(bad), DeepSeekReasoning)
    error = info.value
    assert error.kind == "schema"
    assert set(error.fields) == {
        "component_scores.originality",
        "behavioral_predictions.share_pct",
        "suggestions",
        "confidence",
    }
    assert "DeepSeekReasoning" in str(error) and "component_scores.originality" in str(error)


def test_a_json_array_is_a_schema_violation() -> None:
    with pytest.raises(InvalidReply, match=r"\(root\)"):
        parse_reply("[1, 2]", RuleEvaluations)


def test_gemini_needs_each_factor_exactly_once() -> None:
    twice = valid_gemini_analysis()
    twice["factors"][1]["name"] = "Scroll-Stop Power"
    with pytest.raises(InvalidReply, match="exactly once"):
        parse_reply(json.dumps(twice), GeminiAnalysis)
    unknown = valid_gemini_analysis()
    unknown["factors"][0]["name"] = "Vibes"
    with pytest.raises(InvalidReply, match="unknown factor 'Vibes'"):
        parse_reply(json.dumps(unknown), GeminiAnalysis)


def test_enum_words_are_case_normalised() -> None:
    body = valid_deepseek_reasoning(confidence="High")
    body["suggestions"][0].update(priority="HIGH", category="Hook")
    value = parse_reply(json.dumps(body), DeepSeekReasoning)
    assert value.confidence == "high"
    assert (value.suggestions[0].priority, value.suggestions[0].category) == ("high", "hook")


def test_retry_prompt_starts_with_the_instruction() -> None:
    problem = InvalidReply("blank reply (no content)", kind="blank")
    prompt = retry_prompt("Answer in JSON.", problem)
    assert prompt.startswith(RETRY_INSTRUCTION)
    assert "blank reply" in prompt
    assert prompt.endswith("Answer in JSON.")


def _objects(node: object) -> list[dict]:
    """Every object schema inside node."""
    if isinstance(node, list):
        return [o for item in node for o in _objects(item)]
    if not isinstance(node, dict):
        return []
    own = [node] if "properties" in node else []
    return own + [o for value in node.values() for o in _objects(value)]


@pytest.mark.parametrize("model_cls", [GeminiAnalysis, DeepSeekReasoning, RuleEvaluations])
def test_strict_schema_closes_every_object_and_keeps_bounds_as_text(model_cls: type) -> None:
    schema = strict_schema(model_cls)
    objects = _objects(schema)
    assert objects and all(o["additionalProperties"] is False for o in objects)
    assert all(o["required"] == list(o["properties"]) for o in objects)
    text = json.dumps(schema)
    for keyword in ('"minimum"', '"maximum"', '"minLength"', '"maxItems"', '"default"', '"title"'):
        assert keyword not in text
    assert "maximum 10" in text  # every model here has a 0-10 score
    assert strict_schema(model_cls) is schema  # built once per model
