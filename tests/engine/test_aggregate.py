"""Aggregator (TEST-03): weights, redistribution, clamping, confidence, Platt scaling."""

from __future__ import annotations

import itertools

import pytest

from virtuna.engine.aggregate import (
    BASE_WEIGHTS,
    aggregate,
    confidence_label,
    select_weights,
    signal_profile,
)
from virtuna.engine.calibrate import PlattParams, apply_platt

ALL = dict.fromkeys(BASE_WEIGHTS, True)


def test_all_signals_use_the_base_weights() -> None:
    assert select_weights(ALL) == BASE_WEIGHTS


def test_missing_ml_goes_to_the_others_in_proportion() -> None:
    weights = select_weights({**ALL, "ml": False})
    assert weights == {
        "behavioral": 0.412,
        "gemini": 0.294,
        "ml": 0.0,
        "rules": 0.176,
        "trends": 0.118,
    }


@pytest.mark.parametrize(
    "missing",
    [
        ("behavioral",),
        ("behavioral", "ml"),
        ("gemini", "rules"),
        ("trends",),
        ("ml", "trends"),
    ],
)
def test_redistributed_weights_sum_to_one_and_zero_the_missing(missing: tuple[str, ...]) -> None:
    weights = select_weights({name: name not in missing for name in BASE_WEIGHTS})
    assert sum(weights.values()) == pytest.approx(1.0, abs=0.002)
    assert all(weights[m] == 0.0 for m in missing)


def test_only_gemini_takes_all_the_weight_and_none_gives_zeros() -> None:
    assert select_weights({"gemini": True})["gemini"] == 1.0
    assert set(select_weights({}).values()) == {0.0}


def test_every_combination_of_availability_sums_to_one_or_zero() -> None:
    for flags in itertools.product([True, False], repeat=len(BASE_WEIGHTS)):
        weights = select_weights(dict(zip(BASE_WEIGHTS, flags, strict=True)))
        assert sum(weights.values()) == pytest.approx(1.0 if any(flags) else 0.0, abs=0.002)


def test_score_is_the_weighted_sum_of_available_signals() -> None:
    result = aggregate({"behavioral": 80, "gemini": 60, "ml": None, "rules": 50, "trends": 10})
    expected = 80 * 0.412 + 60 * 0.294 + 50 * 0.176 + 10 * 0.118
    assert result.raw_score == pytest.approx(expected, abs=0.01)
    assert result.overall_score == result.raw_score and not result.is_calibrated
    assert "missing signals: ml" in result.warnings[0]


def test_scores_are_clamped() -> None:
    high = aggregate({"behavioral": 200, "gemini": 150, "ml": 200, "rules": 100, "trends": 100})
    low = aggregate({"behavioral": -10, "gemini": 0, "ml": 0, "rules": 0, "trends": 0})
    assert (high.raw_score, low.raw_score) == (100.0, 0.0)


def test_high_confidence_with_video_sounds_rules_and_agreement() -> None:
    result = aggregate(
        {"behavioral": 78, "gemini": 74, "ml": 70, "rules": 60, "trends": 40},
        has_video=True,
        matched_sounds=1,
        matched_rules=3,
        deepseek_confidence="high",
    )
    assert result.confidence == pytest.approx(0.2 + 0.1 * 4 + 0.4)
    assert result.confidence_label == "HIGH"


def test_disagreement_and_missing_signals_lower_confidence() -> None:
    result = aggregate({"behavioral": 90, "gemini": 20, "ml": None, "rules": None, "trends": None})
    assert result.confidence == pytest.approx(0.2 - 0.05 - 0.05)
    assert result.confidence_label == "LOW"
    assert "Low confidence: limited signal data" in result.warnings


def test_close_scores_on_opposite_sides_agree_partly() -> None:
    result = aggregate({"behavioral": 55, "gemini": 45, "ml": None, "rules": 50, "trends": 50})
    assert result.confidence == pytest.approx(0.2 + 0.2)


def test_both_llms_missing_is_a_partial_low_result_not_an_error() -> None:
    result = aggregate({"behavioral": None, "gemini": None, "ml": None, "rules": 70, "trends": 30})
    assert (result.confidence, result.confidence_label) == (0.2, "LOW")
    assert any("Both LLM signals unavailable" in w for w in result.warnings)
    assert result.weights["rules"] == 0.6


def test_labels() -> None:
    assert [confidence_label(c) for c in (0.7, 0.69, 0.4, 0.39)] == [
        "HIGH",
        "MEDIUM",
        "MEDIUM",
        "LOW",
    ]


def test_a_profile_map_calibrates_only_its_own_profile() -> None:
    profile = "behavioral+gemini+rules+trends|reference_tier"
    params = PlattParams(version=3, profile=profile, a=4.0, b=-1.0)
    other = PlattParams(version=4, profile="ml+rules|beats_usual", a=1.0, b=-5.0)
    scores = {"behavioral": 50, "gemini": 50, "ml": None, "rules": 50, "trends": 50}
    maps = {profile: params, other.profile: other}
    result = aggregate(scores, calibrations=maps)
    assert result.signal_profile == profile
    assert result.is_calibrated and result.calibration_version == 3
    assert result.raw_score == 50.0
    assert result.overall_score == apply_platt(50.0, params) == 73.11
    # The same signals predicting another outcome are another profile: served raw, and said.
    relative = aggregate(scores, target="beats_usual", calibrations=maps)
    assert relative.signal_profile == "behavioral+gemini+rules+trends|beats_usual"
    assert not relative.is_calibrated and relative.overall_score == relative.raw_score == 50.0
    assert any("No calibration for signal profile" in w for w in relative.warnings)
    assert not any("No calibration" in w for w in result.warnings)


def test_the_profile_names_the_signals_in_a_fixed_order() -> None:
    available = {"trends": True, "ml": True, "rules": True, "gemini": False}
    assert signal_profile(available, "beats_usual") == "ml+rules+trends|beats_usual"
    assert signal_profile({}, "reference_tier") == "none|reference_tier"


def test_apply_platt_is_monotone_bounded_and_stable() -> None:
    params = PlattParams(1, "p", a=6.0, b=-3.0)
    values = [apply_platt(s, params) for s in range(0, 101, 10)]
    assert values == sorted(values)
    assert 0 < values[0] < 10 and 90 < values[-1] < 100
    assert apply_platt(100, PlattParams(1, "p", a=5000.0, b=0.0)) == 100.0
    assert apply_platt(0, PlattParams(1, "p", a=1.0, b=-5000.0)) == 0.0
