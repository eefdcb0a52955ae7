"""The tier models as a signal: features of a draft, probabilities for the absolute tier and,
when the creator has history, for the relative tier, with the creator's usual tier. The score
is the probability that the post resonates (`virtuna.ml.tiers.resonance`).

Until a trained model is active the signal is unavailable (the engine redistributes its
weight); it is never a constant. The engine uses this module; nothing here uses the engine: a
draft is anything with the fields of `Draft`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import duckdb
import numpy as np
import pandas as pd

from virtuna.ml.features import build_features, draft_rows
from virtuna.ml.registry import RegisteredModel
from virtuna.ml.tiers import resonance
from virtuna.store.online import KeyReader


class Draft(Protocol):
    """What the tier models read of a draft (the engine's ContentPayload has these fields)."""

    content_text: str
    creator_handle: str | None
    duration_hint: float | None
    hashtags: list[str]
    sound_id: str | None
    sound_name: str | None
    sound_original: bool | None


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
        draft: Draft,
        moment: datetime,
        *,
        reader: KeyReader | None = None,
    ) -> MLPrediction | None:
        """The prediction (store read at `con`, or by `reader`), or None when the model
        cannot judge this draft."""
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
        draft: Draft,
        moment: datetime,
        *,
        reader: KeyReader | None = None,
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
        draft: Draft,
        moment: datetime,
        *,
        reader: KeyReader | None = None,
    ) -> MLPrediction:
        """The tier probabilities and score of one draft as of `moment`."""
        (prediction,) = self.predict_many(con, [draft], [moment], reader=reader)
        return prediction

    def predict_many(
        self,
        con: duckdb.DuckDBPyConnection,
        drafts: Sequence[Draft],
        moments: Sequence[datetime],
        *,
        reader: KeyReader | None = None,
    ) -> list[MLPrediction]:
        """Predictions of drafts, each as of its moment, in one read of the store (the
        features read the online tables by key, or `reader`) and one call of each model."""
        rows = draft_rows(
            con,
            [
                {
                    "text": d.content_text,
                    "creator_handle": d.creator_handle,
                    "posted_at": moment,
                    "duration_seconds": d.duration_hint,
                    "hashtags": d.hashtags,
                    "sound_id": d.sound_id,
                    "sound_name": d.sound_name,
                    "sound_original": d.sound_original,
                }
                for d, moment in zip(drafts, moments, strict=True)
            ],
            reader=reader,
        )
        features = build_features(con, rows, source="online", reader=reader)
        # The relative tier needs the creator's earlier posts: no model call without them.
        history = features["prior_posts"].to_numpy() > 0
        relative = None
        if self.relative is not None and history.any():
            relative = np.full((len(features), 5), np.nan)
            relative[history] = self.relative.predict_proba(features[history])
        return tier_predictions(
            features,
            self.registered,
            self.registered.predict_proba(features),
            self.relative,
            relative,
        )


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
