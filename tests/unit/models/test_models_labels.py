"""Label modes: campaign response (as of the delivery) and purchase propensity (as of horizon - window)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.models.labels import (
    LabelMode,
    PersonHistory,
    campaign_response_labels,
    data_horizon,
    purchase_propensity_labels,
    uplift_labels,
)
from cdp.profile.models import Profile

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
HORIZON = T0 + timedelta(days=60)
_ids = itertools.count()


def ev(event_type: str, day: float, **props: Any) -> CanonicalEvent:
    return parse_event(
        {
            "event_id": f"e{next(_ids)}",
            "event_type": event_type,
            "source": "app",
            "brand_id": "acme",
            "occurred_at": (T0 + timedelta(days=day)).isoformat(),
            "identifiers": [{"type": "device_id", "value": "dev-1"}],
            "properties": props,
        }
    )


def order(day: float) -> CanonicalEvent:
    line = {"sku": "s1", "quantity": 1, "unit_price_minor": 100}
    return ev("order_placed", day, order_id=f"o{next(_ids)}", lines=[line], total_minor=100, currency="CNY")


def delivered(day: float, campaign: str = "c1", status: str = "delivered") -> CanonicalEvent:
    return ev("message_delivered", day, message_id=f"m{next(_ids)}", channel="sms", campaign_id=campaign, status=status)


def person(pid: str, *events: CanonicalEvent) -> PersonHistory:
    return PersonHistory(Profile(person_id=pid, brand_id="acme", created_at=T0, updated_at=T0), list(events))


def test_campaign_response_labels_orders_inside_the_window_after_first_delivery() -> None:
    # Given persons with different order timings around a delivery of campaign c1 on day 10 (window 7 days)
    histories = [
        person("buyer", delivered(10), order(12)),
        person("late", delivered(10), order(18)),
        person("earlier_buyer", order(9), delivered(10)),
        person("twice", delivered(10), delivered(20), order(25)),  # first delivery counts: day 25 is too late
        person("bounced", delivered(10, status="bounced"), order(11)),
        person("other_campaign", delivered(10, campaign="c2"), order(11)),
        person("too_recent", delivered(58), order(59)),  # 58 + 7 > 60
    ]
    # When labelled
    labeled = campaign_response_labels(histories, "c1", window_days=7, horizon=HORIZON)
    # Then only recipients of c1 with a complete window are rows, as of their first delivery
    rows = {ex.person_id: ex for ex in labeled.examples}
    assert set(rows) == {"buyer", "late", "earlier_buyer", "twice"}
    assert {pid: ex.label for pid, ex in rows.items()} == {"buyer": 1, "late": 0, "earlier_buyer": 0, "twice": 0}
    assert rows["twice"].as_of == T0 + timedelta(days=10)
    assert labeled.excluded == 1  # too_recent: its window ends after the horizon
    assert labeled.definition.mode is LabelMode.CAMPAIGN_RESPONSE
    assert labeled.definition.campaign_id == "c1"


def test_purchase_propensity_labels_use_cutoff_before_horizon() -> None:
    # Given a horizon on day 60 and a 30-day window (cutoff day 30)
    histories = [
        person("active", ev("page_view", 5, url="https://x.example/"), order(40)),
        person("quiet", order(2), ev("page_view", 45, url="https://x.example/")),
        person("new", order(35), order(60)),  # first seen after the cutoff: unknown at the cutoff
        person("at_horizon", ev("page_view", 1, url="https://x.example/"), order(60)),
    ]
    horizon = data_horizon(histories)
    assert horizon == T0 + timedelta(days=60)
    # When labelled
    labeled = purchase_propensity_labels(histories, window_days=30, horizon=horizon)
    # Then rows are as of the cutoff and the window includes the horizon itself
    rows = {ex.person_id: ex for ex in labeled.examples}
    assert {pid: ex.label for pid, ex in rows.items()} == {"active": 1, "quiet": 0, "at_horizon": 1}
    assert all(ex.as_of == T0 + timedelta(days=30) for ex in labeled.examples)
    assert labeled.excluded == 1
    assert labeled.definition.cutoff == T0 + timedelta(days=30)
    assert "30 days" in labeled.definition.describe()


def test_data_horizon_of_nothing_is_none() -> None:
    assert data_horizon([]) is None
    assert data_horizon([person("p")]) is None


def test_uplift_rows_take_the_group_from_the_assignment_else_from_the_send() -> None:
    # Given a campaign on day 10: a treated person known by the send log alone (the message failed), one assigned to
    # treatment explicitly, one on the held-out list who bought anyway, and one outside the campaign
    sent_only = person("a", delivered(10, status="failed"), order(12))
    assigned = person("b", ev("campaign_assigned", 9.9, campaign_id="c1", group="treatment"), delivered(10))
    held = person("c", ev("campaign_assigned", 10, campaign_id="c1", group="holdout"), order(11))
    outside = person("d", order(11))
    # When labelled with a 14-day window
    labeled = uplift_labels([sent_only, assigned, held, outside], ["c1"], 14, HORIZON)
    # Then each campaign member is one row with its group, as of its assignment (else its send), outsiders none
    rows = {ex.person_id: (ex.group, ex.label, ex.as_of) for ex in labeled.examples}
    assert rows == {
        "a": ("treatment", 1, T0 + timedelta(days=10)),
        "b": ("treatment", 0, T0 + timedelta(days=9.9)),
        "c": ("holdout", 1, T0 + timedelta(days=10)),
    }
    assert labeled.definition.mode is LabelMode.UPLIFT
