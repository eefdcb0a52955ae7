"""Model health frames: PSI by hand, ECE periods and intervals, empty stores, stored scores."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from virtuna.calibration import health
from virtuna.calibration.platt import platt_probability
from virtuna.store import connect

PROFILE = "ml+rules|beats_usual"


def test_psi_is_zero_for_identical_distributions_and_matches_a_hand_computation() -> None:
    reference = np.arange(1.0, 11.0)  # deciles 1.9, 2.8, ..., 9.1: one value per bin, 0.1 each
    assert health.psi(reference, reference) == pytest.approx(0.0, abs=1e-12)
    recent = np.array([1.0] * 5 + [10.0] * 5)  # half in the first bin, half in the last
    eps = health.PSI_EPS
    by_hand = 2 * (0.5 - 0.1) * math.log(0.5 / 0.1) + 8 * (eps - 0.1) * math.log(eps / 0.1)
    assert health.psi(reference, recent) == pytest.approx(by_hand)  # ~6.81
    # An empty missing bin on both sides adds nothing; missing recent values count in their bin.
    gappy = np.append(reference[:9], np.nan)  # 10 went missing: the last bin's 0.1 moves
    assert health.psi(reference, gappy) == pytest.approx(
        (eps - 0.1) * math.log(eps / 0.1) + (0.1 - eps) * math.log(0.1 / eps)
    )


def test_psi_flags_a_shifted_distribution_and_not_a_resample() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, 20_000)
    assert health.psi(reference, rng.normal(0, 1, 5_000)) < 0.01
    assert health.psi(reference, rng.normal(0.8, 1, 5_000)) > health.PSI_DRIFT
    assert math.isnan(health.psi(reference, []))


def test_psi_table_is_sorted_flags_drift_and_names_missing_features() -> None:
    rng = np.random.default_rng(1)
    reference = pd.DataFrame({"same": rng.normal(size=4000), "moved": rng.normal(size=4000)})
    recent = pd.DataFrame({"same": rng.normal(size=1000), "moved": rng.normal(1, 1, 1000)})
    table = health.psi_table(reference, recent)
    assert table["feature"].tolist() == ["moved", "same"]
    assert table["drifted"].tolist() == [True, False]
    assert (table["recent_rows"] == 1000).all()
    with pytest.raises(ValueError, match="nope"):
        health.psi_table(reference, recent, ["same", "nope"])
    assert list(health.psi_table(reference.iloc[:0], recent).columns) == health.PSI_COLUMNS


def test_merge_periods_joins_sparse_months_until_each_has_enough() -> None:
    months = ["2025-01"] * 5 + ["2025-02"] + ["2025-03"] + ["2025-04"] * 5 + ["2025-05"] * 2
    times = pd.Series(pd.to_datetime([f"{m}-15" for m in months]))
    buckets = health.merge_periods(times, min_count=3)
    # Jan alone (5); Feb+Mar+Apr (7); May's 2 are too few and join the bucket before.
    assert buckets.tolist() == [0] * 5 + [1] * 9
    with pytest.raises(ValueError, match="a time for every outcome"):
        health.merge_periods(pd.Series([pd.NaT]), 1)


def _outcomes(rng, n: int, month: str, source: str, bias: float) -> pd.DataFrame:
    """Synthetic outcomes whose probability is off by `bias` (mechanism test only)."""
    p = rng.uniform(0.1, 0.9, n)
    y = rng.uniform(size=n) < np.clip(p + bias, 0, 1)
    when = pd.Timestamp(f"{month}-10")
    return pd.DataFrame(
        {
            "source": source,
            "signal_profile": PROFILE,
            "p": p,
            "resonated": y.astype(object),  # None where the result is unknown
            "reported_at": when if source != "backtest" else pd.Timestamp("2026-01-01"),
            "when": when,
            "calibration_version": 3,
        }
    )


def test_ece_over_time_buckets_by_period_with_intervals_around_the_point() -> None:
    rng = np.random.default_rng(2)
    frame = pd.concat(
        [
            _outcomes(rng, 400, "2025-01", "user", 0.0),
            _outcomes(rng, 400, "2025-02", "user", 0.3),
            _outcomes(rng, 300, "2024-06", "backtest", 0.0),
        ],
        ignore_index=True,
    )
    frame.loc[0, "resonated"] = None  # unknown results are not measured
    periods = health.ece_over_time(frame, min_count=200, resamples=200)
    user = periods[periods["source"] == "user"]
    assert user["period"].tolist() == ["2025-01", "2025-02"]
    assert user["basis"].eq("reported_at").all() and user["n"].tolist() == [399, 400]
    assert (periods["ece_low"] <= periods["ece"]).all()
    assert (periods["ece"] <= periods["ece_high"]).all()
    calibrated, biased = user["ece"].tolist()
    assert calibrated < 0.1 < 0.2 < biased  # the biased month shows its ~0.3 gap
    assert user["ece_high"].iloc[0] < user["ece_low"].iloc[1]
    backtest = periods[periods["source"] == "backtest"]
    assert backtest["basis"].tolist() == ["post time"]
    assert backtest["period"].tolist() == ["2024-06"]


def test_ece_over_time_splits_one_reported_at_per_calibration_version() -> None:
    rng = np.random.default_rng(3)
    frame = _outcomes(rng, 300, "2025-01", "scraped", 0.0)
    frame.loc[:99, "calibration_version"] = None
    periods = health.ece_over_time(frame, resamples=50)
    assert periods["basis"].eq("calibration version").all()
    assert periods["period"].tolist() == ["uncalibrated", "v3"]
    assert periods["n"].tolist() == [100, 200]


def test_every_frame_is_empty_on_an_empty_store(db_path: Path) -> None:
    since = datetime(2025, 1, 1)
    with connect(db_path) as con:
        scores = health.served_scores(con, since)
        outcomes = health.outcome_scores(con)
        drift = health.drift_features(con, since, days=30)
        frames = {
            "scores": scores,
            "outcomes": outcomes,
            "reliability": health.reliability_table(outcomes),
            "precision_recall": health.precision_recall(outcomes),
            "ece_over_time": health.ece_over_time(outcomes),
            "overall_ece": health.overall_ece(outcomes),
            "reference": drift.reference,
            "recent": drift.recent,
            "psi": health.psi_table(drift.reference, drift.recent),
            "cost": health.llm_cost(con, since),
            "fits": health.calibration_fits(con),
            "models": health.models_table(con),
            "jobs": health.job_ledger(con, since),
        }
    for name, frame in frames.items():
        assert isinstance(frame, pd.DataFrame) and frame.empty, name
    assert list(scores.columns) == health.SCORE_COLUMNS
    assert drift.description.startswith("Not measured")
    lines = health.summary_lines(
        scores,
        outcomes,
        frames["overall_ece"],
        frames["ece_over_time"],
        frames["psi"],
        frames["cost"],
        frames["jobs"],
        30,
    )
    assert len(lines) == 5 and "no live analysis" in lines[0]


def _analysis(con, raw: float, served: float, **columns: object) -> str:
    analysis_id = str(uuid.uuid4())
    values = {
        "id": analysis_id,
        "input_mode": "text",
        "overall_score": served,
        "raw_score": raw,
        "confidence": 0.2,
        "confidence_label": "LOW",
        "signal_profile": PROFILE,
        "created_at": datetime(2025, 3, 1),
        **columns,
    }
    con.execute(
        f"INSERT INTO analysis_results ({', '.join(values)}) "
        f"VALUES ({', '.join('?' for _ in values)})",
        list(values.values()),
    )
    return analysis_id


def _outcome(con, analysis_id: str, resonated: bool, source: str, reported: datetime) -> None:
    con.execute(
        "INSERT INTO outcomes (id, analysis_id, resonated, source, reported_at, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [str(uuid.uuid4()), analysis_id, resonated, source, reported, reported],
    )


def test_stored_scores_show_the_active_map_and_backtests_keep_their_post_time(
    db_path: Path,
) -> None:
    with connect(db_path) as con:
        con.execute(
            "INSERT INTO calibration_params (version, profile, a, b, sample_count, is_active, "
            "fitted_at) VALUES (1, ?, 2.0, -1.0, 100, TRUE, ?)",
            [PROFILE, datetime(2025, 4, 1)],
        )
        live = _analysis(con, 40.0, 45.0, is_calibrated=True, calibration_version=1)
        replay = _analysis(
            con, 30.0, 30.0, is_backtest=True, planned_post_time=datetime(2020, 6, 1)
        )
        _outcome(con, live, True, "user", datetime(2025, 5, 2))
        _outcome(con, replay, False, "backtest", datetime(2026, 1, 1))
        scores = health.served_scores(con, since=datetime(2025, 1, 1)).set_index("analysis_id")
        outcomes = health.outcome_scores(con).set_index("analysis_id")
    assert scores.loc[live, "calibrated_score"] == 45.0  # served calibrated: as served
    assert bool(scores.loc[live, "calibration_served"])
    assert scores.loc[replay, "calibrated_score"] == pytest.approx(
        100 * platt_probability(np.array([30.0]), 2.0, -1.0)[0]
    )
    assert not scores.loc[replay, "calibration_served"]
    assert outcomes.loc[replay, "when"] == pd.Timestamp(2020, 6, 1)  # not the backtest's run
    assert outcomes.loc[live, "when"] == pd.Timestamp(2025, 5, 2)
    assert outcomes.loc[live, "p"] == pytest.approx(0.45)


def test_live_drafts_get_the_tier_model_features_rebuilt(db_path: Path) -> None:
    with connect(db_path) as con:
        draft = _analysis(
            con,
            30.0,
            30.0,
            content_text="is this the best rice? #cooking #fyp",
            hashtags=["cooking", "fyp"],
            planned_post_time=datetime(2025, 3, 2, 17),
            feature_vector='{"duration_seconds": 21}',
        )
        _analysis(con, 30.0, 30.0, created_at=datetime(2024, 1, 1))  # before the window
        features = health.live_draft_features(con, since=datetime(2025, 1, 1))
    assert features.index.tolist() == [draft]
    row = features.loc[draft]
    assert (row["hashtag_count"], row["has_question"], row["hour_utc"]) == (2, 1, 17)
    assert row["duration_seconds"] == 21 and row["prior_posts"] == 0
    assert np.isnan(row["sound_uses_7d"])  # analyses keep no sound: left out of the drift
