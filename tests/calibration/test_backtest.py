"""Backtests: held-out videos replayed once each, with honest profiles, then audited."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ml.test_tier_model import _learnable_store
from virtuna.calibration.backtest import run_backtest
from virtuna.jobs.calibration_audit import calibration_audit
from virtuna.jobs.retrain_ml import retrain_ml
from virtuna.ml.registry import load_model
from virtuna.store import connect


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("backtest") / "store.duckdb"
    _learnable_store(db, creators=60, posts=12)
    retrain_ml(db_path=db, min_rows=100, kind="creator_history")
    retrain_ml(db_path=db, min_rows=100, scheme="creator_relative", kind="momentum")
    return db


def test_a_second_backtest_replaces_the_first_and_profiles_are_honest(
    trained_store: Path,
) -> None:
    first = run_backtest(db_path=trained_store)
    with connect(trained_store) as con:
        model = load_model(con, first.model_id)
        held = set(model.card["training"]["test_row_ids"])
    assert first.analyses == len(held) > 50 and first.replaced == 0
    second = run_backtest(db_path=trained_store)
    assert second.replaced == first.analyses == second.analyses
    with connect(trained_store) as con:
        counts = con.execute(
            "SELECT count(*), count(DISTINCT a.source_video_id), count(o.id) "
            "FROM analysis_results a LEFT JOIN outcomes o ON o.analysis_id = a.id "
            "WHERE a.is_backtest"
        ).fetchall()[0]
        assert counts == (len(held), len(held), len(held))  # one replay and outcome per video
        assert {
            r[0]
            for r in con.execute(
                "SELECT source_video_id FROM analysis_results WHERE is_backtest"
            ).fetchall()
        } == held
        rows = con.execute(
            "SELECT a.signal_profile, a.score_target, a.resonates_at_views, o.actual_views, "
            "o.resonated, a.ml_score, a.trend_score FROM analysis_results a "
            "JOIN outcomes o ON o.analysis_id = a.id WHERE a.is_backtest"
        ).fetchall()
    for profile, target, threshold, views, resonated, ml, trend in rows:
        # No LLMs then, and no trend snapshot in this store: the profile says so.
        assert profile == f"ml+rules|{target}" and trend is None and ml is not None
        assert resonated == (views >= threshold)
    assert {target for _, target, *_ in rows} == {"beats_usual", "reference_tier"}


def test_the_scheduled_audit_sees_the_backtest_without_hand_set_parameters(
    trained_store: Path,
) -> None:
    backtest = run_backtest(db_path=trained_store)
    result = calibration_audit(db_path=trained_store, resamples=20)
    assert result.window is not None and result.window.rule == "the 90 days before now"
    assert result.samples == backtest.analyses
    assert {p.profile for p in result.profiles} <= {
        "ml+rules|beats_usual",
        "ml+rules|reference_tier",
    }
