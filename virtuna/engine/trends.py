"""Trend enrichment: how a draft rides the trends in force at its (planned) post time.

Sounds: the draft's text is fuzzy-matched (Jaro-Winkler n-grams, threshold 0.7) against the
top 50 trending sounds of the snapshot in force; each match adds velocity x phase multiplier
(emerging 1.5, rising 1.2, peak 1.0, declining 0.5). Hashtags: the draft's tags (canonical,
without '#', the same form as scraped tags, so they actually meet) are looked up in the
hashtag snapshot. Saturated tags (fyp, foryou, ... or on more than 40 % of the window's posts)
add a little directly; the others add relevance log10(views) x share of posts, and
relevance / 3 (capped at 1) x 30 joins the score, as in the original.

The signal is available whenever a recent trend snapshot exists for the moment (taken at most
`max_age` before it; older trends say nothing about today): a draft that rides no trend then
scores low, which is information, not a missing signal.

Fuzzy matching at 0.7 alone lets unrelated phrases through ("wait for it" ~ "want you",
"it... #fyp" ~ "night trouble"), and one false match can carry a whole score. So a match also
needs a word of the sound's name (3+ letters) to appear in the draft, or a similarity of 0.9.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

import duckdb
import pandas as pd

from virtuna.engine.fuzzy import match_sounds
from virtuna.store.trends import hashtag_trends, snapshot_as_of, top_sounds

TOP_SOUNDS = 50
STRONG_SIMILARITY = 0.9
DEFAULT_MAX_AGE = timedelta(days=7)
_WORD = re.compile(r"[^\W_]{3,}")
# Words too common to tie a draft to a sound ("the" in "Shake It To The Max").
_STOPWORDS = frozenset(
    [
        "the",
        "and",
        "for",
        "you",
        "your",
        "with",
        "this",
        "that",
        "are",
        "was",
        "not",
        "but",
        "all",
        "can",
        "get",
        "got",
        "its",
        "out",
        "one",
        "our",
        "his",
        "her",
        "she",
        "him",
        "they",
        "them",
        "from",
        "have",
        "has",
        "had",
        "just",
        "like",
        "what",
        "when",
        "who",
        "why",
        "how",
        "now",
        "new",
        "sound",
        "original",
        "remix",
        "version",
        "feat",
        "official",
    ]
)
PHASE_MULTIPLIER = {"emerging": 1.5, "rising": 1.2, "peak": 1.0, "declining": 0.5}
SATURATED_TAGS = frozenset({"fyp", "foryou", "foryoupage", "viral", "trending", "xyzbca"})
SATURATED_SHARE = 0.4


@dataclass(frozen=True)
class TrendEnrichment:
    """The trend signal of one draft."""

    available: bool
    trend_score: float | None
    snapshot_as_of: datetime | None = None
    matched_sounds: list[dict[str, object]] = field(default_factory=list)
    hashtags: list[dict[str, object]] = field(default_factory=list)
    hashtag_relevance: float = 0.0
    context: str = "Trend data unavailable."

    def as_dict(self) -> dict[str, object]:
        """Plain values for results and storage."""
        return asdict(self)


def _plausible(name: str, text: str, similarity: float) -> bool:
    """A fuzzy match that also shares a real word with the draft (or is nearly exact)."""
    if similarity >= STRONG_SIMILARITY:
        return True
    words = set(_WORD.findall(text.lower())) - _STOPWORDS
    return any(word in words for word in _WORD.findall(name.lower()))


@dataclass(frozen=True)
class TrendTables:
    """The snapshot in force at a moment, loaded once and reusable for many drafts."""

    as_of: datetime
    sounds: pd.DataFrame  # top sounds, indexed by sound_key
    candidates: list[tuple[str, str]]  # (sound_key, sound_name) for fuzzy matching
    hashtags: pd.DataFrame  # indexed by hashtag


def load_trend_tables(
    con: duckdb.DuckDBPyConnection, moment: datetime, *, max_age: timedelta = DEFAULT_MAX_AGE
) -> TrendTables | str:
    """The trend tables in force at `moment`, or why there are none."""
    found = snapshot_as_of(con, moment)
    if found is None:
        return "No trend snapshot before this time."
    if moment - found[0] > max_age:
        return f"The newest trend snapshot ({found[0]:%Y-%m-%d}) is too old to use."
    sounds = top_sounds(con, moment, limit=TOP_SOUNDS)
    return TrendTables(
        as_of=found[0],
        sounds=sounds.set_index("sound_key"),
        candidates=list(zip(sounds["sound_key"], sounds["sound_name"], strict=True)),
        hashtags=hashtag_trends(con, moment).set_index("hashtag"),
    )


def score_trends(tables: TrendTables | str, text: str, hashtags: list[str]) -> TrendEnrichment:
    """The trend signal of one draft against loaded trend tables."""
    if isinstance(tables, str):
        return TrendEnrichment(available=False, trend_score=None, context=tables)
    total = 0.0
    matched = []
    for key, name, similarity in match_sounds(text.lower(), tables.candidates):
        if not _plausible(name, text, similarity):
            continue
        row = tables.sounds.loc[key]
        points = float(row["velocity_score"]) * PHASE_MULTIPLIER.get(str(row["trend_phase"]), 0.5)
        total += points
        matched.append(
            {
                "sound_name": name,
                "similarity": similarity,
                "velocity_score": float(row["velocity_score"]),
                "trend_phase": str(row["trend_phase"]),
                "points": round(points, 3),
            }
        )
    relevance = 0.0
    tag_details = []
    for tag in hashtags:
        if tag not in tables.hashtags.index:
            continue
        row = tables.hashtags.loc[tag]
        share = float(row["share_of_videos"])
        weight = math.log10(max(float(row["total_views"]), 1.0)) * share
        saturated = tag in SATURATED_TAGS or share > SATURATED_SHARE
        if saturated:
            total += weight * 0.1 * 3
        else:
            relevance += weight
        tag_details.append(
            {
                "hashtag": tag,
                "video_count": int(row["video_count"]),
                "share_of_videos": round(share, 4),
                "trend_phase": str(row["trend_phase"]),
                "saturated": saturated,
            }
        )
    hashtag_relevance = min(1.0, relevance / 3)
    total += hashtag_relevance * 30
    return TrendEnrichment(
        available=True,
        trend_score=float(min(100.0, max(0.0, round(total, 1)))),
        snapshot_as_of=tables.as_of,
        matched_sounds=matched,
        hashtags=tag_details,
        hashtag_relevance=round(hashtag_relevance, 4),
        context=_describe(tables.as_of, matched, tag_details),
    )


def enrich_with_trends(
    con: duckdb.DuckDBPyConnection,
    text: str,
    hashtags: list[str],
    moment: datetime,
    *,
    max_age: timedelta = DEFAULT_MAX_AGE,
) -> TrendEnrichment:
    """The trend signal of a draft as of `moment` (its planned post time, or now)."""
    return score_trends(load_trend_tables(con, moment, max_age=max_age), text, hashtags)


def _describe(
    as_of: datetime, sounds: list[dict[str, object]], tags: list[dict[str, object]]
) -> str:
    lines = [f"## Trend Context (trends as of {as_of:%Y-%m-%d %H:%M} UTC)"]
    if sounds:
        lines += [
            f"- Trending sound matched: {s['sound_name']} ({s['trend_phase']}, "
            f"velocity {float(s['velocity_score']):.1f})"  # type: ignore[arg-type]
            for s in sounds
        ]
    else:
        lines.append("- No trending sound detected in the draft.")
    if tags:
        lines += [
            f"- #{t['hashtag']}: on {float(t['share_of_videos']) * 100:.1f}% of recent posts, "  # type: ignore[arg-type]
            f"{t['trend_phase']}" + (" (saturated)" if t["saturated"] else "")
            for t in tags
        ]
    else:
        lines.append("- None of the draft's hashtags is trending.")
    return "\n".join(lines)
