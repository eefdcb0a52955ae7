"""Calibration (TEST-06): ECE against a plain reference, Platt fits, outcomes, audit, rules."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from virtuna.calibration.ece import (
    bootstrap_ece,
    calibration_bins,
    expected_calibration_error,
    top_label_ece,
)
from virtuna.calibration.platt import (
    NotEnoughOutcomesError,
    audit_platt,
    fit_platt,
    platt_probability,
)
from virtuna.engine.calibrate import active_calibrations, apply_platt
from virtuna.jobs.calibration_audit import calibration_audit, outcome_window
from virtuna.jobs.validate_rules import _verdict, rule_weight, validate_rules
from virtuna.store import connect
from virtuna.store.outcomes import (
    AnalysisNotFoundError,
    Derived,
    OutcomeConflictError,
    OutcomeReport,
    record_outcome,
)


def reference_ece(y: list[float], p: list[float], bins: int = 10) -> float:
    """ECE written plainly, one prediction at a time (the independent implementation)."""
    totals = [[0, 0.0, 0.0] for _ in range(bins)]
    for outcome, prob in zip(y, p, strict=True):
        index = min(int(prob * bins), bins - 1)
        totals[index][0] += 1
        totals[index][1] += prob
        totals[index][2] += outcome
    return sum(n / len(p) * abs(sp / n - sy / n) for n, sp, sy in totals if n)


def test_ece_agrees_with_the_plain_reference() -> None:
    rng = np.random.default_rng(3)
    p = rng.random(5000)
    y = (rng.random(5000) < p**2).astype(float)
    assert expected_calibration_error(y, p) == pytest.approx(reference_ece(list(y), list(p)), 1e-12)


def test_ece_edge_cases() -> None:
    assert expected_calibration_error(np.array([1, 0, 1, 0]), np.array([1.0, 0.0, 1.0, 0.0])) == 0
    assert expected_calibration_error(np.array([0, 1]), np.array([1.0, 0.0])) == 1.0
    bins = calibration_bins(np.array([1.0]), np.array([1.0]))
    assert bins.counts[-1] == 1  # p = 1.0 falls in the last bin
    with pytest.raises(ValueError, match="no predictions"):
        expected_calibration_error(np.array([]), np.array([]))


def test_equal_mass_bins_hold_the_same_count_and_mce_is_the_worst_gap() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(1000)
    y = (rng.random(1000) < p).astype(float)
    bins = calibration_bins(y, p, 10, "mass")
    assert set(bins.counts.tolist()) == {100.0}
    gaps = np.abs(bins.mean_predicted - bins.mean_observed)
    assert bins.mce == pytest.approx(gaps.max())


def test_bootstrap_interval_contains_the_point_value() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(2000)
    y = (rng.random(2000) < 0.5).astype(float)
    point, low, high = bootstrap_ece(y, p, resamples=200)
    assert low <= point <= high and high - low < 0.1


def test_top_label_ece() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    assert top_label_ece(np.array([0, 1, 1]), probs, np.array([0, 1]), n_bins=15) == (
        pytest.approx((0.1 + 0.8 + 0.3) / 3)
    )


def test_platt_recovers_a_known_sigmoid() -> None:
    rng = np.random.default_rng(7)
    scores = rng.uniform(0, 100, 20000)
    truth = platt_probability(scores, a=6.0, b=-4.0)
    outcomes = (rng.random(20000) < truth).astype(int)
    a, b = fit_platt(scores, outcomes)
    assert a == pytest.approx(6.0, abs=0.3) and b == pytest.approx(-4.0, abs=0.2)


def test_platt_on_calibrated_scores_stays_close_to_identity() -> None:
    rng = np.random.default_rng(8)
    scores = rng.uniform(0, 100, 20000)
    outcomes = (rng.random(20000) < scores / 100).astype(int)
    a, b = fit_platt(scores, outcomes)
    mapped = platt_probability(np.linspace(0, 100, 101), a, b)
    assert np.mean(np.abs(mapped - np.linspace(0, 1, 101))) < 0.04
    assert 0.4 < platt_probability(np.array([50.0]), a, b)[0] < 0.6  # unlike the original's 99


def test_platt_needs_enough_outcomes_of_both_kinds() -> None:
    with pytest.raises(NotEnoughOutcomesError, match="50 outcomes"):
        fit_platt(np.arange(49), np.ones(49))
    with pytest.raises(NotEnoughOutcomesError, match="both outcomes"):
        fit_platt(np.arange(60), np.ones(60))


def test_audit_platt_judges_on_held_out_rows() -> None:
    rng = np.random.default_rng(2)
    scores = rng.uniform(0, 60, 4000)  # under-confident: truth is higher
    outcomes = (rng.random(4000) < np.clip(scores / 60, 0, 1)).astype(int)
    audit, held = audit_platt(scores, outcomes)
    assert audit.held_out == held.sum() and audit.fitted_on == (~held).sum()
    assert audit.improves and audit.ece_after < audit.ece_before


PROFILE = "ml+rules|reference_tier"


def _analysis(
    con,
    score: float,
    *,
    user: str | None = "u1",
    contributions=None,
    created: datetime | None = None,
    profile: str | None = PROFILE,
    threshold: float | None = None,
) -> str:
    analysis_id = str(uuid.uuid4())
    con.execute(
        "INSERT INTO analysis_results (id, input_mode, overall_score, raw_score, confidence, "
        "confidence_label, rule_contributions, user_id, created_at, signal_profile, "
        "resonates_at_views) VALUES (?, 'text', ?, ?, 0.5, 'MEDIUM', ?, ?, ?, ?, ?)",
        [
            analysis_id,
            score,
            score,
            json.dumps(contributions or []),
            user,
            created or datetime(2025, 1, 1),
            profile,
            threshold,
        ],
    )
    return analysis_id


def test_outcomes_are_one_per_analysis_and_owned(db_path: Path) -> None:
    with connect(db_path) as con:
        mine = _analysis(con, 40.0)
        row = record_outcome(
            con,
            OutcomeReport(analysis_id=mine, actual_views=1000),
            user_id="u1",
            derived=Derived(actual_score=55.0, actual_tier=3),
        )
        assert (row["actual_score"], row["predicted_score"], row["delta"]) == (55.0, 40.0, 15.0)
        assert row["resonated"] is False  # no threshold stored: tier 3 is below tier 4
        with pytest.raises(OutcomeConflictError):
            record_outcome(
                con, OutcomeReport(analysis_id=mine), user_id="u1", derived=Derived(None, None)
            )
        with pytest.raises(AnalysisNotFoundError):
            record_outcome(
                con,
                OutcomeReport(analysis_id=_analysis(con, 10.0, user="u2")),
                user_id="u1",
                derived=Derived(None, None),
            )
    with pytest.raises(ValueError):
        OutcomeReport(analysis_id=mine, actual_views=-1)


def _outcome(
    con, analysis_id: str, tier: int, score: float, when: datetime, source: str = "user"
) -> None:
    con.execute(
        "INSERT INTO outcomes (id, analysis_id, actual_tier, actual_score, predicted_score, "
        "source, reported_at, created_at) SELECT ?, ?, ?, ?, overall_score, ?, ?, ? "
        "FROM analysis_results WHERE id = ?",
        [str(uuid.uuid4()), analysis_id, tier, score, source, when, when, analysis_id],
    )


def test_audit_skips_below_fifty_outcomes(db_path: Path) -> None:
    with connect(db_path) as con:
        for i in range(10):
            _outcome(con, _analysis(con, 50.0), 4, 80.0, datetime(2025, 1, 1) + timedelta(i))
    result = calibration_audit(as_of="latest", db_path=db_path)
    assert result.status == "skipped" and "at least 50" in (result.reason or "")


def test_audit_fits_activates_and_predictions_become_calibrated(db_path: Path) -> None:
    rng = np.random.default_rng(5)
    start = datetime(2025, 3, 1)
    with connect(db_path) as con:
        for i in range(400):
            raw = float(rng.uniform(0, 100))
            resonated = rng.random() < min(1.0, raw / 50)  # raw scores are far too low
            _outcome(
                con, _analysis(con, raw), 5 if resonated else 2, 50.0, start + timedelta(hours=i)
            )
        assert active_calibrations(con) == {}
    dry = calibration_audit(as_of="latest", db_path=db_path, resamples=100, dry_run=True)
    assert dry.activated == [PROFILE] and dry.profiles[0].version is None  # would activate
    with connect(db_path) as con:
        assert active_calibrations(con) == {}
        assert con.execute("SELECT count(*) FROM calibration_params").fetchall() == [(0,)]
    result = calibration_audit(as_of="latest", db_path=db_path, resamples=100)
    assert result.status == "completed" and result.samples == 400
    assert result.drift and result.ece is not None and result.ece > 0.15
    (audited,) = result.profiles
    assert audited.platt is not None and result.activated == [PROFILE]
    assert audited.platt.ece_after < 0.05 < audited.platt.ece_before
    low, high = audited.ece_after_interval or (1, 0)
    assert low <= audited.platt.ece_after <= high
    with connect(db_path) as con:
        params = active_calibrations(con)[PROFILE]
        stored = con.execute(
            "SELECT profile, sample_count, held_out_count, ece_after_low, window_end "
            "FROM calibration_params WHERE version = ?",
            [params.version],
        ).fetchall()[0]
    assert params.version == audited.version
    assert stored[:4] == (PROFILE, 400, audited.platt.held_out, low)
    assert stored[4] == result.window.end  # type: ignore[union-attr]
    assert apply_platt(25.0, params) > 35.0  # the map lifts the too-low raw scores


def test_each_profile_gets_its_own_map_and_small_profiles_none(db_path: Path) -> None:
    rng = np.random.default_rng(6)
    start = datetime(2025, 3, 1)
    with connect(db_path) as con:
        for i in range(790):
            raw = float(rng.uniform(0, 100))
            if i < 400:  # scores twice too low
                profile, hit = "ml+rules|reference_tier", rng.random() < min(1.0, raw / 50)
            elif i < 640:  # scores far too high
                profile, hit = "ml+rules|beats_usual", rng.random() < raw / 400
            else:  # a profile with 150 outcomes: fitted, not served
                profile, hit = "gemini+ml+rules|beats_usual", rng.random() < raw / 100
            analysis = _analysis(con, raw, profile=profile)
            _outcome(con, analysis, 5 if hit else 2, 50.0, start + timedelta(hours=i))
        _outcome(con, _analysis(con, 50.0, profile=None), 5, 50.0, start)  # before profiles
    result = calibration_audit(as_of="latest", db_path=db_path, resamples=50)
    assert result.samples == 791
    by_profile = {p.profile: p for p in result.profiles}
    assert set(by_profile) == {
        "ml+rules|reference_tier",
        "ml+rules|beats_usual",
        "gemini+ml+rules|beats_usual",
    }
    assert sorted(result.activated) == ["ml+rules|beats_usual", "ml+rules|reference_tier"]
    small = by_profile["gemini+ml+rules|beats_usual"]
    assert not small.activated and "served from 200" in (small.reason or "")
    with connect(db_path) as con:
        maps = active_calibrations(con)
    assert set(maps) == set(result.activated)
    # The same raw score means different things in the two profiles.
    lifted = apply_platt(40.0, maps["ml+rules|reference_tier"])
    lowered = apply_platt(40.0, maps["ml+rules|beats_usual"])
    assert lowered < 20 < 60 < lifted
    # A later audit replaces a profile's map and leaves the other profiles' alone.
    again = calibration_audit(as_of="latest", db_path=db_path, resamples=20)
    with connect(db_path) as con:
        active = con.execute(
            "SELECT profile, count(*) FROM calibration_params WHERE is_active GROUP BY 1"
        ).fetchall()
    assert dict(active) == dict.fromkeys(again.activated, 1)


def test_the_absolute_targets_map_learns_from_live_outcomes_only(db_path: Path) -> None:
    # Backtests replay scraped collections, chosen by how their videos did: an absolute rate
    # learned from them would be the collections' rate, served to a new creator's draft.
    rng = np.random.default_rng(7)
    start = datetime(2025, 3, 1)
    with connect(db_path) as con:
        for i in range(800):
            raw = float(rng.uniform(0, 100))
            profile = "ml+rules|reference_tier" if i < 400 else "ml+rules|beats_usual"
            hit = rng.random() < min(1.0, raw / 50)
            analysis = _analysis(con, raw, profile=profile, user=None)
            _outcome(con, analysis, 5 if hit else 2, 50.0, start + timedelta(hours=i), "backtest")
    result = calibration_audit(as_of="latest", db_path=db_path, resamples=20)
    by_profile = {p.profile: p for p in result.profiles}
    absolute = by_profile["ml+rules|reference_tier"]
    assert absolute.samples == 400 and absolute.excluded == 400 and not absolute.activated
    assert "400 backtest outcomes left out" in (absolute.reason or "")
    assert result.activated == ["ml+rules|beats_usual"]  # a relative target may use them
    # A map fitted earlier on backtests is retired: its scores are served raw, and say so.
    with connect(db_path) as con:
        con.execute(
            "INSERT INTO calibration_params (version, method, profile, a, b, sample_count, "
            "is_active, fitted_at) VALUES (99, 'platt', 'ml+rules|reference_tier', 1, 0, 400, "
            "TRUE, now()::TIMESTAMP)"
        )
        assert "ml+rules|reference_tier" in active_calibrations(con)
    calibration_audit(as_of="latest", db_path=db_path, resamples=20, dry_run=True)
    with connect(db_path) as con:
        assert "ml+rules|reference_tier" in active_calibrations(con)  # a dry run changes nothing
    calibration_audit(as_of="latest", db_path=db_path, resamples=20)
    with connect(db_path) as con:
        assert "ml+rules|reference_tier" not in active_calibrations(con)


def test_the_window_ends_now_unless_the_last_window_has_no_outcome(db_path: Path) -> None:
    assert outcome_window(None, 90, db_path) is None
    with connect(db_path) as con:
        _outcome(con, _analysis(con, 50.0), 4, 80.0, datetime(2025, 5, 1))
    historical = outcome_window(None, 90, db_path)
    assert historical is not None and historical.end == datetime(2025, 5, 1, 0, 0, 1)
    assert "no outcome was reported in the 90 days before now" in historical.rule
    assert outcome_window("latest", 30, db_path).rule.startswith("the 30 days before the newest")  # type: ignore[union-attr]
    with connect(db_path) as con:
        _outcome(con, _analysis(con, 50.0), 4, 80.0, datetime.now(UTC).replace(tzinfo=None))
    live = outcome_window(None, 90, db_path)
    assert live is not None and live.rule == "the 90 days before now"
    fixed = outcome_window("2025-06-01T00:00:00", 10, db_path)
    assert fixed is not None and (fixed.start, fixed.end) == (
        datetime(2025, 5, 22),
        datetime(2025, 6, 1),
    )


def test_a_rule_at_chance_keeps_weight_one_and_weight_agrees_with_verdict() -> None:
    assert rule_weight(0.5) == rule_weight(0.51) == 1.0
    assert (rule_weight(1.0), rule_weight(0.75), rule_weight(0.25), rule_weight(0.0)) == (
        2.0,
        1.5,
        0.5,
        0.5,
    )
    for accuracy in np.linspace(0, 1, 101):
        weight, verdict = rule_weight(float(accuracy)), _verdict(float(accuracy))
        assert (weight > 1) == (verdict == "helps") and (weight < 1) == (verdict == "hurts")


def test_an_outcome_resonates_when_its_views_reach_the_analysis_threshold(
    db_path: Path,
) -> None:
    with connect(db_path) as con:
        reached = _analysis(con, 40.0, threshold=5000.0)
        missed = _analysis(con, 40.0, threshold=5000.0)
        for analysis, views, expected in ((reached, 5000, True), (missed, 4999, False)):
            row = record_outcome(
                con,
                OutcomeReport(analysis_id=analysis, actual_views=views),
                user_id="u1",
                derived=Derived(actual_score=90.0, actual_tier=5),  # the tier does not decide
            )
            assert row["resonated"] is expected


def test_validate_rules_learns_weights_from_contributions(db_path: Path) -> None:
    up = {
        "rule_id": "question-hook",
        "rule_name": "Question Hook",
        "tier": "regex",
        "matched": True,
        "score": 10.0,
        "max_score": 10.0,
        "weight": 1.0,
    }
    down = {**up, "matched": False, "score": 0.0}
    when = datetime(2025, 3, 1)
    with connect(db_path) as con:
        for i in range(20):  # the hook fires and the post beats its prediction: right
            _outcome(
                con, _analysis(con, 40.0, contributions=[up]), 4, 80.0, when + timedelta(hours=i)
            )
        for i in range(5):  # silent and the post did worse: right too
            _outcome(
                con,
                _analysis(con, 60.0, contributions=[down]),
                1,
                10.0,
                when + timedelta(hours=30 + i),
            )
    library = "SELECT weight, accuracy_rate, sample_count FROM rule_library ORDER BY id"
    with connect(db_path) as con:
        before = con.execute(library).fetchall()
    dry = validate_rules(as_of="latest", db_path=db_path, dry_run=True)
    assert dry.dry_run and dry.report.set_index("rule").loc["Question Hook", "new_weight"] == 2.0
    with connect(db_path) as con:
        assert con.execute(library).fetchall() == before  # computed, not written
    result = validate_rules(as_of="latest", db_path=db_path)
    row = result.report.set_index("rule").loc["Question Hook"]
    assert (row["samples"], row["accuracy"], row["new_weight"]) == (25, 1.0, 2.0)
    with connect(db_path) as con:
        weight, accuracy, samples = con.execute(
            "SELECT weight, accuracy_rate, sample_count FROM rule_library "
            "WHERE id = 'question-hook'"
        ).fetchall()[0]
    assert (weight, accuracy, samples) == (2.0, 1.0, 25)
    again = validate_rules(as_of=when + timedelta(hours=5), db_path=db_path, window_days=1)
    assert again.outcomes == 5 and again.updated == 0  # fewer than 10 samples: left alone
    assert again.report.loc[0, "verdict"] == "skipped (< 10 samples)"


def test_an_audit_of_one_sided_outcomes_is_not_activated(db_path: Path) -> None:
    rng = np.random.default_rng(9)
    with connect(db_path) as con:
        for i in range(300):  # 99 % resonated: a fit could only learn the base rate
            tier = 5 if i % 100 else 2
            _outcome(
                con,
                _analysis(con, float(rng.uniform(0, 100))),
                tier,
                80.0,
                datetime(2025, 3, 1) + timedelta(hours=i),
            )
    result = calibration_audit(as_of="latest", db_path=db_path, resamples=50)
    assert result.status == "completed" and not result.activated
    assert "base rate" in (result.profiles[0].reason or "")
    with connect(db_path) as con:
        assert active_calibrations(con) == {}
        assert con.execute("SELECT count(*) FROM calibration_params").fetchall() == [(1,)]


def test_jobs_on_a_store_without_outcomes_skip_with_the_reason(db_path: Path) -> None:
    audit = calibration_audit(as_of="latest", db_path=db_path)
    rules = validate_rules(as_of="latest", db_path=db_path)
    assert (audit.status, rules.status) == ("skipped", "skipped")
    assert "no outcomes" in (audit.reason or "") and "no outcomes" in (rules.reason or "")
