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
