"""Tier targets: a documented function of a video's outcome, five tiers from 1 (low) to 5.

- `views_quintile` (default): quintiles of log views over the training population.
- `weighted_engagement`: the requirements' tiers on (likes + 2 comments + 3 shares) / views with
  edges at its p25 / p50 / p75 / p90 (shares 25/25/25/15/10 %).
- `creator_relative`: views against the creator's own median of EARLIER posts, by the ratio's
  quintiles (a creator's first post has no earlier median and no tier).

Edges are fitted on training rows only and stored with the model, so a test row or a reported
outcome is labelled by the same edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from virtuna.store.outcomes import RESONATES_FROM_TIER

TierScheme = Literal["views_quintile", "weighted_engagement", "creator_relative"]
TIER_SCHEMES: tuple[TierScheme, ...] = ("views_quintile", "weighted_engagement", "creator_relative")
TIERS = (1, 2, 3, 4, 5)
LABELS = {
    1: "Unlikely to perform",
    2: "Below average",
    3: "Average",
    4: "Strong potential",
    5: "Viral potential",
}
# Score midpoints of the tiers' score ranges (0-25, 25-45, 45-65, 65-80, 80-100).
MIDPOINTS = np.array([12.5, 35.0, 55.0, 72.5, 90.0])
_QUANTILES = {
    "views_quintile": (0.2, 0.4, 0.6, 0.8),
    "weighted_engagement": (0.25, 0.5, 0.75, 0.9),
    "creator_relative": (0.2, 0.4, 0.6, 0.8),
}


@dataclass(frozen=True)
class TierEdges:
    """The four cut points of a scheme, on the scheme's outcome measure."""

    scheme: TierScheme
    edges: tuple[float, float, float, float]

    def assign(self, outcome: pd.Series | np.ndarray) -> np.ndarray:
        """Tiers 1-5 of outcome values (NaN outcome -> 0, meaning no tier)."""
        values = np.asarray(outcome, dtype=float)
        tiers = np.searchsorted(np.asarray(self.edges), values, side="right") + 1
        return np.where(np.isnan(values), 0, tiers).astype(int)


def outcome_measure(frame: pd.DataFrame, scheme: TierScheme) -> pd.Series:
    """The outcome a scheme tiers, from views/likes/comments/shares (and earlier_median_views)."""
    views = frame["views"].astype(float)
    if scheme == "views_quintile":
        return np.log1p(views.where(views >= 0))
    if scheme == "weighted_engagement":
        engaged = (
            frame["likes"].fillna(0)
            + 2 * frame["comments"].fillna(0)
            + 3 * frame["shares"].fillna(0)
        )
        return (engaged / views.where(views > 0)).astype(float)
    earlier = frame["earlier_median_views"].astype(float)
    return np.log1p(views) - np.log1p(earlier)


def fit_edges(outcome: pd.Series, scheme: TierScheme) -> TierEdges:
    """The scheme's edges over the (training) outcomes."""
    values = pd.Series(outcome, dtype=float).dropna()
    if len(values) < 5:
        raise ValueError(f"need at least 5 outcomes to fit {scheme} tiers, got {len(values)}")
    q = values.quantile(list(_QUANTILES[scheme]))
    return TierEdges(scheme, tuple(float(x) for x in q))  # type: ignore[arg-type]


def expected_tier(probabilities: np.ndarray) -> np.ndarray:
    """The probability-weighted tier (1-5) of each row of class probabilities."""
    return np.asarray(probabilities) @ np.asarray(TIERS, dtype=float)


def ml_score(probabilities: np.ndarray) -> np.ndarray:
    """0-100 score: probability-weighted tier midpoints (12.5, 35, 55, 72.5, 90)."""
    return np.asarray(probabilities) @ MIDPOINTS


# What the served score is a probability of (see README "What the score means").
BEATS_USUAL = "beats_usual"  # the creator has history: relative tier 4 or 5
REFERENCE_TIER = "reference_tier"  # no history: absolute tier 4 or 5 of the reference population


@dataclass(frozen=True)
class Resonance:
    """Per row: the outcome the score predicts, its probability and the views it takes."""

    target: np.ndarray  # BEATS_USUAL or REFERENCE_TIER
    probability: np.ndarray  # P(tier >= 4) under the target's scheme
    views: np.ndarray  # the view count from which the post resonates


def resonance(
    absolute: np.ndarray,
    absolute_edges: TierEdges,
    prior_median_log_views: np.ndarray,
    relative: np.ndarray | None = None,
    relative_edges: TierEdges | None = None,
) -> Resonance:
    """What "resonates" means for each row and how likely it is.

    With the creator's earlier posts and a relative model, a post resonates when it reaches the
    relative tier 4, i.e. views >= (1 + usual) x e^edge - 1 with `usual` the creator's median
    earlier views; otherwise when it reaches the reference population's tier 4."""
    usual = np.asarray(prior_median_log_views, dtype=float)
    p_absolute = np.asarray(absolute)[:, RESONATES_FROM_TIER - 1 :].sum(axis=1)
    absolute_views = np.full(len(usual), np.expm1(absolute_edges.edges[RESONATES_FROM_TIER - 2]))
    if relative is None or relative_edges is None:
        return Resonance(np.full(len(usual), REFERENCE_TIER), p_absolute, absolute_views)
    has_history = ~np.isnan(usual)
    p_relative = np.asarray(relative)[:, RESONATES_FROM_TIER - 1 :].sum(axis=1)
    relative_views = np.expm1(usual + relative_edges.edges[RESONATES_FROM_TIER - 2])
    return Resonance(
        np.where(has_history, BEATS_USUAL, REFERENCE_TIER),
        np.where(has_history, p_relative, p_absolute),
        np.where(has_history, relative_views, absolute_views),
    )
