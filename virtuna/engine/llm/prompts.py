"""The prompts: Gemini's 5-factor content reading, DeepSeek's 5-step behavioural framework,
and the batched semantic-rule evaluation. Pure functions of their inputs (easy to test).

Every rate in `CalibrationBaseline` is a fraction of views; prompts print it as a percentage.
"""

from __future__ import annotations

from virtuna.engine.baseline import CalibrationBaseline, Differentiator, Percentiles
from virtuna.engine.llm.schemas import FACTOR_NAMES, GeminiAnalysis
from virtuna.engine.schema import ContentPayload

__all__ = [
    "FACTOR_DESCRIPTIONS",
    "content_analysis_prompt",
    "reasoning_prompt",
    "rules_prompt",
]

FACTOR_DESCRIPTIONS: dict[str, str] = {
    "Scroll-Stop Power": "hook strength, curiosity gap, pattern interrupt, opening impact",
    "Completion Pull": "narrative tension, pacing, payoff anticipation, information drip",
    "Rewatch Potential": "layered meaning, loops, 'wait what' moments, reveals",
    "Share Trigger": "relatability, identity signalling, provocation, 'tag someone'",
    "Emotional Charge": "intensity (not type) of the emotion the content provokes",
}

_REASONING_EXAMPLE = """{
  "behavioral_predictions": {
    "completion_pct": 45.0, "completion_percentile": "top 30%",
    "share_pct": 0.8, "share_percentile": "top 25%",
    "comment_pct": 0.4, "comment_percentile": "top 40%",
    "save_pct": 0.5, "save_percentile": "top 35%"
  },
  "component_scores": {
    "hook_effectiveness": 6.5, "retention_strength": 5.0, "shareability": 6.0,
    "comment_provocation": 4.5, "save_worthiness": 5.5, "trend_alignment": 5.0,
    "originality": 6.0
  },
  "suggestions": [{"text": "...", "priority": "high", "category": "hook"}],
  "warnings": ["..."],
  "confidence": "medium"
}"""


def _pct(rate: float) -> str:
    """A fraction of views as a percentage (0.0183 -> '1.83%')."""
    return f"{rate * 100:.2f}%"


def _percentiles(p: Percentiles) -> str:
    """'p50 0.28%, p75 0.74%, p90 1.83%'."""
    return f"p50 {_pct(p.p50)}, p75 {_pct(p.p75)}, p90 {_pct(p.p90)}"


def _top_differentiators(baseline: CalibrationBaseline, n: int) -> list[Differentiator]:
    """The n differentiators with the largest absolute difference."""
    return sorted(baseline.differentiators, key=lambda d: abs(d.difference_pct), reverse=True)[:n]


def _differentiator_lines(baseline: CalibrationBaseline, n: int) -> str:
    """One line per top differentiator, or a note that none are known."""
    top = _top_differentiators(baseline, n)
    if not top:
        return "- (no differentiators measured)"
    return "\n".join(
        f"- {d.name}: viral median {d.viral_median:g} vs average {d.average_median:g} "
        f"({d.difference_pct:+.0f}%)"
        for d in top
    )


def _source(baseline: CalibrationBaseline) -> str:
    """Where the calibration numbers come from."""
    if baseline.is_fallback or baseline.video_count == 0:
        return "reference values (no measured baseline available)"
    return f"{baseline.video_count:,} analysed TikTok videos"


def _content_block(payload: ContentPayload) -> str:
    """The draft as the prompts show it."""
    lines = [f"Content type: {payload.content_type}"]
    if payload.niche:
        lines.append(f"Niche: {payload.niche}")
    if payload.hashtags:
        lines.append("Hashtags: " + " ".join(f"#{tag}" for tag in payload.hashtags))
    if payload.duration_hint is not None:
        lines.append(f"Duration: {payload.duration_hint:g} s")
    if payload.video_url:
        lines.append(f"Video: {payload.video_url}")
    lines.append(f'Text:\n"""\n{payload.content_text}\n"""')
    return "\n".join(lines)


def content_analysis_prompt(payload: ContentPayload, baseline: CalibrationBaseline) -> str:
    """Gemini's prompt: score content quality on the 5 named factors, quoting the baseline."""
    low, high = baseline.duration_sweet_spot
    factors = "\n".join(
        f'{i}. "{name}": {FACTOR_DESCRIPTIONS[name]}' for i, name in enumerate(FACTOR_NAMES, 1)
    )
    tip_scope = (
        f"Make every improvement tip specific to the {payload.niche} niche."
        if payload.niche
        else "Make every improvement tip concrete and actionable."
    )
    return f"""You are a TikTok content analyst. Score the CONTENT QUALITY of the draft below \
(not its likely engagement) on exactly these 5 factors, using these exact names:
{factors}

Scoring: 0.0 to 10.0 with one decimal, on an absolute scale (not relative to the niche). \
Most content scores 4-7; above 8 is exceptional. For each factor give a 1-2 sentence \
rationale and one actionable improvement tip. {tip_scope}

Calibration data from {_source(baseline)}:
- Viral share-rate threshold (p90): {_pct(baseline.share_rate.p90)} of views
- Viral weighted engagement (p90, (likes + 2 comments + 3 shares) / views): \
{_pct(baseline.weighted_engagement.p90)}
- Duration sweet spot: {low:g}-{high:g} s
- Top differentiators between viral and average videos:
{_differentiator_lines(baseline, 3)}

Draft:
{_content_block(payload)}

Answer in JSON with "factors" (5 objects with "name", "score", "rationale", \
"improvement_tip"), "overall_impression" and "content_summary"."""


def _gemini_signals(gemini: GeminiAnalysis | None) -> str:
    """Gemini's qualitative reading WITHOUT numeric scores (so DeepSeek is not anchored)."""
    if gemini is None:
        return "Not available."
    lines = [
        f"- {factor.name}: {factor.rationale} Tip: {factor.improvement_tip}"
        for factor in gemini.factors
    ]
    lines.append(f"Overall impression: {gemini.overall_impression}")
    lines.append(f"Summary: {gemini.content_summary}")
    return "\n".join(lines)


def reasoning_prompt(
    payload: ContentPayload,
    *,
    gemini: GeminiAnalysis | None,
    rule_names: list[str],
    trend_context: str,
    creator_context: str,
    baseline: CalibrationBaseline,
) -> str:
    """DeepSeek's 5-step behavioural prompt (sent as is to any fallback provider)."""
    low, high = baseline.duration_sweet_spot
    rules = "\n".join(f"- {name}" for name in rule_names) if rule_names else "- (none matched)"
    trends = trend_context.strip() or "No trend data available."
    creator = creator_context.strip() or "No creator data available."
    return f"""You are an expert TikTok content strategist predicting how viewers will behave \
with a draft post. Reason internally; output only a JSON object.

Follow these 5 steps:
1. Completion analysis: rate hook_effectiveness and retention_strength (0-10) and predict \
completion_pct (percent of viewers who watch to the end).
2. Engagement prediction: rate shareability, comment_provocation and save_worthiness (0-10) \
and predict share_pct, comment_pct and save_pct (percent of viewers).
3. Pattern match against known viral patterns (loop structure, duet/stitch bait, trending \
sound alignment, hook in the first 3 s, emotional escalation, "wait for it" payoff), the \
differentiators and the duration sweet spot below; rate trend_alignment and originality (0-10).
4. Fatal-flaw check: list in "warnings" any of: no hook in the first 2 s; over 60 s for a \
simple topic; misleading hook; poor or no audio strategy; caption over 100 characters for \
non-educational content; content that discourages sharing.
5. Final predictions with percentile framing ("top X%") against these rates from \
{_source(baseline)}:
- Share rate: {_percentiles(baseline.share_rate)}
- Comment rate: {_percentiles(baseline.comment_rate)}
- Save rate: {_percentiles(baseline.save_rate)}
- Duration sweet spot: {low:g}-{high:g} s
- Top differentiators between viral and average videos:
{_differentiator_lines(baseline, 5)}

Draft:
{_content_block(payload)}

Content-quality reading (qualitative only):
{_gemini_signals(gemini)}

Matched content rules:
{rules}

Trend context:
{trends}

Creator context:
{creator}

Give 3-5 suggestions, each with "priority" (high, medium or low) and "category" (one of \
hook, content, format, timing, audio). Set "confidence" to "high" with video, text and trend \
data, "medium" with text and some signals, "low" when information is limited.

Return JSON exactly in this shape:
{_REASONING_EXAMPLE}"""


def rules_prompt(content_text: str, rules: list[tuple[str, str]]) -> str:
    """The batched semantic-rule prompt: every rule listed as 'i. <name>: <prompt>'."""
    listed = "\n".join(f"{i}. {name}: {prompt}" for i, (name, prompt) in enumerate(rules, 1))
    return f"""Evaluate this TikTok draft against each rule below. Score each rule from 0 to \
10 as its own prompt describes, with a one-sentence rationale.

Draft:
\"\"\"
{content_text}
\"\"\"

Rules:
{listed}

Return a JSON object with one entry per rule, using the rule names exactly as listed:
{{"evaluations": [{{"rule_name": "<name>", "score": 0, "rationale": "<one sentence>"}}]}}"""
