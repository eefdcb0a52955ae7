"""Apify CSV exports: flattened columns folded back into items, full and reduced schemas."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import RAW
from virtuna.ingest import detect_format, ingest_file
from virtuna.ingest.apify_csv import is_reduced, map_apify_csv_rows, unflatten
from virtuna.store import connect

EXPORTS = RAW / "tiktok_apify_exports_vn_2025"


def _rows(name: str, numbers: list[int]) -> tuple[list[str], list[list[str]]]:
    with (EXPORTS / name).open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [row for number, row in enumerate(reader) if number in numbers]
    return header, rows


def _cut(name: str, numbers: list[int], target: Path) -> Path:
    """The header and the given data rows of a real export, written as Apify writes them."""
    header, rows = _rows(name, numbers)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return target


def test_unflatten_folds_objects_and_indexed_lists_and_drops_empty_cells() -> None:
    header = ["id", "authorMeta/fans", "hashtags/0/name", "hashtags/1/name", "hashtags/2/name"]
    header += ["mentions/0", "videoMeta/subtitleLinks/0/language", "text"]
    row = ["7", "12", "hotel", "", "review", "", "vie-VN", ""]
    assert unflatten(header, row) == {
        "id": "7",
        "authorMeta": {"fans": "12"},
        "hashtags": [{"name": "hotel"}, {"name": "review"}],
        "videoMeta": {"subtitleLinks": [{"language": "vie-VN"}]},
    }


def test_a_full_export_row_maps_like_an_apify_item() -> None:
    header, rows = _rows("hotelsaigon190.csv", [174])
    assert not is_reduced(header)
    (row,) = map_apify_csv_rows(header, rows, [174], source_ref="r", seen_keys={}).rows.to_pylist()
    source = dict(zip(header, rows[0], strict=True))
    assert row["platform_video_id"] == "7398151412611321104" == source["id"]
    posted = datetime.fromtimestamp(int(source["createTime"]), UTC).replace(tzinfo=None)
    assert row["posted_at"] == posted
    assert (row["views"], row["author_followers"]) == (225_700, 23_800)
    assert row["sound_id"] == source["musicMeta/musicId"]
    assert row["saves"] == int(source["collectCount"])
    names = [source[c].lower() for c in header if c.startswith("hashtags/") and c.endswith("/name")]
    assert row["hashtags"] == [n for n in dict.fromkeys(names) if n]
    assert row["source"] == "apify_csv"


def test_a_reduced_export_row_takes_id_time_and_handle_from_url_and_id() -> None:
    header, rows = _rows("reviewkhachsan500.csv", [0])  # 13 columns, no authorMeta/name
    assert is_reduced(header) and "authorMeta/name" not in header
    batch = map_apify_csv_rows(header, rows, [0], source_ref="r", seen_keys={})
    (row,) = batch.rows.to_pylist()
    # webVideoUrl https://www.tiktok.com/@coinecoinee/video/7502812971429612807
    assert row["platform_video_id"] == "7502812971429612807"
    assert row["posted_at"] == datetime(2025, 5, 10, 13, 46, 13)  # id >> 32, UTC
    assert row["author_handle"] == "coinecoinee"
    assert (row["views"], row["likes"], row["comments"], row["shares"]) == (907, 42, 2, 5)
    assert row["author_followers"] == 33
    assert row["author_verified"] is None and row["sound_id"] is None
    assert "salarattanakosinbangkok" in row["hashtags"]  # from the caption: no tag list
    assert batch.fill_only


@pytest.mark.parametrize("full_first", [True, False])
def test_the_full_schema_row_survives_whatever_the_order(
    tmp_path: Path, db_path: Path, full_first: bool
) -> None:
    # 7398151412611321104: 224,000 views in the reduced homestay_latest.csv, 225,700 in the
    # full hotelsaigon190.csv.
    full = _cut("hotelsaigon190.csv", [174], tmp_path / "exports" / "full.csv")
    reduced = _cut("homestay_latest.csv", [0], tmp_path / "exports" / "reduced.csv")
    order = [full, reduced] if full_first else [reduced, full]
    reports = [ingest_file(p, db_path=db_path, source_ref=f"exports/{p.name}") for p in order]
    assert [(r.inserted, r.updated) for r in reports] == [(1, 0), (0, 1)]
    with connect(db_path) as con:
        stored = con.execute(
            "SELECT views, sound_id IS NOT NULL, source_ref FROM scraped_videos"
        ).fetchall()
    assert stored == [(225_700, True, "exports/full.csv")]


def test_detects_every_export_in_the_folder() -> None:
    assert {detect_format(p) for p in EXPORTS.glob("*.csv")} == {"apify_csv"}


def test_a_count_that_does_not_parse_is_a_reject(tmp_path: Path, db_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        '"webVideoUrl","playCount","diggCount","authorMeta/fans"\n'
        '"https://www.tiktok.com/@a/video/7502812971429612807","1.2M","3","4"\n',
        encoding="utf-8-sig",
    )
    report = ingest_file(path, db_path=db_path)
    assert (report.read, report.rejected) == (1, 1)
    with connect(db_path) as con:
        (reason,) = con.execute("SELECT reason FROM ingest_rejects").fetchone()
    assert reason == "views: not a number (1.2M)"
