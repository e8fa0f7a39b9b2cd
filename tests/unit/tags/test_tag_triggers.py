"""What wakes tag_update: the bus rule routes every profile change, and tag_update skips (with no read) exactly the
event types no tag or audience can read. Skipping is safe: such an event never changes any real-time tag."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cdp import topology
from cdp.ingest.events import EVENT_TYPES, parse_event
from cdp.profile.models import Profile, apply_event
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher
from cdp.tags.audience_rules import AudienceDefinition
from cdp.tags.catalog import IDENTITY_CHANGED, bundled_catalog
from cdp.tags.ports import StaticAudiences
from cdp.tags.recompute import event_records_of, recompute
from cdp.tags.selection import SWEEP, TagRules
from cdp.tags.service import TagEngine
from tests.fakes.profiles import InMemoryProfiles

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SAMPLES = Path(__file__).resolve().parents[3] / "events" / "canonical"
CATALOG = bundled_catalog()


def _matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge matching for the pattern shapes topology uses (lists of values, nested objects, $or)."""
    for key, wanted in pattern.items():
        if key == "$or":
            if not any(_matches(p, event) for p in wanted):
                return False
        elif isinstance(wanted, dict):
            if not isinstance(event.get(key), dict) or not _matches(wanted, event[key]):
                return False
        elif event.get(key) not in wanted:
            return False
    return True


def _bus_event(detail_type: str, data: dict[str, Any], source: str = topology.SOURCE_IDENTITY) -> dict[str, Any]:
    return {"source": source, "detail-type": detail_type, "detail": {"metadata": {}, "data": data}}


@pytest.mark.parametrize("event_type", sorted([*EVENT_TYPES, IDENTITY_CHANGED]))
def test_every_profile_update_reaches_tag_update(event_type: str) -> None:
    # Given a profile.updated of any event type (audiences defined at run time may read any of them)
    event = _bus_event(topology.PROFILE_UPDATED, {"person_id": "p", "event_type": event_type})
    # Then the tag rule routes it
    assert _matches(topology.PROFILE_UPDATED_RULE.pattern, event)
    assert topology.PROFILE_UPDATED_RULE.consumer == topology.TAG_UPDATE


def test_merges_reach_tag_update_and_foreign_events_do_not() -> None:
    pattern = topology.PROFILE_UPDATED_RULE.pattern
    assert _matches(pattern, _bus_event(topology.PROFILE_MERGED, {"survivor_id": "p"}))
    assert not _matches(pattern, _bus_event(topology.TAGS_CHANGED, {"person_id": "p"}, topology.SOURCE_TAGS))
    assert not _matches(pattern, _bus_event(topology.PROFILE_UPDATED, {}, topology.SOURCE_TAGS))


class _CountingProfiles(InMemoryProfiles):
    def __init__(self) -> None:
        super().__init__([Profile(person_id="p", brand_id="b", created_at=NOW, updated_at=NOW)])
        self.reads = 0

    def get(self, person_id: str) -> Profile | None:
        self.reads += 1
        return super().get(person_id)


class _NoPublish(EventPublisher):
    def publish(self, events: Sequence[Publishable], correlation_id: str) -> list[str]:
        raise AssertionError("nothing to publish")


def _engine(audiences: Sequence[AudienceDefinition] = ()) -> tuple[TagEngine, _CountingProfiles]:
    store = _CountingProfiles()
    engine = TagEngine(CATALOG, StaticAudiences(audiences), store, None, None, _NoPublish())  # type: ignore[arg-type]
    return engine, store


SKIPPED = sorted(t for t in EVENT_TYPES if TagRules(CATALOG).select(t).empty)
READ = sorted(set(EVENT_TYPES) - set(SKIPPED))


def test_the_bundled_catalog_reads_the_event_types_it_should() -> None:
    # Orders, returns, carts, messages, identity data and ad touches feed tags; reviews, points, coupons do not
    assert {"order_placed", "order_returned", "add_to_cart", "message_opened", "identify", "ad_clicked"} <= set(READ)
    assert {"review_posted", "points_changed", "page_view", "coupon_claimed"} <= set(SKIPPED)


@pytest.mark.parametrize("event_type", SKIPPED)
def test_an_event_type_nothing_reads_is_skipped_without_a_read(event_type: str) -> None:
    # Given the bundled catalog and no audience; When tag_update runs for that event type
    engine, store = _engine()
    outcome = engine.refresh("p", event_type, NOW)
    # Then it skipped before reading anything
    assert outcome.skipped and store.reads == 0


def test_an_audience_reading_an_event_type_stops_it_being_skipped() -> None:
    # Given an audience counting points changes
    points = AudienceDefinition.model_validate(
        {
            "id": "points_collectors",
            "name": "Points collectors",
            "kind": "dynamic",
            "include": {"agg": "count", "event": "points_changed", "within_days": 30, "gte": 3},
        }
    )
    rules = TagRules(CATALOG, [points])
    # Then points_changed selects that audience only, and the other skipped types stay skipped
    assert rules.select("points_changed").audiences == {"points_collectors"} and not rules.select("points_changed").tags
    assert rules.select("review_posted").empty


def _sample(event_type: str, at: datetime) -> Any:
    return parse_event({**json.loads((SAMPLES / f"{event_type}.v1.json").read_text()), "occurred_at": at.isoformat()})


def _all_real_time(profile: Profile, events: list[Any]) -> dict[str, Any]:
    rules = TagRules(CATALOG)
    result = recompute(rules, rules.select(SWEEP), profile, event_records_of(events), NOW, "test")
    return {k: (v.value, v.expires_at) for k, v in result.tags.items()} | {"next": result.next_expiry}


@pytest.mark.parametrize("event_type", SKIPPED)
def test_a_skipped_event_type_never_changes_a_real_time_tag(event_type: str) -> None:
    # Given a person with an order and a cart addition; When an event of a skipped type is applied
    base = Profile(person_id="p", brand_id="demo-brand", created_at=NOW, updated_at=NOW)
    history = [_sample("order_placed", NOW - timedelta(days=3)), _sample("add_to_cart", NOW - timedelta(days=1))]
    person = base
    for e in history:
        person = apply_event(person, e)
    extra = _sample(event_type, NOW - timedelta(hours=2))
    after = apply_event(person, extra)
    # Then every real-time tag, its expiry and the person's next expiry are exactly what they were
    assert _all_real_time(after, [*history, extra]) == _all_real_time(person, history)
