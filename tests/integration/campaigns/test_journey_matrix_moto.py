"""Every trigger kind x every step kind, on the real campaigns table under moto with the injected clock: a person
entered by each kind of trigger goes through each kind of step as it says (8 x 7 journeys; a family member's
birthday is a date trigger of its own)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from cdp.campaigns.sweeps import LocationSignal, WeatherSignal, on_location, on_weather, open_date_sweeps, run_sweeps
from cdp.profile.models import FamilyMember, Profile, ProfileFacts, TagValue, Traits
from tests.integration.campaigns.journey_world import BRAND, ORG, T0, World, live

PERSON = "p-matrix"


def _sweep(world: World) -> None:
    run_sweeps(world.engine, world.sweeps, world.profiles, lambda: 60.0)


TRIGGERS: dict[str, tuple[dict[str, Any], Callable[[World], object]]] = {
    "event": ({"event": "identify"}, lambda w: w.event(PERSON, "identify")),
    "event_where": (
        {"event": "order_placed", "where": {"category": "cake"}},
        lambda w: w.event(PERSON, "order_placed", keys={"category": ["cake"]}),
    ),
    "audience_entered": (
        {"audience_entered": "vips"},
        lambda w: w.engine.on_signal(BRAND, PERSON, "audience_entered", "vips", "a:1"),
    ),
    "lifecycle": (
        {"lifecycle": {"to": "dormant"}},
        lambda w: w.engine.on_signal(BRAND, PERSON, "lifecycle", "dormant", "l:1"),
    ),
    "date": (
        {"date": {"of": "birthday", "days_before": 7, "at": "00:00"}},
        lambda w: (open_date_sweeps(w.engine, w.sweeps, ORG, T0), _sweep(w)),
    ),
    "family_birthday": (
        {"date": {"of": "family_birthday", "relation": "child", "days_before": 7, "at": "00:00"}},
        lambda w: (open_date_sweeps(w.engine, w.sweeps, ORG, T0), _sweep(w)),
    ),
    "weather": (
        {"weather": {"city": "Harbin", "below_c": -20}},
        lambda w: (
            on_weather(
                w.engine, w.sweeps, ORG, WeatherSignal(brand_id=BRAND, city="Harbin", temperature_c=-25, observed_at=T0)
            ),
            _sweep(w),
        ),
    ),
    "location": (
        {"location": {"place": "store", "store_ids": ["sh01"]}},
        lambda w: on_location(
            w.engine, LocationSignal(brand_id=BRAND, person_id=PERSON, place="store", store_id="sh01", at=T0)
        ),
    ),
}


def sms(body: str) -> dict[str, Any]:
    return {"send": {"channel": "sms", "template": {"body": body}}}


@dataclass(frozen=True)
class StepCase:
    steps: list[dict[str, Any]]
    paths: dict[str, list[dict[str, Any]]]
    then: Callable[[World], None]  # what happens after entry (events, ticks)
    sent: list[str]  # the bodies the person gets, in order
    status: str  # where they end


STEPS: dict[str, StepCase] = {
    "send": StepCase([sms("A")], {}, lambda w: None, ["A"], "completed"),
    "wait": StepCase(
        [{"wait": {"hours": 1}}, sms("A")], {}, lambda w: w.tick(T0 + timedelta(hours=1)), ["A"], "completed"
    ),
    "wait_for": StepCase(
        [{"wait_for": {"event": "review_posted", "timeout": {"hours": 1}, "then": "got"}}, sms("TIMEOUT")],
        {"got": [sms("GOT")]},
        lambda w: w.event(PERSON, "review_posted"),
        ["GOT"],
        "completed",
    ),
    "branch": StepCase(
        [{"branch": {"if": {"all_of": [{"tag": "vip", "equals": True}]}, "then": "vip", "else": "rest"}}],
        {"vip": [sms("VIP")], "rest": [sms("REST")]},
        lambda w: None,
        ["VIP"],
        "completed",
    ),
    "split": StepCase(
        [{"split": {"arms": [{"share": 0.5, "goto": "a"}, {"share": 0.5, "goto": "b"}]}}],
        {"a": [sms("X")], "b": [sms("X")]},
        lambda w: None,
        ["X"],
        "completed",
    ),
    "goto": StepCase(
        [{"goto": "next"}, sms("SKIPPED")], {"next": [sms("NEXT")]}, lambda w: None, ["NEXT"], "completed"
    ),
    "exit": StepCase(
        [{"wait": {"minutes": 5}}, {"exit": {}}, sms("NEVER")],
        {},
        lambda w: w.tick(T0 + timedelta(minutes=5)),
        [],
        "completed",
    ),
}


@pytest.mark.parametrize("step_kind", sorted(STEPS))
@pytest.mark.parametrize("trigger_kind", sorted(TRIGGERS))
def test_each_trigger_kind_runs_each_step_kind(world: World, trigger_kind: str, step_kind: str) -> None:
    trigger, fire = TRIGGERS[trigger_kind]
    case = STEPS[step_kind]
    live(world, trigger=trigger, exit_on=[], steps=case.steps, paths=case.paths, holdout=0.0)
    world.profiles.profiles[PERSON] = Profile(
        person_id=PERSON,
        brand_id=BRAND,
        created_at=T0,
        updated_at=T0,
        traits=Traits(birthday=date(1990, 12, 9), city="Harbin"),
        facts=ProfileFacts(family={"child:mia": FamilyMember(relation="child", birthday=date(2020, 12, 8), at=T0)}),
        tags={"vip": TagValue(value=True, since=T0)},
    )
    world.clock.at = T0
    fire(world)
    place = world.engine.store.get(BRAND, "abandoned_cart", PERSON)
    assert place is not None, f"{trigger_kind} entered nobody"
    case.then(world)
    assert [str(r.template.body) for r in world.orders.sent] == case.sent
    place = world.engine.store.get(BRAND, "abandoned_cart", PERSON)
    assert place is not None and place.status == case.status
    assert place.entered_at == T0 and place.entries == 1


def test_the_matrix_covers_every_kind() -> None:
    from cdp.campaigns.definition import STEP_KINDS

    assert set(STEPS) == set(STEP_KINDS)
    from cdp.campaigns.triggers import Trigger

    assert set(TRIGGERS) - {"event_where", "family_birthday"} == set(Trigger.model_fields) - {"where"}
    assert datetime(2026, 12, 9, tzinfo=UTC) - T0 < timedelta(days=7)  # the birthday falls in the date trigger's week
