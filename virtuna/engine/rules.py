"""Rules: the rule library and the rule score.

Two tiers, read from `rule_library.evaluation_tier`:

- regex: a pattern key names one of the matchers of `virtuna.patterns`. A match earns
  min(max_score, score_modifier / 15 x max_score) points, so the modifiers 15, 12, 10, 8 and 6
  earn 10, 8, 6.67, 5.33 and 4 of 10.
- semantic: the LLM scores the rule's `evaluation_prompt` 0-10 (the call is made elsewhere,
  with `semantic_rules`); the rule earns score / 10 x max_score.

rule_score = sum(points x weight) / sum(max_score x weight) x 100 over the rules actually
evaluated. Unlike the original, a rule that could not be evaluated (no LLM answer, no prompt,
no matcher for its pattern) leaves the denominator instead of counting as a zero, and with
nothing evaluated the score is None rather than a constant 50. Every evaluated rule is kept
as a contribution, matched or not: the validate-rules job learns each rule's direction from
them. Rules load for the platform (tiktok), not for the content type as the original did,
which never loaded a platform rule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

import duckdb

from virtuna.log import get_logger
from virtuna.patterns import has_matcher, matches_pattern
from virtuna.store import run

log = get_logger(__name__)

Tier = Literal["regex", "semantic"]

MODIFIER_SCALE = 15.0  # the score_modifier that earns a regex rule its full max_score
SEMANTIC_SCALE = 10.0  # the LLM scores semantic rules 0-10
# A semantic rule counts as matched (for display and matched_names) from half marks on; its
# points are proportional to the LLM's score whatever this threshold.
SEMANTIC_MATCH_SCORE = 5.0


@dataclass(frozen=True)
class Rule:
    """One active rule of the library."""

    id: str
    name: str
    category: str
    pattern: str | None
    score_modifier: float | None
    platform: str | None
    evaluation_tier: Tier
    evaluation_prompt: str | None
    weight: float = 1.0
    max_score: float = 10.0


@dataclass(frozen=True)
class RuleContribution:
    """What one evaluated rule earned: points (0 when not matched) out of max_score."""

    rule_id: str
    rule_name: str
    tier: Tier
    matched: bool
    score: float
    max_score: float
    weight: float

    def as_dict(self) -> dict[str, object]:
        """Plain values for results and storage (all fields are scalars: no deep copy)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class RuleResult:
    """The rule signal of one draft."""

    rule_score: float | None  # 0-100; None when no rule could be evaluated
    contributions: list[RuleContribution]  # every evaluated rule, matched or not
    rules_evaluated: int
    rules_total: int
    semantic_available: bool

    @property
    def matched_names(self) -> list[str]:
        """Names of the rules the draft matched, in evaluation order."""
        return [c.rule_name for c in self.contributions if c.matched]


def load_active_rules(con: duckdb.DuckDBPyConnection, platform: str = "tiktok") -> list[Rule]:
    """The active rules for a platform: the cross-platform ones plus that platform's own."""
    rows = run(
        con,
        "SELECT id, name, category, pattern, score_modifier, platform, evaluation_tier,"
        " evaluation_prompt, weight, max_score FROM rule_library"
        " WHERE is_active AND (platform IS NULL OR lower(platform) = lower(?))"
        " ORDER BY evaluation_tier, category, id",
        [platform],
    )
    return [_rule(row) for row in rows]


def _optional_str(value: object) -> str | None:
    """A nullable text column as str or None."""
    return None if value is None else str(value)


def _rule(row: tuple[Any, ...]) -> Rule:
    """A Rule from one rule_library row (the columns load_active_rules selects)."""
    id_, name, category, pattern, modifier, platform, tier, prompt, weight, max_score = row
    if tier not in ("regex", "semantic"):
        raise ValueError(f"rule {name!r} has an unknown evaluation_tier {tier!r}")
    return Rule(
        id=str(id_),
        name=str(name),
        category=str(category),
        pattern=_optional_str(pattern),
        score_modifier=None if modifier is None else float(modifier),
        platform=_optional_str(platform),
        evaluation_tier=tier,
        evaluation_prompt=_optional_str(prompt),
        weight=float(weight),
        max_score=float(max_score),
    )


def regex_points(rule: Rule) -> float:
    """The points a matched regex rule earns: score_modifier / 15 of max_score, capped."""
    return min(rule.max_score, (rule.score_modifier or 0.0) / MODIFIER_SCALE * rule.max_score)


def semantic_rules(rules: list[Rule]) -> list[tuple[str, str]]:
    """(name, evaluation_prompt) of the semantic rules the LLM can evaluate."""
    return [
        (rule.name, rule.evaluation_prompt)
        for rule in rules
        if rule.evaluation_tier == "semantic" and rule.evaluation_prompt
    ]


def _regex_contribution(text: str, rule: Rule) -> RuleContribution | None:
    """A regex rule's contribution, or None when it cannot be evaluated."""
    if not has_matcher(rule.pattern):
        log.warning(
            "regex rule skipped: no matcher for its pattern", rule=rule.name, pattern=rule.pattern
        )
        return None
    if rule.score_modifier is None:
        log.warning("regex rule skipped: no score_modifier", rule=rule.name)
        return None
    matched = matches_pattern(text, str(rule.pattern))
    return RuleContribution(
        rule_id=rule.id,
        rule_name=rule.name,
        tier="regex",
        matched=matched,
        score=regex_points(rule) if matched else 0.0,
        max_score=rule.max_score,
        weight=rule.weight,
    )


def _semantic_contribution(
    rule: Rule, scores: Mapping[str, float] | None
) -> RuleContribution | None:
    """A semantic rule's contribution from the LLM's scores, or None when it has none."""
    if not rule.evaluation_prompt:
        log.warning("semantic rule skipped: no evaluation_prompt", rule=rule.name)
        return None
    if scores is None:
        return None
    score = scores.get(rule.name.lower())
    if score is None:
        log.debug("semantic rule missing from the LLM's answer", rule=rule.name)
        return None
    if not math.isfinite(score):
        log.warning("semantic rule score is not a number", rule=rule.name, score=score)
        return None
    score = min(SEMANTIC_SCALE, max(0.0, score))
    return RuleContribution(
        rule_id=rule.id,
        rule_name=rule.name,
        tier="semantic",
        matched=score >= SEMANTIC_MATCH_SCORE,
        score=score / SEMANTIC_SCALE * rule.max_score,
        max_score=rule.max_score,
        weight=rule.weight,
    )


def score_rules(
    text: str, rules: list[Rule], semantic_scores: Mapping[str, float] | None
) -> RuleResult:
    """Score a draft against the rules; semantic_scores (by rule name) is None without an LLM."""
    scores = None
    if semantic_scores is not None:
        scores = {name.strip().lower(): float(value) for name, value in semantic_scores.items()}
    has_text = bool(text.strip())
    contributions = []
    for rule in rules:
        if rule.evaluation_tier == "semantic":
            contribution = _semantic_contribution(rule, scores)
        elif has_text:
            contribution = _regex_contribution(text, rule)
        else:
            contribution = None  # nothing to read: an empty caption is not evidence
        if contribution is not None:
            contributions.append(contribution)
    numerator = sum(c.score * c.weight for c in contributions)
    denominator = sum(c.max_score * c.weight for c in contributions)
    rule_score = None
    if denominator > 0:
        rule_score = round(min(100.0, max(0.0, numerator / denominator * 100)), 1)
    return RuleResult(
        rule_score=rule_score,
        contributions=contributions,
        rules_evaluated=len(contributions),
        rules_total=len(rules),
        semantic_available=semantic_scores is not None,
    )
