"""The demo's offers and loyalty: the winter-cake campaign issues each recipient a catalog coupon from a budget pool
(defined through the offer API, as a marketer does), buyers redeem it at the till and in the mini-program, the
schedule's tick a week later expires the rest, and the `club` programme's rules earn points and raise levels on every
order. The summary reads what happened back: issued / redeemed / expired, the pool used against its total, and the
campaign's ROI net of message and offer cost."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from cdp import topology
from cdp.loyalty.accounts import Account
from cdp.offers.wallet import WalletEntry
from cdp_local.demo.api import call_api
from cdp_local.runtime import LocalRuntime

COUPON_OFFER = "winter-cake-20"
COUPON_POOL = "winter-cake-coupons"
COUPON_OFF_MINOR = 2_000
COUPON_THRESHOLD_MINOR = 10_000
COUPON_DAYS = 7
POOL_TOTAL_MINOR = 1_500_000  # 750 coupons: the SMS budget (3,500 at 5 a message) treats at most 700


def define_offer(rt: LocalRuntime, brand_id: str, campaign_id: str) -> None:
    """The coupon and the pool its face value is reserved from (POST /v1/budgets, POST /v1/offers)."""
    pool = {
        "brand_id": brand_id,
        "pool_id": COUPON_POOL,
        "total_minor": POOL_TOTAL_MINOR,
        "currency": "CNY",
        "form": "coupon",
        "campaign_id": campaign_id,
        "description": "winter cake coupons: face value",
    }
    call_api(rt, "POST", "/v1/budgets", pool)
    offer = {
        "brand_id": brand_id,
        "offer_id": COUPON_OFFER,
        "name": "20 CNY off a cake over 100",
        "currency": "CNY",
        "coupon": {
            "amount_off_minor": COUPON_OFF_MINOR,
            "threshold_minor": COUPON_THRESHOLD_MINOR,
            "code_prefix": "WC",
        },
        "validity": {"days": COUPON_DAYS},
        "per_person_limit": 1,
        "budget_pools": [COUPON_POOL],
        "campaign_id": campaign_id,
    }
    call_api(rt, "POST", "/v1/offers", offer)


def wallet_entries(rt: LocalRuntime, brand_id: str) -> list[WalletEntry]:
    """The coupon's wallet entries as the offers table holds them (the demo reads its own local store)."""
    entries = []
    for item in _scan(rt, f"WALLET#{brand_id}#"):
        entry = WalletEntry.model_validate_json(item["doc"]["S"])
        if entry.offer_id == COUPON_OFFER:
            entries.append(entry)
    return entries


def coupons_by_key(entries: Iterable[WalletEntry], keys_of: dict[str, list[str]]) -> dict[str, tuple[str, int, int]]:
    """Identifier key -> (code, amount off, threshold): how the world knows whom each code went to."""
    out: dict[str, tuple[str, int, int]] = {}
    for entry in entries:
        if entry.code is None:
            continue
        for key in keys_of.get(entry.person_id, []):
            out[key] = (entry.code, COUPON_OFF_MINOR, COUPON_THRESHOLD_MINOR)
    return out


def expire_unused(rt: LocalRuntime, issued_at: datetime) -> int:
    """The schedule's tick a day past the coupons' validity: what was not used expires and goes back to the pool
    (a tick expires at most 500: the next ticks take the rest, as the minute's ticks would)."""
    at, expired = issued_at + timedelta(days=COUPON_DAYS + 1), 0
    for minute in range(20):
        tick = rt.fire_schedule(topology.CAMPAIGN_TICK.local_name, at + timedelta(minutes=minute))
        rt.drain()
        done = int((tick.result or {}).get("offers_expired", 0))
        expired += done
        if not done:
            break
    return expired


def offers_summary(
    rt: LocalRuntime, brand_id: str, campaign: dict[str, Any], coupon_orders: Counter[str]
) -> dict[str, Any]:
    """Issued / redeemed / expired, the pool used against its total and what the messages cost; `coupon_orders`: the
    buyers' orders that carried a code, by the channel that sent them."""
    entries = wallet_entries(rt, brand_id)
    states = Counter(e.state for e in entries)
    pools = call_api(rt, "GET", f"/v1/budgets?brand_id={brand_id}")["pools"]
    pool = next(p for p in pools if p["pool"]["pool_id"] == COUPON_POOL)
    discounts = sum(e.discount_minor or 0 for e in entries if e.state == "redeemed")
    return {
        "coupon": COUPON_OFFER,
        "issued": len(entries),
        "redeemed": states.get("redeemed", 0),
        "expired": states.get("expired", 0),
        "still_valid": states.get("issued", 0),
        "orders_with_a_code_by_source": dict(sorted(coupon_orders.items())),
        "pool": {
            "pool_id": COUPON_POOL,
            "total_minor": pool["pool"]["total_minor"],
            "committed_minor": pool["committed_minor"],
            "reserved_minor": pool["reserved_minor"],
            "available_minor": pool["available_minor"],
        },
        # the discounts the pool paid: already netted out of the orders' revenue, so the run's ROI (its summary's
        # `roi`, defined in `roi_definition`) does not count them a second time
        "offer_cost_minor": discounts,
        "message_cost_minor": int(campaign.get("cost_minor") or 0),
    }


def loyalty_summary(rt: LocalRuntime, brand_id: str) -> dict[str, Any]:
    """The `club` accounts the rules built from the live orders: members, points, levels."""
    accounts = [
        Account.model_validate_json(item["doc"]["S"])
        for item in _scan(rt, f"LOYALTY#{brand_id}#")
        if item[topology.OFFERS_TABLE.sort_key]["S"] == "ACCOUNT#club"
    ]
    live = [a for a in accounts if not a.merged_into]
    levels = Counter(a.level or "-" for a in live)
    return {
        "programme": "club",
        "members": len(live),
        "points_earned": sum(a.earned for a in live),
        "points_balance": sum(a.balance for a in live),
        "members_by_level": dict(sorted(levels.items())),
    }


def _scan(rt: LocalRuntime, prefix: str) -> list[dict[str, Any]]:
    client = rt.client("dynamodb")
    pk = topology.OFFERS_TABLE.partition_key
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "TableName": topology.OFFERS_TABLE.local_name,
        "FilterExpression": "begins_with(#pk, :p)",
        "ExpressionAttributeNames": {"#pk": pk},
        "ExpressionAttributeValues": {":p": {"S": prefix}},
    }
    while True:
        page = client.scan(**kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
