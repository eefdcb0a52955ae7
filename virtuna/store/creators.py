"""creators and creator_snapshots: profiles we track, and one snapshot per creator per day."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

import duckdb

from virtuna.store.connection import mark_changed, run, utcnow

# TikTok handles: 2-24 letters, digits, underscores and dots (a leading '@' is dropped).
_HANDLE = re.compile(r"^[a-z0-9_.]{2,24}$")


def normalize_handle(handle: str) -> str:
    """A creator handle in canonical form (no '@', lowercased); ValueError if it is not one."""
    clean = handle.strip().lstrip("@").strip().lower()
    if not _HANDLE.fullmatch(clean):
        raise ValueError(
            f"creator handle {handle!r} is not valid: expected 2-24 letters, digits, '_' or '.'"
        )
    return clean


@dataclass(frozen=True)
class Creator:
    """One row of creators."""

    handle: str
    author_id: str | None
    nickname: str | None
    followers: int | None
    hearts: int | None
    videos: int | None
    verified: bool | None
    bio: str | None
    tracked: bool
    scrape_status: str | None
    last_error: str | None
    last_scraped_at: datetime | None


_COLUMNS = (
    "handle, author_id, nickname, followers, hearts, videos, verified, bio, tracked, "
    "scrape_status, last_error, last_scraped_at"
)


def get_creator(con: duckdb.DuckDBPyConnection, handle: str) -> Creator | None:
    """The stored creator, if any."""
    rows = run(con, f"SELECT {_COLUMNS} FROM creators WHERE handle = ?", [handle])
    return Creator(*rows[0]) if rows else None  # type: ignore[arg-type]


def track_creator(con: duckdb.DuckDBPyConnection, handle: str) -> None:
    """Mark a creator as tracked with a scrape pending (created if new)."""
    now = utcnow()
    run(
        con,
        "INSERT INTO creators (handle, tracked, scrape_status, created_at, updated_at) "
        "VALUES ($h, TRUE, 'pending', $now, $now) ON CONFLICT (handle) DO UPDATE SET "
        "tracked = TRUE, scrape_status = 'pending', updated_at = $now",
        {"h": handle, "now": now},
    )


def set_scrape_status(
    con: duckdb.DuckDBPyConnection, handle: str, status: str, error: str | None = None
) -> None:
    """Record how a creator's profile scrape went (error kept when it failed)."""
    run(
        con,
        "UPDATE creators SET scrape_status = $s, last_error = $e, updated_at = $now "
        "WHERE handle = $h",
        {"s": status, "e": error, "now": utcnow(), "h": handle},
    )


def save_profile(
    con: duckdb.DuckDBPyConnection,
    handle: str,
    *,
    author_id: str | None,
    nickname: str | None,
    followers: int | None,
    hearts: int | None,
    videos: int | None,
    verified: bool | None,
    bio: str | None,
) -> None:
    """Store a scraped profile and mark the scrape succeeded."""
    now = utcnow()
    run(
        con,
        "INSERT INTO creators (handle, author_id, nickname, followers, hearts, videos, verified, "
        "bio, tracked, scrape_status, last_scraped_at, created_at, updated_at) VALUES ($h, $id, "
        "$nick, $fans, $hearts, $videos, $verified, $bio, FALSE, 'succeeded', $now, $now, $now) "
        "ON CONFLICT (handle) DO UPDATE SET author_id = coalesce(excluded.author_id, "
        "creators.author_id), nickname = coalesce(excluded.nickname, creators.nickname), "
        "followers = coalesce(excluded.followers, creators.followers), "
        "hearts = coalesce(excluded.hearts, creators.hearts), "
        "videos = coalesce(excluded.videos, creators.videos), "
        "verified = coalesce(excluded.verified, creators.verified), "
        "bio = coalesce(excluded.bio, creators.bio), scrape_status = 'succeeded', "
        "last_error = NULL, last_scraped_at = $now, updated_at = $now",
        {
            "h": handle,
            "id": author_id,
            "nick": nickname,
            "fans": followers,
            "hearts": hearts,
            "videos": videos,
            "verified": verified,
            "bio": bio,
            "now": now,
        },
    )
    mark_changed(con)


def tracked_handles(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every tracked creator's handle."""
    return [str(r[0]) for r in run(con, "SELECT handle FROM creators WHERE tracked ORDER BY 1")]


def snapshot_creator(con: duckdb.DuckDBPyConnection, handle: str, day: date | None = None) -> None:
    """Keep the creator's current counts as that day's snapshot (one per day; later wins)."""
    run(
        con,
        "INSERT INTO creator_snapshots SELECT handle, $day, followers, hearts, videos, $now "
        "FROM creators WHERE handle = $h ON CONFLICT (handle, snapshot_date) DO UPDATE SET "
        "followers = excluded.followers, hearts = excluded.hearts, videos = excluded.videos, "
        "taken_at = excluded.taken_at",
        {"day": day or utcnow().date(), "now": utcnow(), "h": handle},
    )
