"""Imbalance and source diagnosis of a training set: what a model could learn that is not the post.

- tier shares per source and the imbalance ratio (largest over smallest tier),
- each feature's Spearman with the outcome, pooled and within each source,
- missingness of each feature by source,
- how well the missingness pattern alone identifies the source (a shallow tree, cross-validated,
  against the majority source's share): high means "which fields are present" says "which
  file", and a model that uses presence learns the file.

The tier-diagnosis report's tables (`tier_view` and what follows) look at every stored video
rather than a training set: tiers per source, imbalance, feature correlations and missingness,
and the leakage checks (no feature is the outcome; a video's own counts move none of its
features; the sampling bias of the scraped files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.model_selection import cross_val_score
from sklearn.tree import DecisionTreeClassifier

from virtuna.ml.evaluate import TrainingSet
from virtuna.ml.features import ROW_COLUMNS, build_features, is_sequence, training_rows
from virtuna.ml.tiers import TIERS, TierEdges, TierScheme, fit_edges, outcome_measure
from virtuna.store import MEMORY, connect, one, run


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


# ------------------------------------------------------------------ the tier-diagnosis report

OUTCOME_COLUMNS = ("views", "likes", "shares", "comments", "saves")
LEAK_TOLERANCE = 1e-9  # the store's averages are floating-point sums; DuckDB may add in any order
OUTCOME_LIKE = 0.9  # |Spearman| with the tier or outcome above which a feature may be the outcome


@dataclass
class TierView:
    """The videos the tier model learns from, tiered under a scheme with edges fitted on all of
    them: `rows` (training_rows plus outcome, tier (0: none), log_views, no_history) and their
    `features`, aligned by position."""

    scheme: TierScheme
    rows: pd.DataFrame
    features: pd.DataFrame
    edges: TierEdges

    @property
    def tiered(self) -> pd.DataFrame:
        """The rows that have a tier."""
        return self.rows[self.rows["tier"] > 0]

    @property
    def sources(self) -> list[str]:
        """The sources present, sorted."""
        return sorted(self.rows["source"].unique())


def tier_view(
    con: duckdb.DuckDBPyConnection, scheme: TierScheme, sources: list[str] | None = None
) -> TierView:
    """The stored videos of `sources` (all when None) with features and tiers under `scheme`."""
    rows = training_rows(con, sources)
    features = build_features(con, rows)
    if len(rows) < 5:
        raise ValueError(
            f"only {len(rows)} usable videos (posted_at, views and a creator known) for "
            f"sources={sources}; at least 5 are needed to fit tier edges"
        )
    if scheme == "creator_relative":  # as retrain-ml does: the median over EARLIER posts
        rows["earlier_median_views"] = np.expm1(features["prior_median_log_views"].to_numpy())
    rows["outcome"] = outcome_measure(rows, scheme).to_numpy(dtype=float)
    edges = fit_edges(rows["outcome"], scheme)
    rows["tier"] = edges.assign(rows["outcome"])
    rows["log_views"] = np.log1p(rows["views"].astype(float))
    rows["no_history"] = features["prior_posts"].to_numpy() == 0
    return TierView(scheme, rows, features, edges)


def view_overview(view: TierView) -> dict[str, object]:
    """The headline facts of a view."""
    rows = view.rows
    return {
        "scheme": view.scheme,
        "sources": ", ".join(view.sources),
        "videos": f"{len(rows):,}",
        "videos with a tier": f"{len(view.tiered):,}",
        "creators": f"{rows['author_key'].nunique():,}",
        "posted": f"{rows['posted_at'].min():%Y-%m-%d} to {rows['posted_at'].max():%Y-%m-%d}",
        "tier edges (outcome measure)": ", ".join(f"{e:.4g}" for e in view.edges.edges),
        "features": len(view.features.columns),
    }


TIER_COLUMNS = [f"tier {t}" for t in TIERS]


def tier_counts(view: TierView) -> pd.DataFrame:
    """Videos per source and tier, with a pooled row: tier 1-5, with a tier, no tier."""
    counts = (
        view.tiered.groupby(["source", "tier"])
        .size()
        .unstack(fill_value=0)
        .reindex(index=view.sources, columns=list(TIERS), fill_value=0)
    )
    counts.columns = TIER_COLUMNS
    counts.loc["all sources"] = counts.sum()
    counts["with a tier"] = counts[TIER_COLUMNS].sum(axis=1)
    no_tier = (view.rows["tier"] == 0).groupby(view.rows["source"]).sum()
    no_tier["all sources"] = no_tier.sum()
    counts["no tier"] = no_tier.reindex(counts.index).fillna(0).astype(int)
    return counts.rename_axis("source")


def tier_shares(counts: pd.DataFrame) -> pd.DataFrame:
    """Each row's tier shares (of its videos with a tier) from `tier_counts`."""
    return counts[TIER_COLUMNS].div(counts["with a tier"].replace(0, np.nan), axis=0)


def imbalance_table(counts: pd.DataFrame) -> pd.DataFrame:
    """Per row of `tier_counts`: largest and smallest tier, their ratio (inf when a tier is
    empty) and the empty tiers."""
    tiers = counts[TIER_COLUMNS]
    smallest = tiers.min(axis=1)
    ratio = (tiers.max(axis=1) / smallest.replace(0, np.nan)).where(smallest > 0, np.inf)
    return pd.DataFrame(
        {
            "largest tier": tiers.idxmax(axis=1),
            "largest count": tiers.max(axis=1),
            "smallest tier": tiers.idxmin(axis=1),
            "smallest count": smallest,
            "largest / smallest": ratio.round(2),
            "empty tiers": tiers.apply(
                lambda r: ", ".join(c for c in TIER_COLUMNS if r[c] == 0) or "-", axis=1
            ),
        }
    )


def feature_correlations(view: TierView) -> pd.DataFrame:
    """Spearman's rho of each feature with the tier (rows with a tier) and with the outcome,
    and its non-missing count; sorted by |rho with tier| (blank for a constant feature)."""
    features = view.features
    tier = pd.Series(view.rows["tier"].to_numpy(), index=features.index).where(lambda t: t > 0)
    outcome = pd.Series(view.rows["outcome"].to_numpy(), index=features.index)
    varying = features.columns[features.nunique() > 1]
    table = pd.DataFrame(
        {
            "rho with tier": features[varying].corrwith(tier, method="spearman"),
            "rho with outcome": features[varying].corrwith(outcome, method="spearman"),
        }
    ).reindex(list(features.columns))
    table["non-missing"] = features.notna().sum()
    order = table["rho with tier"].abs().sort_values(ascending=False, na_position="last").index
    return table.reindex(order).rename_axis("feature")


def outcome_like(correlations: pd.DataFrame, threshold: float = OUTCOME_LIKE) -> pd.DataFrame:
    """The features whose |rho| with the tier or the outcome exceeds `threshold`."""
    rho = correlations[["rho with tier", "rho with outcome"]].abs()
    return correlations[(rho > threshold).any(axis=1)]


def missing_by_source(view: TierView) -> pd.DataFrame:
    """The share (%) of videos missing each feature, overall and per source, most missing first."""
    features = view.features
    missing = pd.DataFrame({"all sources": features.isna().mean()})
    source_of = view.rows["source"].to_numpy()
    for source in view.sources:
        missing[source] = features[source_of == source].isna().mean()
    return (
        (100 * missing).round(1).sort_values("all sources", ascending=False).rename_axis("feature")
    )


@dataclass
class LeakCheck:
    """Leakage check (b): changing videos' own counts (in the rows, then in a copy of the store)
    must leave their features identical; later posts of their creators should move."""

    rows: pd.DataFrame  # per sampled video: counts before and after, largest feature changes
    store: dict[str, object]  # the store-copy part in numbers
    rows_identical: bool
    store_identical: bool
    later_moved: int
    # The outcome columns among those build_features reads from a row (none, by design).
    outcome_columns_read: list[str]


def _max_difference(a: pd.Series, b: pd.Series) -> float:
    """Largest absolute difference between two feature rows (NaN in both counts as equal)."""
    x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
    if not np.array_equal(np.isnan(x), np.isnan(y)):
        return float("inf")
    both = ~np.isnan(x)
    return float(np.max(np.abs(x[both] - y[both]), initial=0.0))


def _altered(frame: pd.DataFrame) -> pd.DataFrame:
    """The same rows with their own outcome counts changed wildly."""
    changed = frame.copy()
    changed["views"] = changed["views"].astype(float) * 1000 + 12345
    changed["likes"] = 0
    changed["shares"] = changed["shares"].fillna(0).astype(float) * 50 + 999
    changed["comments"] = 10_000_000
    return changed


def _apart(candidates: pd.DataFrame, per_source: int) -> list[object]:
    """Up to `per_source` rows per source, in order, no two sharing a creator, a sound or a
    hashtag: changing one then cannot reach another's features (its creator's history, its
    sound's or hashtags' earlier days), so any change in a chosen row's own features is a leak."""
    taken: dict[object, int] = {}
    used: set[tuple[str, object]] = set()
    chosen = []
    for index, source, author, sound, tags in zip(
        candidates.index,
        candidates["source"],
        candidates["author_key"],
        candidates["sound_key"],
        candidates["hashtags"],
        strict=True,
    ):
        if taken.get(source, 0) >= per_source:
            continue
        keys = {("author", author)} | {("tag", t) for t in (tags if is_sequence(tags) else [])}
        if isinstance(sound, str):
            keys.add(("sound", sound))
        if keys & used:
            continue
        used |= keys
        taken[source] = taken.get(source, 0) + 1
        chosen.append(index)
    return chosen


def own_count_check(db_path: str | Path, view: TierView, per_source: int = 2) -> LeakCheck:
    """Change `per_source` videos per source (creators who post again later first): their
    counts in the rows, then in an in-memory copy of the store, and rebuild their features."""
    rows = view.rows
    later = rows.groupby("author_key")["posted_at"].transform("max") > rows["posted_at"]
    candidates = (
        rows.assign(_later=later)
        .sample(frac=1.0, random_state=0)
        .sort_values("_later", ascending=False, kind="stable")
        .drop(columns="_later")
    )
    sample = candidates.loc[_apart(candidates, per_source)].sort_values("posted_at")
    altered = _altered(sample)
    with connect(db_path) as con:
        before = build_features(con, sample)
        after = build_features(con, altered)
    full = view.features
    table = pd.DataFrame(
        {
            "source": sample["source"].to_numpy(),
            "views": sample["views"].to_numpy(),
            "views altered": altered["views"].to_numpy(),
            "comments altered": altered["comments"].to_numpy(),
            "max |feature change|": [
                _max_difference(before.loc[i], after.loc[i]) for i in before.index
            ],
            "max |diff| vs full build": [
                _max_difference(before.loc[i], full.loc[i]) for i in before.index
            ],
        },
        index=before.index,
    )
    first = sample.groupby("author_key")["posted_at"].min().rename("first_changed")
    later_rows = rows.merge(first, on="author_key")
    later_rows = later_rows[later_rows["posted_at"] > later_rows["first_changed"]]
    with connect(MEMORY) as mem:
        quoted = str(db_path).replace("'", "''")
        run(mem, f"ATTACH '{quoted}' AS original (READ_ONLY)")
        run(mem, "INSERT INTO scraped_videos BY NAME SELECT * FROM original.scraped_videos")
        run(mem, "DETACH original")
        own_before, later_before = build_features(mem, sample), build_features(mem, later_rows)
        run(
            mem,
            "UPDATE scraped_videos SET views = views * 1000 + 12345, likes = 0, "
            "shares = coalesce(shares, 0) * 50 + 999, comments = 10000000 "
            "WHERE platform || ':' || platform_video_id IN (SELECT unnest($ids))",
            {"ids": sample["row_id"].tolist()},
        )
        (changed,) = one(mem, "SELECT count(*) FROM scraped_videos WHERE comments = 10000000")
        own_after, later_after = build_features(mem, sample), build_features(mem, later_rows)
    own_same = [
        _max_difference(own_before.loc[i], own_after.loc[i]) <= LEAK_TOLERANCE
        for i in own_before.index
    ]
    moved = sum(
        _max_difference(later_before.loc[i], later_after.loc[i]) > LEAK_TOLERANCE
        for i in later_before.index
    )
    return LeakCheck(
        rows=table,
        store={
            "videos changed in the store copy": changed,
            "their own features identical": f"{sum(own_same)} of {len(own_same)}",
            "later posts of the same creators": len(later_rows),
            "of which features moved": moved,
        },
        rows_identical=bool(
            (table["max |feature change|"] <= LEAK_TOLERANCE).all()
            and (table["max |diff| vs full build"] <= LEAK_TOLERANCE).all()
        ),
        store_identical=all(own_same),
        later_moved=moved,
        outcome_columns_read=sorted(set(ROW_COLUMNS) & set(OUTCOME_COLUMNS)),
    )


def history_bias(view: TierView) -> pd.DataFrame:
    """Per source and pooled, videos with and without earlier posts in the store: count, with
    a tier, mean tier, median views and share of the source."""

    def table(frame: pd.DataFrame) -> pd.DataFrame:
        tier = frame["tier"].where(frame["tier"] > 0)
        return (
            frame.assign(tier=tier)
            .groupby("no_history")
            .agg(
                videos=("views", "size"),
                with_a_tier=("tier", "count"),
                mean_tier=("tier", "mean"),
                median_views=("views", "median"),
            )
        )

    parts = {source: table(part) for source, part in view.rows.groupby("source")}
    parts["all sources"] = table(view.rows)
    bias = pd.concat(parts, names=["source", "no earlier posts in store"])
    share = bias["videos"] / bias.groupby(level="source")["videos"].transform("sum")
    bias["share of source %"] = (100 * share).round(1)
    return bias.round({"mean_tier": 2, "median_views": 0})


def within_source_correlations(
    view: TierView, correlations: pd.DataFrame, top: int = 8
) -> pd.DataFrame:
    """Spearman's rho with the tier of the `top` features, pooled beside within each source."""
    names = correlations["rho with tier"].dropna().abs().sort_values(ascending=False).index[:top]
    within = pd.DataFrame({"all sources": correlations.loc[names, "rho with tier"]})
    for source, part in view.tiered.groupby("source"):
        features = view.features.loc[part["row_id"], names]
        tier = pd.Series(part["tier"].to_numpy(), index=features.index)
        varying = features.columns[features.nunique() > 1]
        within[source] = features[varying].corrwith(tier, method="spearman")
    return within.round(3).rename_axis("feature")
