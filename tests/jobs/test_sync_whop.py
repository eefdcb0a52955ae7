"""sync-whop: skipping, status and tier mapping, per-user failures, wire format, no key leaks."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.fakes.whop import MEMBERSHIPS_PREFIX, FakeWhop
from virtuna.config import load_settings
from virtuna.jobs.sync_whop import subscription_status, sync_whop
from virtuna.memberships.whop import WhopClient, WhopMembership, client_from_settings
from virtuna.store import connect, run, utcnow

TIERS = {"prod_starter": "starter", "prod_pro": "pro"}
PERIOD_END = 1_767_225_600  # 2026-01-01T00:00:00Z


@pytest.fixture
def whop() -> Iterator[FakeWhop]:
    with FakeWhop() as fake:
        yield fake


def _user(
    db_path: Path,
    user_id: str,
    *,
    tier: str = "free",
    membership_id: str | None = None,
    product_id: str | None = None,
) -> None:
    """A user and their subscription row, both at tier."""
    with connect(db_path) as con:
        run(
            con,
            "INSERT INTO users (id, name, tier, created_at) VALUES (?, ?, ?, ?)",
            [user_id, f"name-{user_id}", tier, utcnow()],
        )
        run(
            con,
            "INSERT INTO user_subscriptions (user_id, whop_membership_id, whop_product_id, tier) "
            "VALUES (?, ?, ?, ?)",
            [user_id, membership_id, product_id, tier],
        )


def _row(db_path: Path, user_id: str) -> dict[str, Any]:
    """The subscription row joined with the user's tier."""
    with connect(db_path) as con:
        rows = run(
            con,
            "SELECT s.tier, s.status, s.whop_product_id, s.whop_user_id, s.cancel_at_period_end, "
            "s.current_period_end, s.last_synced_at, u.tier FROM user_subscriptions s "
            "JOIN users u ON u.id = s.user_id WHERE s.user_id = ?",
            [user_id],
        )
    keys = ("tier", "status", "product", "whop_user", "cancel", "period_end", "synced", "user_tier")
    return dict(zip(keys, rows[0], strict=True))


def _sync(whop: FakeWhop, db_path: Path, **kwargs: Any):
    settings = load_settings(whop_api_key=whop.token)
    kwargs.setdefault("tiers_by_product", TIERS)
    kwargs.setdefault("client", whop.client())
    return sync_whop(db_path=db_path, settings=settings, **kwargs)


def test_without_a_key_it_is_skipped_not_failed(db_path: Path) -> None:
    _user(db_path, "u1", tier="pro", membership_id="mem_x")
    result = sync_whop(db_path=db_path, settings=load_settings())
    assert (result.status, result.reason) == ("skipped", "WHOP_API_KEY not configured")
    assert (result.checked, result.updated, result.errors) == (0, 0, [])
    assert _row(db_path, "u1")["synced"] is None
    assert client_from_settings(load_settings()) is None


def test_active_membership_sets_tier_status_period_and_user_tier(
    whop: FakeWhop, db_path: Path
) -> None:
    m = whop.add_membership(
        product_id="prod_pro",
        status="active",
        renewal_period_end=PERIOD_END,
        cancel_at_period_end=True,
    )
    _user(db_path, "u1", tier="free", membership_id=m["id"])
    _user(db_path, "u2", tier="free")  # no membership: not checked, not touched
    before = utcnow()
    result = _sync(whop, db_path)
    assert (result.status, result.checked, result.updated, result.errors) == ("done", 1, 1, [])
    row = _row(db_path, "u1")
    assert (row["tier"], row["status"], row["user_tier"]) == ("pro", "active", "pro")
    assert row["period_end"] == datetime(2026, 1, 1)
    assert row["cancel"] is True
    assert (row["product"], row["whop_user"]) == ("prod_pro", m["user_id"])
    assert row["synced"] is not None and row["synced"] >= before
    assert _row(db_path, "u2")["synced"] is None


def test_trialing_counts_as_active_and_expires_at_is_the_fallback_period_end(
    whop: FakeWhop, db_path: Path
) -> None:
    m = whop.add_membership(product_id="prod_starter", status="trialing", expires_at=PERIOD_END)
    whop.memberships[m["id"]]["renewal_period_end"] = None  # a fixed-term membership
    _user(db_path, "u1", membership_id=m["id"])
    _sync(whop, db_path)
    row = _row(db_path, "u1")
    assert (row["tier"], row["status"], row["user_tier"]) == ("starter", "active", "starter")
    assert row["period_end"] == datetime(2026, 1, 1)


def test_cancelled_membership_downgrades_the_user_to_free(whop: FakeWhop, db_path: Path) -> None:
    m = whop.add_membership(product_id="prod_pro", status="canceled", valid=False)
    _user(db_path, "u1", tier="pro", membership_id=m["id"], product_id="prod_pro")
    result = _sync(whop, db_path)
    assert result.updated == 1
    row = _row(db_path, "u1")
    assert (row["tier"], row["status"], row["user_tier"]) == ("pro", "cancelled", "free")
    assert row["cancel"] is False and row["period_end"] is None


def test_unknown_product_keeps_the_tier_with_a_warning(whop: FakeWhop, db_path: Path) -> None:
    m = whop.add_membership(product_id="prod_mystery", status="active")
    _user(db_path, "u1", tier="starter", membership_id=m["id"])
    with capture_logs() as logs:
        result = _sync(whop, db_path)
    assert result.updated == 1 and result.errors == []
    row = _row(db_path, "u1")
    assert (row["tier"], row["status"], row["user_tier"]) == ("starter", "active", "starter")
    assert row["product"] == "prod_mystery"
    (warning,) = [e for e in logs if e["event"].startswith("whop product has no tier")]
    assert warning["log_level"] == "warning" and warning["product_id"] == "prod_mystery"
    assert warning["user_id"] == "u1"


def test_one_users_failure_is_recorded_and_the_others_are_updated(
    whop: FakeWhop, db_path: Path
) -> None:
    good = whop.add_membership(product_id="prod_pro", status="active")
    _user(db_path, "u1", tier="starter", membership_id="mem_doesNotExist00")
    _user(db_path, "u2", tier="free", membership_id=good["id"])
    whop.fail_next(MEMBERSHIPS_PREFIX + good["id"], 500)
    with capture_logs() as logs:
        result = _sync(whop, db_path)
    assert (result.status, result.checked, result.updated) == ("done", 2, 1)
    ((user_id, message),) = result.errors
    assert user_id == "u1" and "404" in message and "Membership not found" in message
    assert _row(db_path, "u1")["synced"] is None  # untouched
    assert _row(db_path, "u1")["user_tier"] == "starter"
    row = _row(db_path, "u2")
    assert (row["tier"], row["status"], row["user_tier"]) == ("pro", "active", "pro")
    assert len(whop.requests_to(MEMBERSHIPS_PREFIX + good["id"])) == 2  # 500, then 200
    assert len(whop.requests_to(MEMBERSHIPS_PREFIX + "mem_doesNotExist00")) == 1  # no retry
    (summary,) = [e for e in logs if e["event"] == "sync-whop done"]
    assert (summary["checked"], summary["updated"], summary["errors"]) == (2, 1, 1)


def test_a_500_that_persists_is_an_error_after_bounded_retries(
    whop: FakeWhop, db_path: Path
) -> None:
    m = whop.add_membership(product_id="prod_pro")
    _user(db_path, "u1", tier="pro", membership_id=m["id"])
    whop.fail_next(MEMBERSHIPS_PREFIX, 503, times=10)
    result = _sync(whop, db_path, client=whop.client(max_retries=2))
    ((user_id, message),) = result.errors
    assert user_id == "u1" and "503" in message and "3 attempts" in message
    assert len(whop.requests_to(MEMBERSHIPS_PREFIX)) == 3
    assert _row(db_path, "u1")["user_tier"] == "pro"


def test_bearer_header_and_endpoint_path_follow_the_docs(whop: FakeWhop, db_path: Path) -> None:
    m = whop.add_membership(product_id="prod_starter")
    _user(db_path, "u1", membership_id=m["id"])
    _sync(whop, db_path)
    (request,) = whop.requests
    assert request.method == "GET"
    assert request.path == f"/api/v5/company/memberships/{m['id']}"
    assert request.query == {}
    assert request.headers["authorization"] == f"Bearer {whop.token}"
    assert whop.token not in request.path


def test_the_key_never_appears_in_errors_or_logs(
    whop: FakeWhop, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = "whop_BADkey_never_to_leak_4242"
    echo = {"error": {"status": 500, "message": f"upstream rejected {bad}"}}
    first = whop.add_membership(product_id="prod_pro")
    second = whop.add_membership(product_id="prod_pro")
    _user(db_path, "u1", membership_id=first["id"])
    _user(db_path, "u2", membership_id=second["id"])
    whop.fail_next(MEMBERSHIPS_PREFIX + first["id"], 500, times=5, body=echo)
    caplog.set_level(logging.DEBUG)
    settings = load_settings(whop_api_key=bad)
    client = client_from_settings(settings, base_url=whop.base_url, sleep=lambda _: None)
    assert client is not None and bad not in repr(client)
    with capture_logs() as logs:
        result = sync_whop(
            db_path=db_path, settings=settings, client=client, tiers_by_product=TIERS
        )
    assert [u for u, _ in result.errors] == ["u1", "u2"]
    assert "500" in result.errors[0][1] and "[Filtered]" in result.errors[0][1]
    assert "401" in result.errors[1][1]  # the fake rejects the wrong key
    everything = "\n".join([repr(result), repr(logs), caplog.text])
    assert bad not in everything


@pytest.mark.parametrize(
    ("status", "valid", "expected"),
    [
        ("active", True, "active"),
        ("trialing", True, "active"),
        ("valid", True, "active"),
        ("past_due", True, "past_due"),
        ("expired", False, "expired"),
        ("canceled", False, "cancelled"),
        ("cancelled", False, "cancelled"),
        ("completed", False, "cancelled"),
        ("canceling", True, "active"),  # not in the map: Whop's `valid` decides
        ("unresolved", False, "cancelled"),
        ("", None, "cancelled"),
    ],
)
def test_status_mapping(status: str, valid: bool | None, expected: str) -> None:
    membership = WhopMembership.from_api({"id": "mem_1", "status": status, "valid": valid})
    assert subscription_status(membership) == expected


def test_past_due_and_expired_leave_the_user_on_free(whop: FakeWhop, db_path: Path) -> None:
    late = whop.add_membership(product_id="prod_pro", status="past_due")
    gone = whop.add_membership(product_id="prod_starter", status="expired", expires_at=PERIOD_END)
    _user(db_path, "u1", tier="pro", membership_id=late["id"])
    _user(db_path, "u2", tier="starter", membership_id=gone["id"])
    _sync(whop, db_path)
    assert (_row(db_path, "u1")["status"], _row(db_path, "u1")["user_tier"]) == ("past_due", "free")
    assert (_row(db_path, "u2")["status"], _row(db_path, "u2")["user_tier"]) == ("expired", "free")


def test_membership_parses_later_api_shapes() -> None:
    membership = WhopMembership.from_api(
        {
            "id": "mem_2",
            "status": "Active",
            "product": {"id": "prod_pro", "title": "Pro"},
            "user": {"id": "user_9"},
            "renewal_period_end": "2026-01-01T00:00:00.000Z",
        }
    )
    assert (membership.product_id, membership.user_id, membership.status) == (
        "prod_pro",
        "user_9",
        "active",
    )
    assert membership.period_end == datetime(2026, 1, 1)
    assert membership.period_end == datetime.fromtimestamp(PERIOD_END, UTC).replace(tzinfo=None)


def test_bad_tier_map_is_refused(db_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown tiers"):
        sync_whop(db_path=db_path, settings=load_settings(), tiers_by_product={"p": "gold"})


def test_client_is_a_context_manager_and_needs_a_key(whop: FakeWhop) -> None:
    with pytest.raises(ValueError):
        WhopClient("")
    m = whop.add_membership(product_id="prod_pro")
    with whop.client() as client:
        assert client.get_membership(m["license_key"]).id == m["id"]  # license keys work too


def test_a_dry_run_reads_whop_and_writes_nothing(whop: FakeWhop, db_path: Path) -> None:
    m = whop.add_membership(product_id="prod_pro", status="active", renewal_period_end=PERIOD_END)
    _user(db_path, "u1", tier="free", membership_id=m["id"])
    result = _sync(whop, db_path, dry_run=True)
    assert (result.status, result.checked, result.updated, result.dry_run) == ("done", 1, 1, True)
    row = _row(db_path, "u1")
    assert (row["tier"], row["user_tier"], row["synced"]) == ("free", "free", None)
