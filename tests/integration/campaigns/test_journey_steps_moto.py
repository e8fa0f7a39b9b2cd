"""Journey steps beyond send and wait, on the real adapters under moto with an injected clock: waiting for an event
matched by a correlation key (the cart's sku in the order) with a timeout, branches on what the person did and on
their tags, a stable random split, goto and exit, buyers moved on to a next path, dropping a person after sends with
no response, waiting until a local time in the person's own time zone, and a trigger filtered by category."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cdp.campaigns.lifecycle import CampaignInvalidError
from cdp.profile.models import Profile, TagValue, Traits
from tests.integration.campaigns.journey_world import BRAND, T0, World, journey, live, treated


def sms(body: str) -> dict[str, Any]:
    return {"send": {"channel": "sms", "template": {"body": body}}}


def bodies(world: World, person: str) -> list[str]:
    return [str(r.template.body) for r in world.orders.sent if r.person_ids == [person]]


CART = {
    "trigger": {"event": "add_to_cart"},
    "exit_on": [],
    "steps": [
        {"wait_for": {"event": "order_placed", "match": "sku", "timeout": {"hours": 1}, "then": "thanks"}},
        sms("Your cart is waiting"),
        {"wait_for": {"event": "order_placed", "match": "sku", "timeout": {"days": 1}, "then": "thanks"}},
        sms("Last call for your cart"),
    ],
    "paths": {"thanks": [sms("Thank you for your order"), {"wait": {"days": 2}}, sms("How to care for it")]},
}


def test_wait_for_the_order_that_closes_the_cart_by_its_sku_else_remind(world: World) -> None:
    live(world, **CART)
    ann, bob, cem = treated(3)
    for person in (ann, bob, cem):
        world.event(person, "add_to_cart", keys={"sku": ["CAKE-1"], "category": ["birthday_cake"]})
    # When ann orders another sku (no match) and bob orders the cart's sku within the hour
    world.clock.at = T0 + timedelta(minutes=20)
    assert world.event(ann, "order_placed", keys={"sku": ["MUG-9"]}) == []
    assert world.event(bob, "order_placed", keys={"sku": ["MUG-9", "CAKE-1"]}) == [
        f"{bob} went on in abandoned_cart after order_placed"
    ]
    # Then bob is thanked at once (and not reminded); the others are reminded when the hour is up
    assert bodies(world, bob) == ["Thank you for your order"]
    world.tick(T0 + timedelta(hours=1))
    assert bodies(world, ann) == bodies(world, cem) == ["Your cart is waiting"]
    # When cem orders the cart the next morning: thanked; ann, who never does, gets the last call after a day
    world.clock.at = T0 + timedelta(hours=10)
    world.event(cem, "order_placed", keys={"sku": ["CAKE-1"]})
    world.tick(T0 + timedelta(days=1, hours=1))
    assert bodies(world, ann) == ["Your cart is waiting", "Last call for your cart"]
    assert bodies(world, cem) == ["Your cart is waiting", "Thank you for your order"]
    # And two days after their orders the buyers get the care tips; the send keys name the path and step
    world.tick(T0 + timedelta(days=3))
    assert bodies(world, bob)[-1] == bodies(world, cem)[-1] == "How to care for it"
    assert [r.step for r in world.orders.sent if r.person_ids == [bob]] == ["e1-thanks-s0", "e1-thanks-s2"]
    results = world.service.journey(BRAND, "abandoned_cart")
    assert results.by_status["treatment"] == {"completed": 3}


def test_branch_on_a_click_and_on_a_tag_split_goto_and_exit(world: World) -> None:
    steps = [
        sms("New season is here"),
        {"wait": {"days": 2}},
        {"branch": {"if": {"did": "message_clicked"}, "then": "engaged"}},
        {"branch": {"if": {"all_of": [{"tag": "member_level", "equals": "gold"}]}, "then": "vip", "else": "rest"}},
    ]
    paths = {
        "engaged": [sms("Here is what you looked at")],
        "vip": [sms("Your gold gift is ready"), {"exit": {}}, sms("never sent")],
        "rest": [{"split": {"arms": [{"share": 0.5, "goto": "coupon"}, {"share": 0.5}]}}, sms("See you soon")],
        "coupon": [sms("5 yuan off this week"), {"goto": "rest_end"}],
        "rest_end": [{"wait": {"hours": 1}}, sms("Last day of the offer")],
    }
    live(world, trigger={"event": "identify"}, exit_on=[], steps=steps, paths=paths)
    people = treated(40)
    clicker, gold = people[0], people[1]
    gold_tags = {"member_level": TagValue(value="gold", since=T0)}
    world.profiles.profiles[gold] = Profile(
        person_id=gold, brand_id=BRAND, created_at=T0, updated_at=T0, tags=gold_tags
    )
    for person in people:
        world.event(person, "identify")
    world.clock.at = T0 + timedelta(hours=5)
    world.event(clicker, "message_clicked")  # remembered: the journey's branch listens to it
    world.tick(T0 + timedelta(days=2))
    assert bodies(world, clicker) == ["New season is here", "Here is what you looked at"]
    assert bodies(world, gold) == ["New season is here", "Your gold gift is ready"]
    # The rest split about half and half, stably: the coupon arm goes to rest_end, the other gets "See you soon"
    rest = people[2:]
    couponed = [p for p in rest if "5 yuan off this week" in bodies(world, p)]
    assert 8 <= len(couponed) <= 30
    assert all(bodies(world, p)[-1] == "See you soon" for p in rest if p not in couponed)
    world.tick(T0 + timedelta(days=2, hours=1))
    assert all(bodies(world, p)[-1] == "Last day of the offer" for p in couponed)
    definition = journey(trigger={"event": "identify"}, exit_on=[], steps=steps, paths=paths)
    split = definition.paths["rest"][0].split
    assert split is not None
    again = [p for p in rest if split.arm_for(f"abandoned_cart:rest:0:{p}").goto == "coupon"]
    assert again == couponed  # the same persons every time
    assert world.service.journey(BRAND, "abandoned_cart").by_status["treatment"] == {"completed": 40}


def test_buyers_move_to_the_next_path_and_count_as_converted(world: World) -> None:
    paths = {"thanks": [sms("Thanks!"), {"wait": {"days": 2}}, sms("Usage tips"), {"wait": {"days": 12}}, sms("X")]}
    live(world, after_conversion="thanks", paths=paths, holdout=0.0)
    ann, bob = treated(2, share=0.0)
    world.event(ann, "add_to_cart")
    world.event(bob, "add_to_cart")
    world.clock.at = T0 + timedelta(minutes=30)
    assert world.event(ann, "order_placed") == [f"{ann} converted in abandoned_cart (treatment), on to thanks"]
    assert world.event(ann, "order_placed", event_id="second-order") == []  # only the first conversion moves her
    world.tick(T0 + timedelta(days=2, minutes=30))
    world.tick(T0 + timedelta(days=14, minutes=30))
    assert bodies(world, ann) == ["Thanks!", "Usage tips", "X"]
    results = world.service.journey(BRAND, "abandoned_cart")
    assert results.converted["treatment"] == 1 and results.by_status["treatment"]["completed"] == 2


def test_a_person_who_answers_nothing_is_dropped_after_n_sends_and_a_click_resets_the_count(world: World) -> None:
    steps = [sms(f"Touch {i}") if i % 2 == 0 else {"wait": {"days": 1}} for i in range(7)]
    live(world, trigger={"event": "identify"}, exit_on=[], steps=steps, max_unanswered=2, holdout=0.0)
    quiet, clicker = treated(2, share=0.0)
    world.event(quiet, "identify")
    world.event(clicker, "identify")
    for day in (1, 2, 3):
        world.clock.at = T0 + timedelta(days=day, hours=-1)
        world.event(clicker, "message_clicked", event_id=f"click-{day}")
        world.tick(T0 + timedelta(days=day))
    assert bodies(world, quiet) == ["Touch 0", "Touch 2"]
    assert bodies(world, clicker) == ["Touch 0", "Touch 2", "Touch 4", "Touch 6"]
    results = world.service.journey(BRAND, "abandoned_cart")
    assert results.by_status["treatment"] == {"unresponsive": 1, "completed": 1}


def test_wait_until_a_local_time_uses_the_persons_time_zone_else_the_brands(world: World) -> None:
    steps = [{"wait": {"until": "10:00"}}, sms("Good morning")]
    live(world, trigger={"event": "identify"}, exit_on=[], steps=steps, holdout=0.0)
    shanghai, new_york = treated(2, share=0.0)
    world.profiles.profiles[new_york] = Profile(
        person_id=new_york, brand_id=BRAND, created_at=T0, updated_at=T0, traits=Traits(timezone="America/New_York")
    )
    world.event(shanghai, "identify")  # T0 is 20:00 in Shanghai: 10:00 there is 02:00 UTC tomorrow
    world.event(new_york, "identify")  # and 07:00 in New York: 10:00 there is 15:00 UTC today
    world.tick(datetime(2026, 12, 6, 14, 59, tzinfo=UTC))
    assert world.orders.sent == []
    world.tick(datetime(2026, 12, 6, 15, 0, tzinfo=UTC))
    assert bodies(world, new_york) == ["Good morning"] and bodies(world, shanghai) == []
    world.tick(datetime(2026, 12, 7, 2, 0, tzinfo=UTC))
    assert bodies(world, shanghai) == ["Good morning"]


def test_an_event_trigger_filtered_by_category(world: World) -> None:
    steps = [{"wait": {"days": 365}}, sms("Time to clean your air conditioner: book a visit")]
    live(world, trigger={"event": "order_placed", "where": {"category": "air_conditioner"}}, exit_on=[], steps=steps)
    ann, bob = treated(2)
    assert world.event(ann, "order_placed", keys={"category": ["birthday_cake"]}) == []
    assert world.event(bob, "order_placed", keys={"category": ["fan", "air_conditioner"]}) != []
    world.tick(T0 + timedelta(days=365))
    assert bodies(world, bob) == ["Time to clean your air conditioner: book a visit"] and bodies(world, ann) == []


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"steps": [{"goto": "nowhere"}, sms("x")]}, "steps[0]", "no path 'nowhere'"),
        ({"paths": {"orphan": [sms("x")]}}, "paths.orphan", "no step goes to this path"),
        (
            {"steps": [{"goto": "a"}], "paths": {"a": [sms("x"), {"goto": "b"}], "b": [{"goto": "a"}]}},
            "paths.a",
            "loops without a wait",
        ),
        ({"after_conversion": "thanks"}, "after_conversion", "no path 'thanks'"),
        (
            {
                "trigger": {"lifecycle": {"to": "dormant"}},
                "steps": [{"wait_for": {"event": "order_placed", "match": "sku", "timeout": {"days": 1}}}, sms("x")],
            },
            "steps[0].wait_for.match",
            "only an event trigger",
        ),
        ({"paths": {"main": [sms("x")]}, "steps": [{"goto": "main"}]}, "paths.main", "the name of `steps`"),
    ],
)
def test_a_journey_with_a_broken_path_is_refused_with_the_field(
    changes: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(CampaignInvalidError) as refused:
        journey(**changes)
    assert any(i.field == field and message in i.message for i in refused.value.errors), refused.value.errors


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"send": {"channel": "sms", "template": {"body": "x"}}, "wait": {"days": 1}}, "exactly one of send, wait"),
        ({"wait": {"until": "10:00", "hours": 1}}, "not both"),
        ({"split": {"arms": [{"share": 0.5}, {"share": 0.4}]}}, "add up to 0.9"),
        ({"branch": {"if": {}, "then": "a"}}, "needs `did` or a tag condition"),
        ({"wait_for": {"event": "order_placed", "timeout": {"until": "10:00"}}}, "timeout is a duration"),
    ],
)
def test_a_malformed_step_is_refused(step: dict[str, Any], message: str) -> None:
    with pytest.raises(CampaignInvalidError, match=message):
        journey(steps=[step, sms("x")])


def test_a_loop_through_a_wait_sends_each_lap_and_the_holdout_is_never_dropped_as_unresponsive(world: World) -> None:
    steps = [{"goto": "nag"}]
    paths = {"nag": [sms("Come back"), {"wait": {"days": 1}}, {"goto": "nag"}]}
    live(world, trigger={"event": "identify"}, exit_on=[], steps=steps, paths=paths, max_unanswered=3, holdout=0.5)
    treated_one = treated(1, share=0.5)[0]
    held = next(p for p in (f"p{i}" for i in range(200)) if p not in treated(200, share=0.5))
    world.event(treated_one, "identify")
    world.event(held, "identify")
    for day in (1, 2, 3):
        world.tick(T0 + timedelta(days=day))
    # Each lap is its own message (its own key in the send ledger); the third unanswered one ends it
    assert [r.step for r in world.orders.sent] == ["e1-nag-s0", "e1-nag-s0-r1", "e1-nag-s0-r2"]
    places = {p.person_id: p for p in world.engine.store.places(BRAND, "abandoned_cart")}
    assert places[treated_one].status == "unresponsive"
    assert places[held].status == "active"  # the holdout got nothing to answer: still in, its conversions counted
    assert world.service.journey(BRAND, "abandoned_cart").spent_minor == 3 * 5


def test_a_definition_with_many_splits_validates_quickly() -> None:
    names = [f"p{i}" for i in range(10)]
    paths: dict[str, list[dict[str, Any]]] = {}
    for i, name in enumerate(names):
        later = names[i + 1 :] or [names[-1]]
        arms = [{"share": 0.1, "goto": later[j % len(later)]} for j in range(10)]
        paths[name] = [{"split": {"arms": arms}}] * 3 + [sms("x")] if i < 9 else [sms("x")]
    # 10 ** 27 routes through the splits: the loop check looks at each path once (it used to follow every route)
    definition = journey(steps=[{"goto": "p0"}], paths=paths)
    assert len(definition.paths) == 10


def test_a_paused_journey_holds_a_buyer_on_the_thank_you_path_and_thanks_them_after_resume(world: World) -> None:
    from tests.integration.campaigns.journey_world import MARKETER

    live(world, **{**CART, "exit_on": ["order_placed"], "after_conversion": "thanks"})
    ann, bob = treated(2)
    for person in (ann, bob):
        world.event(person, "add_to_cart", keys={"sku": ["CAKE-1"]})
    world.service.pause(BRAND, "abandoned_cart", MARKETER)
    world.engine.refresh()
    # When ann buys the cart while the journey is paused (no other journey listens to orders)
    world.clock.at = T0 + timedelta(minutes=20)
    assert world.event(ann, "order_placed", keys={"sku": ["CAKE-1"]}) == [
        f"{ann} went on in abandoned_cart after order_placed (held: abandoned_cart is not live)"
    ]
    # Then nothing is sent while paused, and her conversion and her next step are recorded
    world.tick(T0 + timedelta(hours=2))
    assert world.orders.sent == []
    place = world.engine.store.get(BRAND, "abandoned_cart", ann)
    assert place is not None and place.converted and place.pending and (place.path, place.step) == ("thanks", 0)
    # When resumed: ann is thanked (not reminded of a cart she bought); bob, who did not buy, gets the reminder
    world.service.resume(BRAND, "abandoned_cart", MARKETER)
    world.engine.refresh()
    world.tick(T0 + timedelta(hours=3, minutes=1))
    assert bodies(world, ann) == ["Thank you for your order"]
    assert bodies(world, bob) == ["Your cart is waiting"]
    results = world.service.journey(BRAND, "abandoned_cart")
    assert results.converted["treatment"] == 1


def test_an_event_awaited_only_by_an_older_version_still_moves_its_members(world: World) -> None:
    from tests.integration.campaigns.journey_world import MARKETER

    live(world, **CART)
    ann = treated(1)[0]
    world.event(ann, "add_to_cart", keys={"sku": ["CAKE-1"]})
    # When version 2 awaits no order at all (a plain reminder) and ann, on version 1, buys the cart
    world.service.define(journey(steps=[{"wait": {"hours": 2}}, sms("v2 reminder")], exit_on=[]), MARKETER)
    world.engine.refresh()
    world.clock.at = T0 + timedelta(minutes=20)
    assert world.event(ann, "order_placed", keys={"sku": ["CAKE-1"]}) == [
        f"{ann} went on in abandoned_cart after order_placed"
    ]
    # Then version 1's thank-you goes out, not its reminder
    world.tick(T0 + timedelta(hours=2))
    assert bodies(world, ann) == ["Thank you for your order"]


def test_a_held_person_moved_on_by_an_event_after_resume_goes_on_normally(world: World) -> None:
    from tests.integration.campaigns.journey_world import MARKETER

    live(world, **{**CART, "exit_on": ["review_posted"], "after_conversion": "thanks"})
    ann = treated(1)[0]
    world.event(ann, "add_to_cart", keys={"sku": ["CAKE-1"]})
    world.service.pause(BRAND, "abandoned_cart", MARKETER)
    world.engine.refresh()
    world.clock.at = T0 + timedelta(minutes=10)
    world.event(ann, "order_placed", keys={"sku": ["CAKE-1"]})  # held at the thank-you path's first step
    world.service.resume(BRAND, "abandoned_cart", MARKETER)
    world.engine.refresh()
    # When her review converts her before any tick: she is thanked now, then the care tips two days later
    world.clock.at = T0 + timedelta(minutes=20)
    world.event(ann, "review_posted")
    assert bodies(world, ann) == ["Thank you for your order"]
    world.tick(T0 + timedelta(days=2, minutes=30))
    assert bodies(world, ann) == ["Thank you for your order", "How to care for it"]
