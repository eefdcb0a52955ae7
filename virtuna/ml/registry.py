"""Model registry: each trained model as joblib + a JSON card, a row in `models`, one active.

A card records the features (names, in order), the tier scheme and edges, the data window and
row count, a hash of the training data, the metrics, the library versions and when it was
trained. Loading checks the card against the feature builder: a model trained on other
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

from virtuna.ml.features import FEATURE_NAMES
from virtuna.ml.tiers import TierEdges
from virtuna.store.connection import run, transaction, utcnow


class ModelMismatchError(RuntimeError):
    """A stored model does not fit the current feature builder."""


@dataclass
class RegisteredModel:
    """A model loaded from the registry."""

    id: str
    model: Any
    card: dict[str, Any]
    edges: TierEdges
    temperature: float

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated tier probabilities (columns = the card's classes)."""
        from virtuna.ml.train import apply_temperature

        raw = self.model.predict_proba(features.loc[:, self.card["features"]])
        return apply_temperature(raw, self.temperature)


def models_dir(db_path: Path | str) -> Path:
    """Where a store's models live: beside it, named after it (data/virtuna-models/)."""
    path = Path(db_path)
    return path.with_name(f"{path.stem}-models")


def data_hash(frame: pd.DataFrame) -> str:
    """A short, stable hash of training data (row order included)."""
    hashed = pd.util.hash_pandas_object(frame.reset_index(drop=True), index=False)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()[:16]


def save_model(
    con: duckdb.DuckDBPyConnection,
    db_path: Path | str,
    *,
    model: Any,
    edges: TierEdges,
    temperature: float,
    classes: list[int],
    metrics: dict[str, Any],
    training: dict[str, Any],
    status: str = "trained",
    reason: str | None = None,
) -> str:
    """Store a model file and card, and register it (inactive); returns its id."""
    model_id = f"tier-{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    folder = models_dir(db_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model_id}.joblib"
    joblib.dump(model, path)
    card = {
        "id": model_id,
        "features": list(FEATURE_NAMES),
        "classes": classes,
        "tier_scheme": edges.scheme,
        "tier_edges": list(edges.edges),
        "temperature": temperature,
        "training": training,
        "metrics": metrics,
        "versions": {
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
        },
        "trained_at": utcnow().isoformat(),
    }
    path.with_suffix(".json").write_text(json.dumps(card, indent=2, default=str), encoding="utf-8")
    run(
        con,
        "INSERT INTO models (id, tier_scheme, path, card, metrics, row_count, is_active, status, "
        "reason, trained_at) VALUES (?, ?, ?, ?, ?, ?, FALSE, ?, ?, ?)",
        [
            model_id,
            edges.scheme,
            str(path),
            json.dumps(card, default=str),
            json.dumps(metrics, default=str),
            training.get("rows"),
            status,
            reason,
            utcnow(),
        ],
    )
    return model_id


def promote(con: duckdb.DuckDBPyConnection, model_id: str, reason: str) -> None:
    """Make one model the active one (the others stay registered)."""
    with transaction(con):
        run(con, "UPDATE models SET is_active = FALSE WHERE is_active")
        run(
            con,
            "UPDATE models SET is_active = TRUE, status = 'promoted', reason = ?, "
            "promoted_at = ? WHERE id = ?",
            [reason, utcnow(), model_id],
        )


def refuse(con: duckdb.DuckDBPyConnection, model_id: str, reason: str) -> None:
    """Record why a trained model was not promoted."""
    run(con, "UPDATE models SET status = 'refused', reason = ? WHERE id = ?", [reason, model_id])


def active_model_id(con: duckdb.DuckDBPyConnection) -> str | None:
    """The active model's id, if any."""
    rows = run(con, "SELECT id FROM models WHERE is_active ORDER BY promoted_at DESC LIMIT 1")
    return str(rows[0][0]) if rows else None


def load_model(con: duckdb.DuckDBPyConnection, model_id: str) -> RegisteredModel:
    """A registered model, checked against the current feature builder."""
    rows = run(con, "SELECT path, card FROM models WHERE id = ?", [model_id])
    if not rows:
        raise LookupError(f"no model {model_id} in the registry")
    path, card_text = rows[0]
    card = json.loads(str(card_text))
    if card["features"] != list(FEATURE_NAMES):
        missing = sorted(set(FEATURE_NAMES) - set(card["features"]))
        extra = sorted(set(card["features"]) - set(FEATURE_NAMES))
        raise ModelMismatchError(
            f"model {model_id} was trained on other features (missing {missing}, "
            f"unknown {extra}); retrain it"
        )
    model = joblib.load(str(path))
    edges = TierEdges(card["tier_scheme"], tuple(card["tier_edges"]))  # type: ignore[arg-type]
    return RegisteredModel(model_id, model, card, edges, float(card["temperature"]))


def trained_at(card: dict[str, Any]) -> datetime:
    """When a card's model was trained."""
    return datetime.fromisoformat(card["trained_at"])
