"""Attribution and the funnel, checked against numbers worked out by hand: an order is credited once, to one
campaign, by the strongest evidence (coupon > campaign id on the order > tracked click > last touch in the window),
and a run's summary shows its funnel, revenue per person with an interval, ROI with its definition, money formatted."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import pytest

from cdp.campaigns.attribution import Credit, Touchpoints, credit
from cdp.campaigns.measurement import Moments, compare_means, compare_moments
from cdp.campaigns.models import CampaignSummary, SendTally
from cdp.campaigns.service import check_conversions, summarize, summary_key
from cdp.ingest.events import OrderPlacedEvent, parse_event
from cdp.org import OrgDirectory
from cdp.profile.ports import MessageRecord, TimelineEntry
from cdp.shared.money import format_money
from tests.fakes.artifacts import InMemoryArtifactStore
from tests.fakes.profiles import InMemoryProfiles
from tests.unit.campaigns.conftest import BRAND, T0, make_order, make_profile, make_request
from tests.unit.campaigns.test_campaign_outcomes import _audience, _bought

WINDOW = timedelta(days=7)
ME = make_request().campaign_id  # the sample request's campaign


def _event(event_type: str, person: str, at: datetime, **properties: Any) -> Any:
    return parse_event(
        {
            "event_id": f"{event_type}-{person}-{at:%d%H%M%S}",
            "event_type": event_type,
            "source": "cdp" if event_type.startswith(("coupon_", "message_")) else "pos",
            "brand_id": BRAND,
            "occurred_at": at.isoformat(),
            "identifiers": [{"type": "member_card", "value": person}],
            "properties": properties,
        }
    )


def _order(person: str, at: datetime, total: int, lines: int | None = None, **extra: Any) -> OrderPlacedEvent:
    event = make_order(person, at, total_minor=total)
    props = event.properties.model_copy(
        update={"lines": [event.properties.lines[0].model_copy(update={"unit_price_minor": lines or total})], **extra}
    )
    return event.model_copy(update={"properties": props})


def _sent(person: str, campaign: str, at: datetime) -> MessageRecord:
    return MessageRecord(person, f"m-{person}-{campaign}", campaign, "touch1", "sms", at, None, "sent")


def test_the_strongest_evidence_wins_whatever_its_time_and_the_latest_within_a_rank() -> None:
    at = T0 + timedelta(days=3)
    issued = _event(
        "coupon_issued",
        "ann",
        T0,
        coupon_id="c",
        issue_id="i1",
        kind="coupon",
        code="SAVE5",
        currency="CNY",
        valid_until=(T0 + timedelta(days=30)).isoformat(),
        campaign_id="spring",
    )
    clicks = [
        _event(
            "message_clicked",
            "ann",
            at - timedelta(days=2),
            message_id="m1",
            channel="sms",
            url="https://x.cn/a",
            campaign_id="summer",
        ),
        _event(
            "message_clicked",
            "ann",
            at - timedelta(days=1),
            message_id="m2",
            channel="sms",
            url="https://x.cn/b",
            campaign_id="autumn",
        ),
    ]
    timeline = [TimelineEntry(anchor="member_card:ann", event=e) for e in [issued, *clicks]]
    sends = [_sent("ann", "winter", at - timedelta(hours=1))]
    touches = Touchpoints.of(timeline, sends)
    # the coupon beats a campaign named on the order, which beats the clicks, which beat the later message
    assert credit(_order("ann", at, 900, coupon_code="SAVE5", campaign_id="qixi"), touches, WINDOW) == Credit(
        "spring", "coupon"
    )
    assert credit(_order("ann", at, 900, campaign_id="qixi"), touches, WINDOW) == Credit("qixi", "campaign_id")
    assert credit(_order("ann", at, 900), touches, WINDOW) == Credit("autumn", "click")  # the latest click
    # with no click in the window, the last message within it; beyond it, nobody
    assert credit(_order("ann", at, 900), Touchpoints.of([], sends), WINDOW) == Credit("winter", "last_touch")
    assert credit(_order("ann", at + WINDOW, 900), Touchpoints.of([], sends), WINDOW) is None


def test_a_runs_summary_credits_each_order_once_and_shows_its_funnel_and_money(
    store: InMemoryArtifactStore,
) -> None:
    # Given 10 treated persons and 5 held out
    treatment, holdout = [f"t{i}" for i in range(10)], [f"h{i}" for i in range(5)]
    profiles = InMemoryProfiles([make_profile(p) for p in treatment + holdout])
    day = timedelta(days=1)
    for person in treatment:
        profiles.record_message(_sent(person, ME, T0))
    # t0 redeemed the campaign's code: paid 80.00 of 100.00
    issued = _event(
        "coupon_issued",
        "t0",
        T0,
        coupon_id="c",
        issue_id="i-t0",
        kind="coupon",
        code="ME-T0",
        currency="CNY",
        valid_until=(T0 + 30 * day).isoformat(),
        campaign_id=ME,
    )
    profiles.add_events("t0", [issued])
    _bought(profiles, "t0", _order("t0", T0 + day, 8000, lines=10000, coupon_code="ME-T0"))
    # t1's order names another campaign; t2 clicked this one's link the day before buying; t3 bought 3 days after
    # the message (last touch); t4 bought 8 days after it (outside the 7-day window, and nothing else): uncredited
    _bought(profiles, "t1", _order("t1", T0 + day, 5000, campaign_id="someone_else"))
    click = _event("message_clicked", "t2", T0 + day, message_id="m", channel="sms", url="https://x.cn", campaign_id=ME)
    profiles.add_events("t2", [click])
    _bought(profiles, "t2", _order("t2", T0 + 2 * day, 6000))
    _bought(profiles, "t3", _order("t3", T0 + 3 * day, 4000))
    _bought(profiles, "t4", _order("t4", T0 + 8 * day, 2000))
    # one held-out person bought for 30.00
    _bought(profiles, "h0", _order("h0", T0 + 2 * day, 3000))
    _audience(store, make_request(), T0, treatment, holdout)
    check_conversions(
        "run-1", profiles, store, T0 + 9 * day, touch1_results=[SendTally(sent=9, suppressed_frequency_cap=1)]
    )
    org = OrgDirectory.model_validate({"brands": {BRAND: {"group_id": BRAND}}})  # the default 7-day window
    summarize("run-1", profiles, store, T0 + 10 * day, org=org, messages=profiles.messages)
    s = CampaignSummary.model_validate(store.get_json(summary_key("run-1")))

    # Then three orders are this campaign's (coupon, click, last touch), one another's, one nobody's
    a = s.attribution
    assert a is not None
    assert (a.persons, a.orders, a.credited_elsewhere, a.uncredited) == (3, 3, 1, 1)
    assert a.by_evidence == {"coupon": 1, "click": 1, "last_touch": 1} and a.coupon_orders == 1
    assert (a.revenue_minor, a.discounts_minor) == (8000 + 6000 + 4000, 2000)
    # And the funnel runs from the audience to the credited revenue
    f = s.funnel
    assert f is not None
    assert (f.eligible, f.selected, f.treatment, f.holdout) == (15, 15, 10, 5)
    assert f.steps["touch1"].sent == 9 and f.steps["touch1"].suppressed == {"suppressed_frequency_cap": 1}
    assert (f.offers_redeemed, f.purchased, f.credited_orders, f.credited_revenue_minor) == (1, 3, 3, 18000)
    assert f.converted_any == 5  # every treated buyer in the window counts for the lift, credited or not
    # And revenue per person: treated (8000+5000+6000+4000+2000)/10 = 2500, held out 3000/5 = 600
    r = s.revenue_lift
    assert r is not None and (r.treatment_mean, r.control_mean, r.difference) == (2500.0, 600.0, 1900.0)
    t_amounts = [8000, 5000, 6000, 4000, 2000, 0, 0, 0, 0, 0]
    c_amounts = [3000, 0, 0, 0, 0]
    se = math.sqrt(_var(t_amounts) / 10 + _var(c_amounts) / 5)  # Welch: 2,911,111 / 10 + 1,800,000 / 5
    assert math.isclose(r.low or 0, 1900 - 1.959964 * se, rel_tol=1e-5) and not r.conclusive
    # And ROI with its definition: cost 9 SMS x 5 fen = 45; incremental revenue 25000 - 600 x 10 = 19000
    assert s.cost_minor == 45 and s.incremental_revenue_minor == 19000
    assert s.roi == round((19000 - 45) / 45, 4) and s.roi_definition.startswith("ROI = (incremental revenue - cost)")
    # incremental conversions 5 - 1 x 10 / 5 = 3: 45 / 3 = 15 fen each
    assert s.cost_per_incremental_conversion_minor == 15
    assert s.display["incremental_revenue"] == "190.00 CNY" and s.display["discounts"] == "20.00 CNY"


def _var(values: list[int]) -> float:
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def test_revenue_per_person_is_conclusive_only_with_enough_persons_and_says_so() -> None:
    big = compare_means([100] * 40 + [0] * 60, [0] * 100)
    assert big.conclusive and big.low is not None and big.low > 0 and big.verdict.startswith("the treated spent more")
    in_yuan = compare_means([100] * 40 + [0] * 60, [0] * 100, "CNY").verdict  # 40 fen a person more
    assert "+0.40 CNY per person (95% interval +0.30 CNY to +0.50 CNY)" in in_yuan
    small = compare_means([100, 0], [0, 0])
    assert not small.conclusive and "too few persons" in small.verdict
    assert compare_means([], [1]).verdict.startswith("no comparison")


def _moments(values: list[int]) -> Moments:
    return Moments(size=len(values), total=sum(values), squares=sum(v * v for v in values))


@pytest.mark.parametrize(
    ("treatment", "control", "currency"),
    [
        ([45_000, 10_000, 10_000, 10_000, 0], [25_000, 0, 0], None),  # the programme report's fixture
        ([100] * 40 + [0] * 60, [0] * 100, "CNY"),  # conclusive, a zero-variance control
        ([1_999_900, 0, 37, 5_000_000] * 10, [2_500, 12, 0] * 11, "CNY"),  # conclusive, no difference shown
        ([100, 0], [0, 0], None),  # too few
        ([7], [7], None),  # one person each: no variance, no difference
        ([], [1], None),  # an empty group
    ],
)
def test_means_from_moments_are_the_means_from_the_amounts(
    treatment: list[int], control: list[int], currency: str | None
) -> None:
    # Given the same persons' amounts, and only their moments (what the warehouse returns)
    from_amounts = compare_means(treatment, control, currency)
    from_moments = compare_moments(_moments(treatment), _moments(control), currency)
    # Then the interval, p-value and verdict are the same (the variance up to rounding)
    moments, amounts = from_moments.model_dump(), from_amounts.model_dump()
    assert [k for k, v in moments.items() if v is None] == [k for k, v in amounts.items() if v is None]
    for name, value in amounts.items():
        numeric = isinstance(value, float) and not isinstance(value, bool)
        assert moments[name] == (pytest.approx(value, rel=1e-9, abs=1e-9) if numeric else value), name
    assert from_moments.verdict == from_amounts.verdict


def test_the_welch_interval_from_moments_by_hand() -> None:
    # marketed 45_000, 10_000 x3, 0: mean 15_000, variance (2_325e6 - 75_000 x 15_000) / 4 = 300e6;
    # control 25_000, 0, 0: mean 8_333.33, variance (625e6 - 25_000 x 8_333.33) / 2 = 208.33e6;
    # se = sqrt(300e6 / 5 + 208.33e6 / 3) = 11_377.37; 6_666.67 -+ 1.959964 x se
    lift = compare_moments(Moments(size=5, total=75_000, squares=2_325e6), Moments(size=3, total=25_000, squares=625e6))
    assert lift.difference == pytest.approx(6_666.667, abs=1e-3)
    assert (lift.low, lift.high) == pytest.approx((-15_632.56, 28_965.89), abs=0.01)
    assert not lift.conclusive and "5 treated, 3 in the control" in lift.verdict


def test_money_is_shown_in_the_currencys_own_decimals() -> None:
    assert format_money(1249400, "CNY") == "12,494.00 CNY"
    assert format_money(-5, "cny") == "-0.05 CNY"
    assert format_money(1500, "JPY") == "1,500 JPY" and format_money(1234, "KWD") == "1.234 KWD"
