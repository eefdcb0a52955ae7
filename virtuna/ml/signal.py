"""The tier models as the engine's ML signal: features of the draft, probabilities for the
absolute tier and, when the creator has history, for the relative tier, with the creator's
usual tier; the score is the probability that the post resonates (`virtuna.ml.tiers.resonance`)."""

from __future__ import annotations

from datetime import datetime

import duckdb
import numpy as np
import pandas as pd

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
        features = build_features(con, row, source="online")
        # The relative tier needs the creator's earlier posts: no model call without them.
        has_history = bool(features["prior_posts"].iloc[0] > 0)
        relative = (
            self.relative.predict_proba(features)
            if self.relative is not None and has_history
            else None
        )
        (prediction,) = tier_predictions(
            features,
            self.registered,
            self.registered.predict_proba(features),
            self.relative,
            relative,
        )
        return prediction


def tier_predictions(
    features: pd.DataFrame,
    absolute: RegisteredModel,
    absolute_probabilities: np.ndarray,
    relative: RegisteredModel | None = None,
    relative_probabilities: np.ndarray | None = None,
) -> list[MLPrediction]:
    """The ML signal of feature rows, from tier probabilities of the registered models (or of
    twins fitted like them, as the backtest uses); the relative tier only with history."""
    history = features["prior_posts"].to_numpy(dtype=float) > 0
    usual = np.where(history, features["prior_median_log_views"].to_numpy(dtype=float), np.nan)
    if relative is None:
        relative_probabilities = None
    resonates = resonance(
        absolute_probabilities,
        absolute.edges,
        usual,
        relative_probabilities,
        relative.edges if relative is not None else None,
    )
    usual_tiers = absolute.edges.assign(usual)
    return [
        MLPrediction(
            score=round(float(resonates.probability[i]) * 100, 2),
            tier_probabilities=[round(float(p), 4) for p in absolute_probabilities[i]],
            model_id=absolute.id,
            model_kind=absolute.kind,
            relative_tier_probabilities=None
            if relative_probabilities is None or not history[i]
            else [round(float(p), 4) for p in relative_probabilities[i]],
            relative_model_id=relative.id
            if relative is not None and relative_probabilities is not None and history[i]
            else None,
            usual_tier=int(usual_tiers[i]) if history[i] else None,
            history_posts=int(features["prior_posts"].iloc[i]),
            target=str(resonates.target[i]),
            resonates_at_views=round(float(resonates.views[i]), 1),
        )
        for i in range(len(features))
    ]


class UnavailableSignal:
    """No prediction, with the reason (e.g. the active model does not fit the features)."""

    def __init__(self, reason: str) -> None:
        """A signal that only explains itself."""
        self.unavailable_reason: str | None = reason

    def predict(self, *args: object, **kwargs: object) -> None:
        """Nothing to predict with."""
        return None
