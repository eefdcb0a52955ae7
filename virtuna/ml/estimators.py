"""Tier estimators: every kind of model the registry can serve, behind one interface.

Each estimator is fitted on feature rows, the scheme's continuous outcome and the tier edges,
and gives calibrated probabilities over the five tiers (`predict_proba`, columns = TIERS).

- The baselines are models too, and the honest default (the sceptic's first try):
  `creator_history` places the next post where the creator's earlier posts sit (their median
  log views; without history the follower mapping; without followers the population), and
  `follower_mapping` uses followers alone (equipercentile: the outcome at the follower count's
  rank among the training rows, so the tier is the follower count's quintile). `momentum`
  (relative scheme) places it at the creator's last three posts against their usual, shrunk by
  a fitted factor. Their probabilities are a normal distribution around that place, integrated
  over the tier edges and mixed with the population's tier shares; the spread and the mixing
  share are fitted per situation (history, followers only) to minimise the tiers' log-loss,
  on places computed without the row's own collection where the place is learned, so that
  they are honest about how far a new source may stray. Knowing neither history nor
  followers, a row gets the population's tier shares.
- `residual_boosting` starts from the same baseline and learns, with gradient boosting on the
  honest features, how far a post lands from it; `hist_gradient_boosting`, `logistic` and
  `balanced_random_forest` classify the tier directly (temperature-calibrated). The learned
  kinds are trained with each optional field (followers, duration, sound) masked at random, so
  that whether a field is present carries no label information: in the bundled data presence
  identifies the source file, and a model would learn the file instead of the post.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.stats import norm
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import GroupKFold, train_test_split
from sklearn.pipeline import make_pipeline

from virtuna.ml.features import OPTIONAL_FIELDS
from virtuna.ml.tiers import TIERS, TierEdges, TierScheme
from virtuna.ml.train import (
    EmptyColumnsToZero,
    ModelKind,
    apply_temperature,
    fit_model,
    fit_temperature,
    make_model,
)

BaselineKind = Literal["creator_history", "follower_mapping", "momentum"]
EstimatorKind = Literal[
    "creator_history",
    "follower_mapping",
    "momentum",
    "residual_boosting",
    "hist_gradient_boosting",
    "logistic",
    "balanced_random_forest",
]
BASELINE_KINDS: tuple[BaselineKind, ...] = ("creator_history", "follower_mapping", "momentum")
LEARNED_KINDS: tuple[EstimatorKind, ...] = (
    "residual_boosting",
    "hist_gradient_boosting",
    "logistic",
    "balanced_random_forest",
)
MASK_RATE = 0.3  # the share of training rows that lose each optional field
NOTHING_KNOWN = 2  # the situation of a row without creator history and without followers
MIN_SCALE = 0.05


def baseline_kind(scheme: TierScheme) -> BaselineKind:
    """The sceptic's model for a scheme: the creator's usual, or their recent momentum."""
    return "momentum" if scheme == "creator_relative" else "creator_history"


def mask_optional_fields(features: pd.DataFrame, rate: float, seed: int) -> pd.DataFrame:
    """A copy with each optional field group blanked (NaN) on a random `rate` of the rows."""
    rng = np.random.default_rng(seed)
    masked = features.copy()
    for columns in OPTIONAL_FIELDS.values():
        present = [c for c in columns if c in masked.columns]
        hit = rng.random(len(masked)) < rate
        masked.loc[hit, present] = np.nan
    return masked


def gaussian_tier_probabilities(
    location: np.ndarray, scale: np.ndarray, edges: TierEdges
) -> np.ndarray:
    """P(tier) for a normal outcome N(location, scale) cut at the edges (rows sum to 1)."""
    cuts = np.asarray(edges.edges, dtype=float)
    z = (cuts[None, :] - np.asarray(location, dtype=float)[:, None]) / np.maximum(
        np.asarray(scale, dtype=float)[:, None], MIN_SCALE
    )
    cdf = np.hstack([np.zeros((len(z), 1)), norm.cdf(z), np.ones((len(z), 1))])
    return np.clip(np.diff(cdf, axis=1), 1e-9, 1.0)


def mixture_probabilities(
    location: np.ndarray, scale: np.ndarray, share: np.ndarray, prior: np.ndarray, edges: TierEdges
) -> np.ndarray:
    """(1 - share) x the normal's tier probabilities + share x the population's tier shares."""
    gauss = gaussian_tier_probabilities(location, scale, edges)
    return (1 - share)[:, None] * gauss + share[:, None] * prior[None, :]


Spread = tuple[float, float, float]  # (pooled spread, population share, weight of the pooled)


def row_scales(spread: Spread, own_std: np.ndarray, own_n: np.ndarray) -> np.ndarray:
    """Each row's spread: the creator's own spread of earlier posts shrunk towards the pooled
    one, (m s^2 + k sigma^2) / (m + k) with m = earlier posts - 1 (k infinite: pooled only)."""
    sigma, _, weight = spread
    if not np.isfinite(weight):
        return np.full(len(own_n), sigma)
    m = np.maximum(np.nan_to_num(own_n) - 1, 0)
    own = np.where(np.isnan(own_std), sigma, own_std)
    return np.sqrt((m * own**2 + weight * sigma**2) / (m + weight))


def fit_spreads(
    location: np.ndarray,
    outcome: np.ndarray,
    situation: np.ndarray,
    edges: TierEdges,
    prior: np.ndarray,
    own: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[int, Spread]:
    """Per situation, the spread, the population share and (with creator history, given the
    creators' own spreads `own` = (std, posts)) the shrinkage weight minimising the tiers'
    log-loss."""
    tiers = edges.assign(outcome)
    spreads: dict[int, Spread] = {}
    fallback = float(np.std(outcome - location)) or 1.0
    for s in (0, 1, 2):
        if s == NOTHING_KNOWN:
            # Knowing neither the creator's history nor their followers: the population's tier
            # shares, not fitted. In scraped data the rows without both are whole sources (a
            # trending feed carries no follower counts), so a fit would learn which file a row
            # came from (there: "viral"), not what a new creator's post does.
            spreads[s] = (fallback, 1.0, np.inf)
            continue
        rows = (situation == s) & (tiers > 0)
        if rows.sum() < 20:
            spreads[s] = (fallback, 0.2, np.inf)
            continue
        place, target = location[rows], tiers[rows] - 1
        personal = own is not None and s == 0
        std_n = (own[0][rows], own[1][rows]) if personal else (None, None)  # type: ignore[index]

        def spread_of(theta: np.ndarray, personal: bool = personal) -> Spread:
            weight = float(np.exp(theta[2])) if personal else np.inf
            return (float(np.exp(theta[0])), float(1 / (1 + np.exp(-theta[1]))), weight)

        def loss(
            theta: np.ndarray,
            place: np.ndarray = place,
            target: np.ndarray = target,
            std_n: tuple = std_n,
            spread_of: Any = spread_of,
        ) -> float:
            spread = spread_of(theta)
            scale = (
                row_scales(spread, *std_n)
                if std_n[0] is not None
                else np.full(len(place), spread[0])
            )
            share = np.full(len(place), spread[1])
            p = mixture_probabilities(place, scale, share, prior, edges)
            return float(-np.mean(np.log(p[np.arange(len(place)), target])))

        sigma0 = np.log(max(float(np.std(outcome[rows] - place)), MIN_SCALE))
        start = np.array([sigma0, -2.0, np.log(5.0)])
        bounds = [(np.log(MIN_SCALE), 3.0), (-8.0, 4.0), (np.log(0.1), np.log(1e4))]
        if not personal:
            start, bounds = start[:2], bounds[:2]
        found = minimize(loss, start, method="L-BFGS-B", bounds=bounds)
        spreads[s] = spread_of(found.x)
    return spreads


def _spread_probabilities(
    location: np.ndarray,
    situation: np.ndarray,
    spreads: dict[int, Spread],
    prior: np.ndarray,
    edges: TierEdges,
    own: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    scale = np.empty(len(location))
    share = np.empty(len(location))
    for s, spread in spreads.items():
        rows = situation == s
        scale[rows] = row_scales(spread, own[0][rows], own[1][rows])
        share[rows] = spread[1]
    return mixture_probabilities(location, scale, share, prior, edges)


def own_spread(features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The creator's own spread of earlier log views and how many posts it rests on."""
    return (
        features["prior_std_log_views"].to_numpy(dtype=float),
        features["prior_posts"].to_numpy(dtype=float),
    )


def tier_shares(outcome: np.ndarray, edges: TierEdges) -> np.ndarray:
    """The population's share of each tier (the prior a baseline is mixed with)."""
    tiers = edges.assign(outcome[~np.isnan(outcome)])
    counts = np.bincount(tiers, minlength=6)[1:].astype(float)
    return counts / counts.sum()


class TierEstimator:
    """The interface every kind fills (scikit-learn style: learned state ends in `_`)."""

    kind: EstimatorKind
    scheme: TierScheme

    def fit(
        self,
        features: pd.DataFrame,
        outcome: np.ndarray,
        edges: TierEdges,
        groups: np.ndarray | None = None,
    ) -> TierEstimator:
        """Learn from rows, their continuous outcome and the tier edges (`groups`: the data
        collection of each row, for kinds that check what carries over between sources)."""
        raise NotImplementedError

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities over tiers 1-5."""
        raise NotImplementedError

    def location(self, features: pd.DataFrame) -> np.ndarray | None:
        """Where on the outcome scale the post is expected (None for classifiers)."""
        return None


class LocationScaleTiers(TierEstimator):
    """A baseline: a place on the outcome scale and a spread fitted per situation."""

    def __init__(self, kind: BaselineKind, scheme: TierScheme) -> None:
        """A baseline of one kind for one scheme."""
        self.kind = kind
        self.scheme = scheme

    def _situations(self, features: pd.DataFrame) -> np.ndarray:
        """0 = creator history, 1 = followers only, 2 = nothing known (NOTHING_KNOWN)."""
        history = features["prior_posts"].to_numpy(dtype=float) > 0
        followers = features["log_followers"].notna().to_numpy()
        situation = np.where(followers, 1, 2)
        if self.kind != "follower_mapping":
            situation = np.where(history, 0, situation)
        return situation

    def _raw_location(self, features: pd.DataFrame) -> np.ndarray:
        if self.kind == "momentum":
            recent = features["prior_last3_log_views"] - features["prior_median_log_views"]
            return self.slope_ * recent.fillna(0.0).to_numpy(dtype=float)
        followers = features["log_followers"].to_numpy(dtype=float)
        place = np.full(len(followers), self.mode_place_)
        known = ~np.isnan(followers)
        if len(self.followers_):
            # Equipercentile: the outcome at the same rank as the follower count.
            rank = np.searchsorted(self.followers_, followers[known], side="right")
            share = np.clip(rank / len(self.followers_), 0.0, 1.0)
            place[known] = np.quantile(self.outcomes_, share)
        if self.kind == "creator_history":
            median = features["prior_median_log_views"].to_numpy(dtype=float)
            place = np.where(np.isnan(median), place, median)
        return place

    def fit(
        self,
        features: pd.DataFrame,
        outcome: np.ndarray,
        edges: TierEdges,
        groups: np.ndarray | None = None,
    ) -> LocationScaleTiers:
        """Fit the follower mapping (or the momentum factor) and the spread per situation."""
        outcome = np.asarray(outcome, dtype=float)
        self._fit_place(features, outcome, edges)
        self.prior_ = tier_shares(outcome, edges)
        place = self._held_out_location(features, outcome, groups)
        self.scale_ = fit_spreads(
            place, outcome, self._situations(features), edges, self.prior_, own_spread(features)
        )
        return self

    def _fit_place(self, features: pd.DataFrame, outcome: np.ndarray, edges: TierEdges) -> None:
        known = ~np.isnan(outcome)
        self.edges_ = edges
        self.slope_ = 0.0
        self.followers_ = np.array([])
        # Knowing nothing, the likeliest tier: the middle of the most frequent one.
        tiers = edges.assign(outcome[known])
        mode = int(np.bincount(tiers, minlength=6)[1:].argmax() + 1)
        self.mode_place_ = float(np.median(outcome[known][tiers == mode]))
        if self.kind == "momentum":
            recent = (
                features["prior_last3_log_views"] - features["prior_median_log_views"]
            ).to_numpy(dtype=float)
            ok = known & ~np.isnan(recent)
            denominator = float(np.sum(recent[ok] ** 2))
            self.slope_ = (
                float(np.sum(recent[ok] * outcome[ok]) / denominator) if denominator else 0.0
            )
        else:
            followers = features["log_followers"].to_numpy(dtype=float)
            ok = known & ~np.isnan(followers)
            if ok.sum() >= 10:
                self.followers_ = np.sort(followers[ok])
                self.outcomes_ = np.sort(outcome[ok])

    def _held_out_location(
        self, features: pd.DataFrame, outcome: np.ndarray, groups: np.ndarray | None
    ) -> np.ndarray:
        """Each row's place with the follower mapping learned without the row's collection
        (the creator's median and the momentum factor need no such care)."""
        place = self._raw_location(features)
        if groups is None or self.kind == "momentum" or len(np.unique(groups)) < 2:
            return place
        groups = np.asarray(groups)
        names = np.unique(groups)
        for train, test in GroupKFold(n_splits=min(3, len(names))).split(features, groups=groups):
            other = LocationScaleTiers(self.kind, self.scheme)
            other._fit_place(features.iloc[train], outcome[train], self.edges_)
            place[test] = other._raw_location(features.iloc[test])
        return place

    def location(self, features: pd.DataFrame) -> np.ndarray:
        """The baseline's place for each row."""
        return self._raw_location(features)

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Tier probabilities around the baseline's place, mixed with the population's."""
        return _spread_probabilities(
            self.location(features),
            self._situations(features),
            self.scale_,
            self.prior_,
            self.edges_,
            own_spread(features),
        )


class ResidualBoostingTiers(TierEstimator):
    """The baseline plus a boosted correction learned from the honest features."""

    kind: EstimatorKind = "residual_boosting"

    def __init__(self, scheme: TierScheme, seed: int = 0) -> None:
        """A residual model over the scheme's baseline."""
        self.scheme = scheme
        self.seed = seed

    def _booster(self) -> Any:
        return make_pipeline(
            EmptyColumnsToZero(),
            HistGradientBoostingRegressor(
                max_iter=200,
                learning_rate=0.05,
                min_samples_leaf=100,
                l2_regularization=1.0,
                early_stopping=True,
                random_state=self.seed,
            ),
        )

    def _transfer(self, masked: pd.DataFrame, residual: np.ndarray, groups: np.ndarray) -> float:
        """How much of the correction carries over to a source it was not learned on: the
        least-squares factor (clipped to 0-1) of corrections predicted across collections."""
        names = np.unique(groups)
        if len(names) < 2:
            return 1.0
        predicted = np.zeros(len(residual))
        for train, test in GroupKFold(n_splits=min(3, len(names))).split(masked, groups=groups):
            predicted[test] = (
                self._booster().fit(masked.iloc[train], residual[train]).predict(masked.iloc[test])
            )
        power = float(np.sum(predicted**2))
        return float(np.clip(np.sum(predicted * residual) / power, 0.0, 1.0)) if power else 0.0

    def fit(
        self,
        features: pd.DataFrame,
        outcome: np.ndarray,
        edges: TierEdges,
        groups: np.ndarray | None = None,
    ) -> ResidualBoostingTiers:
        """Fit the baseline, the correction on 90 % of rows (shrunk by how well it carries over
        between the training collections), the spread on the other 10 %."""
        outcome = np.asarray(outcome, dtype=float)
        known = np.flatnonzero(~np.isnan(outcome))
        fit_rows, spread_rows = train_test_split(known, test_size=0.1, random_state=self.seed)
        self.edges_ = edges
        self.baseline_ = LocationScaleTiers(baseline_kind(self.scheme), self.scheme).fit(
            features.iloc[fit_rows], outcome[fit_rows], edges
        )
        masked = mask_optional_fields(features.iloc[fit_rows], MASK_RATE, self.seed)
        residual = outcome[fit_rows] - self.baseline_.location(masked)
        self.transfer_ = (
            1.0
            if groups is None
            else self._transfer(masked, residual, np.asarray(groups)[fit_rows])
        )
        self.booster_ = self._booster().fit(masked, residual)
        held = features.iloc[spread_rows]
        self.prior_ = tier_shares(outcome, edges)
        self.scale_ = fit_spreads(
            self.location(held),
            outcome[spread_rows],
            self.baseline_._situations(held),
            edges,
            self.prior_,
            own_spread(held),
        )
        return self

    def location(self, features: pd.DataFrame) -> np.ndarray:
        """The baseline's place moved by the learned correction."""
        return self.baseline_.location(features) + self.transfer_ * self.booster_.predict(features)

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Tier probabilities around the corrected place, mixed with the population's."""
        return _spread_probabilities(
            self.location(features),
            self.baseline_._situations(features),
            self.scale_,
            self.prior_,
            self.edges_,
            own_spread(features),
        )


class ClassifierTiers(TierEstimator):
    """A class-weighted tier classifier, trained on masked fields, temperature-calibrated."""

    def __init__(self, kind: ModelKind, scheme: TierScheme, seed: int = 0) -> None:
        """A classifier of one kind for one scheme."""
        self.kind = kind
        self.scheme = scheme
        self.seed = seed

    def fit(
        self,
        features: pd.DataFrame,
        outcome: np.ndarray,
        edges: TierEdges,
        groups: np.ndarray | None = None,
    ) -> ClassifierTiers:
        """Fit on 90 % of the rows (masked), the temperature on the other 10 %."""
        tiers = edges.assign(outcome)
        known = np.flatnonzero(tiers > 0)
        fit_rows, calibration_rows = train_test_split(
            known, test_size=0.1, stratify=tiers[known], random_state=self.seed
        )
        self.model_ = make_model(self.kind, self.seed)
        masked = mask_optional_fields(features.iloc[fit_rows], MASK_RATE, self.seed)
        fit_model(self.model_, masked, tiers[fit_rows], self.kind)
        self.classes_ = np.asarray(self.model_.classes_)
        self.temperature_ = fit_temperature(
            self.model_.predict_proba(features.iloc[calibration_rows]),
            tiers[calibration_rows],
            self.classes_,
        )
        return self

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Temperature-scaled probabilities over all five tiers (absent classes get 0)."""
        raw = apply_temperature(self.model_.predict_proba(features), self.temperature_)
        full = np.zeros((len(raw), len(TIERS)))
        full[:, np.searchsorted(TIERS, self.classes_)] = raw
        return full


def make_estimator(kind: EstimatorKind, scheme: TierScheme, seed: int = 0) -> TierEstimator:
    """An unfitted estimator of any kind."""
    if kind in BASELINE_KINDS:
        relative = scheme == "creator_relative"
        if (kind == "momentum" and not relative) or (kind == "creator_history" and relative):
            raise ValueError(f"{kind} is not a baseline for the {scheme} scheme")
        return LocationScaleTiers(kind, scheme)  # type: ignore[arg-type]
    if kind == "residual_boosting":
        return ResidualBoostingTiers(scheme, seed)
    if kind in ("hist_gradient_boosting", "logistic", "balanced_random_forest"):
        return ClassifierTiers(kind, scheme, seed)  # type: ignore[arg-type]
    raise ValueError(
        f"unknown model kind {kind!r}; expected one of {BASELINE_KINDS + LEARNED_KINDS}"
    )


def describe(estimator: Any) -> str:
    """The kind and scheme in words, for cards and reports."""
    return f"{estimator.kind} ({estimator.scheme})"
