"""Tier estimators: the baselines' places and spreads, masking, and presence carrying no label."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from virtuna.ml.estimators import (
    LocationScaleTiers,
    gaussian_tier_probabilities,
    make_estimator,
    mask_optional_fields,
)
from virtuna.ml.features import FEATURE_NAMES, OPTIONAL_FIELDS
from virtuna.ml.tiers import TierEdges, expected_tier, fit_edges

EDGES = TierEdges("views_quintile", (1.0, 2.0, 3.0, 4.0))


def _frame(n: int, **columns: object) -> pd.DataFrame:
    frame = pd.DataFrame(np.nan, index=range(n), columns=list(FEATURE_NAMES))
    frame["prior_posts"] = 0.0
    for name, value in columns.items():
        frame[name] = value
    return frame


def test_gaussian_probabilities_integrate_the_normal_over_the_edges() -> None:
    probabilities = gaussian_tier_probabilities(np.array([2.5, 10.0]), np.array([1.0, 0.5]), EDGES)
    assert probabilities.sum(axis=1) == pytest.approx([1, 1], abs=1e-6)
    assert probabilities[0, 2] == pytest.approx(0.3829, abs=1e-3)  # P(2 < N(2.5, 1) < 3)
    assert probabilities[0, 1] == pytest.approx(probabilities[0, 3])  # symmetric around 2.5
    assert probabilities[1].argmax() == 4


def test_creator_history_sits_at_the_creators_median_and_falls_back_to_followers() -> None:
    rng = np.random.default_rng(0)
    n = 400
    followers = rng.uniform(5, 15, n)
    outcome = 0.5 * followers + rng.normal(0, 0.3, n)
    history = np.arange(n) % 2 == 0
    frame = _frame(
        n,
        prior_posts=np.where(history, 5.0, 0.0),
        prior_median_log_views=np.where(history, outcome + rng.normal(0, 0.1, n), np.nan),
        log_followers=followers,
    )
    edges = fit_edges(pd.Series(outcome), "views_quintile")
    model = LocationScaleTiers("creator_history", "views_quintile").fit(frame, outcome, edges)
    assert model.location(frame)[history] == pytest.approx(frame["prior_median_log_views"][history])
    spread, share, _ = model.scale_[0]  # history: the median's error, hardly any population mix
    assert spread == pytest.approx(0.1, abs=0.02) and share < 0.05
    # Without history the follower count's rank maps to the outcome at the same rank, so the
    # tier is the follower quintile.
    newcomers = frame[~history].assign(prior_posts=0.0, prior_median_log_views=np.nan)
    place = model.location(newcomers)
    assert np.all(np.diff(place[np.argsort(followers[~history])]) >= 0)
    cuts = np.quantile(followers[~history], [0.2, 0.4, 0.6, 0.8])
    quintile = np.searchsorted(cuts, followers[~history], side="right") + 1
    assert np.mean(edges.assign(place) == quintile) > 0.9
    assert model.scale_[1][0] < 0.6  # followers only: the mapping's error
    unknown = _frame(1)
    assert edges.assign(model.location(unknown))[0] in range(1, 6)


def test_momentum_learns_how_much_of_the_recent_trend_carries_on() -> None:
    rng = np.random.default_rng(1)
    recent = rng.normal(0, 1, 2000)
    outcome = 0.4 * recent + rng.normal(0, 0.5, 2000)
    frame = _frame(
        2000, prior_posts=10.0, prior_median_log_views=8.0, prior_last3_log_views=8.0 + recent
    )
    edges = fit_edges(pd.Series(outcome), "creator_relative")
    model = make_estimator("momentum", "creator_relative").fit(frame, outcome, edges)
    assert model.slope_ == pytest.approx(0.4, abs=0.05)
    with pytest.raises(ValueError, match="not a baseline"):
        make_estimator("momentum", "views_quintile")


def test_masking_blanks_each_optional_field_at_the_rate() -> None:
    frame = _frame(10_000, log_followers=1.0, duration_seconds=15.0, sound_original=0.0)
    masked = mask_optional_fields(frame, 0.3, seed=0)
    for columns in OPTIONAL_FIELDS.values():
        assert masked[columns[0]].isna().mean() == pytest.approx(0.3, abs=0.02)
    assert frame["log_followers"].notna().all()  # the input is left alone


@pytest.mark.parametrize("kind", ["residual_boosting", "hist_gradient_boosting"])
def test_whether_a_field_is_present_barely_moves_the_tier(kind: str) -> None:
    """A 'source' without durations holds only the best videos: a model that read presence
    would learn it. Trained with masking, blanking the duration moves the tier < 0.5."""
    rng = np.random.default_rng(2)
    n = 6000
    level = rng.normal(8, 2, n)
    outcome = level + rng.normal(0, 1, n)
    viral_source = outcome > np.quantile(outcome, 0.8)
    frame = _frame(
        n,
        prior_posts=10.0,
        prior_median_log_views=level,
        prior_last3_log_views=level,
        duration_seconds=np.where(viral_source, np.nan, rng.uniform(5, 60, n)),
        log_followers=level + rng.normal(0, 1, n),
    )
    edges = fit_edges(pd.Series(outcome), "views_quintile")
    model = make_estimator(kind, "views_quintile").fit(frame, outcome, edges)  # type: ignore[arg-type]
    test = frame[~viral_source].iloc[:1000]
    blanked = test.assign(duration_seconds=np.nan)
    shift = np.abs(
        expected_tier(model.predict_proba(blanked)) - expected_tier(model.predict_proba(test))
    )
    assert shift.mean() < 0.5


@pytest.mark.parametrize("kind", ["creator_history", "residual_boosting"])
def test_knowing_nothing_gives_the_populations_tier_shares_not_a_sources(kind: str) -> None:
    """A trending feed carries no follower counts and holds only viral videos: fitted on its
    rows, "no history, no followers" would mean "viral", and a new creator who gives no
    follower count would be promised tier 5. Knowing nothing, the population's shares."""
    rng = np.random.default_rng(3)
    n = 4000
    followers = rng.uniform(5, 15, n)
    outcome = 0.5 * followers + rng.normal(0, 1, n)
    viral_feed = outcome > np.quantile(outcome, 0.8)
    history = (np.arange(n) % 3 == 0) & ~viral_feed
    frame = _frame(
        n,
        prior_posts=np.where(history, 5.0, 0.0),
        prior_median_log_views=np.where(history, outcome + rng.normal(0, 0.3, n), np.nan),
        log_followers=np.where(viral_feed, np.nan, followers),
    )
    edges = fit_edges(pd.Series(outcome), "views_quintile")
    model = make_estimator(kind, "views_quintile").fit(frame, outcome, edges)  # type: ignore[arg-type]
    newcomer = model.predict_proba(_frame(1))[0]
    assert newcomer == pytest.approx([0.2] * 5, abs=0.01)
    # What is known still counts: many followers, a higher tier than few.
    few, many = model.predict_proba(_frame(2, log_followers=[6.0, 14.0]))
    assert expected_tier(many[None, :])[0] > expected_tier(few[None, :])[0]
