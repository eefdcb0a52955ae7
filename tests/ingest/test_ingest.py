"""Ingest of whole files: the bundled real data, format detection, idempotence, bad input."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import RAW, item_line, make_item
from virtuna.constants import INGEST_FORMATS
from virtuna.ingest import (
    IngestError,
    IngestReport,
    apify_csv,
    collection_of,
    data_files,
    detect_format,
    ingest_file,
)
from virtuna.ingest.csv_tables import CSV_FORMATS
from virtuna.store import connect

BUNDLED = {
    "tiktok_trending_dec2020.json": ("drawrowfly", 1000),
    "tiktok_apify_2023_sample.jsonl": ("apify", 192),
    "tiktok_user_timelines_2021.csv": ("timeline_csv", 13337),
    "tiktok_trending_2025.csv": ("trending_csv", 7225),
}
# The collections added for leave-one-source-out evaluation: format and rows read.
NEW = {
    "tiktok_creator_timelines_vn_2025.csv": ("vn_web_csv", 11728),
    "tiktok_creator_timelines_vn_2025_b.csv": ("vn_web_csv", 7002),
    "tiktok_foryou_feed_vn_2025.csv": ("vn_web_csv", 10102),
    "tiktok_suggested_creators_2020_part1.csv": ("suggested_csv", 11921),
    "tiktok_suggested_creators_2020_part2.csv": ("suggested_csv", 11903),
    "tiktok_suggested_creators_2020_part3.csv": ("suggested_csv", 12677),
    "tiktok_suggested_creators_2020_part4.csv": ("suggested_csv", 5201),
}
APIFY_EXPORTS = "tiktok_apify_exports_vn_2025"


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


@pytest.mark.parametrize(("name", "expected"), [(n, s) for n, (s, _) in {**BUNDLED, **NEW}.items()])
def test_detects_each_bundled_format(name: str, expected: str) -> None:
    assert detect_format(RAW / name) == expected


@pytest.mark.slow
def test_the_new_real_collections_ingest_balanced_with_every_reject_explained(
    bundled_ingest: tuple[Path, dict[str, IngestReport]], tmp_path: Path
) -> None:
    # The session's store of every bundled file (in data_files order) holds these collections;
    # their reports are those of that ingest, and the checks below look at their rows only.
    store, all_reports = bundled_ingest
    files = [(p, ref) for p, ref in data_files(RAW) if ref in NEW or ref.startswith(APIFY_EXPORTS)]
    assert len(files) == len(NEW) + 39
    reports = {ref: all_reports[ref] for _, ref in files}
    for ref, report in reports.items():
        assert report.balanced, report
        if ref in NEW:
            assert (report.source, report.read) == NEW[ref]
        else:
            assert report.source == "apify_csv"
    exports = [r for ref, r in reports.items() if ref.startswith(APIFY_EXPORTS)]
    assert sum(r.read for r in exports) == 8200
    db_path = tmp_path / "bundled.duckdb"
    shutil.copy(store, db_path)
    with connect(db_path) as con:
        con.execute("CREATE TEMP TABLE refs (ref VARCHAR)")
        con.executemany("INSERT INTO refs VALUES (?)", [[ref] for ref in reports])
        mine = "source_ref IN (SELECT ref FROM refs)"
        per_source = dict(
            con.execute(
                f"SELECT source, count(*) FROM scraped_videos WHERE {mine} GROUP BY 1"
            ).fetchall()
        )
        unexplained = con.execute(
            f"SELECT count(*) FROM ingest_rejects WHERE {mine} AND nullif(reason, '') IS NULL"
        ).fetchone()
        refs = {
            r
            for (r,) in con.execute(
                f"SELECT DISTINCT source_ref FROM scraped_videos WHERE {mine}"
            ).fetchall()
        }
        later = con.execute(
            f"SELECT count(*) FROM scraped_videos WHERE {mine} AND scraped_at < posted_at"
        ).fetchone()
        reasons = con.execute(
            f"SELECT source_ref, reason, count(*) FROM ingest_rejects WHERE {mine} "
            "GROUP BY ALL ORDER BY 3 DESC"
        ).fetchall()
    # No row of these files is broken; a reject would be listed here with its reason.
    assert reasons == []
    assert unexplained == (0,) and later == (0,)
    # Repeats are updates, so the store holds each video once: 27,898 distinct ids in the three
    # Vietnamese files (the 390 re-scrapes in _b and the 544 feed videos the timelines hold
    # again are updates), 41,677 in the suggested parts (25 in both parts 3 and 4) and 5,202
    # in the exports (2,998 repeats), 3 of which the feed scraped later: the feed's row wins.
    assert per_source == {"vn_web_csv": 27_898, "suggested_csv": 41_677, "apify_csv": 5_199}
    assert f"{APIFY_EXPORTS}/hotelcantho210.csv" in refs

    # A second ingest of the re-scraped file and of a reduced export changes nothing.
    checksum = (
        "SELECT sum(hash(platform_video_id, views, likes, scraped_at, source_ref)) "
        "FROM scraped_videos"
    )
    with connect(db_path) as con:
        before = con.execute(checksum).fetchone()
    for ref in ("tiktok_creator_timelines_vn_2025_b.csv", f"{APIFY_EXPORTS}/homestay_latest.csv"):
        again = ingest_file(RAW / ref, db_path=db_path, source_ref=ref)
        assert again.inserted == 0 and again.updated == again.read
    with connect(db_path) as con:
        assert con.execute(checksum).fetchone() == before


@pytest.mark.parametrize(
    ("ref", "collection"),
    [
        ("tiktok_apify_exports_vn_2025/hotelcantho210.csv", "tiktok_apify_exports_vn_2025"),
        ("a/b/c.jsonl", "a"),
        ("tiktok_creator_timelines_vn_2025.csv", "tiktok_creator_timelines_vn_2025"),
        ("tiktok_creator_timelines_vn_2025_b.csv", "tiktok_creator_timelines_vn_2025"),
        ("tiktok_suggested_creators_2020_part4.csv", "tiktok_suggested_creators_2020"),
        ("tiktok_suggested_creators_2020_part12.csv", "tiktok_suggested_creators_2020"),
        ("tiktok_foryou_feed_vn_2025.csv", "tiktok_foryou_feed_vn_2025"),
        ("tiktok_trending_dec2020.json", "tiktok_trending_dec2020"),
        ("my_bbq_part.csv", "my_bbq_part"),
        ("club_b_b.csv", "club_b"),
        ("HbZk3kP9aX2", "HbZk3kP9aX2"),  # an Apify run id
    ],
)
def test_collection_of(ref: str, collection: str) -> None:
    assert collection_of(ref) == collection


def test_data_files_finds_every_data_file_below_a_folder_named_relative_to_it(
    tmp_path: Path,
) -> None:
    for name in ("b.csv", "sub/a.jsonl", "sub/deeper/c.json", "PROVENANCE.md", ".hidden/x.csv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("", encoding="utf-8")
    assert [ref for _, ref in data_files(tmp_path)] == ["b.csv", "sub/a.jsonl", "sub/deeper/c.json"]


def test_the_format_list_names_every_format_the_readers_know() -> None:
    readers = {"apify", "drawrowfly", apify_csv.NAME, *(fmt.name for fmt in CSV_FORMATS)}
    assert set(INGEST_FORMATS) == readers
    assert len(INGEST_FORMATS) == len(readers)


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


def test_ingest_volume_counts_new_videos_and_rejects_per_day_and_source(db_path: Path) -> None:
    from virtuna.ingest import ingest_volume

    ingest_file(RAW / "tiktok_apify_2023_sample.jsonl", db_path=db_path)
    with connect(db_path) as con:
        con.execute(
            "INSERT INTO ingest_rejects VALUES ('drawrowfly', 'x.json', 0, 'no id', NULL, "
            "TIMESTAMP '2020-12-01 10:00')"
        )
        volume = ingest_volume(con)
        recent = ingest_volume(con, since=datetime(2021, 1, 1))
    rows = {(f"{r.day:%Y-%m-%d}", r.source): (r.videos, r.rejected) for r in volume.itertuples()}
    assert rows[("2020-12-01", "drawrowfly")] == (0, 1)
    assert [counts for (_, source), counts in rows.items() if source == "apify"] == [(192, 0)]
    assert "drawrowfly" not in set(recent["source"])
