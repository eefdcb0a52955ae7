"""calibration-audit: how well the scores match what happened, and a Platt refit.

Over the outcomes reported in the window (default the 90 days before `as_of`): ECE (10 equal-
width bins) of the scores as served, with a bootstrap interval; a drift alert (warning log and
a Sentry message) when it exceeds 0.15; then a Platt fit on half of the outcomes, judged on the
other half (ECE and log-loss before and after), activated only if it lowers held-out log-loss
and the outcomes are not nearly all of one kind (then a fit only learns the base rate).
Outcomes are "resonated" when the post reached tier 4 or 5. Below 50 outcomes: skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import sentry_sdk

from virtuna.calibration.backtest import RESONATES_FROM_TIER
from virtuna.calibration.ece import bootstrap_ece, calibration_bins
from virtuna.calibration.platt import (
    MIN_OUTCOMES,
    PlattAudit,
    audit_platt,
    platt_probability,
    store_platt,
)
from virtuna.log import get_logger, stage
from virtuna.store import connect, one, utcnow
from virtuna.store.outcomes import outcome_pairs

log = get_logger(__name__)
DRIFT_THRESHOLD = 0.15
MIN_BASE_RATE = 0.05


@dataclass
class AuditResult:
    """What the audit measured and decided."""

    status: str  # completed, skipped
    reason: str | None = None
    as_of: datetime | None = None
    window_days: int = 90
    samples: int = 0
    ece: float | None = None
    ece_interval: tuple[float, float] | None = None
    drift: bool = False
    platt: PlattAudit | None = None
    platt_version: int | None = None
    activated: bool = False
    ece_after_interval: tuple[float, float] | None = None
    ece_before_held_out_interval: tuple[float, float] | None = None
    bins: dict[str, Any] = field(default_factory=dict)


def resolve_outcome_time(
    as_of: datetime | str | None, db_path: Path | str | None
) -> datetime | None:
    """None: now; "latest": just after the newest outcome (None if there is none); ISO time."""
    if as_of is None:
        return utcnow()
    if isinstance(as_of, datetime):
        return as_of
    if as_of == "latest":
        with connect(db_path) as con:
            (newest,) = one(con, "SELECT max(reported_at) FROM outcomes WHERE deleted_at IS NULL")
        return None if newest is None else newest + timedelta(seconds=1)  # type: ignore[operator]
    return datetime.fromisoformat(as_of)


def calibration_audit(
    *,
    as_of: datetime | str | None = None,
    window_days: int = 90,
    db_path: Path | str | None = None,
    seed: int = 0,
    resamples: int = 1000,
) -> AuditResult:
    """The calibration-audit job."""
    moment = resolve_outcome_time(as_of, db_path)
    if moment is None:
        reason = "no outcomes in the store yet (run a backtest or report outcomes)"
        log.warning("calibration-audit skipped", reason=reason)
        return AuditResult("skipped", reason=reason, window_days=window_days)
    since = moment - timedelta(days=window_days)
    with stage("calibration-audit", window_days=window_days) as current:
        with connect(db_path) as con:
            pairs = outcome_pairs(con, since=since, until=moment)
        pairs = [p for p in pairs if p[3] is not None]
        result = AuditResult("completed", as_of=moment, window_days=window_days, samples=len(pairs))
        if len(pairs) < MIN_OUTCOMES:
            result.status = "skipped"
            result.reason = f"{len(pairs)} outcomes in the window; at least {MIN_OUTCOMES} needed"
            log.warning("calibration-audit skipped", reason=result.reason)
            return result
        raw = np.array([p[1] for p in pairs], dtype=float)
        served = np.array([p[2] for p in pairs], dtype=float) / 100.0
        resonated = np.array([int(p[3] >= RESONATES_FROM_TIER) for p in pairs])
        result.ece, low, high = bootstrap_ece(resonated, served, resamples=resamples, seed=seed)
        result.ece_interval = (low, high)
        result.drift = result.ece > DRIFT_THRESHOLD
        log.info("calibration ece", ece=round(result.ece, 4), samples=len(pairs))
        if result.drift:
            message = f"calibration drift: ECE {result.ece:.3f} > {DRIFT_THRESHOLD}"
            log.warning("calibration drift", ece=result.ece, threshold=DRIFT_THRESHOLD)
            sentry_sdk.capture_message(message, level="warning")
        audit, held = audit_platt(raw, resonated, seed=seed)
        calibrated = platt_probability(raw[held], audit.a, audit.b)
        before = np.clip(raw[held] / 100.0, 0, 1)
        _, *interval = bootstrap_ece(resonated[held], before, resamples=resamples, seed=seed)
        result.ece_before_held_out_interval = tuple(interval)  # type: ignore[assignment]
        _, *interval = bootstrap_ece(resonated[held], calibrated, resamples=resamples, seed=seed)
        result.ece_after_interval = tuple(interval)  # type: ignore[assignment]
        result.bins = {
            "before": calibration_bins(resonated[held], before),
            "after": calibration_bins(resonated[held], calibrated),
        }
        result.platt = audit
        base_rate = float(resonated[held].mean())
        # Outcomes that nearly all went one way teach only the base rate: every score would
        # be mapped near it. Such a fit is stored for the record but not served.
        degenerate = not MIN_BASE_RATE <= base_rate <= 1 - MIN_BASE_RATE
        result.activated = audit.improves and not degenerate
        if degenerate:
            result.reason = (
                f"{base_rate:.1%} of the held-out posts resonated: the fit would only learn "
                "the base rate, so it is not activated (widen the window)"
            )
            log.warning("platt fit not activated", reason=result.reason)
        with connect(db_path) as con:
            result.platt_version = store_platt(
                con, audit, window_start=since, window_end=moment, activate=result.activated
            )
        current.fields.update(
            samples=len(pairs),
            ece=round(result.ece, 4),
            ece_after=round(audit.ece_after, 4),
            activated=result.activated,
        )
    return result
