"""Triggered journeys on the real adapters under moto (campaigns table: places, timers, memberships, spend; the bus for
send orders) with an injected clock: entry on the trigger event, waits that cost nothing until the tick, conversion
by an exit event, a stable holdout, re-entry, budget, pause/stop, the stop switch, and a new version mid-flight."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from cdp.campaigns.journeys import holdout_group
from cdp.campaigns.lifecycle import SwitchRequest, parse_definition
from cdp.errors import ConflictError
from cdp.profile.models import Profile, TagValue
from tests.integration.campaigns.journey_world import BRAND, MARKETER, SAMPLE, T0, World, journey, live, treated


def test_a_cart_enters_waits_an_hour_then_is_reminded_and_an_order_ends_it(world: World) -> None:
    live(world)
    (ann, bob) = treated(2)
    # When two persons add to their carts
    assert world.event(ann, "add_to_cart") == [f"{ann} entered abandoned_cart (treatment)"]
    world.event(bob, "add_to_cart")
    # Then nothing is sent yet (the first step waits an hour), and a second cart event does not enter them again
    assert world.orders.sent == [] and world.event(ann, "add_to_cart") == []
    assert world.tick(T0 + timedelta(minutes=59)) == 0
    # When the hour is up: both get the SMS reminder (step 1), ordered once per entry and step
    assert world.tick(T0 + timedelta(hours=1)) == 2
    assert world.orders.steps_of(ann) == ["e1-s1"] and world.orders.sent[0].channel == "sms"
    assert world.orders.sent[0].brand_id == BRAND and world.orders.sent[0].run_id == "abandoned_cart-v1-journey"
    # When ann orders, she leaves as converted; bob gets the push with the coupon a day later
    assert world.event(ann, "order_placed") == [f"{ann} converted in abandoned_cart (treatment)"]
    assert world.tick(T0 + timedelta(days=1, hours=1)) == 1
    assert world.orders.steps_of(ann) == ["e1-s1"] and world.orders.steps_of(bob) == ["e1-s1", "e1-s3"]
    push = world.orders.sent[-1]
    assert push.channel == "push" and push.offer is not None and push.offer.code == "CART10"
    results = world.service.journey(BRAND, "abandoned_cart")
    assert results.entered == {"treatment": 2, "holdout": 0} and results.converted["treatment"] == 1
    assert results.by_status["treatment"] == {"converted": 1, "completed": 1}
    assert results.spent_minor == 5 + 5 + 1  # two SMS, one push


def test_the_holdout_goes_through_the_journey_without_any_send(world: World) -> None:
    live(world, holdout=0.5)
    persons = [f"h{i}" for i in range(40)]
    for person in persons:
        world.event(person, "add_to_cart")
    world.tick(T0 + timedelta(days=2))
    world.tick(T0 + timedelta(days=3))
    groups = {p: holdout_group("abandoned_cart", p, 0.5) for p in persons}
    # Then only the treatment was messaged, the split is the stable one, and both groups finished the journey
    ordered = {r.person_ids[0] for r in world.orders.sent if r.person_ids}
    assert ordered == {p for p, g in groups.items() if g == "treatment"}
    results = world.service.journey(BRAND, "abandoned_cart")
    holdout = sum(g == "holdout" for g in groups.values())
    assert results.entered == {"treatment": 40 - holdout, "holdout": holdout} and 10 <= holdout <= 30
    assert results.by_status["holdout"] == {"completed": holdout}


def test_reentry_waits_its_days_and_a_redelivered_event_enters_nobody(world: World) -> None:
    live(world, reentry_after_days=7)
    (ann,) = treated(1)
    world.event(ann, "add_to_cart", "cart-1")
    world.event(ann, "order_placed")
    # Then the same event delivered again does not enter her, nor a new cart within 7 days; one after that does
    assert world.event(ann, "add_to_cart", "cart-1") == []
    world.clock.at = T0 + timedelta(days=6)
    assert world.event(ann, "add_to_cart", "cart-2") == []
    world.clock.at = T0 + timedelta(days=7, minutes=1)
    assert world.event(ann, "add_to_cart", "cart-3") == [f"{ann} entered abandoned_cart (treatment)"]
    world.tick(T0 + timedelta(days=7, hours=2))
    assert world.orders.steps_of(ann) == ["e2-s1"]  # the second entry's key: its send is not deduplicated away
    # and with reentry_after_days null, never again
    world.service.define(journey(reentry_after_days=None), MARKETER)
    world.engine.refresh()
    world.event(ann, "order_placed")
    world.clock.at = T0 + timedelta(days=400)
    assert world.event(ann, "add_to_cart", "cart-4") == []


def test_the_budget_is_never_overspent(world: World) -> None:
    # Given a budget of 12 fen: two SMS (5 each), then nothing more fits
    budget = {"amount_minor": 12, "currency": "CNY", "cost_per_message_minor": {"sms": 5, "push": 1}}
    live(world, budget=budget)
    persons = treated(3)
    for person in persons:
        world.event(person, "add_to_cart")
    world.tick(T0 + timedelta(hours=1))
    # Then two reminders went out and the third person left the journey out of budget; the push (1 fen) still fits
    assert len(world.orders.sent) == 2
    results = world.service.journey(BRAND, "abandoned_cart")
    assert results.by_status["treatment"] == {"active": 2, "out_of_budget": 1} and results.spent_minor == 10
    world.tick(T0 + timedelta(days=2))
    assert world.service.journey(BRAND, "abandoned_cart").spent_minor == 12


def test_audience_conditions_pause_stop_and_the_switch_decide_who_enters_and_moves(world: World) -> None:
    # Given a journey for members of a dynamic audience only
    live(world, audience={"audience_id": "active_buyers"})
    ann, bob, cem = treated(3)
    member = TagValue(value=True, since=T0)
    world.profiles.profiles[ann] = Profile(
        person_id=ann, brand_id=BRAND, created_at=T0, updated_at=T0, tags={"audience:active_buyers": member}
    )
    world.profiles.profiles[bob] = Profile(person_id=bob, brand_id=BRAND, created_at=T0, updated_at=T0)
    assert world.event(ann, "add_to_cart") and world.event(bob, "add_to_cart") == []
    # When paused, nobody enters and those in it are held at their step
    world.service.pause(BRAND, "abandoned_cart", MARKETER)
    world.engine.refresh()
    assert world.event(cem, "add_to_cart") == []
    assert world.tick(T0 + timedelta(hours=2)) == 0 and world.orders.sent == []
    world.service.resume(BRAND, "abandoned_cart", MARKETER)
    assert world.tick(T0 + timedelta(hours=3)) == 1 and world.orders.steps_of(ann) == ["e1-s1"]
    # When the brand's stop switch is on, nobody enters
    world.service.set_switch(SwitchRequest(brand_id=BRAND, stopped=True), MARKETER)
    world.engine.refresh()
    world.profiles.profiles[cem] = world.profiles.profiles[ann].model_copy(update={"person_id": cem})
    assert world.event(cem, "add_to_cart") == []
    # When stopped, those in it leave at their next step
    world.service.stop(BRAND, "abandoned_cart", MARKETER)
    world.tick(T0 + timedelta(days=2))
    assert world.service.journey(BRAND, "abandoned_cart").by_status["treatment"] == {"stopped": 1}


def test_a_new_version_takes_new_entries_while_those_in_flight_finish_on_theirs(world: World) -> None:
    live(world)
    ann, bob = treated(2)
    world.event(ann, "add_to_cart")
    # When version 2 (an e-mail reminder after 30 minutes) is defined while ann waits on version 1
    steps = [
        {"wait": {"minutes": 30}},
        {"send": {"channel": "email", "template": {"subject": "Your cart", "body": "Still there"}}},
    ]
    budget = {"amount_minor": 1000, "currency": "CNY", "cost_per_message_minor": {"email": 1}}
    world.service.define(journey(steps=steps, budget=budget), MARKETER)
    world.engine.refresh()
    world.clock.at = T0 + timedelta(minutes=1)
    world.event(bob, "add_to_cart")
    world.tick(T0 + timedelta(hours=1, minutes=1))
    # Then ann got version 1's SMS and bob version 2's e-mail
    assert [(r.person_ids, r.channel) for r in world.orders.sent] == [([bob], "email"), ([ann], "sms")]


def test_two_moves_of_one_person_from_the_same_read_cannot_both_happen(world: World) -> None:
    live(world)
    (ann,) = treated(1)
    world.event(ann, "add_to_cart")
    store = world.engine.store
    place = store.get(BRAND, "abandoned_cart", ann)
    assert place is not None and place.next_at == T0 + timedelta(hours=1)
    converted = place.model_copy(update={"status": "converted", "rev": place.rev + 1, "next_at": None})
    store.save(converted, place)
    with pytest.raises(ConflictError):
        store.save(place.model_copy(update={"step": 2, "rev": place.rev + 1}), place)
    # and the timer went with the conversion: the tick finds nothing to move
    assert world.tick(T0 + timedelta(hours=2)) == 0 and store.memberships(BRAND, ann) == []


def test_ab_variants_split_the_treated_stably_and_each_arm_runs_its_own_steps(world: World) -> None:
    # Given two arms: the campaign's steps (SMS after an hour) and an e-mail right away
    email = {"channel": "email", "template": {"subject": "Your cart", "body": "Still there"}}
    variants = [{"name": "sms_later", "share": 0.5}, {"name": "email_now", "share": 0.5, "steps": [{"send": email}]}]
    budget = {"amount_minor": 10_000, "currency": "CNY", "cost_per_message_minor": {"sms": 5, "push": 1, "email": 1}}
    live(world, variants=variants, budget=budget, holdout=0.2)
    persons = [f"v{i}" for i in range(60)]
    for person in persons:
        world.event(person, "add_to_cart")
    # Then each treated person is in the arm the stable split gives, the e-mail arm was sent at once
    definition = journey(variants=variants, budget=budget, holdout=0.2)
    arm = {p: definition.variant_for(p) for p in persons if holdout_group("abandoned_cart", p, 0.2) == "treatment"}
    assert {a for a in arm.values()} == {"sms_later", "email_now"}
    emailed = {r.person_ids[0] for r in world.orders.sent if r.channel == "email" and r.person_ids}
    assert emailed == {p for p, a in arm.items() if a == "email_now"}
    world.tick(T0 + timedelta(hours=2))
    texted = {r.person_ids[0] for r in world.orders.sent if r.channel == "sms" and r.person_ids}
    assert texted == {p for p, a in arm.items() if a == "sms_later"}
    # And the results compare each arm with the holdout (three of the SMS arm, still in it, order)
    for p in [p for p, a in arm.items() if a == "sms_later"][:3]:
        world.event(p, "order_placed")
    results = world.service.journey(BRAND, "abandoned_cart")
    assert set(results.variants) == {"sms_later", "email_now"}
    assert sum(v.treatment.size for v in results.variants.values()) == results.entered["treatment"] == len(arm)
    assert results.variants["sms_later"].treatment.converted == 3
    assert results.variants["email_now"].treatment.converted == 0  # done after its one send: none still in it
    assert results.lift is not None and not results.lift.conclusive  # a few dozen persons: no conclusion drawn


def test_variant_shares_and_scheduled_runs_are_checked() -> None:
    from cdp.campaigns.lifecycle import CampaignInvalidError

    with pytest.raises(CampaignInvalidError, match=r"add up to 0\.9"):
        journey(variants=[{"name": "a", "share": 0.5}, {"name": "b", "share": 0.4}])
    with pytest.raises(CampaignInvalidError, match="in a scheduled campaign a variant is one send"):
        raw = yaml.safe_load((SAMPLE.parent / "winter_cake_sms.yaml").read_text(encoding="utf-8"))
        parse_definition({**raw, "variants": [{"name": "a", "share": 1.0}]})


def test_entering_a_dynamic_audience_or_a_lifecycle_stage_enters_a_journey(world: World) -> None:
    # Given a win-back journey on turning dormant, and a welcome journey on entering active_buyers
    steps = [{"send": {"channel": "sms", "template": {"body": "We miss you"}}}]
    budget = {"amount_minor": 100, "currency": "CNY", "cost_per_message_minor": {"sms": 5}}
    world.service.define(journey(trigger={"lifecycle": {"to": "dormant"}}, steps=steps, budget=budget), MARKETER)
    world.service.activate(BRAND, "abandoned_cart", MARKETER)
    world.engine.refresh()
    (ann, bob) = treated(2)
    # When ann turns dormant and bob turns mature
    entered = world.engine.on_signal(BRAND, ann, "lifecycle", "dormant", "lifecycle:dormant:t1")
    assert entered == [f"{ann} entered abandoned_cart (treatment)"]
    assert world.engine.on_signal(BRAND, bob, "lifecycle", "mature", "lifecycle:mature:t1") == []
    # Then only ann got the win-back SMS, and the same signal again enters nobody
    assert [r.person_ids for r in world.orders.sent] == [[ann]]
    assert world.engine.on_signal(BRAND, ann, "lifecycle", "dormant", "lifecycle:dormant:t1") == []
    # And an audience trigger fires on its own audience only
    world.service.define(journey(trigger={"audience_entered": "active_buyers"}, steps=steps, budget=budget), MARKETER)
    world.engine.refresh()
    assert world.engine.on_signal(BRAND, bob, "audience_entered", "other", "a:1") == []
    assert world.engine.on_signal(BRAND, bob, "audience_entered", "active_buyers", "a:2") != []


def test_a_trigger_is_exactly_one_kind() -> None:
    from cdp.campaigns.lifecycle import CampaignInvalidError

    with pytest.raises(
        CampaignInvalidError, match="exactly one of event, audience_entered, lifecycle, date, weather or location"
    ):
        journey(trigger={"event": "add_to_cart", "lifecycle": {"to": "dormant"}})
