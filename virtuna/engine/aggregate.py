"""Aggregation: weighted signals, redistributed weights, confidence, calibration per profile.

Base weights: behavioural 0.35, gemini 0.25, ml 0.15, rules 0.15, trends 0.10. A missing signal's
weight goes to the available ones in proportion to their own; a missing signal is never scored
as a constant. Confidence = signal strength + agreement between the two LLM views:

- signal: 0.2, +0.1 when a video was actually analysed, +0.1 when a trending sound matched,
  +0.1 with at least 3 matched rules, +0.1 / +0.05 for DeepSeek's own high / medium confidence,
  -0.05 when rules are unavailable, -0.05 when trends are unavailable;
- agreement: gemini and behavioural on the same side of 50 -> 0.4; opposite sides but within 15
  points -> 0.2; otherwise (or either missing) 0;
- HIGH >= 0.7, MEDIUM >= 0.4, else LOW. With both LLM signals unavailable the result is a
  partial one with confidence 0.2 (LOW) and a warning, never an exception.

The signal profile is the set of signals a score was computed from and the outcome it predicts
(e.g. `ml+rules|reference_tier`). Raw scores of different profiles mean different things, so
each profile has its own calibration map, fitted on outcomes of that profile only; a score whose
profile has no map is served raw, with `is_calibrated` false and a warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from virtuna.engine.calibrate import PlattParams, apply_platt

BASE_WEIGHTS = {"behavioral": 0.35, "gemini": 0.25, "ml": 0.15, "rules": 0.15, "trends": 0.10}
SIGNALS = tuple(BASE_WEIGHTS)


def signal_profile(available: Mapping[str, bool], target: str) -> str:
    """The profile key: the available signals in a fixed order, then the predicted outcome."""
    names = "+".join(name for name in SIGNALS if available.get(name)) or "none"
    return f"{names}|{target}"


def select_weights(available: dict[str, bool]) -> dict[str, float]:
    """The weights in force: base weights, missing ones redistributed in proportion."""
    present = {name: w for name, w in BASE_WEIGHTS.items() if available.get(name)}
    total = sum(present.values())
    if total == 0:
        return dict.fromkeys(BASE_WEIGHTS, 0.0)
    return {name: round(present.get(name, 0.0) / total, 3) for name in BASE_WEIGHTS}


def confidence_label(confidence: float) -> str:
    """HIGH, MEDIUM or LOW."""
    if confidence >= 0.7:
        return "HIGH"
    if confidence >= 0.4:
        return "MEDIUM"
    return "LOW"


@dataclass(frozen=True)
class Aggregate:
    """The combined score and how sure we are."""

    raw_score: float
    overall_score: float
    target: str  # the outcome the score is a probability of
    signal_profile: str
    is_calibrated: bool
    calibration_version: int | None
    weights: dict[str, float]
    confidence: float
    confidence_label: str
    warnings: list[str]


def aggregate(
    scores: dict[str, float | None],
    *,
    has_video: bool = False,
    matched_sounds: int = 0,
    matched_rules: int = 0,
    deepseek_confidence: str | None = None,
    target: str = "reference_tier",
    calibrations: Mapping[str, PlattParams] | None = None,
) -> Aggregate:
    """Combine signal scores (0-100; None = unavailable) into the overall score, calibrated by
    the map of its signal profile when there is one."""
    available = {name: scores.get(name) is not None for name in SIGNALS}
    profile = signal_profile(available, target)
    platt = (calibrations or {}).get(profile)
    weights = select_weights(available)
    raw = sum((scores[name] or 0.0) * weights[name] for name in SIGNALS if available[name])
    raw = round(min(100.0, max(0.0, raw)), 2)
    warnings: list[str] = []
    missing = [name for name in SIGNALS if not available[name]]
    if missing and len(missing) < len(SIGNALS):
        warnings.append(f"Weights redistributed; missing signals: {', '.join(missing)}")

    signal = 0.2
    signal += 0.1 if has_video else 0.0
    signal += 0.1 if matched_sounds > 0 else 0.0
    signal += 0.1 if matched_rules >= 3 else 0.0
    signal += {"high": 0.1, "medium": 0.05}.get(deepseek_confidence or "", 0.0)
    signal -= 0.05 if not available["rules"] else 0.0
    signal -= 0.05 if not available["trends"] else 0.0
    gemini, behavioral = scores.get("gemini"), scores.get("behavioral")
    agreement = 0.0
    if gemini is not None and behavioral is not None:
        if (gemini >= 50) == (behavioral >= 50):
            agreement = 0.4
        elif abs(gemini - behavioral) <= 15:
            agreement = 0.2
    confidence = round(min(1.0, max(0.0, signal + agreement)), 3)
    if gemini is None and behavioral is None:
        confidence = 0.2
        warnings.append("Both LLM signals unavailable; result based on rules, trends and ML only")
    label = confidence_label(confidence)
    if label == "LOW":
        warnings.append("Low confidence: limited signal data")

    if platt is None:
        warnings.append(
            f"No calibration for signal profile {profile} yet: the score is served uncalibrated"
        )
    overall = apply_platt(raw, platt) if platt else raw
    return Aggregate(
        raw_score=raw,
        overall_score=overall,
        target=target,
        signal_profile=profile,
        is_calibrated=platt is not None,
        calibration_version=platt.version if platt else None,
        weights=weights,
        confidence=confidence,
        confidence_label=label,
        warnings=warnings,
    )
