"""Users, their API keys (only a sha256 is stored) and their daily usage counts.

A daily limit is enforced by reserving a slot before the work, in one conditional upsert
(`reserve_analysis`, `reserve_profile_scrape`), and giving it back if the work fails. The
upsert is one statement, so two requests can never both take the last slot: within a process
DuckDB refuses the second writer of the row (a write conflict, retried here), and across
processes the store's file lock lets one process write at a time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

import duckdb

from virtuna.store.connection import retry_conflicts, run, utcnow

TIERS = ("free", "starter", "pro")
KEY_PREFIX = "vk_"
PREFIX_LENGTH = 10
Counter = Literal["analysis_count", "profile_scrape_count"]


@dataclass(frozen=True)
class User:
    """One row of users."""

    id: str
    name: str
    tier: str
    creator_handle: str | None


def hash_key(key: str) -> str:
    """The sha256 hex digest of an API key, as stored."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_user(con: duckdb.DuckDBPyConnection, name: str, tier: str = "free") -> tuple[str, str]:
    """Create a user with one API key; returns (user_id, key). The key is never stored."""
    if tier not in TIERS:
        raise ValueError(f"tier {tier!r} is not one of {', '.join(TIERS)}")
    if not name.strip():
        raise ValueError("a user needs a name")
    user_id = str(uuid.uuid4())
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    con.begin()
    try:
        run(
            con,
            "INSERT INTO users (id, name, tier, created_at) VALUES (?, ?, ?, ?)",
            [user_id, name.strip(), tier, now],
        )
        run(
            con,
            "INSERT INTO api_keys (key_hash, user_id, prefix, created_at) VALUES (?, ?, ?, ?)",
            [hash_key(key), user_id, key[:PREFIX_LENGTH], now],
        )
    except BaseException:
        con.rollback()
        raise
    con.commit()
    return user_id, key


def user_for_key(con: duckdb.DuckDBPyConnection, key: str) -> User | None:
    """The user an unrevoked API key belongs to (hashes compared in constant time)."""
    if not key:
        return None
    digest = hash_key(key)
    rows = run(
        con,
        "SELECT k.key_hash, u.id, u.name, u.tier, u.creator_handle FROM api_keys k "
        "JOIN users u ON u.id = k.user_id WHERE k.prefix = ? AND k.revoked_at IS NULL",
        [key[:PREFIX_LENGTH]],
    )
    found = None
    for stored, user_id, name, tier, handle in rows:
        if hmac.compare_digest(str(stored).encode(), digest.encode()):
            found = User(str(user_id), str(name), str(tier), handle)  # type: ignore[arg-type]
    return found


def set_creator_handle(con: duckdb.DuckDBPyConnection, user_id: str, handle: str) -> None:
    """Save the user's own creator handle (the last of concurrent saves wins)."""
    retry_conflicts(
        lambda: run(con, "UPDATE users SET creator_handle = ? WHERE id = ?", [handle, user_id])
    )


def set_outcome_consent(con: duckdb.DuckDBPyConnection, user_id: str, consent: bool) -> bool:
    """Record whether the user's posts' outcomes may be collected; False for an unknown user."""
    rows = retry_conflicts(
        lambda: run(
            con,
            "UPDATE users SET outcome_consent = ? WHERE id = ? RETURNING id",
            [consent, user_id],
        )
    )
    return bool(rows)


def utc_today(now: datetime | None = None) -> date:
    """Today's UTC date (the usage counters' day)."""
    return (now or utcnow()).date()


def next_utc_midnight(now: datetime | None = None) -> datetime:
    """When today's usage counters reset (naive UTC)."""
    return datetime.combine(utc_today(now) + timedelta(days=1), datetime.min.time())


def get_usage(con: duckdb.DuckDBPyConnection, user_id: str, day: date | None = None) -> int:
    """Analyses the user ran on a UTC day (today by default)."""
    rows = run(
        con,
        "SELECT analysis_count FROM usage_daily WHERE user_id = ? AND day = ?",
        [user_id, day or utc_today()],
    )
    return int(rows[0][0]) if rows else 0  # type: ignore[call-overload]


def increment_usage(con: duckdb.DuckDBPyConnection, user_id: str, day: date | None = None) -> int:
    """Count one more analysis for the user on a UTC day; returns the new count."""
    rows = run(
        con,
        "INSERT INTO usage_daily (user_id, day, analysis_count) VALUES (?, ?, 1) "
        "ON CONFLICT (user_id, day) DO UPDATE SET analysis_count = analysis_count + 1 "
        "RETURNING analysis_count",
        [user_id, day or utc_today()],
    )
    return int(rows[0][0])  # type: ignore[call-overload]


def _reserve(
    con: duckdb.DuckDBPyConnection, user_id: str, counter: Counter, limit: int | None
) -> date | None:
    """Take one slot of counter today unless limit slots are taken; the day, or None."""
    if limit is not None and limit <= 0:
        return None
    day = utc_today()
    rows = retry_conflicts(
        lambda: run(
            con,
            f"INSERT INTO usage_daily (user_id, day, {counter}) VALUES ($user, $day, 1) "
            f"ON CONFLICT (user_id, day) DO UPDATE SET {counter} = usage_daily.{counter} + 1 "
            f"WHERE $limit IS NULL OR usage_daily.{counter} < $limit RETURNING {counter}",
            {"user": user_id, "day": day, "limit": limit},
        )
    )
    return day if rows else None


def _release(con: duckdb.DuckDBPyConnection, user_id: str, counter: Counter, day: date) -> None:
    """Give back one slot of counter taken on day (never below zero)."""
    retry_conflicts(
        lambda: run(
            con,
            f"UPDATE usage_daily SET {counter} = {counter} - 1 "
            f"WHERE user_id = ? AND day = ? AND {counter} > 0",
            [user_id, day],
        )
    )


def reserve_analysis(
    con: duckdb.DuckDBPyConnection, user_id: str, *, limit: int | None
) -> date | None:
    """Count one analysis today if fewer than limit were (None: no limit); its day, or None."""
    return _reserve(con, user_id, "analysis_count", limit)


def release_analysis(con: duckdb.DuckDBPyConnection, user_id: str, day: date) -> None:
    """Give back an analysis reserved on day (the analysis failed)."""
    _release(con, user_id, "analysis_count", day)


def reserve_profile_scrape(
    con: duckdb.DuckDBPyConnection, user_id: str, *, limit: int
) -> date | None:
    """Count one profile scrape today if fewer than limit were; its day, or None."""
    return _reserve(con, user_id, "profile_scrape_count", limit)


def release_profile_scrape(con: duckdb.DuckDBPyConnection, user_id: str, day: date) -> None:
    """Give back a profile scrape reserved on day (it could not be started)."""
    _release(con, user_id, "profile_scrape_count", day)
