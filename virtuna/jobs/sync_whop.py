"""sync-whop: refresh every Whop-backed subscription from Whop and the users' tiers with it.

For each `user_subscriptions` row with a `whop_membership_id` the job retrieves the membership
(`virtuna.memberships.whop`, Whop API v5 `GET /api/v5/company/memberships/{id}`) and writes:

- status: Whop's `status` mapped by `subscription_status` (active/trialing -> active,
  past_due -> past_due, expired -> expired, canceled/completed -> cancelled; any other status
  falls back on Whop's `valid` flag: valid -> active, else cancelled, as the original did);
- tier: `tiers_by_product[product_id]`; a product missing from the map keeps the row's tier
  and logs a warning (there are no product settings yet, so callers pass the map);
- whop_product_id / whop_user_id, cancel_at_period_end, current_period_end (Whop's
  `renewal_period_end`, else `expires_at`) and last_synced_at;
- `users.tier`: the subscription's tier while its status is active, else 'free'.

Memberships are fetched before the store is opened, so no store lock is held across network
calls. One user's failure (404, 500 after retries, a bad answer) lands in `errors` and the
others carry on; the job never raises for it. Without WHOP_API_KEY the job is skipped. A dry
run fetches the memberships (read-only) and counts what it would update, and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from virtuna.config import Settings, get_settings
from virtuna.log import get_logger, stage
from virtuna.memberships.whop import WhopClient, WhopMembership, client_from_settings
from virtuna.store import connect, run, transaction, utcnow

__all__ = ["TIERS", "SyncResult", "subscription_status", "subscription_table", "sync_whop"]

log = get_logger(__name__)

TIERS = frozenset({"free", "starter", "pro"})
SKIP_REASON = "WHOP_API_KEY not configured"
_STATUS_MAP = {
    "valid": "active",
    "active": "active",
    "trialing": "active",
    "past_due": "past_due",
    "expired": "expired",
    "canceled": "cancelled",
    "cancelled": "cancelled",
    "completed": "cancelled",
}


@dataclass
class SyncResult:
    """What the job did: skipped (with why) or done, with counts and per-user errors."""

    status: str  # done, skipped
    reason: str | None = None
    checked: int = 0  # subscriptions with a membership id
    updated: int = 0  # subscriptions refreshed from Whop (that would be, on a dry run)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (user_id, message)
    dry_run: bool = False


@dataclass(frozen=True)
class _Subscription:
    """One user_subscriptions row to sync."""

    user_id: str
    membership_id: str
    tier: str


def subscription_status(membership: WhopMembership) -> str:
    """Our subscription status (active, past_due, expired, cancelled) for a Whop membership."""
    mapped = _STATUS_MAP.get(membership.status)
    if mapped is not None:
        return mapped
    return "active" if membership.valid else "cancelled"


def _check_tiers(tiers_by_product: Mapping[str, str]) -> dict[str, str]:
    """The product map with every tier validated (a bad one is a caller's mistake)."""
    bad = {product: tier for product, tier in tiers_by_product.items() if tier not in TIERS}
    if bad:
        raise ValueError(f"tiers_by_product maps to unknown tiers {bad}; use {sorted(TIERS)}")
    return dict(tiers_by_product)


def _subscriptions(db_path: Path | str | None) -> list[_Subscription]:
    """Every subscription row that names a Whop membership, in user order."""
    with connect(db_path) as con:
        rows = run(
            con,
            "SELECT user_id, trim(whop_membership_id), tier FROM user_subscriptions "
            "WHERE nullif(trim(whop_membership_id), '') IS NOT NULL ORDER BY user_id",
        )
    return [_Subscription(str(u), str(m), str(t)) for u, m, t in rows]


def _tier_for(
    sub: _Subscription, membership: WhopMembership, tiers_by_product: Mapping[str, str]
) -> str:
    """The tier the membership's product maps to; the current tier when the product is unknown."""
    tier = tiers_by_product.get(membership.product_id or "")
    if tier is not None:
        return tier
    log.warning(
        "whop product has no tier; keeping the current one",
        user_id=sub.user_id,
        membership_id=membership.id,
        product_id=membership.product_id,
        tier=sub.tier,
    )
    return sub.tier


def _write(
    con: duckdb.DuckDBPyConnection,
    sub: _Subscription,
    membership: WhopMembership,
    tier: str,
    status: str,
    synced_at: datetime,
) -> None:
    """Update one subscription row and its user's tier in one transaction."""
    with transaction(con) as tx:
        run(
            tx,
            """
            UPDATE user_subscriptions SET
                tier = ?,
                status = ?,
                whop_product_id = coalesce(?, whop_product_id),
                whop_user_id = coalesce(?, whop_user_id),
                cancel_at_period_end = ?,
                current_period_end = ?,
                last_synced_at = ?
            WHERE user_id = ?
            """,
            [
                tier,
                status,
                membership.product_id,
                membership.user_id,
                membership.cancel_at_period_end,
                membership.period_end,
                synced_at,
                sub.user_id,
            ],
        )
        user_tier = tier if status == "active" else "free"
        run(tx, "UPDATE users SET tier = ? WHERE id = ?", [user_tier, sub.user_id])


def sync_whop(
    *,
    db_path: Path | str | None = None,
    settings: Settings | None = None,
    client: WhopClient | None = None,
    tiers_by_product: Mapping[str, str] | None = None,
    dry_run: bool = False,
) -> SyncResult:
    """The sync-whop job; tiers_by_product (default: from the settings) maps products to tiers."""
    settings = settings or get_settings()
    if tiers_by_product is None:  # the products named in the settings
        tiers_by_product = {
            product: tier
            for product, tier in (
                (settings.whop_product_id_starter, "starter"),
                (settings.whop_product_id_pro, "pro"),
            )
            if product
        }
    tiers = _check_tiers(tiers_by_product)
    with stage("sync-whop") as current:
        client = client or client_from_settings(settings)
        if client is None:
            log.warning("sync-whop skipped", reason=SKIP_REASON)
            current.fields.update(skipped=SKIP_REASON)
            return SyncResult("skipped", reason=SKIP_REASON)
        subs = _subscriptions(db_path)
        result = SyncResult("done", checked=len(subs), dry_run=dry_run)
        fetched: list[tuple[_Subscription, WhopMembership]] = []
        with client:
            for sub in subs:
                try:
                    fetched.append((sub, client.get_membership(sub.membership_id)))
                except Exception as exc:  # one user's failure never stops the others
                    _record_error(result, sub, exc)
        synced_at = utcnow()
        with connect(db_path) as con:
            for sub, membership in fetched:
                try:
                    tier = _tier_for(sub, membership, tiers)
                    if not dry_run:
                        status = subscription_status(membership)
                        _write(con, sub, membership, tier, status, synced_at)
                except Exception as exc:
                    _record_error(result, sub, exc)
                else:
                    result.updated += 1
        current.fields.update(
            checked=result.checked, updated=result.updated, errors=len(result.errors)
        )
        log.info(
            "sync-whop done",
            checked=result.checked,
            updated=result.updated,
            errors=len(result.errors),
        )
    return result


def _record_error(result: SyncResult, sub: _Subscription, exc: Exception) -> None:
    """Add one user's failure to the result and log it."""
    message = str(exc) or type(exc).__name__
    result.errors.append((sub.user_id, message))
    log.warning(
        "whop membership sync failed",
        user_id=sub.user_id,
        membership_id=sub.membership_id,
        error=message,
    )


def subscription_table(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every subscription with its user's tier, in user order."""
    return con.sql(
        "SELECT s.user_id, s.tier, u.tier AS user_tier, s.status, s.whop_membership_id, "
        "s.whop_product_id, s.cancel_at_period_end, s.current_period_end, s.last_synced_at "
        "FROM user_subscriptions s LEFT JOIN users u ON u.id = s.user_id ORDER BY s.user_id"
    ).df()
