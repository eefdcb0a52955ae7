"""Model registry: each trained model as joblib + a JSON card, a row in `models`, one active.

A card records the model's kind, the features (names, in order), the tier scheme and edges,
the data window and row count, a hash of the training data, the metrics, the evaluation table
(every predictor, baselines included, per source and pooled), the library versions and when it
was trained. One model is active per tier scheme (absolute and relative are both served).
Loading checks the card against the feature builder: a model trained on other
features is refused (ML unavailable, with the reason) instead of silently fed wrong inputs.
Models live beside the store (data/virtuna-models/ by default); none is ever deleted.
"""

from __future__ import annotations

import hashlib
import json
import platform
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import joblib
import numpy as np
import pandas as pd
import sklearn

from virtuna.ml.features import FEATURE_NAMES, FEATURE_VERSION
from virtuna.ml.tiers import TierEdges, TierScheme
from virtuna.store.connection import mark_changed, run, transaction, utcnow


class ModelMismatchError(RuntimeError):
    """A stored model does not fit the current feature builder."""


@dataclass
class RegisteredModel:
    """A model loaded from the registry."""

    id: str
    model: Any  # a fitted TierEstimator
    card: dict[str, Any]
    edges: TierEdges

    @property
    def kind(self) -> str:
        """The estimator kind (a baseline or a learned model)."""
        return str(self.card["kind"])

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities over tiers 1-5."""
        return self.model.predict_proba(self._columns(features))

    def _columns(self, features: pd.DataFrame) -> pd.DataFrame:
        """The model's feature columns, in its order (selecting costs when they already are)."""
        names = self.card["features"]
        return features if list(features.columns) == names else features.loc[:, names]

    def predict_tiers(self, features: pd.DataFrame) -> tuple[np.ndarray, ...]:
        """(predicted tier, score, probabilities), as the evaluation computes them."""
        from virtuna.ml.evaluate import predict_tiers

        return predict_tiers(self.model, self._columns(features))


def models_dir(db_path: Path | str) -> Path:
    """Where a store's models live: beside it, named after it (data/virtuna-models/)."""
    path = Path(db_path)
    return path.with_name(f"{path.stem}-models")


def data_hash(frame: pd.DataFrame, **setup: object) -> str:
    """A short, stable hash of training data (row order included) and of how it is used
    (scheme, kind, split, ...), with the feature definitions' version."""
    hashed = pd.util.hash_pandas_object(frame.reset_index(drop=True), index=False)
    digest = hashlib.sha256(hashed.to_numpy().tobytes())
    digest.update(json.dumps({**setup, "features": FEATURE_VERSION}, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def save_model(
    con: duckdb.DuckDBPyConnection,
    db_path: Path | str,
    *,
    model: Any,
    metrics: dict[str, Any],
    training: dict[str, Any],
    evaluation: list[dict[str, Any]] | None = None,
    status: str = "trained",
    reason: str | None = None,
) -> str:
    """Store a fitted estimator and its card, and register it (inactive); returns its id."""
    model_id = f"tier-{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    folder = models_dir(db_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model_id}.joblib"
    joblib.dump(model, path)
    card = {
        "id": model_id,
        "kind": model.kind,
        "features": list(FEATURE_NAMES),
        "feature_version": FEATURE_VERSION,
        "tier_scheme": model.scheme,
        "tier_edges": list(model.edges_.edges),
        "training": training,
        "metrics": metrics,
        "evaluation": evaluation or [],
        "versions": {
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
        },
        "trained_at": utcnow().isoformat(),
    }
    text = json.dumps(card, indent=2, default=_plain)
    path.with_suffix(".json").write_text(text, encoding="utf-8")
    run(
        con,
        "INSERT INTO models (id, tier_scheme, path, card, metrics, row_count, is_active, status, "
        "reason, trained_at) VALUES (?, ?, ?, ?, ?, ?, FALSE, ?, ?, ?)",
        [
            model_id,
            model.scheme,
            str(path),
            text,
            json.dumps(metrics, default=_plain),
            training.get("rows"),
            status,
            reason,
            utcnow(),
        ],
    )
    return model_id


def _plain(value: Any) -> Any:
    """JSON for numpy scalars (NaN becomes null) and anything else as text."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value if isinstance(value, int | float | bool) else str(value)


def promote(con: duckdb.DuckDBPyConnection, model_id: str, reason: str) -> None:
    """Make one model the active one of its scheme (the others stay registered)."""
    with transaction(con):
        run(
            con,
            "UPDATE models SET is_active = FALSE WHERE is_active AND tier_scheme = "
            "(SELECT tier_scheme FROM models WHERE id = ?)",
            [model_id],
        )
        run(
            con,
            "UPDATE models SET is_active = TRUE, status = 'promoted', reason = ?, "
            "promoted_at = ? WHERE id = ?",
            [reason, utcnow(), model_id],
        )
    mark_changed(con)


def refuse(con: duckdb.DuckDBPyConnection, model_id: str, reason: str) -> None:
    """Record why a trained model was not promoted."""
    run(con, "UPDATE models SET status = 'refused', reason = ? WHERE id = ?", [reason, model_id])


def active_model_id(
    con: duckdb.DuckDBPyConnection, scheme: TierScheme = "views_quintile"
) -> str | None:
    """The active model's id for a tier scheme, if any."""
    rows = run(
        con,
        "SELECT id FROM models WHERE is_active AND tier_scheme = ? "
        "ORDER BY promoted_at DESC LIMIT 1",
        [scheme],
    )
    return str(rows[0][0]) if rows else None


def load_model(con: duckdb.DuckDBPyConnection, model_id: str) -> RegisteredModel:
    """A registered model, checked against the current feature builder."""
    rows = run(con, "SELECT path, card FROM models WHERE id = ?", [model_id])
    if not rows:
        raise LookupError(f"no model {model_id} in the registry")
    path, card_text = rows[0]
    card = json.loads(str(card_text))
    if card.get("feature_version") != FEATURE_VERSION or card["features"] != list(FEATURE_NAMES):
        missing = sorted(set(FEATURE_NAMES) - set(card["features"]))
        extra = sorted(set(card["features"]) - set(FEATURE_NAMES))
        raise ModelMismatchError(
            f"model {model_id} was trained on other features (missing {missing}, "
            f"unknown {extra}); retrain it"
        )
    model = joblib.load(str(path))
    edges = TierEdges(card["tier_scheme"], tuple(card["tier_edges"]))  # type: ignore[arg-type]
    return RegisteredModel(model_id, model, card, edges)


def trained_at(card: dict[str, Any]) -> datetime:
    """When a card's model was trained."""
    return datetime.fromisoformat(card["trained_at"])
