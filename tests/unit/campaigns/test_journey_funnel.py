"""A journey's funnel per step and per A/B/n arm from hand-made places, tallies and receipt counts: every number below
is counted by hand from the inputs beside it. Also: how a send order and a message name their step, and how places
and tallies stored before steps were kept still read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cdp.campaigns.journey_funnel import journey_funnel, step_path
from cdp.campaigns.journeys import JourneyState, TallyKey, tally_key, total_outcomes
from cdp.campaigns.lifecycle import parse_definition
from cdp.campaigns.models import JourneyFunnelStep
from cdp.channels.models import SendBatchRequest, journey_place
from cdp.channels.ports import StepOf

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
SMS = {"channel": "sms", "template": {"body": "Your cart"}}
COSTS = {"sms": 5, "push": 1, "inapp": 0, "email": 1}
DEFINITION = parse_definition(
    {
        "campaign_id": "cart_funnel",
        "brand_id": "demo-brand",
        "name": "Cart funnel",
        "trigger": {"event": "add_to_cart"},
        "exit_on": ["order_placed"],
        "steps": [
            {"send": SMS},  # steps[0]: place s0
            {"wait": {"hours": 1}},  # steps[1]
            {"branch": {"if": {"did": "message_clicked"}, "then": "thanks"}},  # steps[2]
            {"send": {"channel": "push", "template": {"body": "10 off"}}},  # steps[3]
        ],
        "paths": {"thanks": [{"send": {"channel": "inapp", "template": {"body": "Thanks"}}}]},  # place thanks-s0
        "variants": [
            {"name": "a", "share": 0.5},  # the campaign's steps
            {
                "name": "b",
                "share": 0.5,
                "steps": [
                    {"send": {"channel": "email", "template": {"subject": "Cart", "body": "Still there"}}},
                    {"wait": {"hours": 1}},
                    {"send": SMS},
                ],
            },
        ],
        "budget": {"amount_minor": 10_000, "currency": "CNY", "cost_per_message_minor": COSTS},
        "holdout": 0.2,
    }
)


def place(
    person: str, group: str, variant: str | None, passed: list[str] | None, ordered: tuple[str, ...] = ()
) -> JourneyState:
    return JourneyState.model_validate(
        {
            "brand_id": "demo-brand",
            "campaign_id": "cart_funnel",
            "person_id": person,
            "version": 1,
            "group": group,
            "variant": variant,
            "status": "active",
            "step": 0,
            "entries": 1,
            "entered_at": T0,
            "entered_by": f"cart-{person}",
            "ordered": list(ordered),
            "passed": passed,
        }
    )


PLACES = [
    place("p1", "treatment", "a", ["s0", "s1", "s2", "s3"]),  # no click: the push
    place("p2", "treatment", "a", ["s0", "s1", "s2", "thanks-s0"]),  # clicked: the thanks path
    place("p3", "treatment", "b", ["s0", "s1"]),  # arm b's own steps, waiting
    place("p4", "treatment", "b", None, ordered=("s0",)),  # stored before `passed`: its send counts as reached
    place("h1", "holdout", None, ["s0", "s1", "s2", "s3"]),
    place("h2", "holdout", None, ["s0"]),
]
TALLIES: dict[TallyKey | None, dict[str, int]] = {
    TallyKey(1, "s0", "a"): {"sent": 2},
    TallyKey(1, "s3", "a"): {"sent": 2, "deferred_quiet_hours": -1},  # released after a deploy: held before steps
    TallyKey(1, "thanks-s0", "a"): {"sent": 1, "deferred_quiet_hours": 0},  # held, then released and sent
    TallyKey(1, "s0", "b"): {"sent": 1, "suppressed_frequency_cap": 1, "suppressed_no_consent": 1},
    TallyKey(2, "s0", "b"): {"sent": 1, "failed": 1, "deferred_quiet_hours": 1},  # version 2, the same place
    TallyKey(1, "s2", "b"): {"sent": 3},
    TallyKey(1, "s9", "a"): {"sent": 4},  # a step the latest version has no more
    None: {"sent": 7, "suppressed_priority": 2},  # tallied before steps were kept: in the totals only
}
RECEIPTS = {
    StepOf("cart_funnel-v1-journey", "s0", "a"): {"sms": {"delivered": 1, "clicked": 1}},
    StepOf("cart_funnel-v2-journey", "s0", "b"): {"email": {"sent": 1, "bounced": 1, "opened": 1}},
    StepOf("cart_funnel-v1-journey", "s3", "a"): {"push": {"sent": -1, "delivered": 2}},  # recorded before steps
}


def row(**counts: Any) -> JourneyFunnelStep:
    base: dict[str, Any] = {"sent": 0, "suppressed": {}, "deferred": 0, "failed": 0, "channel": None}
    return JourneyFunnelStep.model_validate({**base, **counts})


def test_every_step_in_the_definitions_order_with_its_persons_messages_and_receipts() -> None:
    # When the funnel is laid on the definition
    steps, _ = journey_funnel(DEFINITION, PLACES, TALLIES, RECEIPTS)
    # Then each step reads as counted by hand from the places, tallies and receipts above
    assert steps == [
        # p1 p2 reached it, h1 h2 held out; 2 sent; the SMS shown delivered (1) and clicked (1): 2 delivered
        row(step="steps[0]", kind="send", channel="sms", reached=2, reached_holdout=2, sent=2,
            receipts={"delivered": 1, "clicked": 1}, delivered=2, opened=1, clicked=1),
        row(step="steps[1]", kind="wait", reached=2, reached_holdout=1),
        row(step="steps[2]", kind="branch", reached=2, reached_holdout=1),
        # 2 sent; the -1 held (released after a deploy) shows as none; sent -1 + delivered 2: 2 delivered
        row(step="steps[3]", kind="send", channel="push", reached=1, reached_holdout=1, sent=2,
            receipts={"delivered": 2}, delivered=2),
        # p3 p4 (p4 by its send); versions 1 and 2 together: 2 sent, 2 kept back, 1 held now, 1 failed;
        # shown sent 1, bounced 1, opened 1: delivered 1 (the open), opened 1
        row(step="variants[1].steps[0]", kind="send", channel="email", reached=2, reached_holdout=0, sent=2,
            suppressed={"suppressed_no_consent": 1, "suppressed_frequency_cap": 1}, deferred=1, failed=1,
            receipts={"sent": 1, "bounced": 1, "opened": 1}, delivered=1, opened=1),
        row(step="variants[1].steps[1]", kind="wait", reached=1, reached_holdout=0),
        row(step="variants[1].steps[2]", kind="send", channel="sms", reached=0, reached_holdout=0, sent=3),
        row(step="paths.thanks[0]", kind="send", channel="inapp", reached=1, reached_holdout=0, sent=1),
        row(step="steps[9]", kind=None, reached=0, reached_holdout=0, sent=4),
    ]  # fmt: skip


def test_each_arm_has_its_own_steps_counted_for_its_persons_and_messages_alone() -> None:
    _, arms = journey_funnel(DEFINITION, PLACES, TALLIES, RECEIPTS)
    # Then arm a runs the campaign's steps (and the path, and the gone step it sent from), without the holdout
    assert [s.step for s in arms["a"]] == [
        "steps[0]",
        "steps[1]",
        "steps[2]",
        "steps[3]",
        "paths.thanks[0]",
        "steps[9]",
    ]
    first, thanks = arms["a"][0], arms["a"][4]
    assert (first.reached, first.reached_holdout, first.sent, first.delivered, first.clicked) == (2, None, 2, 2, 1)
    assert (thanks.reached, thanks.sent) == (1, 1)
    # and arm b its own three steps and the path, where it has sent nothing
    assert [s.step for s in arms["b"]] == [
        "variants[1].steps[0]",
        "variants[1].steps[1]",
        "variants[1].steps[2]",
        "paths.thanks[0]",
    ]
    email, waiting, sms, path = arms["b"]
    assert (email.reached, email.sent, email.failed, email.deferred, email.reached_holdout) == (2, 2, 1, 1, None)
    assert (waiting.reached, sms.sent, path.reached, path.sent) == (1, 3, 0, 0)


def test_totals_add_every_step_and_what_was_tallied_before_steps() -> None:
    # sent 2 + 2 + 1 + 1 + 1 + 3 + 4 + 7 = 21; deferred -1 + 0 + 1 = 0 (held, then released)
    assert total_outcomes(TALLIES.values()) == {
        "sent": 21,
        "deferred_quiet_hours": 0,
        "suppressed_frequency_cap": 1,
        "suppressed_no_consent": 1,
        "failed": 1,
        "suppressed_priority": 2,
    }


@pytest.mark.parametrize(
    ("variant", "place_", "path"),
    [
        ("a", "s3", "steps[3]"),  # an arm without steps of its own runs the campaign's
        (None, "s0", "steps[0]"),  # the holdout too
        ("b", "s2", "variants[1].steps[2]"),
        ("b", "thanks-s0", "paths.thanks[0]"),  # a path is everyone's
        ("gone", "s1", "steps[1]"),  # an arm the latest version has no more
        ("a", "x1", None),
    ],
)
def test_a_place_is_a_field_path_for_a_person_of_an_arm(variant: str | None, place_: str, path: str | None) -> None:
    assert step_path(DEFINITION, variant, place_) == path


@pytest.mark.parametrize(
    ("step", "place_"),
    [("e1-s0", "s0"), ("e12-thanks-s3", "thanks-s3"), ("e2-s1-r3", "s1"), ("touch1", None), ("test-2026-0", None)],
)
def test_a_messages_step_names_its_place_without_entry_or_lap(step: str, place_: str | None) -> None:
    assert journey_place(step) == place_


def order(run_id: str, step: str, variant: str | None = None) -> SendBatchRequest:
    raw = {"campaign_id": "cart_funnel", "run_id": run_id, "brand_id": "demo-brand", "step": step, "variant": variant}
    return SendBatchRequest.model_validate({**raw, **SMS, "person_ids": ["p1"]})


def test_a_send_order_is_tallied_under_its_version_place_and_arm() -> None:
    assert tally_key(order("cart_funnel-v3-journey", "e2-thanks-s0-r1", "b")) == TallyKey(3, "thanks-s0", "b")
    assert tally_key(order("cart_funnel-v1-journey", "e1-s1")) == TallyKey(1, "s1", None)
    assert tally_key(order("cart_funnel-v1-20261201T0200Z", "touch1")) is None  # a scheduled run's


def test_a_place_stored_before_steps_were_kept_reads_its_sends() -> None:
    old = JourneyState.model_validate_json(place("p9", "treatment", None, None, ("s1", "s3", "s1")).model_dump_json())
    assert old.passed is None and old.reached == ["s1", "s3"]
    assert place("p8", "holdout", None, []).reached == []
