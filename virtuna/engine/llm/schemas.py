"""The reply shapes the LLMs must produce, validated with pydantic.

Names and ranges follow the original's Zod schemas (Gemini's 5 factors, DeepSeek's
behavioural predictions, component scores and suggestions, the batched rule evaluations).
Small spelling slips (case of a factor name or an enum word) are normalised, not rejected.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

__all__ = [
    "FACTOR_NAMES",
    "BehavioralPredictions",
    "ComponentScores",
    "DeepSeekReasoning",
    "GeminiAnalysis",
    "GeminiFactor",
    "RuleEvaluation",
    "RuleEvaluations",
    "Suggestion",
    "strict_schema",
]

# What OpenAI's strict mode and Anthropic's structured outputs both accept; every other keyword
# (numeric and length bounds, item counts, defaults, titles) is moved into the description.
_STRICT_KEYWORDS = frozenset(
    {"type", "properties", "required", "items", "enum", "const", "anyOf", "$ref", "$defs"}
)

FACTOR_NAMES: tuple[str, ...] = (
    "Scroll-Stop Power",
    "Completion Pull",
    "Rewatch Potential",
    "Share Trigger",
    "Emotional Charge",
)
_FACTOR_KEYS = {name.lower(): name for name in FACTOR_NAMES}


def _lower(value: Any) -> Any:
    """A string trimmed and lower-cased (other values untouched)."""
    return value.strip().lower() if isinstance(value, str) else value


class GeminiFactor(BaseModel):
    """One content factor: a 0-10 score (one decimal), why, and how to improve it."""

    name: str
    score: float = Field(ge=0, le=10)
    rationale: str = Field(min_length=1)
    improvement_tip: str = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _known_name(cls, value: str) -> str:
        canonical = _FACTOR_KEYS.get(" ".join(value.split()).lower())
        if canonical is None:
            raise ValueError(f"unknown factor {value!r}; expected one of {list(FACTOR_NAMES)}")
        return canonical

    @field_validator("score")
    @classmethod
    def _one_decimal(cls, value: float) -> float:
        return round(value, 1)


class GeminiAnalysis(BaseModel):
    """Gemini's content-quality reading: exactly the 5 named factors, in canonical order."""

    factors: list[GeminiFactor] = Field(min_length=5, max_length=5)
    overall_impression: str = Field(min_length=1)
    content_summary: str = Field(min_length=1)

    @field_validator("factors")
    @classmethod
    def _each_factor_once(cls, value: list[GeminiFactor]) -> list[GeminiFactor]:
        names = [factor.name for factor in value]
        missing = [name for name in FACTOR_NAMES if name not in names]
        if missing or len(set(names)) != len(names):
            raise ValueError(f"need each factor exactly once; missing {missing}")
        return sorted(value, key=lambda factor: FACTOR_NAMES.index(factor.name))

    def factor(self, name: str) -> GeminiFactor:
        """The factor called name (exact canonical name)."""
        for factor in self.factors:
            if factor.name == name:
                return factor
        raise KeyError(name)


class BehavioralPredictions(BaseModel):
    """Predicted rates (percent of viewers, 0-100) with percentile framing ("top 25%")."""

    completion_pct: float = Field(ge=0, le=100)
    completion_percentile: str
    share_pct: float = Field(ge=0, le=100)
    share_percentile: str
    comment_pct: float = Field(ge=0, le=100)
    comment_percentile: str
    save_pct: float = Field(ge=0, le=100)
    save_percentile: str


class ComponentScores(BaseModel):
    """DeepSeek's seven 0-10 component scores."""

    hook_effectiveness: float = Field(ge=0, le=10)
    retention_strength: float = Field(ge=0, le=10)
    shareability: float = Field(ge=0, le=10)
    comment_provocation: float = Field(ge=0, le=10)
    save_worthiness: float = Field(ge=0, le=10)
    trend_alignment: float = Field(ge=0, le=10)
    originality: float = Field(ge=0, le=10)


class Suggestion(BaseModel):
    """One improvement suggestion."""

    text: str = Field(min_length=1)
    priority: Literal["high", "medium", "low"]
    category: Literal["hook", "content", "format", "timing", "audio"]

    @field_validator("priority", "category", mode="before")
    @classmethod
    def _lower_words(cls, value: Any) -> Any:
        return _lower(value)


class DeepSeekReasoning(BaseModel):
    """The behavioural reasoning reply (DeepSeek, or whichever provider of its fallback order
    answers)."""

    behavioral_predictions: BehavioralPredictions
    component_scores: ComponentScores
    suggestions: list[Suggestion] = Field(min_length=1)
    warnings: list[str] = Field(default_factory=list)
    confidence: Literal["high", "medium", "low"]

    @field_validator("confidence", mode="before")
    @classmethod
    def _lower_confidence(cls, value: Any) -> Any:
        return _lower(value)


class RuleEvaluation(BaseModel):
    """One semantic rule's 0-10 score with a one-sentence rationale."""

    rule_name: str = Field(min_length=1)
    score: float = Field(ge=0, le=10)
    rationale: str = ""


class RuleEvaluations(BaseModel):
    """The batched semantic-rule reply."""

    evaluations: list[RuleEvaluation]

    def by_name(self) -> dict[str, RuleEvaluation]:
        """Evaluations keyed by case-folded, whitespace-normalised rule name (first wins)."""
        out: dict[str, RuleEvaluation] = {}
        for evaluation in self.evaluations:
            out.setdefault(" ".join(evaluation.rule_name.split()).casefold(), evaluation)
        return out


def _closed(node: Any) -> Any:
    """node with every object closed and fully required, unsupported keywords described."""
    if isinstance(node, list):
        return [_closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    notes: list[str] = [node["description"]] if node.get("description") else []
    for key, value in node.items():
        if key in ("properties", "$defs"):
            out[key] = {name: _closed(sub) for name, sub in value.items()}
        elif key in _STRICT_KEYWORDS:
            out[key] = _closed(value)
        elif key not in ("title", "description", "default", "additionalProperties"):
            notes.append(f"{key} {value}")
    if out.get("type") == "object" or "properties" in out:
        out["additionalProperties"] = False
        out["required"] = list(out.get("properties", {}))
    if notes:
        out["description"] = "; ".join(notes)
    return out


@cache
def strict_schema(model_cls: type[BaseModel]) -> dict[str, Any]:
    """model_cls's JSON schema as OpenAI's strict json_schema and Anthropic's structured
    outputs take it: every object has additionalProperties false and lists every property as
    required (fields with defaults included, so the model always writes them), and the bounds
    neither provider enforces (minimum, maxItems, minLength...) become description text.
    Pydantic still validates the reply against the full model."""
    return _closed(model_cls.model_json_schema())  # type: ignore[no-any-return]
