"""trending_sounds and trending_hashtags: the snapshot in force at a moment ("trends as of t")."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

from virtuna.store.connection import run

TREND_TABLES = ("trending_sounds", "trending_hashtags")


def snapshot_as_of(
    con: duckdb.DuckDBPyConnection, moment: datetime, *, table: str = "trending_sounds"
) -> tuple[datetime, int] | None:
    """(as_of, window_hours) of the newest snapshot taken at or before `moment`, if any."""
    if table not in TREND_TABLES:
        raise ValueError(f"unknown trend table {table!r}")
    rows = run(
        con,
        f"SELECT as_of, window_hours FROM {table} WHERE as_of <= $moment "
        "ORDER BY as_of DESC, window_hours LIMIT 1",
        {"moment": moment},
    )
    return (rows[0][0], int(rows[0][1])) if rows else None  # type: ignore[return-value]


def _snapshot_frame(
    con: duckdb.DuckDBPyConnection, table: str, moment: datetime, order: str, limit: int | None
) -> pd.DataFrame:
    found = snapshot_as_of(con, moment, table=table)
    if found is None:
        return con.sql(f"SELECT * FROM {table} LIMIT 0").df()
    as_of, window = found
    limit_sql = f"LIMIT {int(limit)}" if limit is not None else ""
    return con.execute(
        f"SELECT * FROM {table} WHERE as_of = $as_of AND window_hours = $w ORDER BY {order} "
        f"{limit_sql}",
        {"as_of": as_of, "w": window},
    ).df()


def top_sounds(
    con: duckdb.DuckDBPyConnection, moment: datetime, limit: int | None = 50
) -> pd.DataFrame:
    """The trending sounds of the snapshot in force at `moment`, highest velocity first."""
    return _snapshot_frame(con, "trending_sounds", moment, "velocity_score DESC, sound_key", limit)


def hashtag_trends(
    con: duckdb.DuckDBPyConnection, moment: datetime, limit: int | None = None
) -> pd.DataFrame:
    """The hashtag snapshot in force at `moment`, highest velocity first."""
    return _snapshot_frame(con, "trending_hashtags", moment, "velocity_score DESC, hashtag", limit)
