"""The regex rule patterns: each key names a test of a draft's text.

The rule library's regex rules name these keys (`rule_library.pattern`); the rule score and
the tier model's caption features both use them. Case-insensitive, whole words unless noted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from virtuna.log import get_logger

log = get_logger(__name__)

INFO_DENSITY_WORDS = 50  # more whitespace-separated tokens than this is "dense"
SHORT_FORM_CHARS = 300  # fewer characters than this stands in for short-form content

_APOSTROPHE = "['’]"  # typed or typographic (phones write the latter)


def _words(*alternatives: str) -> re.Pattern[str]:
    """One case-insensitive regex matching any of the phrases as whole words."""
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", re.IGNORECASE)


# Compiled once. Each takes the draft text; the keys are the `pattern` values of regex rules.
_QUESTION_HOOK = re.compile(r"^[^.!]*\?")  # a '?' before any '.' or '!': opens with a question
_CAPTION_HOOK = re.compile(r"^[^.!?]{1,80}[.!?]")  # a short first sentence (1-80 characters)
_CURIOSITY_GAP = _words("secret", "reveal", "discover", "truth", "never", "always", "actually")
_NEGATIVE_BIAS = _words(
    "stop", f"don{_APOSTROPHE}t", "never", "worst", "mistake", "wrong", "fail", "avoid"
)
_BOLD_CLAIM = _words(r"no\s+one", "everyone", "always", "never", "guaranteed", "proven")
_STORY_HOOK = _words(
    r"i\s+was", r"i\s+remember", r"one\s+day", r"last\s+week", r"this\s+morning", r"when\s+i"
)
_PAYOFF_DELAY = re.compile(r"wait for it|at the end", re.IGNORECASE)  # substrings, as documented
_PATTERN_INTERRUPT = _words(
    r"but\s+wait", r"plot\s+twist", f"here{_APOSTROPHE}s\\s+the\\s+thing", "actually"
)
_CTA_CLARITY = _words(
    "follow", "share", "comment", "save", "like", "subscribe", "click", "link", "bio"
)
_AUTHENTICITY = _words("i", "my", "me", "we", "our", "personally")

MATCHERS: Mapping[str, Callable[[str], bool]] = {
    "question_hook": lambda text: bool(_QUESTION_HOOK.search(text)),
    "curiosity_gap": lambda text: bool(_CURIOSITY_GAP.search(text)),
    "negative_bias": lambda text: bool(_NEGATIVE_BIAS.search(text)),
    "bold_claim": lambda text: bool(_BOLD_CLAIM.search(text)),
    "story_hook": lambda text: bool(_STORY_HOOK.search(text)),
    "payoff_delay": lambda text: bool(_PAYOFF_DELAY.search(text)),
    "pattern_interrupt": lambda text: bool(_PATTERN_INTERRUPT.search(text)),
    "info_density": lambda text: len(text.split()) > INFO_DENSITY_WORDS,
    "short_duration": lambda text: len(text) < SHORT_FORM_CHARS,
    "caption_hook": lambda text: bool(_CAPTION_HOOK.search(text)),
    "cta_clarity": lambda text: bool(_CTA_CLARITY.search(text)),
    "authenticity": lambda text: bool(_AUTHENTICITY.search(text)),
}
# Deliberately absent: loop_structure, emotional_arc, trending_sound, trending_audio,
# text_overlay and the other semantic keys. The original stubbed some of them as "always
# false" or "always true"; here those rules are semantic and the LLM evaluates them.


def has_matcher(pattern: str | None) -> bool:
    """Whether a regex matcher exists for this pattern key."""
    return pattern is not None and pattern in MATCHERS


def matches_pattern(text: str, pattern: str) -> bool:
    """Whether the text matches the regex pattern key; an unknown key never matches."""
    matcher = MATCHERS.get(pattern)
    if matcher is None:
        log.debug("unknown rule pattern", pattern=pattern)
        return False
    return matcher(text)
