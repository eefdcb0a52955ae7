"""The engine's data shapes: what a caller sends, what the stages pass on, what comes back.

`PredictionResult` keeps the original's field names (`overall_score`, `confidence`,
`confidence_label`, `is_calibrated`, `score_weights`, ...), so its users recognise it.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from virtuna.store.creators import normalize_handle

InputMode = Literal["text", "tiktok_url", "video_upload"]
ContentType = Literal["post", "reel", "story", "video", "thread"]
ConfidenceLabel = Literal["HIGH", "MEDIUM", "LOW"]

MIN_TEXT = 10
MAX_TEXT = 10_000
MAX_URL = 2_048
MAX_PATH = 1_024
MAX_HANDLE_INPUT = 64  # a handle is 2-24 characters; room for '@' and spaces around it
# Planned post times are taken as UTC within these bounds (the bundled data spans 2020-2025).
EARLIEST_POST_TIME = datetime(2000, 1, 1)
LATEST_POST_TIME = datetime(2100, 1, 1)
SPAM_SHARE = 0.9  # one character making up more than this share of the text is spam
TIKTOK_URL = re.compile(r"^https?://(www\.|vm\.)?tiktok\.com/\S+$", re.IGNORECASE)


class AnalysisInput(BaseModel):
    """A draft post to analyse. Every validation error names its field."""

    model_config = ConfigDict(extra="forbid")

    input_mode: InputMode = "text"
    content_text: str | None = Field(None, max_length=MAX_TEXT, validate_default=True)
    tiktok_url: str | None = Field(None, max_length=MAX_URL, validate_default=True)
    video_storage_path: str | None = Field(None, max_length=MAX_PATH, validate_default=True)
    content_type: ContentType = "video"
    niche: str | None = Field(None, max_length=100)
    creator_handle: str | None = Field(None, max_length=MAX_HANDLE_INPUT)
    planned_post_time: datetime | None = Field(
        None,
        description=(
            "When the post will go up (ISO 8601; with an offset it is converted to UTC, "
            f"without one it is taken as UTC); from {EARLIEST_POST_TIME:%Y-%m-%d} up to "
            f"{LATEST_POST_TIME:%Y-%m-%d}."
        ),
    )
    duration_seconds: float | None = Field(None, ge=0, le=36_000, allow_inf_nan=False)
    # The sound the post will use, as the creator knows it before posting: TikTok's sound id
    # and/or its title, and whether it is the creator's own original audio.
    sound_id: str | None = Field(None, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")
    sound_name: str | None = Field(None, max_length=300)
    sound_original: bool | None = None

    @field_validator("content_text")
    @classmethod
    def _text(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            if info.data.get("input_mode") == "text":
                raise ValueError("required when input_mode is text")
            return None
        stripped = value.strip()
        if info.data.get("input_mode") == "text" and len(stripped) < MIN_TEXT:
            raise ValueError(f"must be at least {MIN_TEXT} characters (after trimming)")
        if stripped:
            char, count = Counter(stripped).most_common(1)[0]
            if count / len(stripped) > SPAM_SHARE and len(stripped) >= MIN_TEXT:
                raise ValueError(f"looks like spam: {char!r} is over 90% of the text")
        return value

    @field_validator("tiktok_url")
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            if info.data.get("input_mode") == "tiktok_url":
                raise ValueError("required when input_mode is tiktok_url")
            return None
        if not TIKTOK_URL.match(value.strip()):
            raise ValueError("must be a TikTok URL (https://www.tiktok.com/... or vm.tiktok.com)")
        return value.strip()

    @field_validator("video_storage_path")
    @classmethod
    def _video(cls, value: str | None, info: ValidationInfo) -> str | None:
        if (value is None or not value.strip()) and info.data.get("input_mode") == "video_upload":
            raise ValueError("required when input_mode is video_upload")
        return value.strip() if value else None

    @field_validator("creator_handle")
    @classmethod
    def _handle(cls, value: str | None) -> str | None:
        return normalize_handle(value) if value else None

    @field_validator("planned_post_time")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        problem = (
            f"must be from {EARLIEST_POST_TIME:%Y-%m-%d} up to {LATEST_POST_TIME:%Y-%m-%d} (UTC)"
        )
        if value.tzinfo is not None:
            try:
                value = (value - value.utcoffset()).replace(tzinfo=None)  # type: ignore[operator]
            except OverflowError:  # the offset moves it before year 1 or after 9999
                raise ValueError(problem) from None
        if not EARLIEST_POST_TIME <= value < LATEST_POST_TIME:
            raise ValueError(problem)
        return value


def describe_errors(exc: ValidationError) -> str:
    """A validation error as one line: "field: problem; field: problem"."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors()
    )


class ContentPayload(BaseModel):
    """The normalised draft every stage reads."""

    content_text: str
    content_type: ContentType
    input_mode: InputMode
    video_url: str | None
    hashtags: list[str]  # canonical: lowercased, no '#'
    duration_hint: float | None  # seconds: given, or read from the text
    sound_id: str | None = None
    sound_name: str | None = None
    sound_original: bool | None = None
    niche: str | None
    creator_handle: str | None
    planned_post_time: datetime | None
    has_video: bool = False  # true only when a video was actually analysed


class Factor(BaseModel):
    """One Gemini content factor as the result shows it."""

    id: str
    name: str
    score: float
    max_score: float = 10.0
    rationale: str
    improvement_tip: str


class SuggestionOut(BaseModel):
    """One suggestion as the result shows it."""

    id: str
    text: str
    priority: Literal["high", "medium", "low"]
    category: str


class PredictionResult(BaseModel):
    """How well a draft will do, and why."""

    model_config = ConfigDict(ser_json_inf_nan="null")

    analysis_id: str
    request_id: str
    overall_score: float = Field(
        description="The probability, in percent, that the post resonates: reaches at least "
        "`resonates_at_views` views. With the creator's history (score_target 'beats_usual') "
        "that is tier 4 of their own posts, views well above their usual; without it "
        "('reference_tier') tier 4 of the reference population, its top 40 %. Calibrated on "
        "real outcomes of the same signal profile when `is_calibrated`, else the raw score."
    )
    raw_score: float = Field(description="The weighted signals (0-100) before calibration.")
    score_target: str = Field(
        "reference_tier",
        description="The outcome overall_score predicts: beats_usual or reference_tier.",
    )
    resonates_at_views: float | None = Field(
        None, description="The view count from which the post counts as resonating."
    )
    signal_profile: str = Field(
        "",
        description="The signals the score came from and its target, e.g. "
        "'ml+rules|reference_tier'; each profile has its own calibration map.",
    )
    confidence: float = Field(
        description="0-1: how much signal the score rests on (LLM views, their agreement, "
        "matched rules and sounds); HIGH >= 0.7, MEDIUM >= 0.4, else LOW."
    )
    confidence_label: ConfidenceLabel
    is_calibrated: bool = Field(
        description="True when a calibration map fitted on outcomes of this signal profile "
        "was applied."
    )
    calibration_version: int | None = None
    behavioral_predictions: dict[str, Any] | None
    feature_vector: dict[str, Any]
    reasoning: str = ""
    warnings: list[str]
    factors: list[Factor]
    suggestions: list[SuggestionOut]
    rule_score: float | None
    trend_score: float | None
    gemini_score: float | None
    behavioral_score: float | None
    ml_score: float | None
    score_weights: dict[str, float]
    signals_available: dict[str, bool]
    rules_evaluated: int
    rule_contributions: list[dict[str, Any]]
    matched_sounds: list[dict[str, Any]]
    creator: dict[str, Any]
    latency_ms: float
    stage_timings: dict[str, float]
    cost_cents: Decimal
    engine_version: str
    gemini_model: str | None
    deepseek_model: str | None
    ml_model_id: str | None = None
    # The tier models' answer: the absolute tier (which ml_score summarises), the relative
    # tier ("beats your usual") when the creator has history, and the creator's usual tier.
    tiers: dict[str, Any] | None = None
    input_mode: InputMode
    has_video: bool
