"""One canonical hashtag form for scraped data and drafts."""

from __future__ import annotations

from virtuna.hashtags import extract_hashtags, normalize_hashtags


def test_extract_lowercases_strips_hash_and_dedupes_in_order() -> None:
    text = "Wait for it #Cooking #fyp #COOKING #fypシ #café #über_alles"
    assert extract_hashtags(text) == ["cooking", "fyp", "fypシ", "café", "über_alles"]


def test_extract_handles_glued_tags_and_empty_text() -> None:
    assert extract_hashtags("#fyp#family#pov") == ["fyp", "family", "pov"]
    assert extract_hashtags("no tags here, # alone") == []
    assert extract_hashtags(None) == []
    assert extract_hashtags("") == []


def test_normalize_drops_blanks_and_non_strings() -> None:
    assert normalize_hashtags(["#FYP", " fyp ", "", None, 3, "Dogs"]) == ["fyp", "dogs"]
