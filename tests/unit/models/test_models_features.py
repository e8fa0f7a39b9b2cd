"""Features as of an instant: windows, sentinels, and no leakage from events at or after `as_of`."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.models.features import FEATURE_NAMES, NO_ORDER_RECENCY_DAYS, feature_vector, features_as_of
from cdp.profile.models import Profile

AS_OF = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
_ids = itertools.count()
PROFILE = Profile(person_id="p1", brand_id="acme", created_at=AS_OF, updated_at=AS_OF)


def ev(
    event_type: str, days_before: float, source: str = "app", store_id: str | None = None, **props: Any
) -> CanonicalEvent:
    body: dict[str, Any] = {
        "event_id": f"e{next(_ids)}",
        "event_type": event_type,
        "source": source,
        "brand_id": "acme",
        "occurred_at": (AS_OF - timedelta(days=days_before)).isoformat(),
        "identifiers": [{"type": "device_id", "value": "dev-1"}],
        "properties": props,
    }
    if store_id:
        body["store_id"] = store_id
    return parse_event(body)


def order(days_before: float, total: int, category: str = "cakes", **kw: Any) -> CanonicalEvent:
    line = {"sku": "sku-1", "category": category, "quantity": 1, "unit_price_minor": total}
    return ev(
        "order_placed", days_before, order_id=f"o{next(_ids)}", lines=[line], total_minor=total, currency="CNY", **kw
    )


def every_kind(days_before: float) -> list[CanonicalEvent]:
    """One event of each type that moves a feature, all at the same instant."""
    return [
        order(days_before, 5_000, category="bread"),
        ev("order_returned", days_before, order_id="o-x", refund_minor=100, currency="CNY"),
        ev("page_view", days_before, url="https://shop.example/"),
        ev("add_to_cart", days_before, sku="s", category="toys", quantity=1, unit_price_minor=10, currency="CNY"),
        ev("coupon_claimed", days_before, coupon_id="c1"),
        ev("coupon_redeemed", days_before, coupon_id="c1", order_id="o-x", discount_minor=100, currency="CNY"),
        ev("message_delivered", days_before, message_id="m1", channel="sms"),
        ev("message_clicked", days_before, message_id="m1", channel="sms", url="https://shop.example/"),
        ev("points_changed", days_before, delta=50, program="app", reason="bonus"),
        ev("identify", days_before, member_level="gold"),
        ev("review_posted", days_before, sku="s", rating=5),
        ev("consent_changed", days_before, channel="sms", granted=True),
    ]


def test_no_events_gives_sentinels_and_zeros() -> None:
    # Given a person with no history / When featurized / Then recency is the "never" sentinel and counts are zero
    f = features_as_of(PROFILE, [], AS_OF)
    assert list(f) == list(FEATURE_NAMES)
    assert f["days_since_last_order"] == NO_ORDER_RECENCY_DAYS
    assert f["has_ordered"] == 0.0
    assert sum(v for k, v in f.items() if k not in ("days_since_last_order", "days_since_last_seen")) == 0.0


def test_order_windows_spend_and_recency() -> None:
    # Given orders 10, 60, 200 and 400 days before as_of
    events = [order(10, 1_000), order(60, 2_000), order(200, 3_000), order(400, 4_000)]
    # When featurized
    f = features_as_of(PROFILE, events, AS_OF)
    # Then each window counts only its orders, money stays in minor units, recency is 10 days
    assert (f["orders_30d"], f["orders_90d"], f["orders_365d"], f["orders_total"]) == (1, 2, 3, 4)
    assert (f["spend_30d_minor"], f["spend_90d_minor"], f["spend_365d_minor"]) == (1_000, 3_000, 6_000)
    assert f["spend_total_minor"] == 10_000
    assert f["avg_order_value_minor"] == 2_500
    assert f["days_since_last_order"] == pytest.approx(10)
    assert f["days_since_first_seen"] == pytest.approx(400)
    assert f["has_ordered"] == 1.0


def test_points_balance_uses_reported_balance_then_deltas() -> None:
    # Given deltas, then a reported balance, then another delta, on two programs
    events = [
        ev("points_changed", 30, delta=100, program="app", reason="purchase"),
        ev("points_changed", 20, delta=-40, program="app", reason="redemption", balance_after=500),
        ev("points_changed", 10, delta=25, program="app", reason="bonus"),
        ev("points_changed", 5, delta=-10, program="dealer", reason="expiry"),
    ]
    # When featurized (input order shuffled: the function orders by time itself)
    f = features_as_of(PROFILE, list(reversed(events)), AS_OF)
    # Then the reported balance resets the running sum: 500 + 25 on app, -10 on dealer
    assert f["points_balance"] == 515


def test_engagement_messages_and_variety() -> None:
    # Given two delivered messages (one bounced), one click, orders in two categories and two channels and stores
    events = [
        ev("message_delivered", 5, message_id="m1", channel="sms"),
        ev("message_delivered", 4, message_id="m2", channel="email"),
        ev("message_delivered", 3, message_id="m3", channel="email", status="bounced"),
        ev("message_clicked", 3, message_id="m1", channel="sms", url="https://x.example/"),
        order(20, 100, category="cakes"),
        order(25, 100, category="bread", source="pos", store_id="s1"),
        ev("page_view", 40, url="https://x.example/", source="web"),
        ev("identify", 50, member_level="silver"),
    ]
    f = features_as_of(PROFILE, events, AS_OF)
    # Then bounced messages do not count as delivered, and variety features count distinct values
    assert (f["messages_delivered"], f["messages_clicked"], f["click_through_rate"]) == (2, 1, 0.5)
    assert (f["distinct_categories"], f["distinct_sources"], f["distinct_stores"]) == (2, 3, 1)
    assert f["member_level_present"] == 1.0
    assert f["page_views_30d"] == 0  # 40 days ago is outside the 30-day window


def test_seasonal_orders_count_same_month_of_earlier_seasons() -> None:
    # Given a March order last year, a March order 5 days ago, and a February order last year
    events = [order(365, 100), order(5, 100), order(365 + 30, 100)]
    # When featurized as of mid-March / Then only last year's March order is a prior-season order
    assert features_as_of(PROFILE, events, AS_OF)["seasonal_orders_this_month"] == 1


@pytest.mark.parametrize("offset_days", [0.0, -0.001, -1.0, -400.0])
def test_events_at_or_after_as_of_change_nothing(offset_days: float) -> None:
    # Given a history strictly before as_of
    history = [*every_kind(3), order(100, 7_000), ev("page_view", 0.5, url="https://x.example/")]
    before = features_as_of(PROFILE, history, AS_OF)
    # When events of every kind are added exactly at as_of or later (negative days_before = future)
    later = every_kind(offset_days)
    after = features_as_of(PROFILE, [*history, *later], AS_OF)
    # Then no feature moves
    assert after == before


def test_every_event_kind_moves_some_feature_before_as_of() -> None:
    # Given the same events one day before as_of / Then they are visible (so the leakage test above can fail)
    empty = features_as_of(PROFILE, [], AS_OF)
    for event in every_kind(1):
        if event.event_type == "consent_changed":
            continue  # consent is not a feature
        assert features_as_of(PROFILE, [event], AS_OF) != empty, event.event_type


def test_feature_vector_follows_feature_names() -> None:
    f = features_as_of(PROFILE, [order(10, 1_000)], AS_OF)
    vector = feature_vector(f)
    assert len(vector) == len(FEATURE_NAMES)
    assert vector[FEATURE_NAMES.index("spend_total_minor")] == 1_000
