"""Conversion checks (treatment vs holdout, follow-up batches, merges) and the summary math in integer money."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter

from cdp.campaigns.models import (
    AudienceCounts,
    AudienceDocument,
    AudienceManifest,
    CampaignCommand,
    CampaignRequest,
    CampaignSummary,
    Member,
    SendTally,
    dump,
)
from cdp.campaigns.service import (
    audience_key,
    check_conversions,
    run_command,
    scale,
    sends_key,
    summarize,
    summary_key,
)
from cdp.errors import InvalidInputError
from cdp.ingest.events import OrderPlacedEvent
from cdp.offers.service import OfferSpend
from cdp.profile.models import Profile
from tests.fakes.artifacts import InMemoryArtifactStore
from tests.fakes.profiles import InMemoryProfiles

ProfileFactory = Callable[..., Profile]
OrderFactory = Callable[..., OrderPlacedEvent]
RequestFactory = Callable[..., CampaignRequest]


def _audience(
    store: InMemoryArtifactStore, req: CampaignRequest, sent_at: datetime, treatment: list[str], holdout: list[str]
) -> None:
    """Write an audience document with chosen groups (the hash split is tested elsewhere)."""
    doc = AudienceDocument(
        manifest=AudienceManifest(
            run_id="run-1",
            request=req,
            selected_at=sent_at,
            sent_at=sent_at,
            counts=AudienceCounts(
                eligible=len(treatment) + len(holdout),
                selected=len(treatment) + len(holdout),
                treatment=len(treatment),
                holdout=len(holdout),
                unscored=0,
            ),
            capacity=100,
            budget_reserved_minor=5 * len(treatment),
            currency="CNY",
            batch_keys=[],
        ),
        treatment=[Member(person_id=p) for p in treatment],
        holdout=[Member(person_id=p) for p in holdout],
    )
    store.put_json(audience_key("run-1"), dump(doc))


def _bought(profiles: InMemoryProfiles, person_id: str, order: OrderPlacedEvent) -> None:
    """The world: a person places an order (timeline + facts, as identity_merge would)."""
    profiles.add_events(person_id, [order])
    p = profiles.profiles[person_id]
    last = p.facts.last_order_at
    facts = p.facts.model_copy(update={"last_order_at": max(order.occurred_at, last) if last else order.occurred_at})
    profiles.profiles[person_id] = p.model_copy(update={"facts": facts})


def test_check_counts_orders_inside_the_window_and_writes_follow_ups(
    profile: ProfileFactory,
    order: OrderFactory,
    request_for: RequestFactory,
    store: InMemoryArtifactStore,
    t0: datetime,
) -> None:
    # Given treatment t1..t5 and holdout h1..h2 sent at t0 with a 7-day window
    ids = ["t1", "t2", "t3", "t4", "t5", "h1", "h2"]
    profiles = InMemoryProfiles([profile(p, consent={"sms": True, "email": p != "t5"}) for p in ids])
    req = request_for(conversion_window_seconds=7 * 86400)
    _audience(store, req, t0, ["t1", "t2", "t3", "t4", "t5"], ["h1", "h2"])
    # And t1 bought after the send, t2 only before it, t3 after the window, h1 after the send
    _bought(profiles, "t1", order("t1", t0 + timedelta(hours=5)))
    _bought(profiles, "t2", order("t2", t0 - timedelta(hours=1)))
    _bought(profiles, "t3", order("t3", t0 + timedelta(days=8)))
    _bought(profiles, "h1", order("h1", t0 + timedelta(days=1)))
    touch1 = [SendTally(sent=3, by_channel={"sms": 3}), SendTally(sent=1, failed=1, by_channel={"sms": 1})]
    # When conversions are checked 10 days later
    result = check_conversions("run-1", profiles, store, t0 + timedelta(days=10), touch1_results=touch1)
    # Then only in-window orders convert
    assert (result.treatment_converted, result.holdout_converted) == (1, 1)
    # And the follow-up goes to treatment non-converters with e-mail consent, never to the holdout
    follow_up = [p for b in result.batches for p in store.get_json(b.batch_key)]
    assert follow_up == ["t2", "t3", "t4"]
    assert result.batches[0].batch_key == "campaigns/run-1/batches/touch2/0000.json"
    # And the touch1 send results are tallied into the store
    assert result.touch1 == SendTally(sent=4, failed=1, by_channel={"sms": 4})
    assert store.get_json(sends_key("run-1", "touch1"))["sent"] == 4


def test_check_follows_merges_to_the_surviving_person(
    profile: ProfileFactory,
    order: OrderFactory,
    request_for: RequestFactory,
    store: InMemoryArtifactStore,
    t0: datetime,
) -> None:
    # Given t1 and t2 selected, then t2 merged into s (who bought), and t1 merged into t3 (who did not)
    profiles = InMemoryProfiles(
        [
            profile("t2", merged_into="s"),
            profile("s", merged_from=("t2",)),
            profile("t1", merged_into="t3"),
            profile("t3", merged_from=("t1",)),
        ]
    )
    _bought(profiles, "s", order("s", t0 + timedelta(hours=2)))
    _audience(store, request_for(), t0, ["t1", "t2"], [])
    # When checked
    result = check_conversions("run-1", profiles, store, t0 + timedelta(days=1))
    # Then t2 converted through s, and the reminder goes to t3 (the survivor), not the merged-away id
    assert result.treatment_converted == 1
    assert [p for b in result.batches for p in store.get_json(b.batch_key)] == ["t3"]


def test_check_without_second_touch_writes_no_batches(
    profile: ProfileFactory, request_for: RequestFactory, store: InMemoryArtifactStore, t0: datetime
) -> None:
    # Given second_touch disabled / When checked / Then no follow-up batches
    _audience(store, request_for(second_touch=False), t0, ["t1"], [])
    result = check_conversions("run-1", InMemoryProfiles([profile("t1")]), store, t0 + timedelta(days=1))
    assert result.batches == [] and result.follow_up_persons == 0


def test_check_of_an_unknown_run_is_invalid_input(store: InMemoryArtifactStore, t0: datetime) -> None:
    # Given no audience for the run / When checked / Then a typed error names the run id
    with pytest.raises(InvalidInputError, match="nope"):
        check_conversions("nope", InMemoryProfiles(), store, t0)


def test_summary_math_in_integer_minor_units(
    profile: ProfileFactory,
    order: OrderFactory,
    request_for: RequestFactory,
    store: InMemoryArtifactStore,
    t0: datetime,
) -> None:
    # Given 10 treated persons (3 bought for 100.00 CNY each) and 5 held out (1 bought for 40.00 CNY)
    treatment = [f"t{i}" for i in range(10)]
    holdout = [f"h{i}" for i in range(5)]
    profiles = InMemoryProfiles([profile(p) for p in treatment + holdout])
    for p in treatment[:3]:
        _bought(profiles, p, order(p, t0 + timedelta(days=1), total_minor=10000))
    _bought(profiles, "h0", order("h0", t0 + timedelta(days=2), total_minor=4000))
    # And an order in another currency converts but adds no CNY revenue
    _bought(profiles, "t3", order("t3", t0 + timedelta(days=2), total_minor=999, currency="USD"))
    _audience(store, request_for(), t0, treatment, holdout)
    # And 10 SMS at 5 fen (from the check) and 6 e-mails at 1 fen (touch2 results)
    check_conversions("run-1", profiles, store, t0 + timedelta(days=3), touch1_results=[SendTally(sent=10)])
    touch2 = [SendTally(sent=6, suppressed_no_consent=1, by_channel={"email": 6})]
    # When summarized
    result = summarize("run-1", profiles, store, t0 + timedelta(days=5), touch2_results=touch2)
    summary = CampaignSummary.model_validate(store.get_json(summary_key("run-1")))
    # Then rates, lift and incremental figures follow from the counts
    assert (summary.treatment.converted, summary.holdout.converted) == (4, 1)
    assert summary.treatment.orders_other_currency == 1
    assert (summary.treatment_rate, summary.holdout_rate, summary.absolute_lift) == (0.4, 0.2, 0.2)
    assert summary.incremental_conversions == 2.0  # 4 - 1 * 10 / 5
    assert summary.revenue_per_person_treatment_minor == 3000
    assert summary.revenue_per_person_holdout_minor == 800
    assert summary.incremental_revenue_minor == 30000 - 8000
    # And cost uses the per-channel prices (touch1 has no per-channel split: its channel is assumed)
    assert summary.messages_by_channel == {"email": 6, "sms": 10}
    assert (summary.touch1_cost_minor, summary.touch2_cost_minor, summary.cost_minor) == (50, 6, 56)
    assert summary.roi == round((22000 - 56) / 56, 4)
    assert isinstance(summary.incremental_revenue_minor, int) and isinstance(summary.cost_minor, int)
    # And the state machine output is small and agrees
    assert (result.treatment, result.holdout, result.cost_minor, result.roi) == (10, 5, 56, summary.roi)
    assert result.summary_key == "campaigns/run-1/summary.json"


def test_summary_without_holdout_reports_no_lift(
    profile: ProfileFactory, request_for: RequestFactory, store: InMemoryArtifactStore, t0: datetime
) -> None:
    # Given a run with no holdout and nothing sent
    _audience(store, request_for(holdout_fraction=0.0), t0, ["t1"], [])
    # When summarized / Then incremental figures are unknown rather than invented
    result = summarize("run-1", InMemoryProfiles([profile("t1")]), store, t0 + timedelta(days=1))
    summary = CampaignSummary.model_validate(store.get_json(result.summary_key))
    assert summary.absolute_lift is None and summary.incremental_revenue_minor is None and summary.roi is None
    assert summary.cost_minor == 0 and summary.messages_by_channel == {}


@pytest.mark.parametrize(
    ("amount", "num", "den", "expected"),
    [(7, 1, 2, 4), (-7, 1, 2, -4), (4000, 10, 5, 8000), (10, 1, 3, 3), (20, 1, 3, 7), (0, 5, 7, 0)],
)
def test_scale_rounds_half_away_from_zero_in_integers(amount: int, num: int, den: int, expected: int) -> None:
    # Given an amount and a ratio / When scaled / Then the integer result is rounded, never a float
    assert scale(amount, num, den) == expected


def test_run_command_dispatches_state_machine_payloads(
    profile: ProfileFactory, request_for: RequestFactory, store: InMemoryArtifactStore, t0: datetime
) -> None:
    # Given the three payloads the state machine sends, as JSON
    adapter: TypeAdapter[Any] = TypeAdapter(CampaignCommand)
    profiles = InMemoryProfiles([profile(f"p{i}", score=0.5) for i in range(3)])
    select = {"action": "select", "request": dump(request_for(holdout_fraction=0.0)), "execution_name": "e1"}
    # When each is run in order
    selected = run_command(adapter.validate_python(select), profiles, store, t0)
    check = {"action": "check", "run_id": "run-1", "step": "touch2", "touch1_results": [{"sent": 3, "extra": 1}]}
    checked = run_command(adapter.validate_python(check), profiles, store, t0 + timedelta(seconds=1))
    summarize_cmd = {"action": "summarize", "run_id": "run-1", "touch2_results": []}
    summarized = run_command(adapter.validate_python(summarize_cmd), profiles, store, t0 + timedelta(seconds=2))
    # Then each returns plain JSON with keys and counts only
    assert selected["selection"]["counts"]["treatment"] == 3 and selected["request"]["run_id"] == "run-1"
    assert checked["follow_up_persons"] == 3 and checked["touch1"]["sent"] == 3
    assert summarized["summary_key"] == "campaigns/run-1/summary.json" and summarized["cost_minor"] == 15


class _SpentPlans:
    """The run's offer plans as the summary reads them: what each budgeted offer cost by then."""

    def __init__(self, spent: list[OfferSpend]) -> None:
        self.spent_by_offer, self.released = spent, False

    def release(self, brand_id: str, run_id: str, offer_ids: Any, now: datetime) -> None:
        self.released = True

    def spent(self, brand_id: str, run_id: str, offer_ids: Any) -> list[OfferSpend]:
        return [s for s in self.spent_by_offer if s.offer_id in offer_ids]


def test_offers_other_than_coupons_count_in_the_cost_and_roi(
    profile: ProfileFactory,
    order: OrderFactory,
    request_for: RequestFactory,
    store: InMemoryArtifactStore,
    t0: datetime,
) -> None:
    # Given 10 treated (3 bought 100.00 CNY) and 5 held out (1 bought 40.00): incremental revenue 300.00 - 80.00
    treatment, holdout = [f"t{i}" for i in range(10)], [f"h{i}" for i in range(5)]
    profiles = InMemoryProfiles([profile(p) for p in treatment + holdout])
    for p in treatment[:3]:
        _bought(profiles, p, order(p, t0 + timedelta(days=1), total_minor=10000))
    _bought(profiles, "h0", order("h0", t0 + timedelta(days=2), total_minor=4000))
    # And the first send issues a red packet and the reminder a coupon: 4 packets of 8.88 were paid, 2 coupons took
    # 20.00 off (already out of the orders' revenue)
    req = request_for()
    touch1 = {**req.touch1.model_dump(mode="json"), "offer": {"offer_id": "packet"}}
    touch2 = {**req.touch2.model_dump(mode="json"), "offer": {"offer_id": "coupon"}} if req.touch2 else None
    req = request_for(touch1=touch1, touch2=touch2)
    _audience(store, req, t0, treatment, holdout)
    check_conversions("run-1", profiles, store, t0 + timedelta(days=3), touch1_results=[SendTally(sent=10)])
    plans = _SpentPlans(
        [
            OfferSpend(offer_id="packet", kind="red_packet", spent_minor=4 * 888, in_cost=True),
            OfferSpend(offer_id="coupon", kind="coupon", spent_minor=2 * 2000, in_cost=False),
        ]
    )
    # When summarized
    summarize("run-1", profiles, store, t0 + timedelta(days=5), plans=plans)
    summary = CampaignSummary.model_validate(store.get_json(summary_key("run-1")))
    # Then the cost is the 10 SMS at 5 fen plus the packets, not the coupons' discounts
    assert (summary.touch1_cost_minor, summary.offer_cost_minor, summary.cost_minor) == (50, 3552, 3602)
    assert [o.offer_id for o in summary.offers] == ["packet", "coupon"] and plans.released
    assert summary.roi == round((22000 - 3602) / 3602, 4)
    # 1 incremental conversion (3 - 1 x 10 / 5): the whole cost
    assert summary.incremental_conversions == 1.0 and summary.cost_per_incremental_conversion_minor == 3602
    assert summary.display["offer_cost"] == "35.52 CNY" and "offer cost" in summary.roi_definition
