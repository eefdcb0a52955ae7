"""validate-rules: learn each rule's weight from how often its direction was right.

For every recent outcome (window default 30 days before `as_of`) and every rule the analysis
evaluated (read from the stored `rule_contributions`, which the original never read), the rule
"pointed up" when it earned more than half its points; it was right when the post then
resonated (reached its analysis's target, the event the score is the probability of), or,
pointing down, did not. Outcomes without one fall back to "actual score >= the score it was
served". The window follows the calibration audit's rule (`outcome_window`). The
accuracy is balanced (averaged over posts that resonated and posts that did not), so a rule
that merely agrees with the window's majority scores 0.5, not the majority's share; the
report shows the chance level and the lift above it. `sample_count` is the number
of outcomes behind the stored accuracy (this run's window), so re-running does not inflate it. Per
rule with at least 10 samples: accuracy, smoothed with the stored accuracy by an EMA (alpha
0.3), and `rule_weight`: 1.0 at chance (and within the neutral band around it), otherwise
clamp(1 + 2 x (accuracy - 0.5), 0.5, 2.0), so a rule's weight and its verdict always agree.
A dry run reports the new weights and leaves rule_library as it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from virtuna.jobs import writes
from virtuna.jobs.calibration_audit import OutcomeWindow, outcome_window
from virtuna.log import get_logger, stage
from virtuna.store import connect, mark_changed, run, utcnow
from virtuna.store.outcomes import RESONATED_SQL

log = get_logger(__name__)
ALPHA = 0.3
MIN_SAMPLES = 10


NEUTRAL_BAND = 0.02  # balanced accuracy within 0.5 +- this says nothing either way


def _verdict(accuracy: float) -> str:
    """helps, hurts, or no signal (within NEUTRAL_BAND of chance)."""
    if accuracy > 0.5 + NEUTRAL_BAND:
        return "helps"
    if accuracy < 0.5 - NEUTRAL_BAND:
        return "hurts"
    return "no signal"


def rule_weight(accuracy: float) -> float:
    """A rule's weight from its balanced accuracy: 1.0 at chance, 2.0 at 1.0, 0.5 at <= 0.25."""
    if _verdict(accuracy) == "no signal":
        return 1.0
    return round(min(2.0, max(0.5, 1.0 + 2.0 * (accuracy - 0.5))), 2)


def _balanced(hits: list[int], went_up: list[int]) -> float:
    """Direction accuracy averaged over posts that did and did not resonate (chance = 0.5).

    Plain accuracy rewards a rule for agreeing with the window's majority: in a window where 60 %
    of posts did not resonate, a rule that almost never fires is "right" 60 % of the time.
    """
    up = [h for h, u in zip(hits, went_up, strict=True) if u]
    down = [h for h, u in zip(hits, went_up, strict=True) if not u]
    if not up or not down:
        return sum(hits) / len(hits)
    return (sum(up) / len(up) + sum(down) / len(down)) / 2


@dataclass
class RuleValidation:
    """The per-rule report and what changed."""

    as_of: datetime | None
    outcomes: int
    report: pd.DataFrame  # rule, samples, accuracy, ema accuracy, old weight, new weight, verdict
    updated: int  # rules given a new weight (written unless dry_run)
    status: str = "completed"  # completed, skipped
    reason: str | None = None
    window: OutcomeWindow | None = None
    dry_run: bool = False


def validate_rules(
    *,
    as_of: datetime | str | None = None,
    window_days: int = 30,
    db_path: Path | str | None = None,
    alpha: float = ALPHA,
    min_samples: int = MIN_SAMPLES,
    dry_run: bool = False,
) -> RuleValidation:
    """The validate-rules job (a dry run writes no weight)."""
    window = outcome_window(as_of, window_days, db_path)
    if window is None:
        reason = "no outcomes in the store yet (run a backtest or report outcomes)"
        log.warning("validate-rules skipped", reason=reason)
        return RuleValidation(None, 0, pd.DataFrame(), 0, "skipped", reason, dry_run=dry_run)
    with stage("validate-rules", window_days=window_days) as current, connect(db_path) as con:
        rows = run(
            con,
            "SELECT a.rule_contributions, o.predicted_score, o.actual_score, "
            f"{RESONATED_SQL} "
            "FROM outcomes o JOIN analysis_results a ON a.id = o.analysis_id "
            "WHERE o.deleted_at IS NULL AND o.actual_score IS NOT NULL "
            "AND o.predicted_score IS NOT NULL "
            "AND a.rule_contributions IS NOT NULL AND o.reported_at >= ? AND o.reported_at < ?",
            [window.start, window.end],
        )
        tally: dict[str, list[int]] = {}
        pointed: dict[str, list[int]] = {}
        outcomes: dict[str, list[int]] = {}
        ups = 0
        for contributions, predicted, actual, resonated in rows:
            went_up = (
                bool(resonated) if resonated is not None else float(actual) >= float(predicted)  # type: ignore[arg-type]
            )
            for c in json.loads(str(contributions)):
                pointed_up = float(c["score"]) > 0.5 * float(c["max_score"])
                tally.setdefault(str(c["rule_id"]), []).append(int(pointed_up == went_up))
                pointed.setdefault(str(c["rule_id"]), []).append(int(pointed_up))
                outcomes.setdefault(str(c["rule_id"]), []).append(int(went_up))
            ups += int(went_up)
        base_rate = ups / len(rows) if rows else 0.0
        library = {
            str(r[0]): r[1:]
            for r in run(
                con, "SELECT id, name, weight, accuracy_rate, sample_count FROM rule_library"
            )
        }
        report = []
        updated = 0
        with writes(con, dry_run=dry_run):
            for rule_id, hits in sorted(tally.items()):
                if rule_id not in library:
                    continue
                name, weight, previous, _samples = library[rule_id]
                accuracy = _balanced(hits, outcomes[rule_id])
                up_share = sum(pointed[rule_id]) / len(hits)
                # What a rule unrelated to the outcome scores: 0.5 balanced, or the majority
                # share when the window's posts all went one way.
                one_sided = base_rate in (0.0, 1.0)
                chance = (
                    up_share * base_rate + (1 - up_share) * (1 - base_rate) if one_sided else 0.5
                )
                row = {
                    "rule": name,
                    "samples": len(hits),
                    "accuracy": round(accuracy, 4),
                    "chance_accuracy": round(chance, 4),
                    "lift": round(accuracy - chance, 4),
                    "old_weight": float(weight),  # type: ignore[arg-type]
                }
                if len(hits) < min_samples:
                    report.append(
                        {
                            **row,
                            "ema_accuracy": None,
                            "new_weight": float(weight),  # type: ignore[arg-type]
                            "verdict": f"skipped (< {min_samples} samples)",
                        }
                    )
                    continue
                smoothed = (
                    accuracy
                    if previous is None
                    else (
                        alpha * accuracy + (1 - alpha) * float(previous)  # type: ignore[arg-type]
                    )
                )
                new_weight = rule_weight(smoothed)
                run(
                    con,
                    "UPDATE rule_library SET accuracy_rate = ?, weight = ?, "
                    "sample_count = ?, updated_at = ? WHERE id = ?",
                    [smoothed, new_weight, len(hits), utcnow(), rule_id],
                )
                updated += 1
                report.append(
                    {
                        **row,
                        "ema_accuracy": round(smoothed, 4),
                        "new_weight": new_weight,
                        "verdict": _verdict(smoothed),
                    }
                )
        if updated and not dry_run:
            mark_changed(con)
        current.fields.update(outcomes=len(rows), rules_updated=updated)
    frame = pd.DataFrame(report)
    log.info("validate-rules", outcomes=len(rows), rules_updated=updated)
    return RuleValidation(window.end, len(rows), frame, updated, window=window, dry_run=dry_run)
