"""The tier models as the engine's ML signal: features of the draft, probabilities for the
absolute tier and, when the creator has history, for the relative tier, with the creator's
usual tier; the score is the probability that the post resonates (`virtuna.ml.tiers.resonance`)."""

from __future__ import annotations

from datetime import datetime

import duckdb
import numpy as np

from virtuna.engine.creator import CreatorContext
from virtuna.engine.ml import MLPrediction
from virtuna.engine.schema import ContentPayload
from virtuna.ml.features import build_features, draft_row
from virtuna.ml.registry import RegisteredModel
from virtuna.ml.tiers import resonance


class TierModelSignal:
    """Predictions of the registered absolute model (and the relative one, if any)."""

    unavailable_reason: str | None = None

    def __init__(
        self, registered: RegisteredModel, relative: RegisteredModel | None = None
    ) -> None:
        """The signal of loaded models."""
        self.registered = registered
        self.relative = relative

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
            sound_id=payload.sound_id,
            sound_name=payload.sound_name,
            sound_original=payload.sound_original,
        )
        features = build_features(con, row)
        probabilities = self.registered.predict_proba(features)
        history = int(features["prior_posts"].iloc[0])
        median = np.full(1, np.nan)
        usual = None
        relative = None
        if history:
            median = features["prior_median_log_views"].to_numpy(dtype=float)
            usual = int(self.registered.edges.assign(median)[0])
            if self.relative is not None:
                relative = self.relative.predict_proba(features)
        resonates = resonance(
            probabilities,
            self.registered.edges,
            median,
            relative,
            self.relative.edges if relative is not None and self.relative else None,
        )
        return MLPrediction(
            score=round(float(resonates.probability[0]) * 100, 2),
            tier_probabilities=[round(float(p), 4) for p in probabilities[0]],
            model_id=self.registered.id,
            model_kind=self.registered.kind,
            relative_tier_probabilities=None
            if relative is None
            else [round(float(p), 4) for p in relative[0]],
            relative_model_id=self.relative.id if relative is not None and self.relative else None,
            usual_tier=usual,
            history_posts=history,
            target=str(resonates.target[0]),
            resonates_at_views=round(float(resonates.views[0]), 1),
        )


class UnavailableSignal:
    """No prediction, with the reason (e.g. the active model does not fit the features)."""

    def __init__(self, reason: str) -> None:
        """A signal that only explains itself."""
        self.unavailable_reason: str | None = reason

    def predict(self, *args: object, **kwargs: object) -> None:
        """Nothing to predict with."""
        return None
