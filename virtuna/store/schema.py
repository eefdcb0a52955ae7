"""Numbered SQL migrations, applied in order and recorded in `schema_version`.

A migration file is never edited once applied; a change to the schema is a new file
`NNNN_description.sql` in `virtuna/store/migrations/`.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from importlib import resources

import duckdb

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Threads of one process share its database instance, so two of them could both find a new store
# unmigrated and race to create its tables; processes are kept apart by the file lock already.
_migrating = threading.Lock()


class StoreSchemaError(RuntimeError):
    """The store's recorded schema does not fit this code (one line, naming both sides)."""


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


def _has_tables(con: duckdb.DuckDBPyConnection) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND NOT temporary AND table_name <> 'schema_version'"
    ).fetchall()
    return int(rows[0][0]) > 0


def applied_version(con: duckdb.DuckDBPyConnection) -> int:
    """The highest migration applied to this store (0 for a new store).

    A store with tables but no version record (the table or its rows were deleted) is refused:
    migrating it again from 1 would fail half-way or apply a migration twice.
    """
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND table_name = 'schema_version'"
    ).fetchall()[0][0]
    if not exists:
        if _has_tables(con):
            raise StoreSchemaError(
                "the store has tables but no schema_version table, so its schema version is "
                "unknown; restore the store (or its schema_version table) from a backup"
            )
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
        ).fetchall()
    rows = con.execute("SELECT version, name FROM schema_version ORDER BY version").fetchall()
    if not rows and _has_tables(con):
        raise StoreSchemaError(
            "the store has tables but its schema_version table is empty, so its schema version "
            "is unknown; restore the store (or its schema_version rows) from a backup"
        )
    return int(rows[-1][0]) if rows else 0


def _fill_after(con: duckdb.DuckDBPyConnection, version: int) -> None:
    """Data a migration's new tables derive from stored rows, filled in its transaction."""
    if version == 10:
        from virtuna.store.online import refresh_online

        refresh_online(con)


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply the migrations this store lacks, each in its own transaction; return their numbers.

    A store newer than this code (a higher version than its newest migration), or one whose
    recorded migrations have other names than this code's, is refused, naming both.
    """
    with _migrating:
        return _migrate(con)


def _migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    current = applied_version(con)
    shipped = migrations()
    newest = shipped[-1].version if shipped else 0
    if current > newest:
        raise StoreSchemaError(
            f"the store is at schema version {current}, newer than this code knows (its newest "
            f"migration is {newest}); upgrade virtuna before using this store"
        )
    recorded = dict(con.execute("SELECT version, name FROM schema_version").fetchall())
    for migration in shipped[:current]:
        if migration.version not in recorded:
            raise StoreSchemaError(
                f"the store's schema_version lacks migration {migration.version} "
                f"({migration.name}) below its version {current} (rows were deleted); "
                "restore the store from a backup"
            )
        if recorded[migration.version] != migration.name:
            raise StoreSchemaError(
                f"the store's migration {migration.version} is "
                f"{recorded.get(migration.version)!r} but this code's is {migration.name!r}; "
                "the store was made by another version of virtuna"
            )
    done = []
    for migration in shipped:
        if migration.version <= current:
            continue
        con.begin()
        try:
            con.execute(migration.sql).fetchall()
            _fill_after(con, migration.version)
            con.execute(
                "INSERT INTO schema_version VALUES (?, ?, now()::TIMESTAMP)",
                [migration.version, migration.name],
            ).fetchall()
        except duckdb.Error as exc:
            con.rollback()
            raise StoreSchemaError(
                f"migration {migration.version} ({migration.name}) failed on this store at "
                f"schema version {current}: {' '.join(str(exc).split())}"
            ) from exc
        except BaseException:
            con.rollback()
            raise
        con.commit()
        done.append(migration.version)
    return done
