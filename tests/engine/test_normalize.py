"""normalize: hashtags, duration hints and the three input modes (TEST-04).

Covers the original's 16 cases. Deliberate differences: hashtags are canonical (no '#', the
form scraped tags have, so they meet); creator handles arrive canonical from the input schema
("@user" -> "user"); society_id does not exist; has_video stays False in every mode.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from virtuna.engine.normalize import duration_hint, normalize
from virtuna.engine.schema import AnalysisInput, ContentPayload

URL = "https://www.tiktok.com/@user/video/123"


def text_input(content_text: str | None = "Hello world", **overrides: Any) -> AnalysisInput:
    """A valid text-mode input."""
    return AnalysisInput(input_mode="text", content_text=content_text, **overrides)


def run(text: str, **overrides: Any) -> ContentPayload:
    """normalize a text-mode input with this text."""
    return normalize(text_input(text, **overrides))


# ------------------------------------------------------------------------------- hashtags


def test_extracts_hashtags_without_hash() -> None:
    assert run("Check out #viral and #trending content").hashtags == ["viral", "trending"]


def test_lowercases_hashtags() -> None:
    assert run("#Viral #TRENDING today").hashtags == ["viral", "trending"]


def test_deduplicates_hashtags_keeping_first_seen_order() -> None:
    assert run("#viral #Cooking #VIRAL #cooking").hashtags == ["viral", "cooking"]


def test_no_hashtags_gives_empty_list() -> None:
    assert run("No hashtags here, # alone").hashtags == []


def test_unicode_hashtags() -> None:
    assert run("#café #résumé #fypシ #über_alles").hashtags == [
        "café",
        "résumé",
        "fypシ",
        "über_alles",
    ]


def test_missing_text_gives_empty_hashtags_and_empty_text() -> None:
    # Text mode requires text, so the "no content_text" case is a URL-mode input.
    payload = normalize(AnalysisInput(input_mode="tiktok_url", tiktok_url=URL))
    assert payload.hashtags == []
    assert payload.content_text == ""
    assert payload.duration_hint is None


# ------------------------------------------------------------------------------- duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("This 30s video is great", 30),
        ("Watch this 60 seconds clip", 60),
        ("A 2 min tutorial for you", 120),
        ("15 Seconds of fame, go", 15),  # case-insensitive
        ("A 3 MINUTES deep dive", 180),
        ("Quick 2min recipe today", 120),
        ("Only 45 sec of your time", 45),
        ("Only 10 secs of your time", 10),
        ("A 1.5 minute explainer", 90),  # not "5 minute"
        ("Just 12.5s long, promise", 12.5),
        ("The 2 min 30s version", 30),  # seconds are tried first, as in the original
        ("Day 1 of 30, 20 seconds each", 20),
    ],
)
def test_duration_hint_from_text(text: str, seconds: float) -> None:
    assert run(text).duration_hint == seconds
    assert duration_hint(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "Great content for everyone",
        "5 steps to a better morning",  # the unit must end the word
        "3 secrets nobody tells you",
        "Room 30smth is not a time",
        "Minimal 4 mint recipes",
        "Version2s and v3 min",  # the number must start a word
    ],
)
def test_no_duration_hint(text: str) -> None:
    assert run(text).duration_hint is None


def test_given_duration_wins_over_text() -> None:
    assert run("This 30s video is great", duration_seconds=42.0).duration_hint == 42.0
    assert run("This 30s video is great", duration_seconds=0).duration_hint == 0


# ------------------------------------------------------------------------------- input modes


def test_text_mode() -> None:
    payload = run("Hello world, this is a draft", content_type="post")
    assert payload.input_mode == "text"
    assert payload.content_type == "post"
    assert payload.content_text == "Hello world, this is a draft"
    assert payload.video_url is None
    assert payload.has_video is False


def test_tiktok_url_mode() -> None:
    payload = normalize(
        AnalysisInput(input_mode="tiktok_url", tiktok_url=URL, content_text="My caption #fyp")
    )
    assert payload.input_mode == "tiktok_url"
    assert payload.video_url == URL
    assert payload.hashtags == ["fyp"]
    # Nothing analysed a video yet: the original's has_video = (mode != text) was a bug.
    assert payload.has_video is False


def test_video_upload_mode() -> None:
    payload = normalize(
        AnalysisInput(input_mode="video_upload", video_storage_path="uploads/vid.mp4")
    )
    assert payload.input_mode == "video_upload"
    assert payload.video_url == "uploads/vid.mp4"
    assert payload.content_text == ""
    assert payload.has_video is False


def test_url_is_preferred_over_storage_path() -> None:
    payload = normalize(
        AnalysisInput(input_mode="tiktok_url", tiktok_url=URL, video_storage_path="up/v.mp4")
    )
    assert payload.video_url == URL


def test_optional_fields_default_to_none() -> None:
    payload = run("Hello there, world")
    assert payload.niche is None
    assert payload.creator_handle is None
    assert payload.planned_post_time is None
    assert payload.duration_hint is None
    assert payload.content_type == "video"


def test_niche_creator_and_post_time_pass_through() -> None:
    when = datetime(2025, 3, 1, 18, 30)
    payload = run(
        "Hello there, world", niche="fitness", creator_handle="@User", planned_post_time=when
    )
    assert payload.niche == "fitness"
    assert payload.creator_handle == "user"  # canonical form from the input schema
    assert payload.planned_post_time == when
