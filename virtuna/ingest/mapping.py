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

Kind = Literal["text", "count", "number", "bool", "epoch", "datetime"]

# Post times outside this range are data errors (TikTok's predecessor launched in 2014).
EARLIEST_POST = "2014-01-01"
LATEST_POST_SQL = "now()::TIMESTAMP + INTERVAL 2 DAY"


@dataclass(frozen=True)
class FieldMap:
    """Where one scraped_videos column comes from and what kind of value it must hold."""

    column: str
    expr: str
    kind: Kind = "text"
    required: bool = False


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _cast_and_reasons(field: FieldMap) -> tuple[str, list[str]]:
    x = f"nullif(trim(CAST(({field.expr}) AS VARCHAR)), '')"
    label = field.column
    reasons: list[str] = []
    if field.required:
        reasons.append(f"CASE WHEN {x} IS NULL THEN {_quote(label + ': missing')} END")
    if field.kind == "text":
        return x, reasons
    if field.kind in ("count", "number"):
        num = f"TRY_CAST({x} AS DOUBLE)"
        reasons.append(
            f"CASE WHEN {x} IS NOT NULL AND {num} IS NULL "
            f"THEN {_quote(label + ': not a number (')} || {x} || ')' "
            f"WHEN {num} < 0 OR isnan({num}) OR isinf({num}) "
            f"THEN {_quote(label + ': out of range (')} || {x} || ')' END"
        )
        if field.kind == "number":
            return num, reasons
        reasons.append(
            f"CASE WHEN {num} <> floor({num}) "
            f"THEN {_quote(label + ': not a whole number (')} || {x} || ')' END"
        )
        return f"TRY_CAST({num} AS BIGINT)", reasons
    if field.kind == "bool":
        cast = (
            f"CASE WHEN lower({x}) IN ('true', '1', '1.0', 'yes') THEN TRUE "
            f"WHEN lower({x}) IN ('false', '0', '0.0', 'no') THEN FALSE END"
        )
        reasons.append(
            f"CASE WHEN {x} IS NOT NULL AND ({cast}) IS NULL "
            f"THEN {_quote(label + ': not a boolean (')} || {x} || ')' END"
        )
        return cast, reasons
    if field.kind == "epoch":
        seconds = f"TRY_CAST({x} AS DOUBLE)"
        cast = (
            f"CASE WHEN {seconds} BETWEEN 0 AND 1e11 "
            f"THEN make_timestamp(CAST({seconds} * 1000000 AS BIGINT)) END"
        )
    else:  # datetime text
        cast = f"TRY_CAST({x} AS TIMESTAMP)"
    reasons.append(
        f"CASE WHEN {x} IS NOT NULL AND ({cast}) IS NULL "
        f"THEN {_quote(label + ': not a time (')} || {x} || ')' "
        f"WHEN ({cast}) < TIMESTAMP '{EARLIEST_POST}' OR ({cast}) > {LATEST_POST_SQL} "
        f"THEN {_quote(label + ': out of range (')} || CAST(({cast}) AS VARCHAR) || ')' END"
    )
    return cast, reasons


def compile_select(
    source_sql: str,
    fields: list[FieldMap],
    *,
    structural_checks: list[str] = (),  # type: ignore[assignment]
    passthrough: list[str] = (),  # type: ignore[assignment]
) -> str:
    """A SELECT over `source_sql` giving position, raw, the typed columns and reject_reason.

    `structural_checks` are SQL expressions yielding a reason (or NULL) that, when present,
    replace the per-field reasons (a malformed document has no fields worth listing).
    `passthrough` names source columns copied as they are (for Python post-processing).
    """
    columns = ["position", "raw", *passthrough]
    field_reasons: list[str] = []
    for field in fields:
        cast, reasons = _cast_and_reasons(field)
        columns.append(f"{cast} AS {field.column}")
        field_reasons.extend(reasons)
    structural = (
        f"nullif(concat_ws('; ', {', '.join(structural_checks)}), '')"
        if structural_checks
        else "NULL"
    )
    per_field = (
        f"nullif(concat_ws('; ', {', '.join(field_reasons)}), '')" if field_reasons else "NULL"
    )
    columns.append(f"coalesce({structural}, {per_field}) AS reject_reason")
    return f"SELECT {', '.join(columns)} FROM ({source_sql}) AS src"
