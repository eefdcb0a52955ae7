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
    clean = (n.strip().lstrip("#").strip().lower() for n in names if isinstance(n, str))
    return [tag for tag in dict.fromkeys(clean) if tag]


def extract_hashtags(text: str | None) -> list[str]:
    """The hashtags written in a caption, in canonical form."""
    if not text:
        return []
    # The pattern's matches are already bare, non-empty names: only case and repeats remain.
    return list(dict.fromkeys(tag.lower() for tag in _HASHTAG.findall(text)))
