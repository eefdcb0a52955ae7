"""Tier model (TEST-05): tiers, point-in-time features without leaks, training, registry, gate."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_item
from virtuna.engine.normalize import normalize
from virtuna.engine.schema import AnalysisInput
from virtuna.ingest import store_batch
from virtuna.ingest.tiktok_items import map_items
from virtuna.jobs.retrain_ml import retrain_ml
from virtuna.ml.evaluate import evaluate, load_training_set, make_folds
from virtuna.ml.features import FEATURE_NAMES, build_features, draft_row, training_rows
from virtuna.ml.registry import ModelMismatchError, active_model_id, load_model, models_dir
from virtuna.ml.signal import NoTierModel, load_tier_signal
from virtuna.ml.tiers import MIDPOINTS, TierEdges, fit_edges, ml_score, outcome_measure
from virtuna.store import connect

T0 = datetime(2024, 1, 1)


def _post(
    n: int, handle: str, days: float, views: int, text: str = "#dance tonight", fans: int = 0
) -> dict:
    posted = T0 + timedelta(days=days)
    return make_item(
        id=str(n),
        text=text,
        createTime=int(posted.replace(tzinfo=UTC).timestamp()),
        playCount=views,
        diggCount=views // 10,
        commentCount=5,
        shareCount=2,
        authorMeta={"name": handle, "fans": fans or 1000 + n, "heart": 10, "video": 5},
        musicMeta={"musicId": f"s{n % 3}", "musicName": f"song {n % 3}", "musicOriginal": False},
    )


def _store(db: Path, items: list[dict], ref: str = "t") -> None:
    with connect(db) as con:
        store_batch(
            con,
            map_items([json.dumps(i) for i in items], source="apify", source_ref=ref),
            source="apify",
            source_ref=ref,
        )


def test_tiers_quintiles_and_labels() -> None:
    values = pd.Series(np.arange(100, dtype=float))
    edges = fit_edges(values, "views_quintile")
    tiers = edges.assign(values)
    assert np.bincount(tiers)[1:].tolist() == [20, 20, 20, 20, 20]
    assert edges.assign(np.array([np.nan, -1.0, 1e9])).tolist() == [0, 1, 5]
    with pytest.raises(ValueError, match="at least 5"):
        fit_edges(pd.Series([1.0, 2.0]), "views_quintile")


def test_engagement_tiers_follow_the_seed_percentiles() -> None:
    frame = pd.DataFrame(
        {"views": [100] * 100, "likes": range(100), "comments": [0] * 100, "shares": [0] * 100}
    )
    edges = fit_edges(outcome_measure(frame, "weighted_engagement"), "weighted_engagement")
    counts = np.bincount(edges.assign(outcome_measure(frame, "weighted_engagement")))[1:]
    assert counts.tolist() == [25, 25, 25, 15, 10]


def test_ml_score_is_the_weighted_midpoint_and_stays_in_range() -> None:
    assert ml_score(np.eye(5)).tolist() == MIDPOINTS.tolist()
    uniform = ml_score(np.full((1, 5), 0.2))[0]
    assert uniform == pytest.approx(MIDPOINTS.mean())
    rng = np.random.default_rng(0)
    random_probs = rng.dirichlet(np.ones(5), size=1000)
    scores = ml_score(random_probs)
    assert scores.min() >= 12.5 and scores.max() <= 90


def test_features_use_only_earlier_posts_and_never_the_posts_own_outcome(db_path: Path) -> None:
    _store(
        db_path,
        [
            _post(1, "ana", 0, 100),
            _post(2, "ana", 1, 300),
            _post(3, "ana", 2, 900),
            _post(4, "ben", 1.5, 50),
        ],
    )
    with connect(db_path) as con:
        rows = training_rows(con)
        before = build_features(con, rows)
        third = before.loc["tiktok:3"]
        assert third["prior_posts"] == 2
        assert third["prior_median_log_views"] == pytest.approx(np.median(np.log1p([100, 300])))
        assert np.isnan(before.loc["tiktok:1", "prior_median_log_views"])  # NaN, not 0
        con.execute(
            "UPDATE scraped_videos SET views = views * 1000, likes = 1, shares = 7, "
            "comments = 3, saves = 9 WHERE platform_video_id = '3'"
        )
        rows_after = training_rows(con)
        after = build_features(con, rows_after)
    assert rows_after.set_index("row_id").loc["tiktok:3", "views"] == 900_000
    pd.testing.assert_series_equal(after.loc["tiktok:3"], before.loc["tiktok:3"])


def test_the_same_video_gets_the_same_features_through_both_paths(db_path: Path) -> None:
    items = [
        _post(i, "ana", i, 100 * (i + 1), text=f"Wait for it #dance #n{i}", fans=5000)
        for i in range(6)
    ]
    _store(db_path, items)
    with connect(db_path) as con:
        rows = training_rows(con)
        trained = build_features(con, rows).loc["tiktok:5"]
        video = rows.set_index("row_id").loc["tiktok:5"]
        draft = draft_row(
            con,
            text=video["description"],
            creator_handle="ana",
            posted_at=video["posted_at"],
            duration_seconds=video["duration_seconds"],
            sound_id="s2",
            sound_name="song 2",
            sound_original=False,
        )
        predicted = build_features(con, draft).iloc[0]
    # Every feature, the sound's and the follower count included.
    pd.testing.assert_series_equal(trained, predicted, check_names=False)
    assert predicted["sound_uses_before"] > 0
    assert predicted["log_followers"] == pytest.approx(np.log1p(5000))


def test_features_are_all_there_with_nan_for_unknowns(db_path: Path) -> None:
    with connect(db_path) as con:
        draft = draft_row(
            con, text="Brand new creator, first post #hello", creator_handle=None, posted_at=T0
        )
        features = build_features(con, draft)
    assert list(features.columns) == list(FEATURE_NAMES)
    assert features["prior_posts"].iloc[0] == 0
    assert np.isnan(features["log_followers"].iloc[0])
    assert features["hashtag_count"].iloc[0] == 1


def test_splits_hold_out_sources_creators_and_later_posts(db_path: Path) -> None:
    _learnable_store(db_path, creators=30, posts=20, collections=3)
    with connect(db_path) as con:
        data = load_training_set(con)
    folds = make_folds("leave_one_source_out", data, min_source_rows=100)
    assert sorted(f.name for f in folds) == ["apify:part0", "apify:part1", "apify:part2"]
    for fold in folds:
        assert set(data.collections[fold.test]) == {fold.name}
        assert fold.name not in set(data.collections[fold.train])
    (grouped,) = make_folds("creator", data)
    authors = data.rows["author_key"].to_numpy()
    assert not set(authors[grouped.train]) & set(authors[grouped.test])
    (later,) = make_folds("temporal", data)
    posted = data.rows["posted_at"]
    assert posted.iloc[later.train].max() < posted.iloc[later.test].min()
    (strat,) = make_folds("stratified", data)
    assert len(strat.test) == len(data.rows) // 5


def _learnable_store(db: Path, creators: int = 40, posts: int = 15, collections: int = 2) -> None:
    """Synthetic mechanism data: each creator's views sit at their own level (a learnable
    pattern through the history features); creators are spread over `collections` files."""
    rng = np.random.default_rng(1)
    n = 0
    for part in range(collections):
        items = []
        for c in range(part, creators, collections):
            level = 10 ** rng.uniform(2, 6)
            for p in range(posts):
                n += 1
                items.append(_post(n, f"c{c}", p + c / 100, int(level * rng.uniform(0.7, 1.3))))
        _store(db, items, ref=f"part{part}.jsonl")


def test_evaluation_reports_every_metric_beside_the_baselines(db_path: Path) -> None:
    _learnable_store(db_path)
    with connect(db_path) as con:
        data = load_training_set(con)
    kinds = ["creator_history", "hist_gradient_boosting"]
    result = evaluate(data, "views_quintile", kinds, min_source_rows=100)
    table = result.table
    assert set(table["fold"]) == {"pooled", "apify:part0", "apify:part1"}
    assert {"creator_median", "follower_quantiles", "source_majority"} <= set(table["predictor"])
    assert table.loc[table["predictor"] == "source_majority", "oracle"].all()
    pooled = table[(table["fold"] == "pooled") & (table["subset"] == "all")]
    assert (pooled["rows"] == len(data.rows)).all()  # every row is tested once
    # The served baseline IS the creator's median where there is history.
    history = result.metric("creator_history", "accuracy", subset="history")
    assert history == result.metric("creator_median", "accuracy", subset="history") > 0.5
    assert result.metric("creator_history", "spearman", subset="history") > 0.8
    assert 0 <= result.metric("hist_gradient_boosting", "ece") <= 1


def test_retrain_serves_the_baseline_unless_a_learned_model_beats_it(db_path: Path) -> None:
    _learnable_store(db_path)
    first = retrain_ml(db_path=db_path, min_rows=100, gate=0.95)
    assert first.status == "promoted" and first.served_kind == "creator_history"
    assert "does not beat the creator's own history" in first.reason
    assert "below the gate 0.95" in first.reason
    with connect(db_path) as con:
        assert active_model_id(con) == first.model_id
        card = load_model(con, first.model_id).card
    assert (
        card["kind"] == "creator_history" and card["training"]["candidate"] == "residual_boosting"
    )
    assert {"creator_median", "source_majority"} <= {r["predictor"] for r in card["evaluation"]}
    unchanged = retrain_ml(db_path=db_path, min_rows=100, gate=0.95)
    assert unchanged.status == "refused" and "has not changed" in unchanged.reason
    # Another scheme is another model, not "unchanged data", and both stay active.
    relative = retrain_ml(db_path=db_path, min_rows=100, scheme="creator_relative")
    assert relative.status == "promoted"
    with connect(db_path) as con:
        assert active_model_id(con) == first.model_id  # the serving model stays
        assert active_model_id(con, "creator_relative") == relative.model_id
        statuses = dict(con.execute("SELECT id, status FROM models").fetchall())
    assert statuses == {
        first.model_id: "promoted",
        unchanged.model_id: "refused",
        relative.model_id: "promoted",
    }
    assert models_dir(db_path).joinpath(f"{first.model_id}.joblib").is_file()


def _creator_views(db: Path, handle: str, before: datetime) -> list[tuple[datetime, float]]:
    with connect(db) as con:
        return con.execute(
            "SELECT posted_at, views FROM scraped_videos WHERE author_handle = ? AND posted_at < ?",
            [handle, before],
        ).fetchall()


def test_too_few_rows_is_skipped_with_the_reason(db_path: Path) -> None:
    _store(db_path, [_post(1, "ana", 0, 100)])
    result = retrain_ml(db_path=db_path)
    assert result.status == "skipped" and "at least 500" in result.reason


def test_the_engine_uses_the_active_model_and_refuses_a_mismatched_one(db_path: Path) -> None:
    with connect(db_path) as con:
        assert isinstance(load_tier_signal(con), NoTierModel)
    _learnable_store(db_path)
    model_id = retrain_ml(db_path=db_path, min_rows=100).model_id
    relative_id = retrain_ml(db_path=db_path, min_rows=100, scheme="creator_relative").model_id
    payload = normalize(
        AnalysisInput(content_text="Wait for it #dance tonight", creator_handle="c3")
    )
    with connect(db_path) as con:
        signal = load_tier_signal(con)
        prediction = signal.predict(con, payload, T0 + timedelta(30))
        assert prediction is not None and prediction.model_id == model_id
        assert sum(prediction.tier_probabilities) == pytest.approx(1, abs=1e-3)
        tiers = prediction.as_dict()
        assert tiers["relative"]["model_id"] == relative_id and tiers["usual_tier"] in range(1, 6)
        assert tiers["history_posts"] == 15
        # With history the score is the chance to beat the creator's usual, in views.
        assert prediction.target == tiers["target"] == "beats_usual"
        assert prediction.score == pytest.approx(100 * tiers["relative"]["beats_usual"], abs=0.02)
        usual_views = np.expm1(
            np.median(np.log1p([v for _, v in _creator_views(db_path, "c3", T0 + timedelta(30))]))
        )
        assert prediction.resonates_at_views > usual_views  # type: ignore[operator]
        newcomer = normalize(AnalysisInput(content_text="My first post ever #hello"))
        fresh = signal.predict(con, newcomer, T0 + timedelta(30))
        assert fresh.as_dict()["relative"] is None and fresh.usual_tier is None
        # Without history: the chance to reach tier 4 of the reference population.
        assert fresh.target == "reference_tier"
        assert fresh.score == pytest.approx(100 * sum(fresh.tier_probabilities[3:]), abs=0.05)
        assert fresh.resonates_at_views == pytest.approx(
            np.expm1(signal.registered.edges.edges[2]), rel=1e-3
        )
        card = json.loads(
            con.execute("SELECT card FROM models WHERE id = ?", [model_id]).fetchall()[0][0]
        )
        card["features"] = card["features"][:-1]
        con.execute("UPDATE models SET card = ? WHERE id = ?", [json.dumps(card), model_id])
        with pytest.raises(ModelMismatchError, match="other features"):
            load_model(con, model_id)


def test_tier_edges_round_trip_through_the_card() -> None:
    edges = TierEdges("views_quintile", (1.0, 2.0, 3.0, 4.0))
    assert edges.assign(np.array([0.5, 1.0, 2.5, 4.5])).tolist() == [1, 2, 3, 5]
