"""Linking analyses to posted videos: URL parsing, caption matching and its measured threshold."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import make_item
from virtuna.ingest import ingest_file
from virtuna.outcomes.linking import (
    MATCH_THRESHOLD,
    LinkError,
    auto_link,
    false_link_rates,
    id_posted_at,
    parse_video_url,
)
from virtuna.store import connect, run, utcnow
from virtuna.store.users import create_user, set_outcome_consent

CAPTION = "Wait for it... the secret to crispy rice every single time #cooking #fyp"


def test_parse_video_url_keeps_only_the_canonical_url() -> None:
    ref = parse_video_url(" https://www.tiktok.com/@Chef_Ana/video/7300000000000000101?lang=en ")
    assert (ref.handle, ref.video_id) == ("chef_ana", "7300000000000000101")
    assert ref.url == "https://www.tiktok.com/@chef_ana/video/7300000000000000101"
    for bad in ("", "https://vt.tiktok.com/abc", "https://tiktok.com/@a/photo/1", "ftp://x"):
        with pytest.raises(LinkError):
            parse_video_url(bad)


def test_the_video_id_carries_its_creation_time() -> None:
    # The first item of the bundled Apify sample: posted (createTime) 2022-11-16 16:29:55 UTC.
    assert id_posted_at("7166651967932992794") == datetime(2022, 11, 16, 16, 29, 50)
    assert id_posted_at("tl:123") is None


def _store(db_path: Path, tmp_path: Path, items: list[dict], *, consent: bool = True) -> str:
    path = tmp_path / "videos.jsonl"
    path.write_text("\n".join(json.dumps(i) for i in items) + "\n", encoding="utf-8")
    ingest_file(path, db_path=db_path)
    analysis_id = str(uuid.uuid4())
    with connect(db_path) as con:
        user_id, _ = create_user(con, "ana")
        set_outcome_consent(con, user_id, consent)
        run(
            con,
            "INSERT INTO analysis_results (id, user_id, input_mode, content_text, creator_handle, "
            "planned_post_time, overall_score, confidence, confidence_label, created_at) "
            "VALUES (?, ?, 'text', ?, 'chef_ana', ?, 40, 0.5, 'LOW', ?)",
            [analysis_id, user_id, CAPTION, utcnow() - timedelta(hours=10), utcnow()],
        )
    return analysis_id


def _item(video_id: str, text: str, hours_ago: float) -> dict:
    posted = int((utcnow() - timedelta(hours=hours_ago) - datetime(1970, 1, 1)).total_seconds())
    return make_item(id=video_id, text=text, createTime=posted)


def test_one_similar_video_in_the_window_is_linked(db_path: Path, tmp_path: Path) -> None:
    analysis = _store(
        db_path,
        tmp_path,
        [
            # Case and punctuation differ; the words are the same.
            _item("7300000000000000001", "WAIT FOR IT - " + CAPTION[15:].upper(), 9),
            _item("7300000000000000002", "A completely different post about dumplings #food", 8),
            _item("7300000000000000003", CAPTION, 24 * 5),  # outside the window
        ],
    )
    with connect(db_path) as con:
        decisions = auto_link(con).decisions
        link = run(con, "SELECT posted_video_id, link_method FROM analysis_results")
    assert [(d.analysis_id, d.status) for d in decisions] == [(analysis, "linked")]
    assert decisions[0].score is not None and decisions[0].score >= MATCH_THRESHOLD
    assert link == [("7300000000000000001", "matched")]


def test_two_similar_videos_are_ambiguous_and_not_linked(db_path: Path, tmp_path: Path) -> None:
    _store(
        db_path,
        tmp_path,
        [_item("7300000000000000001", CAPTION, 9), _item("7300000000000000002", CAPTION, 5)],
    )
    with connect(db_path) as con:
        (decision,) = auto_link(con).decisions
        link = run(con, "SELECT posted_video_id FROM analysis_results")
    assert decision.status == "ambiguous" and "2 videos above the threshold" in (
        decision.reason or ""
    )
    assert link == [(None,)]


def test_without_consent_nothing_is_matched(db_path: Path, tmp_path: Path) -> None:
    _store(db_path, tmp_path, [_item("7300000000000000001", CAPTION, 9)], consent=False)
    with connect(db_path) as con:
        assert auto_link(con).decisions == []


def test_false_link_rate_counts_unique_matches_to_other_posts(
    db_path: Path, tmp_path: Path
) -> None:
    # Synthetic: three posts of one creator within a day. Two share a caption (a repost);
    # the third differs. Each repost alone would be linked to its twin: 2 of 3 captions.
    repost = "Our rooftop pool is open again this weekend, book now #hotel #dalat"
    items = [
        _item("7300000000000000001", repost, 30),
        _item("7300000000000000002", repost, 20),
        _item("7300000000000000003", "Breakfast menu tour: twelve dishes you must try #food", 10),
    ]
    path = tmp_path / "v.jsonl"
    path.write_text("\n".join(json.dumps(i) for i in items) + "\n", encoding="utf-8")
    ingest_file(path, db_path=db_path)
    with connect(db_path) as con:
        rates = false_link_rates(con, range(90, 101))
    assert rates.captions == 3
    assert rates.rates[100] == pytest.approx(2 / 3)
    assert rates.smallest_threshold(max_rate=0.5) is None
    assert rates.smallest_threshold(max_rate=1.0) == 90


def test_a_dry_run_of_the_job_shows_the_link_and_keeps_none(db_path: Path, tmp_path: Path) -> None:
    from virtuna.config import load_settings
    from virtuna.jobs.collect_outcomes import collect_outcomes

    analysis = _store(db_path, tmp_path, [_item("7300000000000000001", CAPTION, 9)])
    result = collect_outcomes(db_path=db_path, settings=load_settings(), dry_run=True)
    assert [(d.analysis_id, d.status) for d in result.links] == [(analysis, "linked")]
    with connect(db_path) as con:
        assert run(con, "SELECT posted_video_id FROM analysis_results") == [(None,)]
