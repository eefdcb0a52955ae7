"""Linking an analysis to the TikTok video it became: by the user's URL, or matched by caption.

A user links by sending the video's URL (`PATCH /api/analyses/{id}`); the URL is checked
against a strict pattern and never fetched. The collect-outcomes job matches the rest: an
unlinked analysis of an opted-in user is linked to a video of the same creator (handles
normalised as everywhere: no '@', lower case) posted from 24 h before to 72 h after the
planned post time (the analysis time when there is no plan), whose caption scores at least
MATCH_THRESHOLD with rapidfuzz's `token_sort_ratio` (after `default_process`) against the
draft's text. Captions under MIN_CAPTION_CHARS letters and digits (an emoji, "Replying to")
say nothing about which post they are and are never matched. Two videos above the threshold
for one analysis, or one video above it for two analyses, are ambiguous: nothing is linked
and the log says why.

The threshold is measured on the bundled real data (`false_link_rates`): every video with a
caption stands for an analysis whose own post has not been scraped, and the creator's other
posts in the window are the candidates, so any link made is a false one. On data/raw (96,525
videos; 7,158 captions with another post of the same creator in the window) the false-link
rate is 3.0 % at 80, 1.49 % at 95, 1.20 % at 97, 0.82 % at 98 and 0.75 % at 100: the
smallest threshold with a rate of at most 1 % is 98 (`false_link_rates(con)` on a store of
data/raw). It falls no lower because creators repost a caption verbatim (hotel adverts,
"Trả lời" replies): about 1.5 % of these captions have an exact twin in the window, and only
the ambiguity rule keeps some of those from being linked. How often a draft's own post scores
under 98 (an edited caption) cannot be measured here: the data has no drafts.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb
from rapidfuzz import fuzz, utils

from virtuna.log import get_logger
from virtuna.store.connection import retry_conflicts, run, utcnow
from virtuna.store.creators import normalize_handle
from virtuna.store.outcomes import AnalysisNotFoundError

log = get_logger(__name__)

MATCH_THRESHOLD = 98.0
MIN_CAPTION_CHARS = 20
MATCH_BEFORE = timedelta(hours=24)
MATCH_AFTER = timedelta(hours=72)
# Analyses older than this (by their reference time) are no longer matched.
MATCH_LOOKBACK = timedelta(days=30)
MAX_URL_LENGTH = 512
MAX_FALSE_LINK_RATE = 0.01

# https://www.tiktok.com/@handle/video/<digits>, optionally with a share query string (dropped).
VIDEO_URL = re.compile(
    r"https://(?:www\.|m\.)?tiktok\.com/@(?P<handle>[A-Za-z0-9_.]{2,24})/video/"
    r"(?P<id>[0-9]{1,20})/?(?:\?[A-Za-z0-9_.~=&%+-]{0,256})?"
)
SHORT_LINK = re.compile(
    r"^https?://(?:vm|vt)\.tiktok\.com/|^https?://(?:www\.)?tiktok\.com/t/", re.IGNORECASE
)
MAX_VIDEO_ID = 2**64 - 1


class LinkError(ValueError):
    """The URL is not a TikTok video URL this service accepts; the message says why."""


class LinkConflictError(ValueError):
    """The analysis is already linked to a different video."""


@dataclass(frozen=True)
class VideoRef:
    """A TikTok video named by its URL: the author's handle, the id and the canonical URL."""

    handle: str
    video_id: str

    @property
    def url(self) -> str:
        """The canonical URL (no query string)."""
        return video_url(self.handle, self.video_id)


def video_url(handle: str, video_id: str) -> str:
    """https://www.tiktok.com/@handle/video/id."""
    return f"https://www.tiktok.com/@{handle}/video/{video_id}"


def parse_video_url(url: str) -> VideoRef:
    """The video a URL names; LinkError for anything but a full tiktok.com video URL."""
    if not isinstance(url, str) or not url.strip():
        raise LinkError("posted_url is empty")
    text = url.strip()
    if len(text) > MAX_URL_LENGTH:
        raise LinkError(f"posted_url is longer than {MAX_URL_LENGTH} characters")
    if SHORT_LINK.match(text):
        raise LinkError(
            "short TikTok links (vm.tiktok.com, vt.tiktok.com, tiktok.com/t/) cannot be resolved "
            "without contacting TikTok; open the link and send the full URL "
            "https://www.tiktok.com/@handle/video/<id>"
        )
    match = VIDEO_URL.fullmatch(text)
    if match is None:
        raise LinkError(
            "posted_url must be a TikTok video URL like https://www.tiktok.com/@handle/video/<id>"
        )
    video_id = match["id"].lstrip("0") or "0"
    if int(video_id) > MAX_VIDEO_ID or video_id == "0":
        raise LinkError("posted_url has a video id that no TikTok video has")
    return VideoRef(normalize_handle(match["handle"]), video_id)


def id_posted_at(video_id: str) -> datetime | None:
    """When TikTok created a video, from its id (the top 32 bits are Unix seconds).

    The creation time is at or a few seconds before the post time for almost every video of
    the bundled data; it is a first guess, the scraped `createTime` is what counts.
    """
    if not video_id.isdigit():
        return None
    seconds = int(video_id) >> 32
    if seconds <= 0:
        return None
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)  # naive UTC, as the store


def link_analysis(
    con: duckdb.DuckDBPyConnection, analysis_id: str, user_id: str, posted_url: str
) -> dict[str, object]:
    """Link the user's analysis to the video posted_url names; the stored link.

    LinkError for a URL that is not accepted (or names another creator than the analysis),
    AnalysisNotFoundError for an analysis that is not the user's, LinkConflictError when it is
    already linked to another video. Linking the same video again changes nothing.
    """
    video = parse_video_url(posted_url)
    rows = run(
        con,
        "SELECT creator_handle FROM analysis_results "
        "WHERE id = ? AND user_id = ? AND deleted_at IS NULL",
        [analysis_id, user_id],
    )
    if not rows:
        raise AnalysisNotFoundError(f"no analysis {analysis_id} for this user")
    handle = _clean_handle(rows[0][0])  # type: ignore[arg-type]
    if handle is not None and handle != video.handle:
        raise LinkError(
            f"the video is @{video.handle}'s, but the analysis is for @{handle}'s draft"
        )

    def write() -> list[tuple[object, ...]]:
        return run(
            con,
            "UPDATE analysis_results SET posted_video_id = $video, posted_url = $url, "
            "linked_at = coalesce(linked_at, $now), link_method = coalesce(link_method, 'url') "
            "WHERE id = $id AND (posted_video_id IS NULL OR posted_video_id = $video) "
            "RETURNING posted_video_id, posted_url, linked_at, link_method",
            {"video": video.video_id, "url": video.url, "now": utcnow(), "id": analysis_id},
        )

    updated = retry_conflicts(write)
    if not updated:
        raise LinkConflictError(f"analysis {analysis_id} is already linked to another video")
    video_id, url, linked_at, method = updated[0]
    return {
        "analysis_id": analysis_id,
        "posted_video_id": video_id,
        "posted_url": url,
        "linked_at": linked_at,
        "link_method": method,
    }


def _clean_handle(handle: str | None) -> str | None:
    """A stored handle in canonical form; None when there is none or it is not a handle."""
    if not handle:
        return None
    try:
        return normalize_handle(handle)
    except ValueError:
        return None


def caption_key(text: str | None) -> str | None:
    """A caption as compared (rapidfuzz's default_process); None when it is too short to tell."""
    processed = utils.default_process(text or "")
    if len(processed.replace(" ", "")) < MIN_CAPTION_CHARS:
        return None
    return processed


def caption_similarity(a: str, b: str) -> float:
    """0-100 similarity of two processed captions (word order ignored)."""
    return float(fuzz.token_sort_ratio(a, b))


# --------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class MatchDecision:
    """What matching decided for one analysis."""

    analysis_id: str
    status: str  # linked, ambiguous, no-match, short-caption
    video_id: str | None = None
    score: float | None = None
    reason: str | None = None


@dataclass
class AutoLinkResult:
    """Every decision of one matching pass."""

    decisions: list[MatchDecision] = field(default_factory=list)

    def with_status(self, status: str) -> list[MatchDecision]:
        """The decisions with this status."""
        return [d for d in self.decisions if d.status == status]


def auto_link(
    con: duckdb.DuckDBPyConnection,
    *,
    now: datetime | None = None,
    threshold: float = MATCH_THRESHOLD,
) -> AutoLinkResult:
    """Match opted-in users' unlinked analyses to their creators' scraped videos."""
    now = now or utcnow()
    analyses = run(
        con,
        "SELECT a.id, coalesce(a.creator_handle, u.creator_handle), a.content_text, "
        "coalesce(a.planned_post_time, a.created_at) FROM analysis_results a "
        "JOIN users u ON u.id = a.user_id "
        "WHERE u.outcome_consent AND a.posted_video_id IS NULL AND a.deleted_at IS NULL "
        "AND NOT a.is_backtest AND coalesce(a.planned_post_time, a.created_at) >= ? "
        "ORDER BY a.created_at, a.id",
        [now - MATCH_LOOKBACK],
    )
    result = AutoLinkResult()
    found: dict[str, list[tuple[str, str, float]]] = {}  # analysis -> [(video, url, score)]
    for analysis_id, raw_handle, text, reference in analyses:
        handle = _clean_handle(raw_handle)  # type: ignore[arg-type]
        if handle is None:
            continue  # no creator to look at
        draft = caption_key(text)  # type: ignore[arg-type]
        if draft is None:
            result.decisions.append(
                MatchDecision(
                    str(analysis_id),
                    "short-caption",
                    reason=f"the draft has under {MIN_CAPTION_CHARS} letters and digits",
                )
            )
            continue
        videos = run(
            con,
            "SELECT v.platform_video_id, v.video_url, v.description FROM scraped_videos v "
            "WHERE v.author_handle = ? AND v.posted_at BETWEEN ? AND ? "
            "AND NOT EXISTS (SELECT 1 FROM analysis_results l "
            "WHERE l.posted_video_id = v.platform_video_id) ORDER BY v.platform_video_id",
            [handle, reference - MATCH_BEFORE, reference + MATCH_AFTER],  # type: ignore[operator]
        )
        above = []
        for video_id, url, description in videos:
            key = caption_key(description)  # type: ignore[arg-type]
            if key is None:
                continue
            score = caption_similarity(draft, key)
            if score >= threshold:
                above.append((str(video_id), str(url or video_url(handle, str(video_id))), score))
        found[str(analysis_id)] = above
    claims: dict[str, list[str]] = defaultdict(list)
    for analysis_id, above in found.items():
        if len(above) == 1:
            claims[above[0][0]].append(analysis_id)
    for analysis_id, above in found.items():
        result.decisions.append(_decide(con, analysis_id, above, claims, now))
    for decision in result.decisions:
        if decision.status == "ambiguous":
            log.warning("analysis not linked: ambiguous match", **_fields(decision))
        elif decision.status == "linked":
            log.info("analysis linked to its video", **_fields(decision))
    return result


def _fields(decision: MatchDecision) -> dict[str, object]:
    return {
        "analysis_id": decision.analysis_id,
        "video_id": decision.video_id,
        "score": decision.score,
        "reason": decision.reason,
    }


def _decide(
    con: duckdb.DuckDBPyConnection,
    analysis_id: str,
    above: list[tuple[str, str, float]],
    claims: dict[str, list[str]],
    now: datetime,
) -> MatchDecision:
    """Link an analysis with exactly one video above the threshold that no other one claims."""
    if not above:
        return MatchDecision(analysis_id, "no-match")
    if len(above) > 1:
        listed = ", ".join(f"{v} ({s:.0f})" for v, _, s in above)
        return MatchDecision(
            analysis_id, "ambiguous", reason=f"{len(above)} videos above the threshold: {listed}"
        )
    video_id, url, score = above[0]
    rivals = [a for a in claims[video_id] if a != analysis_id]
    if rivals:
        return MatchDecision(
            analysis_id,
            "ambiguous",
            video_id,
            score,
            reason=f"video {video_id} also matches analysis {', '.join(rivals)}",
        )
    updated = run(
        con,
        "UPDATE analysis_results SET posted_video_id = ?, posted_url = ?, linked_at = ?, "
        "link_method = 'matched' WHERE id = ? AND posted_video_id IS NULL RETURNING id",
        [video_id, url, now, analysis_id],
    )
    if not updated:  # linked meanwhile (by its user)
        return MatchDecision(analysis_id, "no-match", reason="linked meanwhile")
    return MatchDecision(analysis_id, "linked", video_id, score)


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class FalseLinkRates:
    """False-link rate per threshold over captions with another post of theirs in the window."""

    captions: int  # videos standing for analyses (caption long enough, a neighbour in the window)
    rates: dict[int, float]  # threshold -> share of them that would be linked to another post

    def smallest_threshold(self, max_rate: float = MAX_FALSE_LINK_RATE) -> int | None:
        """The lowest threshold whose false-link rate is at most max_rate."""
        fitting = [t for t, rate in sorted(self.rates.items()) if rate <= max_rate]
        return fitting[0] if fitting else None


def false_link_rates(
    con: duckdb.DuckDBPyConnection, thresholds: range = range(50, 101)
) -> FalseLinkRates:
    """How often matching would link a caption to a DIFFERENT post of the same creator.

    Each scraped video with a usable caption stands for an analysis of that caption whose own
    post is missing (planned at the video's post time); the creator's other posts in the match
    window are the candidates. A link is made when exactly one candidate is at or above the
    threshold (two are ambiguous and refused), and every such link is false.
    """
    rows = run(
        con,
        "WITH v AS (SELECT platform_video_id AS id, author_handle AS handle, posted_at, "
        "description FROM scraped_videos WHERE author_handle IS NOT NULL "
        "AND posted_at IS NOT NULL AND nullif(trim(description), '') IS NOT NULL) "
        "SELECT a.id, a.description, b.description FROM v a JOIN v b "
        "ON a.handle = b.handle AND a.id <> b.id "
        "AND b.posted_at BETWEEN a.posted_at - ? AND a.posted_at + ? ORDER BY a.id, b.id",
        [MATCH_BEFORE, MATCH_AFTER],
    )
    scores: dict[str, list[float]] = defaultdict(list)
    for video_id, caption, other in rows:
        key = caption_key(caption)  # type: ignore[arg-type]
        if key is None:
            continue
        other_key = caption_key(other)  # type: ignore[arg-type]
        scores[str(video_id)].append(caption_similarity(key, other_key) if other_key else 0.0)
    total = len(scores)
    rates = {
        t: sum(1 for s in scores.values() if sum(x >= t for x in s) == 1) / total if total else 0.0
        for t in thresholds
    }
    return FalseLinkRates(total, rates)
