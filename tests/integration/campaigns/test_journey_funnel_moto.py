"""A journey's funnel on the real adapters under moto: the engine keeps the steps each entry reached in the place it
writes anyway, the send function's tallies land on one small item per step (and the journey-wide item of before still
reads), and the results lay both on the definition's steps."""

from __future__ import annotations

from datetime import timedelta

from cdp.campaigns.journeys import TallyKey, holdout_group, tally_key
from tests.integration.campaigns.journey_world import BRAND, T0, World, live, treated

CAMPAIGN = "abandoned_cart"


def held_out(n: int, share: float) -> list[str]:
    return [p for p in (f"h{i}" for i in range(200)) if holdout_group(CAMPAIGN, p, share) == "holdout"][:n]


def test_each_step_counts_the_persons_who_reached_it_treated_and_held_out(world: World) -> None:
    # Given the sample journey (wait 1 h, SMS, wait 1 day, push) with half held out: three treated, two held out
    live(world, holdout=0.5)
    buyer, *others = treated(3, share=0.5)
    persons = [buyer, *others, *held_out(2, share=0.5)]
    for person in persons:
        world.event(person, "add_to_cart")
    # When the hour is up (everyone passes the SMS step), the buyer orders, and a day later the rest get the push
    assert world.tick(T0 + timedelta(hours=1)) == 5
    world.event(buyer, "order_placed")
    assert world.tick(T0 + timedelta(days=1, hours=1)) == 4
    # Then each step shows who reached it: 3 treated and 2 held out to the second wait, 2 and 2 at the push
    steps = world.service.journey(BRAND, CAMPAIGN).steps
    assert [(s.step, s.kind, s.reached, s.reached_holdout) for s in steps] == [
        ("steps[0]", "wait", 3, 2),
        ("steps[1]", "send", 3, 2),
        ("steps[2]", "wait", 3, 2),
        ("steps[3]", "send", 2, 2),
    ]
    # and the sends ordered name the step they are tallied under (only the treated were sent anything)
    keys = [tally_key(order) for order in world.orders.sent]
    assert keys == [TallyKey(1, "s1", None)] * 3 + [TallyKey(1, "s3", None)] * 2


def test_tallies_per_step_read_with_the_journey_wide_item_of_before(world: World) -> None:
    store = world.engine.store
    # Given what an older send function tallied for the whole journey, and newer tallies per step and arm
    store.tally(BRAND, CAMPAIGN, {"sent": 4, "suppressed_frequency_cap": 1})
    store.tally(BRAND, CAMPAIGN, {"sent": 1, "deferred_quiet_hours": 1}, TallyKey(1, "s1", "a"))
    store.tally(BRAND, CAMPAIGN, {"deferred_quiet_hours": -1}, TallyKey(1, "s1", "a"))  # released by the tick
    store.tally(BRAND, CAMPAIGN, {"sent": 1}, TallyKey(1, "s1", "a"))  # and sent
    store.tally(BRAND, CAMPAIGN, {"sent": 2, "failed": 1}, TallyKey(2, "reminder-s0", None))
    store.tally(BRAND, CAMPAIGN, {}, TallyKey(1, "s1", "a"))  # nothing to add: no write
    # Then each step reads apart, and the totals add them all
    assert store.step_outcomes(BRAND, CAMPAIGN) == {
        None: {"sent": 4, "suppressed_frequency_cap": 1},
        TallyKey(1, "s1", "a"): {"sent": 2, "deferred_quiet_hours": 0},
        TallyKey(2, "reminder-s0", None): {"sent": 2, "failed": 1},
    }
    assert store.outcomes(BRAND, CAMPAIGN) == {
        "sent": 8,
        "suppressed_frequency_cap": 1,
        "deferred_quiet_hours": 0,
        "failed": 1,
    }
    # and another journey's are not among them
    assert store.step_outcomes(BRAND, "other_journey") == {}
