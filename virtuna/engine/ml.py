"""The tier-model signal as the engine sees it: an interface the tier model fills.

Until a trained model is active, the signal is unavailable (its weight is redistributed);
it is never a constant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import duckdb

from virtuna.engine.creator import CreatorContext
from virtuna.engine.schema import ContentPayload


@dataclass(frozen=True)
class MLPrediction:
    """The tier models' view of one draft: the absolute tier (over the reference population)
    and, when the creator has history, the relative one ("will it beat my usual") with the
    creator's usual tier. `score` is 100 x the probability that the post resonates: reaches
    relative tier 4 when the creator has history (target "beats_usual"), else the reference
    population's tier 4 (target "reference_tier"), i.e. at least `resonates_at_views` views."""

    score: float  # 0-100: P(resonates) under `target`
    tier_probabilities: list[float]  # absolute tiers 1-5
    model_id: str
    model_kind: str = ""
    relative_tier_probabilities: list[float] | None = None
    relative_model_id: str | None = None
    usual_tier: int | None = None  # the creator's earlier median views through the tier edges
    history_posts: int = 0
    target: str = "reference_tier"
    resonates_at_views: float | None = None

    def as_dict(self) -> dict[str, object]:
        """The tiers block of a result."""
        absolute = self.tier_probabilities
        relative = self.relative_tier_probabilities
        return {
            "score_uses": "relative" if self.target == "beats_usual" else "absolute",
            "target": self.target,
            "resonates_at_views": self.resonates_at_views,
            "absolute": {
                "model_id": self.model_id,
                "kind": self.model_kind,
                "tier": int(max(range(5), key=absolute.__getitem__)) + 1,
                "probabilities": absolute,
            },
            "relative": None
            if relative is None
            else {
                "model_id": self.relative_model_id,
                "tier": int(max(range(5), key=relative.__getitem__)) + 1,
                "probabilities": relative,
                "beats_usual": round(sum(relative[3:]), 4),
            },
            "usual_tier": self.usual_tier,
            "history_posts": self.history_posts,
        }


class TierSignal(Protocol):
    """Anything that turns a draft into an MLPrediction (or None, with a reason)."""

    def predict(
        self,
        con: duckdb.DuckDBPyConnection,
        payload: ContentPayload,
        creator: CreatorContext,
        moment: datetime,
    ) -> MLPrediction | None:
        """The prediction, or None when the model cannot judge this draft."""
        ...

    @property
    def unavailable_reason(self) -> str | None:
        """Why there is no prediction at all (e.g. no active model), else None."""
        ...


class NoTierModel:
    """The signal before any tier model is trained and promoted."""

    unavailable_reason: str | None = "no active tier model"

    def predict(
        self,
        con: duckdb.DuckDBPyConnection,
        payload: ContentPayload,
        creator: CreatorContext,
        moment: datetime,
    ) -> MLPrediction | None:
        """Nothing to predict with."""
        return None


# (absolute id, relative id) -> signal: a model file is read once
_loaded: dict[tuple[str, str | None], TierSignal] = {}


def load_tier_signal(con: duckdb.DuckDBPyConnection) -> TierSignal:
    """The active tier models' signal, NoTierModel, or a signal that says why it is unusable.

    The absolute model is required; the relative one is added when a model of that scheme is
    active and usable (else the result simply has no relative tier)."""
    from virtuna.ml.registry import ModelMismatchError, active_model_id, load_model
    from virtuna.ml.signal import TierModelSignal, UnavailableSignal

    model_id = active_model_id(con, "views_quintile")
    if model_id is None:
        return NoTierModel()
    relative_id = active_model_id(con, "creator_relative")
    key = (model_id, relative_id)
    if key not in _loaded:
        try:
            absolute = load_model(con, model_id)
        except (ModelMismatchError, LookupError, OSError) as exc:
            return UnavailableSignal(f"active tier model unusable: {exc}")
        relative = None
        if relative_id is not None:
            try:
                relative = load_model(con, relative_id)
            except (ModelMismatchError, LookupError, OSError):
                relative = None
        _loaded[key] = TierModelSignal(absolute, relative)
    return _loaded[key]
