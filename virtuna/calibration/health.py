"""Model health: the frames behind the model-health report, read from the store alone.

Each function returns a DataFrame (empty, with its columns, on a store without the data) so the
report's notebook only plots. What is measured:

- served scores raw and calibrated per signal profile (`served_scores`); backtests replay raw
  scores, so their "calibrated" column is the active map applied afterwards, flagged as not served;
- predicted vs actual over outcomes (`outcome_scores`, `reliability_table`, `precision_recall`);
- ECE per period with bootstrap intervals (`ece_over_time`): collected outcomes by reported_at,
  backtests by the replayed post's time (they are all reported at backtest time);
- feature drift between the tier model's training rows and recent analyses (`psi`, `psi_table`,
  `drift_features`);
- LLM cost, calibration fits, models and the job ledger, as tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve

from virtuna.calibration.ece import bootstrap_ece, calibration_bins
from virtuna.calibration.platt import platt_probability
from virtuna.engine.calibrate import active_calibrations
from virtuna.ml.features import FEATURE_NAMES, build_features, draft_rows
from virtuna.store.outcomes import outcome_frame

PSI_BINS = 10
PSI_EPS = 1e-4  # share given to an empty bin, so the log stays finite
PSI_DRIFT = 0.25  # above this a feature's distribution has shifted materially
MIN_DRIFT_ROWS = 50  # fewer recent rows than this and PSI measures noise
MIN_PERIOD_OUTCOMES = 200  # months are merged until a period holds this many outcomes
# Analyses do not store the draft's sound, so rebuilt drafts have none: not a drift signal.
NOT_STORED = ("sound_original", "sound_uses_7d", "sound_log_views_7d", "sound_uses_before")

SCORE_COLUMNS = [
    "analysis_id",
    "kind",
    "signal_profile",
    "raw_score",
    "overall_score",
    "calibrated_score",
    "calibration_served",
    "confidence",
    "confidence_label",
    "created_at",
]


def served_scores(con: duckdb.DuckDBPyConnection, since: datetime | None = None) -> pd.DataFrame:
    """Analyses (live ones created since `since`, every backtest) with raw and calibrated score.

    `calibrated_score` is the served score when it was calibrated; otherwise the profile's
    active Platt map applied to the raw score (`calibration_served` false), NaN without a map.
    """
    frame = con.execute(
        "SELECT id AS analysis_id, CASE WHEN is_backtest THEN 'backtest' ELSE 'live' END AS kind, "
        "coalesce(signal_profile, 'unprofiled') AS signal_profile, "
        "coalesce(raw_score, overall_score) AS raw_score, overall_score, is_calibrated, "
        "confidence, confidence_label, created_at FROM analysis_results "
        "WHERE deleted_at IS NULL AND (is_backtest OR $since IS NULL OR created_at >= $since) "
        "ORDER BY created_at, id",
        {"since": since},
    ).df()
    maps = active_calibrations(con)
    mapped = np.full(len(frame), np.nan)
    for profile, params in maps.items():
        rows = (frame["signal_profile"] == profile).to_numpy()
        mapped[rows] = 100 * platt_probability(frame.loc[rows, "raw_score"], params.a, params.b)
    served = frame["is_calibrated"].astype(bool).to_numpy()
    frame["calibrated_score"] = np.where(served, frame["overall_score"], mapped)
    frame["calibration_served"] = served
    return frame.loc[:, SCORE_COLUMNS]


OUTCOME_COLUMNS = [
    "analysis_id",
    "source",
    "signal_profile",
    "raw_score",
    "overall_score",
    "p",
    "resonated",
    "reported_at",
    "when",
    "calibration_version",
]


def outcome_scores(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Outcomes with the served probability `p` (overall_score / 100) and the time `when` they
    belong to: reported_at, except for backtests, whose outcomes are all reported at backtest
    time: for them the replayed post's planned_post_time (else created_at)."""
    outcomes = outcome_frame(con)
    times = con.sql(
        "SELECT id AS analysis_id, coalesce(planned_post_time, created_at) AS post_time, "
        "calibration_version FROM analysis_results"
    ).df()
    frame = outcomes.merge(times, on="analysis_id", how="left")
    frame["p"] = frame["overall_score"].astype(float) / 100
    backtest = (frame["source"] == "backtest").to_numpy()
    frame["when"] = pd.to_datetime(frame["reported_at"]).where(~backtest, frame["post_time"])
    return frame.loc[:, OUTCOME_COLUMNS]


def known(frame: pd.DataFrame) -> pd.DataFrame:
    """The outcomes whose resonated is known, with it as 0/1."""
    rows = frame[frame["resonated"].notna()].copy()
    rows["resonated"] = rows["resonated"].astype(bool).astype(int)
    return rows


RELIABILITY_COLUMNS = ["group", "bin_low", "bin_high", "n", "mean_predicted", "share_resonated"]


def reliability_table(
    frame: pd.DataFrame, by: str = "source", score: str = "p", n_bins: int = 10
) -> pd.DataFrame:
    """Per group and equal-width bin of `score` (a probability): the mean predicted probability
    and the share that resonated (empty bins left out), for reliability curves."""
    rows: list[dict[str, Any]] = []
    data = known(frame).dropna(subset=[score])
    for group, part in data.groupby(by, sort=True):
        bins = calibration_bins(part["resonated"].to_numpy(), part[score].to_numpy(), n_bins)
        for b in np.flatnonzero(bins.counts):
            rows.append(
                {
                    "group": group,
                    "bin_low": bins.edges[b],
                    "bin_high": bins.edges[b + 1],
                    "n": int(bins.counts[b]),
                    "mean_predicted": bins.mean_predicted[b],
                    "share_resonated": bins.mean_observed[b],
                }
            )
    return pd.DataFrame(rows, columns=RELIABILITY_COLUMNS)


PR_COLUMNS = ["group", "precision", "recall", "base_rate", "average_precision", "n"]


def precision_recall(frame: pd.DataFrame, by: str = "source", score: str = "p") -> pd.DataFrame:
    """The precision-recall curve of `score` for "resonates", per group that has both outcomes,
    with the group's base rate (the precision of guessing "resonates" for every post)."""
    parts = []
    for group, part in known(frame).dropna(subset=[score]).groupby(by, sort=True):
        y = part["resonated"].to_numpy()
        if y.min() == y.max():
            continue  # one class only: no curve to draw
        precision, recall, _ = precision_recall_curve(y, part[score].to_numpy())
        parts.append(
            pd.DataFrame(
                {
                    "group": group,
                    "precision": precision,
                    "recall": recall,
                    "base_rate": y.mean(),
                    "average_precision": average_precision_score(y, part[score].to_numpy()),
                    "n": len(y),
                }
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=PR_COLUMNS)


def merge_periods(
    times: pd.Series, min_count: int = MIN_PERIOD_OUTCOMES, freq: str = "M"
) -> pd.Series:
    """A period number per time: calendar periods (months by default) in order, consecutive ones
    merged until each holds at least `min_count` times; a short remainder joins the last."""
    if times.isna().any():
        raise ValueError("merge_periods needs a time for every outcome")
    period = pd.to_datetime(times).dt.to_period(freq).dt.start_time
    counts = period.value_counts().sort_index()
    bucket, filled, of_period = 0, 0, {}
    for start, n in counts.items():
        of_period[start] = bucket
        filled += n
        if filled >= min_count:
            bucket, filled = bucket + 1, 0
    last = max(of_period.values(), default=0)
    if 0 < filled < min_count and last > 0:  # the trailing periods are too few on their own
        of_period = {k: min(v, last - 1) for k, v in of_period.items()}
    return period.map(of_period).astype(int)


ECE_TIME_COLUMNS = [
    "source",
    "signal_profile",
    "basis",
    "period",
    "start",
    "end",
    "n",
    "ece",
    "ece_low",
    "ece_high",
]


def ece_over_time(
    frame: pd.DataFrame,
    *,
    min_count: int = MIN_PERIOD_OUTCOMES,
    resamples: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """ECE of the served probability per source, signal profile and period, with a 95 %
    percentile bootstrap interval. Periods are months of `when` merged to `min_count` outcomes;
    a collected source whose outcomes all share one reported_at is split per calibration
    version instead (basis 'calibration version')."""
    rows: list[dict[str, Any]] = []
    for (source, profile), part in known(frame).groupby(["source", "signal_profile"], sort=True):
        if source != "backtest" and part["reported_at"].nunique() == 1:
            basis = "calibration version"
            keys = part["calibration_version"].map(
                lambda v: "uncalibrated" if pd.isna(v) else f"v{int(v)}"
            )
        else:
            basis = "post time" if source == "backtest" else "reported_at"
            keys = merge_periods(part["when"], min_count)
        for key, bucket in part.groupby(keys.to_numpy(), sort=True):
            point, low, high = bootstrap_ece(
                bucket["resonated"].to_numpy(),
                bucket["p"].to_numpy(),
                resamples=resamples,
                seed=seed,
            )
            start, end = bucket["when"].min(), bucket["when"].max()
            label = str(key) if basis == "calibration version" else _period_label(start, end)
            rows.append(
                {
                    "source": source,
                    "signal_profile": profile,
                    "basis": basis,
                    "period": label,
                    "start": start,
                    "end": end,
                    "n": len(bucket),
                    "ece": point,
                    "ece_low": low,
                    "ece_high": high,
                }
            )
    return pd.DataFrame(rows, columns=ECE_TIME_COLUMNS)


def _period_label(start: pd.Timestamp, end: pd.Timestamp) -> str:
    first, last = f"{start:%Y-%m}", f"{end:%Y-%m}"
    return first if first == last else f"{first} to {last}"


def psi(
    reference: np.ndarray | pd.Series,
    recent: np.ndarray | pd.Series,
    bins: int = PSI_BINS,
    eps: float = PSI_EPS,
) -> float:
    """Population stability index of `recent` against `reference`.

    Bins: the reference's deciles (ties merged, so a 0/1 feature has two bins) plus one bin for
    missing values; a bin empty on either side gets share `eps`. PSI = sum (a - e) ln(a / e)
    over bins, with e the reference share and a the recent share. NaN when either side is empty.
    """
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(recent, dtype=float)
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    finite = ref[~np.isnan(ref)]
    inner = np.linspace(0, 1, bins + 1)[1:-1]
    edges = np.unique(np.quantile(finite, inner)) if len(finite) else np.array([])

    def shares(x: np.ndarray) -> np.ndarray:
        missing = np.isnan(x)
        index = np.searchsorted(edges, x[~missing], side="right")
        counts = np.bincount(index, minlength=len(edges) + 1).astype(float)
        return np.maximum(np.append(counts, missing.sum()) / len(x), eps)

    expected, actual = shares(ref), shares(cur)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


PSI_COLUMNS = [
    "feature",
    "psi",
    "drifted",
    "reference_rows",
    "recent_rows",
    "reference_missing",
    "recent_missing",
]


def psi_table(
    reference: pd.DataFrame, recent: pd.DataFrame, features: list[str] | None = None
) -> pd.DataFrame:
    """PSI per feature (the columns both frames have, or `features`), highest first, with the
    share of missing values on each side and `drifted` above PSI_DRIFT."""
    if reference.empty or recent.empty:
        return pd.DataFrame(columns=PSI_COLUMNS)
    names = features or [c for c in reference.columns if c in recent.columns]
    absent = [n for n in names if n not in reference.columns or n not in recent.columns]
    if absent:
        raise ValueError(f"features missing from the frames: {absent}")
    rows = [
        {
            "feature": name,
            "psi": psi(reference[name], recent[name]),
            "reference_rows": len(reference),
            "recent_rows": len(recent),
            "reference_missing": float(reference[name].isna().mean()),
            "recent_missing": float(recent[name].isna().mean()),
        }
        for name in names
    ]
    table = pd.DataFrame(rows)
    table["drifted"] = table["psi"] > PSI_DRIFT
    return (
        table.loc[:, PSI_COLUMNS].sort_values("psi", ascending=False, kind="stable")
    ).reset_index(drop=True)


@dataclass(frozen=True)
class DriftFrames:
    """The two feature sets to compare, and what `recent` is, in one sentence."""

    reference: pd.DataFrame
    recent: pd.DataFrame
    features: list[str]
    description: str


def live_draft_features(con: duckdb.DuckDBPyConnection, since: datetime) -> pd.DataFrame:
    """The tier model's features of the live analyses created since `since`, rebuilt from each
    stored draft (text, creator, hashtags, duration, post time) as the engine builds them."""
    drafts = con.execute(
        "SELECT id, content_text, creator_handle, hashtags, "
        "coalesce(planned_post_time, created_at) AS posted_at, feature_vector "
        "FROM analysis_results WHERE deleted_at IS NULL AND NOT is_backtest AND created_at >= ? "
        "ORDER BY created_at, id",
        [since],
    ).fetchall()
    if not drafts:
        return pd.DataFrame(columns=list(FEATURE_NAMES))
    rows = draft_rows(
        con,
        [
            {
                "row_id": analysis_id,
                "text": text or "",
                "creator_handle": handle,
                "posted_at": posted_at,
                "duration_seconds": json.loads(vector).get("duration_seconds") if vector else None,
                "hashtags": list(hashtags) if hashtags is not None else None,
            }
            for analysis_id, text, handle, hashtags, posted_at, vector in drafts
        ],
    )
    return build_features(con, rows, source="online")


def drift_features(
    con: duckdb.DuckDBPyConnection,
    since: datetime,
    days: int,
    min_rows: int = MIN_DRIFT_ROWS,
) -> DriftFrames:
    """Training rows against recent analyses: the live ones since `since` with their features
    rebuilt, or, with fewer than `min_rows` of those, the backtest replays of the newest `days`
    days of post times (then a check of time drift in the data, not of live traffic)."""
    from virtuna.ml.evaluate import load_training_set

    empty = pd.DataFrame(columns=list(FEATURE_NAMES))
    compared = [f for f in FEATURE_NAMES if f not in NOT_STORED]
    (live,) = con.execute(
        "SELECT count(*) FROM analysis_results WHERE deleted_at IS NULL AND NOT is_backtest "
        "AND created_at >= ?",
        [since],
    ).fetchone() or (0,)
    replays = con.execute(
        "WITH b AS (SELECT source_video_id, coalesce(planned_post_time, created_at) AS t "
        "FROM analysis_results WHERE deleted_at IS NULL AND is_backtest "
        "AND source_video_id IS NOT NULL) "
        "SELECT source_video_id FROM b WHERE t >= (SELECT max(t) FROM b) - to_days(?)",
        [days],
    ).fetchall()
    if live < min_rows and len(replays) < min_rows:
        why = f"{live:,} live analyses in the window and {len(replays):,} recent backtest replays"
        return DriftFrames(empty, empty, compared, f"Not measured: {why}; PSI needs {min_rows}.")
    training = load_training_set(con).features
    if training.empty:
        return DriftFrames(empty, empty, compared, "Not measured: no training rows stored.")
    if live >= min_rows:
        recent = live_draft_features(con, since)
        text = (
            f"{len(recent):,} live analyses of the last {days} days, features rebuilt from each "
            f"stored draft, against {len(training):,} training rows. The sound features "
            f"({', '.join(NOT_STORED)}) are left out: analyses do not store the draft's sound."
        )
        return DriftFrames(training, recent, compared, text)
    ids = [r[0] for r in replays]
    recent = training[training.index.isin(ids)]
    reference = training[~training.index.isin(ids)]
    text = (
        f"Only {live:,} live analyses in the last {days} days (fewer than {min_rows}), so this "
        f"compares the {len(recent):,} backtest replays of the newest {days} days of post times "
        f"(their training features) with the other {len(reference):,} training rows: a check "
        "of time drift in the data, not of live traffic."
    )
    return DriftFrames(reference, recent, list(FEATURE_NAMES), text)


def llm_cost(con: duckdb.DuckDBPyConnection, since: datetime) -> pd.DataFrame:
    """LLM cost per UTC day, provider and model since `since`, with calls and failures."""
    return con.execute(
        "SELECT CAST(created_at AS DATE) AS day, provider, model, "
        "CAST(sum(cost_cents) AS DOUBLE) AS cost_cents, count(*) AS calls, "
        "count(*) FILTER (WHERE status <> 'ok') AS not_ok "
        "FROM llm_calls WHERE created_at >= ? GROUP BY ALL ORDER BY day, provider, model",
        [since],
    ).df()


def calibration_fits(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every stored calibration fit, newest first, with its held-out ECE interval."""
    return con.sql(
        "SELECT version, coalesce(profile, '(mixed, retired)') AS profile, fitted_at, "
        "window_start, window_end, sample_count, held_out_count, ece_before, ece_after, "
        "ece_after_low, ece_after_high, is_active FROM calibration_params "
        "ORDER BY fitted_at DESC, version DESC"
    ).df()


def models_table(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The registered tier models, newest first, with their held-out accuracy and the reason
    they were promoted or refused."""
    return con.sql(
        "SELECT id, tier_scheme, trained_at, status, is_active, row_count, "
        "CAST(metrics->>'$.accuracy' AS DOUBLE) AS accuracy, reason FROM models "
        "ORDER BY trained_at DESC"
    ).df()


def job_ledger(con: duckdb.DuckDBPyConnection, since: datetime) -> pd.DataFrame:
    """Per job, the runs started since `since`: counts by outcome, the last start, durations and
    the last error."""
    return con.execute(
        "SELECT job, count(*) AS runs, count(*) FILTER (WHERE status = 'succeeded') AS succeeded, "
        "count(*) FILTER (WHERE status = 'failed') AS failed, "
        "count(*) FILTER (WHERE status NOT IN ('succeeded', 'failed')) AS other, "
        "max(started_at) AS last_started, median(duration_ms) / 1000 AS median_s, "
        "max(duration_ms) / 1000 AS max_s, arg_max(error, started_at) AS last_error "
        "FROM job_runs WHERE started_at >= ? GROUP BY job ORDER BY job",
        [since],
    ).df()


def overall_ece(frame: pd.DataFrame, resamples: int = 1000) -> pd.DataFrame:
    """ECE of the served probability per source over all its outcomes, with a 95 % interval."""
    rows = []
    for source, part in known(frame).groupby("source", sort=True):
        point, low, high = bootstrap_ece(
            part["resonated"].to_numpy(), part["p"].to_numpy(), resamples=resamples
        )
        rows.append({"source": source, "n": len(part), "ece": point, "low": low, "high": high})
    return pd.DataFrame(rows, columns=["source", "n", "ece", "low", "high"])


def summary_lines(
    scores: pd.DataFrame,
    outcomes: pd.DataFrame,
    overall: pd.DataFrame,
    periods: pd.DataFrame,
    drift: pd.DataFrame,
    cost: pd.DataFrame,
    jobs: pd.DataFrame,
    days: int,
    fits: pd.DataFrame | None = None,
) -> list[str]:
    """Five lines saying what to look at."""
    live = scores[scores["kind"] == "live"]
    backtests = int((scores["kind"] == "backtest").sum())
    lines = [
        f"Scores: {len(live):,} live analyses in the last {days} days "
        f"({live['calibration_served'].mean():.0%} served calibrated) and {backtests:,} backtests."
        if len(live)
        else f"Scores: no live analysis in the last {days} days; {backtests:,} backtests."
    ]
    if overall.empty:
        lines.append("Calibration: no outcome with a known result yet, so no ECE.")
    else:
        parts = [
            f"{r.source} {r.ece:.3f} ({r.low:.3f}-{r.high:.3f}, n={r.n:,})"
            for r in overall.itertuples()
        ]
        unknown = int(outcomes["resonated"].isna().sum())
        lines.append(
            "Served-score ECE: "
            + "; ".join(parts)
            + (f" ({unknown:,} outcomes with no known result left out)" if unknown else "")
            + _active_fits(fits)
            + "."
        )
    if periods.empty:
        lines.append("ECE over time: no periods to compare.")
    else:
        worst = periods.loc[periods["ece"].idxmax()]
        lines.append(
            f"ECE over time: {len(periods)} periods; worst {worst['ece']:.3f} in "
            f"{worst['period']} ({worst['source']}, {worst['signal_profile']}, n={worst['n']:,})."
        )
    if drift.empty:
        lines.append("Feature drift: not measured (see the drift section).")
    else:
        flagged = drift[drift["drifted"]]
        top = ", ".join(f"{r.feature} {r.psi:.2f}" for r in drift.head(3).itertuples())
        lines.append(
            f"Feature drift: {len(flagged)} of {len(drift)} features above PSI {PSI_DRIFT}; "
            f"highest {top}."
        )
    spent = float(cost["cost_cents"].sum()) / 100 if not cost.empty else 0.0
    failed = int(jobs["failed"].sum()) if not jobs.empty else 0
    runs = int(jobs["runs"].sum()) if not jobs.empty else 0
    lines.append(
        f"Cost and jobs: {spent:,.2f} USD of LLM calls and {failed} failed of {runs} job runs "
        f"in the last {days} days."
    )
    return lines


def _active_fits(fits: pd.DataFrame | None) -> str:
    """The held-out ECE after each active map, as a clause (backtests are served raw)."""
    if fits is None or fits.empty or not fits["is_active"].any():
        return ""
    active = fits[fits["is_active"].astype(bool)]
    return "; active maps' held-out ECE after: " + ", ".join(
        f"{r.profile} {r.ece_after:.3f}" for r in active.itertuples()
    )


def window_start(now: datetime, days: int) -> datetime:
    """The start of the report's window of `days` days ending at `now`."""
    if days <= 0:
        raise ValueError(f"days must be positive, got {days}")
    return now - timedelta(days=days)
