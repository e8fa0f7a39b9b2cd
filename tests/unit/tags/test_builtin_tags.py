"""Built-in tags: lifecycle stages, RFM, and the 7-day window that must lapse on time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cdp.profile.models import Profile, ProfileFacts
from cdp.shared.envelope import Publishable
from cdp.tags.builtin import LIFECYCLE, PURCHASED_RECENTLY, RFM_SEGMENT, compute_tags
from cdp.tags.service import refresh_tags
from tests.fakes.profiles import InMemoryProfiles

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def person(orders: int = 0, last_order_days_ago: float | None = None, spend: int = 0) -> Profile:
    last = NOW - timedelta(days=last_order_days_ago) if last_order_days_ago is not None else None
    facts = ProfileFacts(order_count=orders, last_order_at=last, first_order_at=last, spend_minor=spend)
    return Profile(person_id="p1", brand_id="b", created_at=NOW, updated_at=NOW, facts=facts)


def test_lifecycle_stages_follow_thresholds() -> None:
    # Given persons at each stage; When tags are computed; Then each lands in its stage
    assert compute_tags(person(), NOW).values[LIFECYCLE] == "introduction"
    assert compute_tags(person(1, 10), NOW).values[LIFECYCLE] == "growth"
    assert compute_tags(person(5, 10), NOW).values[LIFECYCLE] == "mature"
    assert compute_tags(person(5, 100), NOW).values[LIFECYCLE] == "dormant"
    assert compute_tags(person(5, 400), NOW).values[LIFECYCLE] == "churned"


def test_rfm_segments() -> None:
    # Given a frequent recent big spender and a lapsed one-time buyer
    champion = compute_tags(person(12, 3, spend=900_000), NOW).values
    lapsed = compute_tags(person(1, 300, spend=5_000), NOW).values
    # Then they are champions and hibernating, with three-digit scores
    assert champion[RFM_SEGMENT] == "champions" and champion["rfm_score"] == "555"
    assert lapsed[RFM_SEGMENT] == "hibernating" and lapsed["rfm_score"] == "111"


def test_recent_purchase_window_expires_without_new_events() -> None:
    # Given a purchase 2 days ago
    tags = compute_tags(person(1, 2), NOW)
    assert tags.values[PURCHASED_RECENTLY] is True
    expiry = tags.expires[PURCHASED_RECENTLY]
    assert expiry == NOW - timedelta(days=2) + timedelta(days=7)
    # Then the next refresh is due no later than the window's end, and after it the tag is gone
    assert tags.next_change_at is not None and tags.next_change_at <= expiry
    assert PURCHASED_RECENTLY not in compute_tags(person(1, 2), expiry).values


class _Recorder:
    def __init__(self) -> None:
        self.published: list[Publishable] = []

    def publish(self, events: list[Publishable], correlation_id: str) -> list[str]:
        self.published.extend(events)
        return []


def test_refresh_keeps_since_for_unchanged_tags_and_reports_changes() -> None:
    # Given a stored person who bought 2 days ago and was tagged then
    store = InMemoryProfiles([person(1, 2)])
    publisher = _Recorder()
    first = refresh_tags("p1", store, store, publisher, NOW)  # type: ignore[arg-type]
    assert {c.tag for c in first} >= {LIFECYCLE, PURCHASED_RECENTLY}
    since = store.profiles["p1"].tags[LIFECYCLE].since
    # When the sweep runs 6 days later (past the 7-day window)
    later = NOW + timedelta(days=6)
    changes = refresh_tags("p1", store, store, publisher, later)  # type: ignore[arg-type]
    # Then only the window tag left, lifecycle kept its original since, and one tags.changed was published per refresh
    assert [(c.tag, c.new) for c in changes if c.tag == PURCHASED_RECENTLY] == [(PURCHASED_RECENTLY, None)]
    assert PURCHASED_RECENTLY not in store.profiles["p1"].tags
    assert store.profiles["p1"].tags[LIFECYCLE].since == since
    assert len(publisher.published) == 2
