"""One mapping mechanism for every source: field specs compiled to a DuckDB SELECT.

An adapter reads its file into a relation of strings (`position`, `raw`, source columns) and
names, for each `scraped_videos` column, the SQL expression that yields its text and the kind
of value expected there. `compile_select` turns that into one SELECT which casts every field
and writes, for each row, every reason it cannot be accepted (`reject_reason`, NULL when the
row is good). Validation therefore runs vectorised inside DuckDB, and one rule set serves the
bundled files and live Apify items alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# count: a whole number >= 0 that fits BIGINT; short_count: the same as TikTok's web UI writes it
# ("7269", "213.1K", "1.4M"); number: a finite double >= 0; clock: a duration "MM:SS" or
# "H:MM:SS", in seconds; epoch: Unix seconds; datetime: "YYYY-MM-DD HH:MM:SS" text.
Kind = Literal["text", "count", "short_count", "number", "clock", "bool", "epoch", "datetime"]

# Post times outside this range are data errors (TikTok's predecessor launched in 2014).
EARLIEST_POST = "2014-01-01"
LATEST_POST_SQL = "now()::TIMESTAMP + INTERVAL 2 DAY"
# The counts a stored video must have at least one of.
ENGAGEMENT_COLUMNS = ("views", "likes", "comments", "shares", "saves")


@dataclass(frozen=True)
class FieldMap:
    """Where one scraped_videos column comes from and what kind of value it must hold."""

    column: str
    expr: str
    kind: Kind = "text"
    required: bool = False
    # For datetime text in local time: how many hours the clock was ahead of UTC (stored as UTC).
    utc_offset_hours: int = 0


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class _Compiled:
    """One field's SQL in three stages, so no expression is written out twice."""

    text: str  # stage 1: the trimmed text, NULL when empty
    number: str | None  # stage 2 (numeric kinds): the value as a DOUBLE
    value: str  # stage 2: the typed value
    reasons: list[str]  # stage 3: why the row cannot be accepted, or NULL


def _ref(stage: str, column: str) -> str:
    return f'"_{stage}_{column}"'


def _compile(field: FieldMap) -> _Compiled:
    label = field.column
    x = _ref("x", label)  # the stage-1 text, as seen by stages 2 and 3
    text = f"nullif(trim(CAST(({field.expr}) AS VARCHAR)), '')"
    reasons: list[str] = []
    if field.required:
        reasons.append(f"CASE WHEN {x} IS NULL THEN {_quote(label + ': missing')} END")
    if field.kind == "text":
        return _Compiled(text, None, x, reasons)
    if field.kind in ("count", "short_count", "number"):
        if field.kind == "short_count":
            # K/M/B scale the number; DECIMAL keeps "213.1K" exactly 213100. The pattern bounds
            # the digits so the DECIMAL neither rounds nor overflows.
            pattern = "[0-9]{1,15}(\\.[0-9]{1,3})?[KMBkmb]?"
            digits = f"CASE WHEN regexp_full_match({x}, '{pattern}') THEN rtrim({x}, 'KMBkmb') END"
            scale = (
                f"CASE upper(right({x}, 1)) WHEN 'K' THEN 1000 WHEN 'M' THEN 1000000 "
                "WHEN 'B' THEN 1000000000 ELSE 1 END"
            )
            number = f"CAST(TRY_CAST({digits} AS DECIMAL(18, 3)) * {scale} AS DOUBLE)"
            unreadable = "not a count ("
        else:
            number = f"TRY_CAST({x} AS DOUBLE)"
            unreadable = "not a number ("
        num = _ref("n", label)
        reasons.append(
            f"CASE WHEN {x} IS NOT NULL AND {num} IS NULL "
            f"THEN {_quote(label + ': ' + unreadable)} || {x} || ')' "
            f"WHEN {num} < 0 OR isnan({num}) OR isinf({num}) "
            f"THEN {_quote(label + ': out of range (')} || {x} || ')' END"
        )
        if field.kind == "number":
            return _Compiled(text, number, num, reasons)
        whole = _ref("v", label)
        reasons.append(
            f"CASE WHEN {num} <> floor({num}) "
            f"THEN {_quote(label + ': not a whole number (')} || {x} || ')' "
            f"WHEN {num} >= 0 AND NOT isinf({num}) AND {whole} IS NULL "
            f"THEN {_quote(label + ': out of range (')} || {x} || ')' END"
        )
        return _Compiled(text, number, f"TRY_CAST({_ref('n', label)} AS BIGINT)", reasons)
    value = _ref("v", label)
    if field.kind == "clock":
        parts = [f"TRY_CAST(split_part({x}, ':', {i}) AS BIGINT)" for i in (1, 2, 3)]
        cast = (
            f"CASE WHEN regexp_full_match({x}, '[0-9]+:[0-5][0-9]') "
            f"THEN CAST({parts[0]} * 60 + {parts[1]} AS DOUBLE) "
            f"WHEN regexp_full_match({x}, '[0-9]+:[0-5][0-9]:[0-5][0-9]') "
            f"THEN CAST({parts[0]} * 3600 + {parts[1]} * 60 + {parts[2]} AS DOUBLE) END"
        )
        reasons.append(
            f"CASE WHEN {x} IS NOT NULL AND {value} IS NULL "
            f"THEN {_quote(label + ': not a duration (')} || {x} || ')' END"
        )
        return _Compiled(text, None, cast, reasons)
    if field.kind == "bool":
        cast = (
            f"CASE WHEN lower({x}) IN ('true', '1', '1.0', 'yes') THEN TRUE "
            f"WHEN lower({x}) IN ('false', '0', '0.0', 'no') THEN FALSE END"
        )
        reasons.append(
            f"CASE WHEN {x} IS NOT NULL AND {value} IS NULL "
            f"THEN {_quote(label + ': not a boolean (')} || {x} || ')' END"
        )
        return _Compiled(text, None, cast, reasons)
    if field.kind == "epoch":
        seconds = f"TRY_CAST({x} AS DOUBLE)"
        cast = (
            f"CASE WHEN {seconds} BETWEEN 0 AND 1e11 "
            f"THEN make_timestamp(CAST({seconds} * 1000000 AS BIGINT)) END"
        )
    else:  # datetime text
        cast = f"TRY_CAST({x} AS TIMESTAMP)"
        if field.utc_offset_hours:
            cast = f"({cast} - INTERVAL {int(field.utc_offset_hours)} HOUR)"
    reasons.append(
        f"CASE WHEN {x} IS NOT NULL AND {value} IS NULL "
        f"THEN {_quote(label + ': not a time (')} || {x} || ')' "
        f"WHEN {value} < TIMESTAMP '{EARLIEST_POST}' OR {value} > {LATEST_POST_SQL} "
        f"THEN {_quote(label + ': out of range (')} || CAST({value} AS VARCHAR) || ')' END"
    )
    return _Compiled(text, None, cast, reasons)


def compile_select(
    source_sql: str,
    fields: list[FieldMap],
    *,
    structural_checks: list[str] = (),  # type: ignore[assignment]
    passthrough: list[str] = (),  # type: ignore[assignment]
    require_any: tuple[str, ...] = ENGAGEMENT_COLUMNS,
) -> str:
    """A SELECT over `source_sql` giving position, raw, the typed columns and reject_reason.

    `structural_checks` are SQL expressions yielding a reason (or NULL) that, when present,
    replace the per-field reasons (a malformed document has no fields worth listing).
    `passthrough` names source columns copied as they are (for Python post-processing).
    A row in which every column of `require_any` that the mapping has is NULL is rejected:
    a video with no observed count at all carries nothing to learn from.
    """
    compiled = {field.column: _compile(field) for field in fields}
    texts = [f"{c.text} AS {_ref('x', name)}" for name, c in compiled.items()]
    numbers = [f"{c.number} AS {_ref('n', name)}" for name, c in compiled.items() if c.number]
    values = [f"{c.value} AS {_ref('v', name)}" for name, c in compiled.items()]
    # Stage 2 computes numbers before the values that cast them, so it runs in two steps.
    staged = f"SELECT *, {', '.join(texts)} FROM ({source_sql}) AS src"
    if numbers:
        staged = f"SELECT *, {', '.join(numbers)} FROM ({staged}) AS texts"
    staged = f"SELECT *, {', '.join(values)} FROM ({staged}) AS numbers"

    field_reasons = [reason for c in compiled.values() for reason in c.reasons]
    present = [name for name in require_any if name in compiled]
    if present:
        missing = " AND ".join(f"{_ref('v', name)} IS NULL" for name in present)
        field_reasons.append(
            f"CASE WHEN {missing} "
            f"THEN {_quote('no engagement counts (' + ', '.join(present) + ' all missing)')} END"
        )
    structural = (
        f"nullif(concat_ws('; ', {', '.join(structural_checks)}), '')"
        if structural_checks
        else "NULL"
    )
    per_field = (
        f"nullif(concat_ws('; ', {', '.join(field_reasons)}), '')" if field_reasons else "NULL"
    )
    columns = [
        "position",
        "raw",
        *passthrough,
        *(f"{_ref('v', name)} AS {name}" for name in compiled),
        f"coalesce({structural}, {per_field}) AS reject_reason",
    ]
    return f"SELECT {', '.join(columns)} FROM ({staged}) AS fields"
