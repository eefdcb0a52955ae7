"""Fuzzy matching of trending sound names in a draft's text (Jaro-Winkler, via rapidfuzz).

A sound name matches when it occurs in the text, or when some run of the text's words (one
word up to one more word than the name has) is Jaro-Winkler-similar to the whole name, at 0.7
or above by default. Short names match loosely: a name that is a plain substring scores 1.0
even inside a longer word, and Jaro itself rates "go" vs "algorithm" 0.741.

Jaro-Winkler here is rapidfuzz's standard one: the Winkler prefix boost (0.1 per common prefix
character, at most 4) applies only when the Jaro similarity exceeds 0.7. The original's
hand-written version applied the boost always, so near the 0.7 threshold it matched more:
"abcdef" vs "abcxyz" is Jaro 0.667, which the original boosted to 0.767 (a match) and rapidfuzz
leaves at 0.667 (no match). Above 0.7 both agree (JW("sound", "soudn") = 0.953 in both).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from rapidfuzz import process
from rapidfuzz.distance import JaroWinkler

DEFAULT_THRESHOLD = 0.7
# Content splits on whitespace and punctuation; a target only on whitespace, '-' and '_'.
_CONTENT_SEPARATORS = re.compile(r"[\s\-_.,;:!?()\[\]{}|/\\]+")
_TARGET_SEPARATORS = re.compile(r"[\s\-_]+")


@dataclass(frozen=True)
class Match:
    """How well a target was found in a text: the best similarity, and whether it passes."""

    score: float
    matched: bool


def similarity(a: str, b: str) -> float:
    """Case-insensitive Jaro-Winkler similarity in [0, 1] (both empty: 1; one empty: 0)."""
    return float(JaroWinkler.normalized_similarity(a.lower(), b.lower()))


@dataclass
class _Content:
    """A text prepared for matching: lowercased, split into words, n-grams built on demand."""

    text: str
    words: list[str]
    _ngrams: dict[int, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, content: str) -> _Content:
        """Prepare a text for matching."""
        text = content.lower()
        return cls(text, [w for w in _CONTENT_SEPARATORS.split(text) if w])

    def ngrams(self, size: int) -> list[str]:
        """Every run of `size` consecutive words, joined by a space."""
        if size not in self._ngrams:
            words = self.words
            self._ngrams[size] = [
                " ".join(words[i : i + size]) for i in range(len(words) - size + 1)
            ]
        return self._ngrams[size]


def _best(target: str, content: _Content, threshold: float) -> Match:
    """best_match against prepared content."""
    name = target.strip().lower()
    if not name or not content.words:
        return Match(0.0, False)
    if name in content.text:
        return Match(1.0, threshold <= 1.0)
    target_words = len([w for w in _TARGET_SEPARATORS.split(name) if w])
    best = 0.0
    # Window size 1 compares each content word to the target, which also covers the original's
    # separate word-by-word pass for one-word targets.
    for size in range(1, target_words + 2):
        candidates = content.ngrams(size)
        if not candidates:
            break
        found = process.extractOne(name, candidates, scorer=JaroWinkler.normalized_similarity)
        if found is not None:
            best = max(best, float(found[1]))
    score = round(best, 3)
    return Match(score, score >= threshold)


def best_match(target: str, content: str, threshold: float = DEFAULT_THRESHOLD) -> Match:
    """How well `target` (a sound name) occurs in `content`: substring 1.0, else best n-gram."""
    return _best(target, _Content.of(content), threshold)


def match_sounds(
    content: str, sounds: Iterable[tuple[str, str]], threshold: float = DEFAULT_THRESHOLD
) -> list[tuple[str, str, float]]:
    """The (key, name, score) of the sounds found in the content, best first."""
    prepared = _Content.of(content)
    found = []
    for key, name in sounds:
        match = _best(name, prepared, threshold)
        if match.matched:
            found.append((key, name, match.score))
    found.sort(key=lambda item: -item[2])
    return found
