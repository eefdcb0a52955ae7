"""The tier model as the engine's ML signal: features of the draft, calibrated probabilities,
and ml_score = the probability-weighted tier midpoints (12.5, 35, 55, 72.5, 90)."""

from __future__ import annotations

from datetime import datetime

import duckdb
import numpy as np

from virtuna.engine.creator import CreatorContext
from virtuna.engine.ml import MLPrediction
from virtuna.engine.schema import ContentPayload
from virtuna.ml.features import build_features, draft_row
from virtuna.ml.registry import RegisteredModel
from virtuna.ml.tiers import TIERS, ml_score


class TierModelSignal:
    """Predictions of one registered tier model."""

    unavailable_reason: str | None = None

    def __init__(self, registered: RegisteredModel) -> None:
        """The signal of a loaded model."""
        self.registered = registered

    def predict(
        self,
        con: duckdb.DuckDBPyConnection,
        payload: ContentPayload,
        creator: CreatorContext,
        moment: datetime,
    ) -> MLPrediction:
        """The tier probabilities and score of one draft as of `moment`."""
        row = draft_row(
            con,
            text=payload.content_text,
            creator_handle=payload.creator_handle,
            posted_at=moment,
            duration_seconds=payload.duration_hint,
            hashtags=payload.hashtags,
        )
        probabilities = self.registered.predict_proba(build_features(con, row))[0]
        full = np.zeros(len(TIERS))
        full[np.searchsorted(TIERS, self.registered.card["classes"])] = probabilities
        return MLPrediction(
            score=round(float(ml_score(full)), 2),
            tier_probabilities=[round(float(p), 4) for p in full],
            model_id=self.registered.id,
        )


class UnavailableSignal:
    """No prediction, with the reason (e.g. the active model does not fit the features)."""

    def __init__(self, reason: str) -> None:
        """A signal that only explains itself."""
        self.unavailable_reason: str | None = reason

    def predict(self, *args: object, **kwargs: object) -> None:
        """Nothing to predict with."""
        return None
