"""Concurrent outcome reports for one analysis: one is stored, every other one is a 409."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

from tests.reliability.service_harness import bearer, harness
from virtuna.store import utcnow


def test_ten_concurrent_reports_give_one_201_and_nine_409(tmp_path: Path) -> None:
    api = harness(tmp_path)
    user_id, key = api.user("cleo", "pro")
    analyses = [str(uuid.uuid4()) for _ in range(3)]
    for analysis_id in analyses:
        api.rows(
            "INSERT INTO analysis_results (id, user_id, input_mode, overall_score, confidence, "
            "confidence_label, created_at) VALUES (?, ?, 'text', 50, 0.5, 'LOW', ?)",
            [analysis_id, user_id, utcnow()],
        )
    requests = [
        {
            "method": "POST",
            "url": "/api/outcomes",
            "json": {"analysis_id": analysis_id, "actual_views": 1000 + i},
            "headers": bearer(key),
        }
        for analysis_id in analyses
        for i in range(10)
    ]
    responses = api.send(requests)
    for n, analysis_id in enumerate(analyses):
        mine = responses[n * 10 : (n + 1) * 10]
        assert Counter(r.status_code for r in mine) == {201: 1, 409: 9}, [r.text for r in mine]
        for response in mine:
            assert response.headers["content-type"].startswith("application/json")
            if response.status_code == 409:
                assert "already has an outcome" in response.json()["error"]
        stored = api.rows("SELECT count(*) FROM outcomes WHERE analysis_id = ?", [analysis_id])
        assert stored == [(1,)]
