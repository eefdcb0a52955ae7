"""normalize: the validated input as the payload every stage reads.

Hashtags come in the one canonical form (`virtuna.hashtags`: lowercased, without '#'), so a
draft's tags meet the scraped ones. The duration hint is the caller's `duration_seconds`, else
the first "30s" / "30 sec" / "30 seconds" in the text, else "2 min" / "2 minutes" x 60; seconds
are tried first, so "2 min 30s" reads as 30 s, as in the original. `has_video` stays False: it
is set only by the stage that actually analyses a video (the original set it from the input
mode and so gave text-only analyses a video's confidence bonus).
"""

from __future__ import annotations

import re

from virtuna.engine.schema import AnalysisInput, ContentPayload
from virtuna.hashtags import extract_hashtags

# A number (decimals allowed, so "1.5 min" is not read as "5 min"), optional spaces, a unit.
_NUMBER = r"\b(\d+(?:\.\d+)?)\s*"
_SECONDS = re.compile(_NUMBER + r"(?:seconds?|secs?|s)\b", re.IGNORECASE)
_MINUTES = re.compile(_NUMBER + r"(?:minutes?|mins?)\b", re.IGNORECASE)


def duration_hint(text: str) -> float | None:
    """Seconds the text says the video lasts ("30s", "60 seconds", "2 min"), or None."""
    seconds = _SECONDS.search(text)
    if seconds:
        return float(seconds[1])
    minutes = _MINUTES.search(text)
    if minutes:
        return float(minutes[1]) * 60
    return None


def normalize(data: AnalysisInput) -> ContentPayload:
    """The payload the stages read, built from a validated input."""
    text = data.content_text or ""
    duration = data.duration_seconds if data.duration_seconds is not None else duration_hint(text)
    return ContentPayload(
        content_text=text,
        content_type=data.content_type,
        input_mode=data.input_mode,
        video_url=data.tiktok_url or data.video_storage_path or None,
        hashtags=extract_hashtags(text),
        duration_hint=duration,
        sound_id=data.sound_id,
        sound_name=data.sound_name.strip() if data.sound_name else None,
        sound_original=data.sound_original,
        niche=data.niche,
        creator_handle=data.creator_handle,
        planned_post_time=data.planned_post_time,
        has_video=False,
    )
