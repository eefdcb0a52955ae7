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
    """The tier model's view of one draft."""

    score: float  # 0-100
    tier_probabilities: list[float]  # tiers 1-5
    model_id: str


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


_loaded: dict[str, TierSignal] = {}  # model id -> signal (a model file is read once)


def load_tier_signal(con: duckdb.DuckDBPyConnection) -> TierSignal:
    """The active tier model's signal, NoTierModel, or a signal that says why it is unusable."""
    from virtuna.ml.registry import ModelMismatchError, active_model_id, load_model
    from virtuna.ml.signal import TierModelSignal, UnavailableSignal

    model_id = active_model_id(con)
    if model_id is None:
        return NoTierModel()
    if model_id not in _loaded:
        try:
            _loaded[model_id] = TierModelSignal(load_model(con, model_id))
        except (ModelMismatchError, LookupError, OSError) as exc:
            return UnavailableSignal(f"active tier model unusable: {exc}")
    return _loaded[model_id]
