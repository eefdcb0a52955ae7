"""Hashtags in one canonical form everywhere: lowercased names without '#', de-duplicated.

Scraped videos and user drafts both go through these functions, so a user's `#Cooking` and a
scraped `cooking` are the same tag (the original stored one with '#' and one without).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# '#' then letters, digits, underscores or combining accents of any script ("fypシ", "café").
_HASHTAG = re.compile(r"#([\w\u0300-\u036f]+)")


def normalize_hashtags(names: Iterable[object]) -> list[str]:
    """Clean tag names: strip '#' and blanks, lowercase, drop empties, keep first-seen order."""
    seen: dict[str, None] = {}
    for name in names:
        if not isinstance(name, str):
            continue
        clean = name.strip().lstrip("#").strip().lower()
        if clean:
            seen.setdefault(clean, None)
    return list(seen)


def extract_hashtags(text: str | None) -> list[str]:
    """The hashtags written in a caption, in canonical form."""
    if not text:
        return []
    return normalize_hashtags(_HASHTAG.findall(text))
