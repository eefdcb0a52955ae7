"""Does the caption's text carry over between sources? A leave-one-source-out experiment.

Beyond the regex caption flags the features hold, the caption and hashtags are represented as
TF-IDF word unigrams and bigrams, and a ridge regression learns from them how far a post lands
from the scheme's baseline (the creator's usual, or their momentum). As with the residual
model, the correction is shrunk by how well it carries over between the training collections
(the least-squares factor of its cross-collection predictions, clipped to 0-1), and judged on
each held-out collection beside the baseline alone. The text enters the served model only if
this experiment shows a gain; `caption_experiment` reports the figures either way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge
from sklearn.model_selection import GroupKFold

from virtuna.ml.estimators import baseline_kind
from virtuna.ml.evaluate import MIN_SOURCE_ROWS, TrainingSet, fit_estimator, make_folds
from virtuna.ml.tiers import TierScheme, fit_edges


def caption_texts(rows: pd.DataFrame) -> list[str]:
    """Each row's caption with its hashtags as words."""
    tags = rows["hashtags"].map(lambda v: " ".join(v) if v is not None and len(v) else "")
    return (rows["description"].fillna("").astype(str) + " " + tags).str.lower().tolist()


def _text_model() -> tuple[TfidfVectorizer, Ridge]:
    vectorizer = TfidfVectorizer(
        min_df=5, max_features=50_000, ngram_range=(1, 2), sublinear_tf=True
    )
    return vectorizer, Ridge(alpha=10.0)


def _fit_predict(train_text: list[str], target: np.ndarray, test_text: list[str]) -> np.ndarray:
    vectorizer, ridge = _text_model()
    ridge.fit(vectorizer.fit_transform(train_text), target)
    return ridge.predict(vectorizer.transform(test_text))


def caption_experiment(
    data: TrainingSet,
    scheme: TierScheme = "views_quintile",
    min_source_rows: int = MIN_SOURCE_ROWS,
) -> pd.DataFrame:
    """Per held-out collection (and pooled), on rows with creator history and a caption: the
    baseline's accuracy and Spearman, and the same with the shrunk caption correction."""
    outcome = data.outcome(scheme)
    texts = np.asarray(caption_texts(data.rows), dtype=object)
    has_text = np.char.str_len(texts.astype(str)) > 1
    records = []
    pooled: list[pd.DataFrame] = []
    for fold in make_folds("leave_one_source_out", data, min_source_rows=min_source_rows):
        train = fold.train[~np.isnan(outcome[fold.train])]
        test = fold.test[~np.isnan(outcome[fold.test]) & data.history[fold.test]]
        if len(test) == 0:
            continue
        edges = fit_edges(pd.Series(outcome[train]), scheme)
        baseline = fit_estimator(baseline_kind(scheme), scheme, data, train, edges)
        residual = outcome[train] - baseline.location(data.features.iloc[train])
        groups = data.collections[train]
        cross = np.zeros(len(train))
        splits = min(3, len(np.unique(groups)))
        for inner, held in GroupKFold(n_splits=splits).split(train, groups=groups):
            cross[held] = _fit_predict(
                list(texts[train[inner]]), residual[inner], list(texts[train[held]])
            )
        power = float(np.sum(cross**2))
        transfer = float(np.clip(np.sum(cross * residual) / power, 0, 1)) if power else 0.0
        correction = _fit_predict(list(texts[train]), residual, list(texts[test]))
        place = baseline.location(data.features.iloc[test])
        frame = pd.DataFrame(
            {
                "truth": edges.assign(outcome[test]),
                "outcome": outcome[test],
                "baseline": place,
                "with_text": place + transfer * correction,
                "has_text": has_text[test],
            }
        )
        frame["baseline_tier"] = edges.assign(frame["baseline"])
        frame["text_tier"] = edges.assign(frame["with_text"])
        pooled.append(frame)
        records.append(_figures(fold.name, frame, transfer))
    if pooled:
        records.append(_figures("pooled", pd.concat(pooled, ignore_index=True), np.nan))
    return pd.DataFrame.from_records(records).set_index("fold")


def _figures(name: str, frame: pd.DataFrame, transfer: float) -> dict[str, object]:
    part = frame[frame["has_text"]]
    if part.empty:
        return {"fold": name, "rows with a caption": 0, "transfer": transfer}
    return {
        "fold": name,
        "rows with a caption": len(part),
        "transfer": transfer,
        "baseline accuracy": float(np.mean(part["baseline_tier"] == part["truth"])),
        "with caption accuracy": float(np.mean(part["text_tier"] == part["truth"])),
        "baseline Spearman": float(spearmanr(part["baseline"], part["outcome"]).statistic),
        "with caption Spearman": float(spearmanr(part["with_text"], part["outcome"]).statistic),
    }
