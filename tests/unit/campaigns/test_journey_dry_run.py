"""A journey's dry run: an event trigger replayed on the last 14 days of timelines (re-entry, the `where` filter,
audience conditions, the holdout, costs, caps), a date trigger forecast over the next 14 days, and the triggers
that cannot be run dry."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from cdp.campaigns.journey_dry_run import journey_dry_run
from cdp.campaigns.lifecycle import parse_definition
from cdp.errors import ConflictError
from cdp.ingest.events import parse_event
from cdp.org import OrgDirectory
from cdp.profile.models import Profile, TagValue, Traits
from cdp.profile.ports import TimelineEntry
from tests.fakes.profiles import InMemoryProfiles

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai
BRAND = OrgDirectory.model_validate(
    {"brands": {"demo-brand": {"group_id": "g", "contact": {"caps": [{"channel": "sms", "max": 1, "per_days": 7}]}}}}
).brand("demo-brand")


def cart_journey(**changes: Any) -> Any:
    raw = yaml.safe_load((REPO / "events" / "campaigns" / "abandoned_cart.yaml").read_text(encoding="utf-8"))
    return parse_definition({**raw, **changes})


def event(kind: str, at: datetime, n: int, **properties: Any) -> TimelineEntry:
    raw = json.loads((REPO / "events" / "canonical" / f"{kind}.v1.json").read_text(encoding="utf-8"))
    raw.update(event_id=f"{kind}-{n}", occurred_at=at.isoformat(), brand_id="demo-brand")
    raw["properties"].update(properties)
    return TimelineEntry("phone:+8613800000000", parse_event(raw))


def world(timelines: dict[str, list[TimelineEntry]], **tags: dict[str, Any]) -> InMemoryProfiles:
    profiles = InMemoryProfiles()
    for person_id, entries in timelines.items():
        person_tags = {k: TagValue(value=v, since=NOW) for k, v in tags.get(person_id, {}).items()}
        profiles.profiles[person_id] = Profile(
            person_id=person_id, brand_id="demo-brand", created_at=NOW, updated_at=NOW, tags=person_tags
        )
        profiles.timelines[person_id] = entries
    return profiles


class History:
    def __init__(self, sent: dict[str, list[tuple[str, datetime]]]) -> None:
        self.sent = sent

    def history(self, brand_id: str, person_id: str) -> list[tuple[str, datetime]]:
        return self.sent.get(person_id, [])


def test_cart_events_of_the_last_two_weeks_are_replayed_with_re_entry_and_the_holdout() -> None:
    day = timedelta(days=1)
    profiles = world(
        {
            # two carts two days apart: the second comes within the 7 days of re-entry
            "ann": [event("add_to_cart", NOW - 5 * day, 1), event("add_to_cart", NOW - 3 * day, 2)],
            # carts 9 days apart: both enter
            "bob": [event("add_to_cart", NOW - 13 * day, 3), event("add_to_cart", NOW - 4 * day, 4)],
            "cem": [event("add_to_cart", NOW - 20 * day, 5)],  # before the window
            "dan": [event("page_view", NOW - day, 6)],  # not a trigger
        }
    )
    contacts = History({"bob": [("sms", NOW - day)]})  # bob already had his one SMS of the week
    report = journey_dry_run(cart_journey(holdout=0.0), 1, BRAND, profiles, contacts, [], NOW)
    assert (report.basis, report.entries, report.treatment, report.holdout) == ("replayed", 3, 3, 0)
    assert report.not_entered_already_in == 1 and report.not_eligible == 0
    assert report.entries_by_day == {"2026-11-23": 1, "2026-12-01": 1, "2026-12-02": 1}
    assert report.first_send_cost_minor == 3 * 5  # the SMS reminder
    assert report.cost_at_most_minor == 3 * (5 + 1)  # the SMS and the push
    assert report.capped_today == 1


def test_the_where_filter_and_the_audience_conditions_decide_who_would_enter() -> None:
    cakes = {"lines": [{"sku": "C-1", "category": "birthday_cake", "quantity": 1, "unit_price_minor": 100}]}
    fans = {"lines": [{"sku": "F-1", "category": "fan", "quantity": 1, "unit_price_minor": 100}]}
    at = NOW - timedelta(days=2)
    profiles = world(
        {
            "gold": [event("order_placed", at, 1, total_minor=100, **cakes)],
            "plain": [event("order_placed", at, 2, total_minor=100, **cakes)],
            "fan": [event("order_placed", at, 3, total_minor=100, **fans)],
        },
        gold={"member_level": "gold"},
    )
    definition = cart_journey(
        trigger={"event": "order_placed", "where": {"category": "birthday_cake"}},
        exit_on=[],
        audience={"all_of": [{"tag": "member_level", "equals": "gold"}]},
        holdout=0.0,
    )
    report = journey_dry_run(definition, 1, BRAND, profiles, None, [], NOW)
    assert (report.entries, report.not_eligible) == (1, 1)  # plain's cake order: not gold; the fan: no trigger


def test_a_birthday_journey_is_forecast_over_the_next_two_weeks() -> None:
    profiles = InMemoryProfiles(
        [
            Profile(person_id=p, brand_id="demo-brand", created_at=NOW, updated_at=NOW, traits=Traits(birthday=b))
            for p, b in (("soon", date(1990, 12, 9)), ("later", date(1985, 12, 25)), ("far", date(1980, 3, 1)))
        ]
    )
    definition = cart_journey(trigger={"date": {"of": "birthday", "days_before": 7}}, exit_on=[], holdout=0.0)
    report = journey_dry_run(definition, None, BRAND, profiles, None, [], NOW)
    # soon's birthday week has begun (entered today); later's begins on the 18th; far's is months away
    assert report.basis == "forecast" and report.entries_by_day == {"2026-12-06": 1, "2026-12-18": 1}


def test_signal_triggers_have_no_dry_run() -> None:
    definition = cart_journey(trigger={"weather": {"below_c": 0}}, exit_on=[])
    with pytest.raises(ConflictError, match="announcements or signals"):
        journey_dry_run(definition, 1, BRAND, InMemoryProfiles(), None, [], NOW)
