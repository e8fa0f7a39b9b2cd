"""The one feature function shared by training and scoring, so a model sees the same columns in both.

Leakage rule: a feature as of `as_of` uses only events that occurred strictly before `as_of`. The profile's stored
aggregates (`Profile.facts`, `Profile.traits`) are as of *now* and would leak the label window into training rows,
so every feature is recomputed from the timeline. `profile` stays in the signature for attributes that cannot
change over time (none are used today), so callers never need to change.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

from cdp.ingest.events import CanonicalEvent
from cdp.profile.models import Profile
from cdp.shared.time import to_utc

FEATURE_NAMES: tuple[str, ...] = (
    "days_since_last_order",
    "has_ordered",
    "orders_30d",
    "orders_90d",
    "orders_365d",
    "orders_total",
    "spend_30d_minor",
    "spend_90d_minor",
    "spend_365d_minor",
    "spend_total_minor",
    "avg_order_value_minor",
    "returns_365d",
    "refund_365d_minor",
    "return_rate",
    "days_since_first_seen",
    "days_since_last_seen",
    "events_30d",
    "page_views_30d",
    "cart_adds_30d",
    "cart_adds_90d",
    "coupons_claimed",
    "coupons_redeemed",
    "messages_delivered",
    "messages_clicked",
    "click_through_rate",
    "points_balance",
    "distinct_categories",
    "distinct_sources",
    "distinct_stores",
    "member_level_present",
    "member_level_rank",
    "age_known",
    "age_years",
    "reviews",
    "avg_rating",
    "seasonal_orders_this_month",
)
"""Fixed column order; a stored model records it and loading refuses a model trained on another order."""

MEMBER_LEVEL_RANK = {"bronze": 1.0, "regular": 1.0, "silver": 2.0, "gold": 3.0, "platinum": 4.0, "diamond": 5.0}
NO_ORDER_RECENCY_DAYS = 3650.0  # "never ordered" as a long recency; `has_ordered` tells the model it is a sentinel
_SEASONAL_MIN_AGE = timedelta(days=180)  # an order in this calendar month at least half a year ago = a prior season


def _days(delta: timedelta) -> float:
    return delta.total_seconds() / 86_400.0


def features_as_of(profile: Profile, events: Sequence[CanonicalEvent], as_of: datetime) -> dict[str, float]:
    """Features of one person from the events that occurred strictly before `as_of` (order of `events` is free)."""
    as_of = to_utc(as_of)
    past = sorted((e for e in events if e.occurred_at < as_of), key=lambda e: (e.occurred_at, e.event_id))
    acc = _Accumulator(as_of)
    for event in past:
        acc.add(event)
    return acc.result()


def feature_vector(features: dict[str, float]) -> list[float]:
    """The features in FEATURE_NAMES order (the column layout of every model)."""
    return [features[name] for name in FEATURE_NAMES]


class _Accumulator:
    """One pass over past events; windows are relative to `as_of`."""

    def __init__(self, as_of: datetime) -> None:
        self.as_of = as_of
        self.f: dict[str, float] = dict.fromkeys(FEATURE_NAMES, 0.0)
        self.first_seen: datetime | None = None
        self.last_seen: datetime | None = None
        self.last_order: datetime | None = None
        self.points: dict[str, int] = {}
        self.categories: set[str] = set()
        self.sources: set[str] = set()
        self.stores: set[str] = set()
        self.rating_sum = 0
        self.birthday: date | None = None

    def _within(self, at: datetime, days: int) -> bool:
        return self.as_of - at <= timedelta(days=days)

    def add(self, event: CanonicalEvent) -> None:  # noqa: C901 - one branch per event type
        f, at = self.f, event.occurred_at
        self.first_seen = at if self.first_seen is None else min(self.first_seen, at)
        self.last_seen = at if self.last_seen is None else max(self.last_seen, at)
        self.sources.add(event.source.value)
        if event.store_id:
            self.stores.add(event.store_id)
        if self._within(at, 30):
            f["events_30d"] += 1
        match event.event_type:
            case "order_placed":
                self._add_order(at, event.properties.total_minor)
                self.categories.update(line.category for line in event.properties.lines if line.category)
            case "order_returned":
                if self._within(at, 365):
                    f["returns_365d"] += 1
                    f["refund_365d_minor"] += event.properties.refund_minor
            case "page_view":
                f["page_views_30d"] += self._within(at, 30)
            case "add_to_cart":
                f["cart_adds_30d"] += self._within(at, 30)
                f["cart_adds_90d"] += self._within(at, 90)
                if event.properties.category:
                    self.categories.add(event.properties.category)
            case "coupon_claimed":
                f["coupons_claimed"] += 1
            case "coupon_redeemed":
                f["coupons_redeemed"] += 1
            case "message_delivered":
                f["messages_delivered"] += event.properties.status == "delivered"
            case "message_clicked":
                f["messages_clicked"] += 1
            case "points_changed":
                props = event.properties
                # events are in time order, so a reported balance resets the running sum of deltas
                if props.balance_after is not None:
                    self.points[props.program] = props.balance_after
                else:
                    self.points[props.program] = self.points.get(props.program, 0) + props.delta
            case "identify":
                traits = event.properties
                if traits.member_level:
                    f["member_level_present"] = 1.0
                    rank = MEMBER_LEVEL_RANK.get(traits.member_level.lower(), 1.0)
                    f["member_level_rank"] = max(f["member_level_rank"], rank)
                if traits.birthday:
                    self.birthday = traits.birthday
            case "review_posted":
                f["reviews"] += 1
                self.rating_sum += event.properties.rating
            case _:
                pass

    def _add_order(self, at: datetime, total_minor: int) -> None:
        f = self.f
        f["orders_total"] += 1
        f["spend_total_minor"] += total_minor
        for days in (30, 90, 365):
            if self._within(at, days):
                f[f"orders_{days}d"] += 1
                f[f"spend_{days}d_minor"] += total_minor
        if at.month == self.as_of.month and self.as_of - at >= _SEASONAL_MIN_AGE:
            f["seasonal_orders_this_month"] += 1
        self.last_order = at if self.last_order is None else max(self.last_order, at)

    def result(self) -> dict[str, float]:
        f = self.f
        orders = f["orders_total"]
        f["has_ordered"] = 1.0 if orders else 0.0
        f["days_since_last_order"] = _days(self.as_of - self.last_order) if self.last_order else NO_ORDER_RECENCY_DAYS
        f["avg_order_value_minor"] = f["spend_total_minor"] / orders if orders else 0.0
        f["return_rate"] = f["returns_365d"] / f["orders_365d"] if f["orders_365d"] else 0.0
        f["days_since_first_seen"] = _days(self.as_of - self.first_seen) if self.first_seen else 0.0
        f["days_since_last_seen"] = _days(self.as_of - self.last_seen) if self.last_seen else NO_ORDER_RECENCY_DAYS
        delivered = f["messages_delivered"]
        f["click_through_rate"] = min(1.0, f["messages_clicked"] / delivered) if delivered else 0.0
        f["points_balance"] = float(sum(self.points.values()))
        f["distinct_categories"] = float(len(self.categories))
        f["distinct_sources"] = float(len(self.sources))
        f["distinct_stores"] = float(len(self.stores))
        f["avg_rating"] = self.rating_sum / f["reviews"] if f["reviews"] else 0.0
        if self.birthday is not None:
            f["age_known"] = 1.0
            f["age_years"] = _days(self.as_of.date() - self.birthday) / 365.25
        return {name: float(f[name]) for name in FEATURE_NAMES}
