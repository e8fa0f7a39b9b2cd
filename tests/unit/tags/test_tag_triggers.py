"""The tag rule wakes tag_update only for events that can change built-in tags: hold the tag functions to it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cdp import topology
from cdp.ingest.events import EVENT_TYPES, parse_event
from cdp.profile.models import Profile, apply_event
from cdp.tags.builtin import compute_tags

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SAMPLES = Path(__file__).resolve().parents[3] / "events" / "canonical"


def _ordered_person() -> Profile:
    order = parse_event(json.loads((SAMPLES / "order_placed.v1.json").read_text()))
    base = Profile(person_id="p", brand_id="b", created_at=NOW, updated_at=NOW)
    return apply_event(base, order.model_copy(update={"occurred_at": NOW - timedelta(days=3)}))


@pytest.mark.parametrize("event_type", [t for t in EVENT_TYPES if t not in topology.TAG_TRIGGER_EVENT_TYPES])
def test_non_trigger_events_never_change_builtin_tags(event_type: str) -> None:
    # Given a person with an order; When any non-trigger event is applied
    person = _ordered_person()
    event = parse_event(json.loads((SAMPLES / f"{event_type}.v1.json").read_text()))
    after = apply_event(person, event.model_copy(update={"occurred_at": NOW - timedelta(days=1)}))
    # Then the built-in tags and their next change time are exactly what they were
    before_tags, after_tags = compute_tags(person, NOW), compute_tags(after, NOW)
    assert after_tags == before_tags


def test_rule_pattern_lists_the_trigger_types() -> None:
    # Given the topology rule for tag_update; Then its content filter names exactly the trigger event types
    updated = next(
        p for p in topology.PROFILE_UPDATED_RULE.pattern["$or"] if p["detail-type"] == [topology.PROFILE_UPDATED]
    )
    assert updated["detail"]["data"]["event_type"] == list(topology.TAG_TRIGGER_EVENT_TYPES)
