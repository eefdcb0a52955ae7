"""Defect 9 (store): a store whose version record is missing, or newer than the code, is refused.

Each ends in one line and exit 2 from the CLI, naming what is wrong, never a traceback and
never a store migrated over again or used by code that does not know its schema.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from virtuna.cli import main
from virtuna.store import connect
from virtuna.store.schema import migrations

NEWEST = migrations()[-1].version


def _break(path: Path, sql: str) -> None:
    con = duckdb.connect(str(path))
    con.execute(sql)
    con.close()


CASES = {
    "table-dropped": ("DROP TABLE schema_version", "no schema_version table"),
    "rows-deleted": ("DELETE FROM schema_version", "schema_version table is empty"),
    "middle-row-deleted": ("DELETE FROM schema_version WHERE version = 2", "lacks migration 2"),
    "renamed": ("UPDATE schema_version SET name = 'other' WHERE version = 1", "'other'"),
    "newer": (
        f"INSERT INTO schema_version VALUES ({NEWEST + 1}, 'future', now()::TIMESTAMP)",
        f"schema version {NEWEST + 1}, newer than this code knows (its newest migration is "
        f"{NEWEST})",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_store_with_a_broken_or_newer_version_record_is_refused_in_one_line(
    case: str, db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sql, message = CASES[case]
    _break(db_path, sql)
    before = duckdb.connect(str(db_path))
    recorded = before.execute("SELECT * FROM duckdb_tables() ORDER BY table_name").fetchall()
    before.close()
    assert main(["--db", str(db_path), "init-db"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("virtuna: error: ")
    assert message in err[0]
    after = duckdb.connect(str(db_path))
    assert after.execute("SELECT * FROM duckdb_tables() ORDER BY table_name").fetchall() == (
        recorded
    )
    after.close()


def test_a_new_and_a_current_store_still_open(tmp_path: Path, db_path: Path) -> None:
    with connect(tmp_path / "new.duckdb") as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchall() == [(NEWEST,)]
    with connect(db_path) as con:
        assert con.execute("SELECT count(*) FROM schema_version").fetchall() == [(NEWEST,)]
