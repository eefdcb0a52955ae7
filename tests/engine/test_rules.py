"""Rules: the regex matchers, the scoring math and the seeded rule library (TEST-08).

Covers the original's 42 cases. Deliberate differences from the original, each tested below:
- semantic pattern keys (loop_structure, emotional_arc, trending_sound, trending_audio,
  text_overlay) have no regex stub; the original's "always false" / "always true" (text_overlay)
  stubs are gone, and a regex-tier rule with such a key is not evaluated;
- a rule that cannot be evaluated (no pattern, no modifier, unknown pattern, semantic rule
  without prompt or without an LLM answer) leaves the denominator instead of scoring zero;
- with no rule evaluated the score is None, not 50;
- every evaluated rule is a contribution, matched or not (the original kept matches only);
- load_active_rules filters on the platform, so the TikTok rules load; a store error raises
  (the pipeline turns it into a warning) instead of quietly returning no rules.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import duckdb
import pytest
from structlog.testing import capture_logs

from virtuna.engine.rules import (
    Rule,
    RuleResult,
    load_active_rules,
    regex_points,
    score_rules,
    semantic_rules,
)
from virtuna.patterns import MATCHERS, matches_pattern
from virtuna.store import connect, run

SEMANTIC_KEYS = ("loop_structure", "emotional_arc", "trending_sound", "trending_audio")


def make_rule(pattern: str | None, **overrides: Any) -> Rule:
    """A regex rule (modifier 10, weight 1, max 10) named after its pattern."""
    fields: dict[str, Any] = {
        "id": f"rule-{pattern}",
        "name": str(pattern),
        "category": "hook",
        "pattern": pattern,
        "score_modifier": 10,
        "platform": None,
        "evaluation_tier": "regex",
        "evaluation_prompt": None,
        "weight": 1.0,
        "max_score": 10.0,
    }
    fields.update(overrides)
    return Rule(**fields)


def make_semantic(name: str, prompt: str | None = "Evaluate it; score 0-10", **kw: Any) -> Rule:
    """A semantic rule with a prompt."""
    return make_rule(
        name.lower().replace(" ", "_"),
        name=name,
        evaluation_tier="semantic",
        evaluation_prompt=prompt,
        **kw,
    )


def pattern_matches(pattern: str, text: str) -> bool:
    """Whether a one-rule library matches the text, checked two ways."""
    result = score_rules(text, [make_rule(pattern)], None)
    assert result.rules_evaluated == 1
    assert result.contributions[0].matched == matches_pattern(text, pattern)
    return result.contributions[0].matched


# ------------------------------------------------------------------------- regex patterns

POSITIVE = [
    ("question_hook", "What if you tried this?"),
    ("question_hook", "Ever wondered why? Here is the answer."),
    ("curiosity_gap", "The secret to success"),
    ("curiosity_gap", "What they ACTUALLY do"),
    ("curiosity_gap", "I will reveal it"),
    ("negative_bias", "Stop making this mistake"),
    ("negative_bias", "Don't buy this blender"),
    ("negative_bias", "Don’t buy this blender"),  # typographic apostrophe, as phones type it
    ("negative_bias", "The worst way to cook rice"),
    ("bold_claim", "Everyone needs this"),
    ("bold_claim", "No one talks about this"),
    ("bold_claim", "Guaranteed results in a week"),
    ("story_hook", "I remember when I first tried"),
    ("story_hook", "This morning I burnt the toast"),
    ("story_hook", "Last week my cat learned a trick"),
    ("payoff_delay", "Wait for it..."),
    ("payoff_delay", "The best part is AT THE END"),
    ("payoff_delay", "wait for items to cool"),  # a substring test, as documented
    ("pattern_interrupt", "But wait, there's more"),
    ("pattern_interrupt", "Plot twist: it was me"),
    ("pattern_interrupt", "Here’s the thing about sleep"),
    ("info_density", " ".join(["word"] * 55)),
    ("info_density", " ".join(["word"] * 51)),
    ("short_duration", "Quick tip about cooking"),
    ("short_duration", "A" * 299),
    ("caption_hook", "This changed everything."),
    ("caption_hook", "Wow! Look at this"),
    ("caption_hook", "A" * 80 + "? then more"),
    ("cta_clarity", "Follow me for more tips"),
    ("cta_clarity", "Link in bio"),
    ("cta_clarity", "SAVE this for later"),
    ("authenticity", "I personally tried this"),
    ("authenticity", "My morning routine"),
    ("authenticity", "we tested it for you"),
]

NEGATIVE = [
    ("question_hook", "This is great."),
    ("question_hook", "This is great. Why?"),  # the question is not the first sentence
    ("question_hook", "Wow! Right?"),
    ("curiosity_gap", "I went to the store"),
    ("curiosity_gap", "Neverland is a place"),  # whole words only
    ("negative_bias", "I love cooking"),
    ("negative_bias", "My stopwatch review"),
    ("bold_claim", "Some people might like this"),
    ("bold_claim", "No onions in this one"),
    ("story_hook", "Product review 2026"),
    ("story_hook", "Iwas not spaced"),
    ("payoff_delay", "Here is the result"),
    ("payoff_delay", "Watch till the end"),
    ("pattern_interrupt", "Cooking recipe step 1"),
    ("pattern_interrupt", "Wait, but the plot"),
    ("info_density", "Short text"),
    ("info_density", " ".join(["word"] * 50)),  # more than 50 words, not 50
    ("short_duration", "A" * 301),
    ("short_duration", "A" * 300),  # fewer than 300 characters, not 300
    ("caption_hook", "A" * 85 + ". Then something else."),
    ("caption_hook", "No punctuation at all"),
    ("caption_hook", ". Starts with a full stop"),
    ("cta_clarity", "The weather is nice today"),
    ("cta_clarity", "Thanks to my followers"),  # whole words only
    ("authenticity", "Studies show that results vary"),
    ("authenticity", "A meme about iron"),
]


@pytest.mark.parametrize(("pattern", "text"), POSITIVE)
def test_pattern_matches(pattern: str, text: str) -> None:
    assert pattern_matches(pattern, text)


@pytest.mark.parametrize(("pattern", "text"), NEGATIVE)
def test_pattern_does_not_match(pattern: str, text: str) -> None:
    assert not pattern_matches(pattern, text)


def test_every_documented_pattern_has_positive_and_negative_examples() -> None:
    documented = {
        "question_hook",
        "curiosity_gap",
        "negative_bias",
        "bold_claim",
        "story_hook",
        "payoff_delay",
        "pattern_interrupt",
        "info_density",
        "short_duration",
        "caption_hook",
        "cta_clarity",
        "authenticity",
    }
    assert set(MATCHERS) == documented
    assert {p for p, _ in POSITIVE} == documented
    assert {p for p, _ in NEGATIVE} == documented


@pytest.mark.parametrize("pattern", [*SEMANTIC_KEYS, "text_overlay"])
def test_semantic_keys_have_no_regex_stub(pattern: str) -> None:
    # The original: loop/emotional/trending always false, text_overlay always true. Here these
    # are semantic rules; as regex keys they are unknown, never match, and are not evaluated.
    assert pattern not in MATCHERS
    assert not matches_pattern("This loops perfectly, trending sound, text on screen", pattern)
    result = score_rules("anything at all", [make_rule(pattern)], None)
    assert result.rules_evaluated == 0
    assert result.contributions == []
    assert result.rule_score is None


def test_unknown_pattern_never_matches_and_logs_at_debug() -> None:
    with capture_logs() as logs:
        assert not matches_pattern("Any content here", "totally_unknown")
    assert logs[0]["log_level"] == "debug"
    assert logs[0]["pattern"] == "totally_unknown"


def test_unknown_pattern_rule_is_not_evaluated() -> None:
    with capture_logs() as logs:
        result = score_rules("Any content here", [make_rule("totally_unknown")], None)
    assert result.contributions == []
    assert (result.rules_evaluated, result.rules_total) == (0, 1)
    assert any(entry["log_level"] == "warning" for entry in logs)


def test_rule_without_pattern_is_not_evaluated() -> None:
    result = score_rules("Any content here", [make_rule(None)], None)
    assert result.contributions == []
    assert result.rule_score is None


def test_rule_without_modifier_is_not_evaluated() -> None:
    rules = [make_rule("cta_clarity", score_modifier=None), make_rule("authenticity")]
    result = score_rules("Follow me, I tried it", rules, None)
    assert [c.rule_name for c in result.contributions] == ["authenticity"]
    assert result.rule_score == pytest.approx(66.7)


# ------------------------------------------------------------------------- scoring math


@pytest.mark.parametrize(
    ("modifier", "points"),
    [(15, 10.0), (12, 8.0), (10, 6.667), (8, 5.333), (6, 4.0), (0, 0.0)],
)
def test_modifier_to_points(modifier: int, points: float) -> None:
    rule = make_rule("cta_clarity", score_modifier=modifier)
    assert regex_points(rule) == pytest.approx(points, abs=1e-3)
    result = score_rules("Follow me for more", [rule], None)
    assert result.contributions[0].score == pytest.approx(points, abs=1e-3)
    assert result.rule_score == round(points * 10, 1)


def test_points_are_capped_at_max_score() -> None:
    rule = make_rule("cta_clarity", score_modifier=100, max_score=10)
    result = score_rules("Follow me", [rule], None)
    assert result.contributions[0].score == 10.0
    assert result.rule_score == 100.0


def test_points_scale_with_max_score() -> None:
    rule = make_rule("cta_clarity", score_modifier=12, max_score=20)
    assert regex_points(rule) == pytest.approx(16.0)
    assert score_rules("Follow me", [rule], None).rule_score == 80.0


def test_score_is_points_over_max_of_evaluated_rules() -> None:
    rules = [
        make_rule("question_hook", score_modifier=15),  # matches: 10
        make_rule("cta_clarity", score_modifier=12),  # matches: 8
        make_rule("story_hook", score_modifier=10),  # no match: 0
    ]
    result = score_rules("What do you think? Follow me.", rules, None)
    assert result.rule_score == 60.0  # 18 / 30
    assert result.rules_evaluated == 3
    assert result.matched_names == ["question_hook", "cta_clarity"]


def test_score_rounds_to_one_decimal() -> None:
    result = score_rules("Follow me", [make_rule("cta_clarity", score_modifier=10)], None)
    assert result.rule_score == 66.7


def test_rule_score_in_range() -> None:
    rules = [make_rule(key, score_modifier=15) for key in MATCHERS]
    text = "What do you think? Follow me for more, I tried this myself."
    result = score_rules(text, rules, None)
    assert result.rule_score is not None
    assert 0 <= result.rule_score <= 100


def test_negative_modifier_is_clamped_at_zero() -> None:
    result = score_rules("Follow me", [make_rule("cta_clarity", score_modifier=-15)], None)
    assert result.rule_score == 0.0


def test_weights_are_applied() -> None:
    heavy_match = [
        make_rule("cta_clarity", score_modifier=15, weight=3.0),  # matches
        make_rule("story_hook", score_modifier=15, weight=1.0),  # does not
    ]
    light_match = [
        make_rule("cta_clarity", score_modifier=15, weight=1.0),
        make_rule("story_hook", score_modifier=15, weight=3.0),
    ]
    assert score_rules("Follow me", heavy_match, None).rule_score == 75.0
    assert score_rules("Follow me", light_match, None).rule_score == 25.0
    assert score_rules("Follow me", heavy_match, None).contributions[0].weight == 3.0


def test_zero_weight_rules_alone_give_no_score() -> None:
    result = score_rules("Follow me", [make_rule("cta_clarity", weight=0.0)], None)
    assert result.rules_evaluated == 1
    assert result.rule_score is None


def test_no_rules_gives_none_not_fifty() -> None:
    result = score_rules("Some content here", [], None)
    assert result == RuleResult(
        rule_score=None,
        contributions=[],
        rules_evaluated=0,
        rules_total=0,
        semantic_available=False,
    )


def test_contribution_shape_for_matched_and_unmatched_rules() -> None:
    rules = [make_rule("cta_clarity"), make_rule("question_hook")]
    result = score_rules("Follow me for more tips", rules, None)
    matched, unmatched = result.contributions
    assert matched.as_dict() == {
        "rule_id": "rule-cta_clarity",
        "rule_name": "cta_clarity",
        "tier": "regex",
        "matched": True,
        "score": pytest.approx(6.667, abs=1e-3),
        "max_score": 10.0,
        "weight": 1.0,
    }
    assert (unmatched.rule_id, unmatched.matched, unmatched.score) == (
        "rule-question_hook",
        False,
        0.0,
    )
    assert result.matched_names == ["cta_clarity"]


def test_empty_text_evaluates_no_regex_rule() -> None:
    # An absent caption (URL or upload mode) is not evidence: short_duration would "match" it
    # and every other regex rule would count it as a miss.
    rules = [make_rule("short_duration"), make_rule("cta_clarity"), make_semantic("Loop")]
    result = score_rules("  ", rules, {"loop": 8})
    assert [c.tier for c in result.contributions] == ["semantic"]
    assert result.rule_score == 80.0


# ------------------------------------------------------------------------- semantic tier


def test_semantic_rules_lists_name_and_prompt_of_evaluable_rules() -> None:
    rules = [
        make_rule("cta_clarity"),
        make_semantic("Emotional Arc", "Evaluate the arc; score 0-10 where 10 means..."),
        make_semantic("No Prompt", None),
    ]
    assert semantic_rules(rules) == [
        ("Emotional Arc", "Evaluate the arc; score 0-10 where 10 means...")
    ]


def test_semantic_unavailable_leaves_the_denominator() -> None:
    rules = [make_rule("cta_clarity", score_modifier=15), make_semantic("Niche Authority")]
    result = score_rules("Follow me", rules, None)
    # The original kept the semantic max in the denominator: 10 / 20 -> 50.
    assert result.rule_score == 100.0
    assert (result.rules_evaluated, result.rules_total) == (1, 2)
    assert result.semantic_available is False
    assert [c.tier for c in result.contributions] == ["regex"]


def test_semantic_only_and_unavailable_gives_none() -> None:
    result = score_rules("Content about cooking", [make_semantic("Niche Authority")], None)
    assert result.rule_score is None
    assert result.contributions == []


def test_semantic_scores_join_the_score() -> None:
    rules = [make_rule("cta_clarity", score_modifier=15), make_semantic("Niche Authority")]
    result = score_rules("Follow me", rules, {"niche authority": 7})  # any case
    assert result.semantic_available is True
    assert result.rules_evaluated == 2
    assert result.rule_score == 85.0  # (10 + 7) / 20
    semantic = result.contributions[1]
    assert (semantic.tier, semantic.score, semantic.matched) == ("semantic", 7.0, True)


def test_semantic_rule_matched_from_half_marks_but_points_always_count() -> None:
    rules = [make_semantic("Loop"), make_semantic("Arc")]
    result = score_rules("Some text", rules, {"LOOP": 4.9, "Arc": 5})
    assert [c.matched for c in result.contributions] == [False, True]
    assert result.rule_score == pytest.approx(49.5)


def test_partial_semantic_answer_leaves_out_the_missing_rules() -> None:
    rules = [make_semantic("Loop"), make_semantic("Arc"), make_semantic("Pacing")]
    result = score_rules("Some text", rules, {"Arc": 6, "Somebody Else": 10})
    assert [c.rule_name for c in result.contributions] == ["Arc"]
    assert (result.rules_evaluated, result.rules_total) == (1, 3)
    assert result.rule_score == 60.0


def test_empty_semantic_answer_is_available_but_evaluates_nothing() -> None:
    result = score_rules("Some text", [make_semantic("Loop")], {})
    assert result.semantic_available is True
    assert result.rule_score is None


def test_semantic_scores_are_clamped_and_nan_ignored() -> None:
    rules = [make_semantic("High"), make_semantic("Low"), make_semantic("Broken")]
    result = score_rules("Some text", rules, {"High": 14, "Low": -3, "Broken": math.nan})
    assert [(c.rule_name, c.score) for c in result.contributions] == [("High", 10), ("Low", 0)]
    assert result.rule_score == 50.0


def test_semantic_weight_and_max_score_apply() -> None:
    rules = [
        make_semantic("Loop", weight=2.0, max_score=20.0),
        make_rule("cta_clarity", score_modifier=15),
    ]
    result = score_rules("Follow me", rules, {"Loop": 5})
    assert result.contributions[0].score == 10.0  # 5/10 of 20
    assert result.rule_score == 60.0  # (10*2 + 10) / (20*2 + 10)


def test_semantic_rule_without_prompt_is_skipped_with_warning() -> None:
    rule = make_semantic("No Prompt Rule", None)
    with capture_logs() as logs:
        result = score_rules("Content", [rule], {"No Prompt Rule": 9})
    assert result.contributions == []
    assert result.rule_score is None
    assert [e["log_level"] for e in logs] == ["warning"]
    assert logs[0]["rule"] == "No Prompt Rule"


# ------------------------------------------------------------------------- the seeded library


@pytest.fixture
def store(tmp_path: Path) -> Any:
    """A migrated temporary store (the seed migration included)."""
    with connect(tmp_path / "s.duckdb") as con:
        yield con


# The seed table of the original (reference section 6): 18 cross-platform rules, 4 TikTok,
# 2 Instagram, 1 YouTube; 12 regex and 13 semantic.
TIKTOK_ONLY = {
    "TikTok Short Duration",
    "TikTok Trending Sound",
    "TikTok Duet Stitch Potential",
    "TikTok Text Overlay",
}
OTHER_PLATFORMS = {
    "Instagram Carousel Depth",
    "Instagram Reel Hook Speed",
    "YouTube Thumbnail Bait",
}


def test_seed_holds_the_25_rules(store: duckdb.DuckDBPyConnection) -> None:
    rows = run(
        store,
        "SELECT count(*), count(*) FILTER (WHERE evaluation_tier = 'semantic'),"
        " count(*) FILTER (WHERE platform IS NULL), count(DISTINCT id),"
        " bool_and(weight = 1.0 AND max_score = 10 AND is_active AND sample_count = 0),"
        " bool_and(accuracy_rate IS NULL)"
        " FROM rule_library",
    )
    assert rows == [(25, 13, 18, 25, True, True)]


def test_seed_rules_have_slug_ids_descriptions_and_real_prompts(
    store: duckdb.DuckDBPyConnection,
) -> None:
    rows = run(store, "SELECT id, name, description, evaluation_prompt FROM rule_library")
    prompt = re.compile(r"^Evaluate (if|how) .+; score 0-10 where 10 means .+\.$")
    prompts = set()
    for id_, name, description, evaluation_prompt in rows:
        assert id_ == re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        assert description and "\n" not in description
        assert prompt.match(evaluation_prompt), name
        prompts.add(evaluation_prompt)
    assert len(prompts) == 25  # one of its own for every rule


def test_seed_patterns_match_their_tier(store: duckdb.DuckDBPyConnection) -> None:
    rows = run(store, "SELECT pattern, evaluation_tier, score_modifier FROM rule_library")
    regex = {p for p, tier, _ in rows if tier == "regex"}
    semantic = {p for p, tier, _ in rows if tier == "semantic"}
    assert regex == set(MATCHERS)  # every regex rule has a matcher ...
    assert not semantic & set(MATCHERS)  # ... and no semantic one has a stub
    modifiers = {p: m for p, _, m in rows}
    assert (modifiers["question_hook"], modifiers["trending_sound"]) == (15, 15)
    assert (modifiers["bold_claim"], modifiers["text_overlay"]) == (8, 6)


def test_loads_the_tiktok_rules_and_no_other_platforms(store: duckdb.DuckDBPyConnection) -> None:
    rules = load_active_rules(store)
    names = {rule.name for rule in rules}
    assert len(rules) == 22  # 18 cross-platform + 4 TikTok
    assert names >= TIKTOK_ONLY
    assert not names & OTHER_PLATFORMS
    assert sum(r.evaluation_tier == "semantic" for r in rules) == 10  # 7 + 3
    assert {r.platform for r in rules} == {None, "tiktok"}
    assert load_active_rules(store, "TikTok") == rules


def test_loads_other_platforms(store: duckdb.DuckDBPyConnection) -> None:
    assert len(load_active_rules(store, "instagram")) == 20
    assert len(load_active_rules(store, "youtube")) == 19
    # The original passed the content type, which loaded no platform rule at all.
    assert len(load_active_rules(store, "video")) == 18


def test_loaded_rule_fields(store: duckdb.DuckDBPyConnection) -> None:
    rule = next(r for r in load_active_rules(store) if r.id == "question-hook")
    assert rule == Rule(
        id="question-hook",
        name="Question Hook",
        category="hook",
        pattern="question_hook",
        score_modifier=15.0,
        platform=None,
        evaluation_tier="regex",
        evaluation_prompt=rule.evaluation_prompt,
        weight=1.0,
        max_score=10.0,
    )
    assert rule.evaluation_prompt and rule.evaluation_prompt.startswith("Evaluate ")


def test_inactive_rules_are_skipped(store: duckdb.DuckDBPyConnection) -> None:
    off = ["question-hook", "tiktok-text-overlay"]
    run(store, "UPDATE rule_library SET is_active = false WHERE id IN (?, ?)", off)
    ids = {r.id for r in load_active_rules(store)}
    assert len(ids) == 20
    assert not ids & set(off)


def test_changed_weights_are_loaded_and_applied(store: duckdb.DuckDBPyConnection) -> None:
    run(store, "UPDATE rule_library SET weight = 2.5 WHERE id = 'call-to-action-clarity'")
    rules = load_active_rules(store)
    cta = next(r for r in rules if r.id == "call-to-action-clarity")
    assert cta.weight == 2.5
    result = score_rules("Follow me", [cta, next(r for r in rules if r.id == "story-hook")], None)
    assert result.rule_score == pytest.approx(5.333 * 2.5 / 35 * 100, abs=0.05)


def test_empty_library_loads_no_rules(store: duckdb.DuckDBPyConnection) -> None:
    run(store, "DELETE FROM rule_library")
    assert load_active_rules(store) == []


def test_store_error_is_raised_not_hidden(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "bare.duckdb"))  # never migrated: no rule_library
    with pytest.raises(duckdb.CatalogException):
        load_active_rules(con)
    con.close()


def test_seeded_tiktok_library_scores_a_draft(store: duckdb.DuckDBPyConnection) -> None:
    rules = load_active_rules(store)
    text = "Stop scrolling! I tried the secret trick everyone uses. Follow for part 2 #fyp"
    regex_only = score_rules(text, rules, None)
    assert (regex_only.rules_evaluated, regex_only.rules_total) == (12, 22)
    assert set(regex_only.matched_names) == {
        "Curiosity Gap",
        "Negative Bias Hook",
        "Bold Claim Hook",
        "TikTok Short Duration",
        "Caption Hook Alignment",
        "Call to Action Clarity",
        "Authenticity Signal",
    }
    # 8 + 6.67 + 5.33 + 6.67 + 6.67 + 5.33 + 8 = 46.67 of 120
    assert regex_only.rule_score == 38.9
    answers = {name: 5.0 for name, _ in semantic_rules(rules)}
    with_llm = score_rules(text, rules, answers)
    assert with_llm.rules_evaluated == 22
    assert with_llm.rule_score == pytest.approx((46.667 + 50) / 220 * 100, abs=0.05)
