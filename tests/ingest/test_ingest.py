"""Ingest of whole files: the bundled real data, format detection, idempotence, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import RAW, item_line, make_item
from virtuna.ingest import IngestError, detect_format, ingest_file
from virtuna.store import connect

BUNDLED = {
    "tiktok_trending_dec2020.json": ("drawrowfly", 1000),
    "tiktok_apify_2023_sample.jsonl": ("apify", 192),
    "tiktok_user_timelines_2021.csv": ("timeline_csv", 13337),
    "tiktok_trending_2025.csv": ("trending_csv", 7225),
}


def _counts(db: Path) -> dict[str, int]:
    with connect(db) as con:
        tables = ("scraped_videos", "ingest_rejects")
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in tables}


@pytest.mark.slow
def test_bundled_real_data_ingests_completely_and_a_second_time_changes_nothing(
    db_path: Path,
) -> None:
    first = {name: ingest_file(RAW / name, db_path=db_path) for name in BUNDLED}
    for name, (source, rows) in BUNDLED.items():
        report = first[name]
        assert (report.source, report.read) == (source, rows)
        assert report.balanced
        assert report.inserted + report.rejected == rows
    after_first = _counts(db_path)
    assert after_first["scraped_videos"] == sum(r.inserted for r in first.values())

    second = {name: ingest_file(RAW / name, db_path=db_path) for name in BUNDLED}
    for name, report in second.items():
        assert report.inserted == 0
        assert report.updated == first[name].inserted
        assert report.balanced
    assert _counts(db_path) == after_first

    with connect(db_path) as con:
        hashed = con.execute(
            "SELECT count(*) FROM scraped_videos, unnest(hashtags) AS t(tag) "
            "WHERE starts_with(tag, '#') OR tag <> lower(tag)"
        ).fetchall()
        no_time = con.execute(
            "SELECT count(*) FROM scraped_videos WHERE posted_at IS NULL"
        ).fetchall()
        followers = con.execute(
            "SELECT count(*) FROM scraped_videos "
            "WHERE source = 'apify' AND author_followers IS NULL"
        ).fetchall()
    assert hashed == [(0,)]
    assert no_time == [(0,)]
    assert followers == [(0,)]


@pytest.mark.parametrize(("name", "expected"), [(n, s) for n, (s, _) in BUNDLED.items()])
def test_detects_each_bundled_format(name: str, expected: str) -> None:
    assert detect_format(RAW / name) == expected


def test_unknown_format_and_missing_file_are_clear_errors(tmp_path: Path) -> None:
    odd = tmp_path / "notes.csv"
    odd.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(IngestError, match="cannot tell its format; pass --format"):
        ingest_file(odd)
    with pytest.raises(IngestError, match="no such file"):
        ingest_file(tmp_path / "absent.jsonl")
    with pytest.raises(IngestError, match="unknown format 'xml'"):
        ingest_file(odd, fmt="xml")
    with pytest.raises(IngestError, match="missing columns"):
        ingest_file(odd, fmt="trending_csv")


def test_jsonl_with_bad_lines_keeps_the_good_and_records_the_bad(
    tmp_path: Path, db_path: Path
) -> None:
    path = tmp_path / "run.jsonl"
    lines = [item_line(id="1"), "{broken", "", item_line(id="2", playCount=-3), item_line(id="3")]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = ingest_file(path, db_path=db_path)
    assert (report.read, report.inserted, report.rejected) == (4, 2, 2)
    with connect(db_path) as con:
        rejects = con.execute(
            "SELECT source, source_ref, position, reason FROM ingest_rejects ORDER BY position"
        ).fetchall()
    assert rejects == [
        ("apify", "run.jsonl", 1, "malformed JSON"),
        ("apify", "run.jsonl", 3, "views: out of range (-3)"),
    ]


def test_apify_json_array_export_is_read(tmp_path: Path, db_path: Path) -> None:
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps([make_item(id="1"), make_item(id="2")]), encoding="utf-8")
    assert detect_format(path) == "apify"
    assert ingest_file(path, db_path=db_path).inserted == 2


def test_json_that_is_neither_layout_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "odd.json"
    path.write_text('{"videos": 3}', encoding="utf-8")
    with pytest.raises(ValueError, match="expected a JSON array"):
        ingest_file(path, fmt="drawrowfly")


def test_progress_reports_the_bytes_read(tmp_path: Path, db_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    path.write_text(item_line(id="1") + "\n", encoding="utf-8")
    seen: list[int] = []
    ingest_file(path, db_path=db_path, progress=seen.append)
    assert sum(seen) == path.stat().st_size
