"""Numbered SQL migrations, applied in order and recorded in `schema_version`.

A migration file is never edited once applied; a change to the schema is a new file
`NNNN_description.sql` in `virtuna/store/migrations/`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import duckdb

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One migration file: its number, name and SQL."""

    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every migration shipped with the package, in version order."""
    found = []
    for entry in resources.files("virtuna.store").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration numbers must run 1, 2, 3 ... without gaps; found {versions}")
    return found


def applied_version(con: duckdb.DuckDBPyConnection) -> int:
    """The highest migration applied to this store (0 for a new store)."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
    ).fetchall()
    rows = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()
    return int(rows[0][0])


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply the migrations this store lacks, each in its own transaction; return their numbers."""
    current = applied_version(con)
    done = []
    for migration in migrations():
        if migration.version <= current:
            continue
        con.begin()
        try:
            con.execute(migration.sql).fetchall()
            con.execute(
                "INSERT INTO schema_version VALUES (?, ?, now()::TIMESTAMP)",
                [migration.version, migration.name],
            ).fetchall()
        except BaseException:
            con.rollback()
            raise
        con.commit()
        done.append(migration.version)
    return done
