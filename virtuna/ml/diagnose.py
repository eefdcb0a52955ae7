"""Imbalance and source diagnosis of a training set: what a model could learn that is not the post.

- tier shares per source and the imbalance ratio (largest over smallest tier),
- each feature's Spearman with the outcome, pooled and within each source,
- missingness of each feature by source,
- how well the missingness pattern alone identifies the source (a shallow tree, cross-validated,
  against the majority source's share): high means "which fields are present" says "which
  file", and a model that uses presence learns the file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.model_selection import cross_val_score
from sklearn.tree import DecisionTreeClassifier

from virtuna.ml.evaluate import TrainingSet
from virtuna.ml.tiers import TIERS, TierScheme, fit_edges


@dataclass
class Diagnosis:
    """The diagnosis tables and the source-identifiability figures."""

    tier_shares: pd.DataFrame  # collection x tier -> share of rows
    imbalance_ratio: float  # pooled: largest tier / smallest tier
    correlations: pd.DataFrame  # feature x (pooled, each collection) -> Spearman with outcome
    missingness: pd.DataFrame  # collection x feature -> share missing
    identifiability: float  # accuracy of telling the collection from missingness alone
    majority_share: float  # the accuracy of always naming the largest collection


def diagnose(data: TrainingSet, scheme: TierScheme = "views_quintile", seed: int = 0) -> Diagnosis:
    """Diagnose a training set under a tier scheme (edges over all its rows)."""
    outcome = data.outcome(scheme)
    known = ~np.isnan(outcome)
    tiers = fit_edges(pd.Series(outcome[known]), scheme).assign(outcome)
    collections = data.collections
    frame = pd.DataFrame({"collection": collections[known], "tier": tiers[known]})
    shares = pd.crosstab(frame["collection"], frame["tier"], normalize="index")
    shares = shares.reindex(columns=list(TIERS), fill_value=0.0)
    counts = np.bincount(tiers[known], minlength=6)[1:]
    ratio = float(counts.max() / counts.min()) if counts.min() else float("inf")

    features = data.features
    correlations = {}
    groups = [("pooled", known)]
    groups += [(str(c), known & (collections == c)) for c in np.unique(collections)]
    for name, members in groups:
        column = {}
        for feature in features.columns:
            values = features[feature].to_numpy(dtype=float)[members]
            ok = ~np.isnan(values)
            column[feature] = (
                float(spearmanr(values[ok], outcome[members][ok]).statistic)
                if ok.sum() >= 20 and np.ptp(values[ok]) > 0
                else np.nan
            )
        correlations[name] = column
    missing = features.isna().groupby(collections).mean()

    pattern = features.isna().to_numpy(dtype=float)
    names, codes = np.unique(collections, return_inverse=True)
    majority = float(np.bincount(codes).max() / len(codes))
    folds = min(5, int(np.bincount(codes).min())) if len(names) > 1 else 0
    identifiability = majority
    if folds >= 2:
        tree = DecisionTreeClassifier(max_depth=4, random_state=seed)
        identifiability = float(cross_val_score(tree, pattern, codes, cv=folds).mean())
    return Diagnosis(
        tier_shares=shares,
        imbalance_ratio=ratio,
        correlations=pd.DataFrame(correlations),
        missingness=missing,
        identifiability=identifiability,
        majority_share=majority,
    )
