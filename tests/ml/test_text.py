"""The caption experiment: text that carries over between sources is used, noise is shrunk away."""

from __future__ import annotations

import numpy as np
import pandas as pd

from virtuna.ml.evaluate import TrainingSet
from virtuna.ml.features import FEATURE_NAMES
from virtuna.ml.text import caption_experiment, caption_texts


def _data(word_effect: float, seed: int = 0) -> TrainingSet:
    rng = np.random.default_rng(seed)
    n = 3000
    usual = rng.normal(9, 1.5, n)
    recipe = rng.random(n) < 0.5
    log_views = usual + word_effect * np.where(recipe, 1.0, -1.0) + rng.normal(0, 0.5, n)
    captions = np.where(recipe, "my easy recipe tonight", "a walk in town today")
    rows = pd.DataFrame(
        {
            "collection": np.repeat(["a", "b", "c"], n // 3),
            "views": np.expm1(log_views),
            "description": captions,
            "hashtags": [["fyp"]] * n,
        }
    )
    features = pd.DataFrame(np.nan, index=range(n), columns=list(FEATURE_NAMES))
    features["prior_posts"] = 10.0
    features["prior_median_log_views"] = usual
    return TrainingSet(rows=rows, features=features)


def test_caption_texts_join_the_hashtags() -> None:
    rows = pd.DataFrame({"description": ["Hello World", None], "hashtags": [["fyp"], []]})
    assert caption_texts(rows) == ["hello world fyp", " "]


def test_a_word_that_matters_everywhere_is_learned_and_carries_over() -> None:
    result = caption_experiment(_data(word_effect=1.0), min_source_rows=500)
    pooled = result.loc["pooled"]
    assert result.drop("pooled")["transfer"].min() > 0.8
    assert pooled["with caption accuracy"] > pooled["baseline accuracy"] + 0.1


def test_text_without_signal_is_shrunk_to_nothing() -> None:
    result = caption_experiment(_data(word_effect=0.0), min_source_rows=500)
    pooled = result.loc["pooled"]
    assert abs(pooled["with caption accuracy"] - pooled["baseline accuracy"]) < 0.02
