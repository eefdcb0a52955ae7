"""Source diagnosis: tier shares, imbalance and whether missingness names the source."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from virtuna.ml.diagnose import diagnose
from virtuna.ml.evaluate import TrainingSet
from virtuna.ml.features import FEATURE_NAMES


def _data(n: int, followers_missing_in_b: bool) -> TrainingSet:
    rng = np.random.default_rng(0)
    collection = np.where(np.arange(n) < n // 2, "a", "b")
    views = np.where(collection == "a", rng.lognormal(6, 1, n), rng.lognormal(12, 1, n))
    features = pd.DataFrame(0.0, index=range(n), columns=list(FEATURE_NAMES))
    features["prior_median_log_views"] = np.log1p(views) + rng.normal(0, 0.5, n)
    features["log_followers"] = rng.normal(8, 1, n)
    if followers_missing_in_b:
        features.loc[collection == "b", "log_followers"] = np.nan
    rows = pd.DataFrame({"collection": collection, "views": views})
    return TrainingSet(rows=rows, features=features)


def test_missingness_that_differs_by_source_is_flagged() -> None:
    flagged = diagnose(_data(1000, followers_missing_in_b=True))
    assert flagged.identifiability == pytest.approx(1.0)
    assert flagged.majority_share == pytest.approx(0.5)
    assert flagged.missingness.loc["b", "log_followers"] == 1.0
    assert flagged.missingness.loc["a", "log_followers"] == 0.0
    clean = diagnose(_data(1000, followers_missing_in_b=False))
    assert clean.identifiability == pytest.approx(0.5, abs=0.05)


def test_tier_shares_and_correlations_per_source() -> None:
    result = diagnose(_data(1000, followers_missing_in_b=False))
    # The low-view source holds the low tiers, the high-view one the high tiers.
    assert result.tier_shares.loc["a", [1, 2]].sum() > 0.7
    assert result.tier_shares.loc["b", [4, 5]].sum() > 0.7
    assert result.imbalance_ratio == pytest.approx(1.0, abs=0.05)
    assert result.correlations.loc["prior_median_log_views", "pooled"] > 0.9
    assert abs(result.correlations.loc["log_followers", "pooled"]) < 0.15


def test_the_tier_view_counts_every_stored_video_once(small_store) -> None:
    from virtuna.ml import diagnose as dx
    from virtuna.store import connect

    with connect(small_store) as con:
        view = dx.tier_view(con, "views_quintile")
    counts = dx.tier_counts(view)
    total = counts.loc["all sources"]
    assert total["with a tier"] + total["no tier"] == len(view.rows)
    assert counts.drop(index="all sources")[dx.TIER_COLUMNS].sum().equals(total[dx.TIER_COLUMNS])
    shares = dx.tier_shares(counts)
    assert np.allclose(shares.loc["all sources"].sum(), 1.0)
    correlations = dx.feature_correlations(view)
    rho = correlations["rho with tier"].dropna().abs()
    assert rho.is_monotonic_decreasing and set(correlations.index) == set(FEATURE_NAMES)
    missing = dx.missing_by_source(view)
    assert list(missing.columns) == ["all sources", *view.sources]


def test_an_empty_tier_makes_the_imbalance_infinite() -> None:
    from virtuna.ml import diagnose as dx

    counts = pd.DataFrame(
        [[5, 5, 5, 5, 0], [4, 4, 4, 4, 4]], columns=dx.TIER_COLUMNS, index=["a", "b"]
    )
    table = dx.imbalance_table(counts)
    assert (
        table.loc["a", "largest / smallest"] == np.inf and table.loc["a", "empty tiers"] == "tier 5"
    )
    assert table.loc["b", "largest / smallest"] == 1.0 and table.loc["b", "empty tiers"] == "-"


def test_a_videos_own_counts_move_none_of_its_features(small_store, tmp_path) -> None:
    import shutil

    from virtuna.ml import diagnose as dx
    from virtuna.store import connect

    store = tmp_path / "store.duckdb"
    shutil.copy(small_store, store)
    with connect(store) as con:
        view = dx.tier_view(con, "views_quintile")
    check = dx.own_count_check(store, view)
    assert check.rows_identical and check.store_identical
    assert check.outcome_columns_read == []
    assert len(check.rows) == 2 * len(view.sources)
    assert check.store["videos changed in the store copy"] == len(check.rows)


def test_the_changed_videos_share_no_creator_sound_or_hashtag() -> None:
    # Two videos of one creator (or one sound, or one hashtag) would move each other's
    # features legitimately, and the check would call that a leak.
    from virtuna.ml import diagnose as dx

    candidates = pd.DataFrame(
        {
            "source": ["a", "a", "a", "a", "b", "b"],
            "author_key": ["ana", "ana", "bo", "cy", "cy", "dee"],
            "sound_key": ["s1", "s2", "s1", "s3", "s4", None],
            "hashtags": [["x"], [], ["y"], ["z"], ["w"], np.array(["z", "v"])],
        },
        index=list("pqrstu"),
    )
    # p is taken; q shares its creator, r its sound; s is apart. In b, t shares s's creator
    # and u one of s's hashtags.
    assert dx._apart(candidates, per_source=2) == ["p", "s"]
    assert dx._apart(candidates, per_source=1) == ["p", "t"]  # s not taken: t is apart
