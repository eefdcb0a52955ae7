"""The `virtuna` command: its outputs and its one-line errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import RAW, item_line
from virtuna.cli import main
from virtuna.store import connect
from virtuna.store.schema import migrations


def test_init_db_reports_the_schema_version(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--db", str(tmp_path / "s.duckdb"), "init-db"]) == 0
    assert f"schema version {len(migrations())}" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_ingests_a_data_folder_and_summarises(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tier-training report is run by tests/test_notebooks.py; here it would add minutes.
    monkeypatch.setattr("virtuna.cli.DEMO_REPORTS", {"tier-diagnosis": {}})
    data = tmp_path / "raw"
    data.mkdir()
    shutil.copy(RAW / "tiktok_apify_2023_sample.jsonl", data)
    (data / "extra.jsonl").write_text(item_line(id="1") + "\n{oops\n", encoding="utf-8")
    (data / "PROVENANCE.md").write_text("not data", encoding="utf-8")
    reports = tmp_path / "reports"
    argv = [
        "--db",
        str(tmp_path / "s.duckdb"),
        "demo",
        "--data-dir",
        str(data),
        "--reports-dir",
        str(reports),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith("[")}
    assert "kept with their reason in ingest_rejects: 1 " in lines["ingest"]
    assert "193 videos from 1 sources" in out  # 192 real items + 1 good extra
    # Every job ran as a scheduled run would; with this little data the model is not trained.
    assert "succeeded" in lines["calculate-trends"] and "skipped" in lines["scrape-trending"]
    assert "skipped" in lines["retrain-ml"] and "skipped" in lines["backtest"]
    assert "skipped" in lines["calibration-audit"] and "succeeded" in lines["model-health"]
    assert (reports / "index.html").is_file() and "/100: the chance it" in out
    # Quiet: a line per step, the summary and the predictions; the log lines are in a file.
    assert len(out.splitlines()) <= 40
    assert out.rstrip().splitlines()[-1].split()[0] == "reports"  # it ends with the summary
    assert "stage complete" not in out and "stage complete" in (reports / "demo.log").read_text()


def test_ingest_prints_counts(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(item_line(id="1") + "\n", encoding="utf-8")
    assert main(["--db", str(tmp_path / "s.duckdb"), "ingest", str(path)]) == 0
    assert "x.jsonl" in capsys.readouterr().out


def test_ingest_of_a_folder_takes_every_data_file_below_it(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = tmp_path / "data"
    (data / "exports").mkdir(parents=True)
    (data / "a.jsonl").write_text(item_line(id="1") + "\n", encoding="utf-8")
    (data / "exports" / "b.jsonl").write_text(item_line(id="2") + "\n{oops\n", encoding="utf-8")
    (data / "README.md").write_text("not data", encoding="utf-8")
    db = tmp_path / "s.duckdb"
    assert main(["--db", str(db), "ingest", str(data)]) == 0
    out = capsys.readouterr().out
    assert "a.jsonl " in out and "exports/b.jsonl " in out
    with connect(db) as con:
        refs = con.execute("SELECT source_ref FROM scraped_videos ORDER BY 1").fetchall()
        rejects = con.execute("SELECT source_ref, position FROM ingest_rejects").fetchall()
    assert refs == [("a.jsonl",), ("exports/b.jsonl",)]
    assert rejects == [("exports/b.jsonl", 1)]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ingest", "missing.jsonl"], "missing.jsonl: no such file"),
        (["ingest", "{tmp}"], "no data files"),
        (["demo", "--data-dir", "{tmp}"], "no data files"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["--db", str(tmp_path / "s.duckdb"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("virtuna: error: ")
    assert message in err[-1]


def test_bad_setting_exits_2_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("VIRTUNA_ENV", "staging")
    assert main(["init-db"]) == 2
    assert "VIRTUNA_ENV" in capsys.readouterr().err


def test_settings_hides_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "sk-hidden-999")
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert "sk-hidden-999" not in out
    assert "GEMINI_API_KEY=**********" in out


def test_users_consent_turns_outcome_collection_on_and_off(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    db = str(tmp_path / "s.duckdb")
    assert main(["--db", db, "users", "create", "ana"]) == 0
    assert main(["--db", db, "users", "consent", "ana", "on"]) == 0
    assert "outcome consent on" in capsys.readouterr().out
    with connect(db) as con:
        assert con.execute("SELECT outcome_consent FROM users").fetchall() == [(True,)]
    assert main(["--db", db, "users", "consent", "ana", "off"]) == 0
    with connect(db) as con:
        assert con.execute("SELECT outcome_consent FROM users").fetchall() == [(False,)]
    assert main(["--db", db, "users", "consent", "nobody", "on"]) == 2
    assert "no user named 'nobody'" in capsys.readouterr().err
