"""Contact policy where messages leave, on the real adapters under moto: frequency caps are never exceeded by two
campaigns sending to one person at once, quiet hours defer a message in the recipient's own time zone (not the
server's) until they end, and the schedule's tick orders the held message again then."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.campaigns.journeys import (
    JOURNEY_RUN_SUFFIX,
    SendOrders,
    TallyKey,
    journey_outcomes,
    release_deferred,
    tally_key,
)
from cdp.campaigns.journeys_dynamodb import DynamoDeferredSends, DynamoJourneyStore
from cdp.channels.contact import ContactRules, person_zone, usual_store
from cdp.channels.ledger import DynamoContactLedger
from cdp.channels.models import SendBatchRequest
from cdp.channels.service import send_batch
from cdp.org import FrequencyCap, OrgDirectory
from cdp.profile.models import ConsentState, Profile, ProfileFacts, Traits
from cdp_local.runtime.core import create_table
from cdp_local.runtime.moto_atomic import atomic_dynamodb
from tests.fakes.channels import InMemorySendLedger, RecordingChannel
from tests.fakes.profiles import InMemoryProfiles

BRAND = "capped-brand"
T0 = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai, 23:00 the day before in New York
ORG = OrgDirectory.model_validate(
    {
        "brands": {
            BRAND: {
                "group_id": BRAND,
                "timezone": "Asia/Shanghai",
                "contact": {
                    "caps": [{"channel": "sms", "max": 2, "per_days": 7}, {"channel": "all", "max": 3, "per_days": 7}],
                    "quiet_hours": {"start": "21:00", "end": "09:00"},
                },
            }
        }
    }
)


@pytest.fixture
def db() -> Iterator[Any]:
    with mock_aws(), atomic_dynamodb():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, topology.LEDGER_TABLE)
        create_table(client, topology.CAMPAIGNS_TABLE)
        yield client


class Orders(SendOrders):
    def __init__(self) -> None:
        self.sent: list[SendBatchRequest] = []

    def order(self, requests: list[SendBatchRequest]) -> None:
        self.sent.extend(requests)


def person(person_id: str, timezone: str | None = None) -> Profile:
    consent = {"sms": ConsentState(granted=True, changed_at=T0 - timedelta(days=30), source="app")}
    return Profile(
        person_id=person_id,
        brand_id=BRAND,
        created_at=T0 - timedelta(days=30),
        updated_at=T0 - timedelta(days=30),
        identifiers=[f"phone:+86138000{abs(hash(person_id)) % 100000:05d}"],
        traits=Traits(timezone=timezone),
        consent=consent,
    )


def request(campaign: str, person_ids: list[str], step: str = "touch1") -> SendBatchRequest:
    return SendBatchRequest.model_validate(
        {
            "campaign_id": campaign,
            "run_id": f"{campaign}-v1-20261207T0400Z",
            "brand_id": BRAND,
            "step": step,
            "channel": "sms",
            "template": {"body": "hello"},
            "person_ids": person_ids,
        }
    )


def test_two_campaigns_sending_to_one_person_at_once_never_pass_the_cap(db: Any) -> None:
    # Given eight workers of two campaigns, each recording an SMS to the same person at the same moment
    ledger = DynamoContactLedger(topology.LEDGER_TABLE.local_name, client=db)
    caps = ORG.brand(BRAND).contact.caps
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: ledger.reserve(BRAND, "ann", "sms", T0, caps), range(8)))
    # Then exactly two got through (2 SMS per 7 days), and the history holds those two
    assert results.count(None) == 2 and [c for c, _ in ledger.history(BRAND, "ann")] == ["sms", "sms"]
    # And a week later there is room again; an e-mail counts against the total cap only (3 in all)
    assert ledger.reserve(BRAND, "ann", "email", T0 + timedelta(days=1), caps) is None
    assert ledger.reserve(BRAND, "ann", "push", T0 + timedelta(days=2), caps) is not None
    assert ledger.reserve(BRAND, "ann", "sms", T0 + timedelta(days=7, seconds=1), caps) is None


def test_a_capped_message_is_suppressed_with_its_reason_and_counted(db: Any) -> None:
    profiles = InMemoryProfiles([person("bob")])
    contact = ContactRules(
        ORG,
        DynamoContactLedger(topology.LEDGER_TABLE.local_name, client=db),
        DynamoDeferredSends(topology.CAMPAIGNS_TABLE.local_name, client=db),
    )
    channel, ledger = RecordingChannel(), InMemorySendLedger()
    # When three campaigns each send bob an SMS on the same day
    results = [
        send_batch(request(c, ["bob"]), profiles, profiles, ledger, {"sms": channel}, T0, contact=contact)
        for c in ("spring", "summer", "autumn")
    ]
    # Then two left, the third was suppressed by the cap and recorded on his timeline with that reason
    assert [(r.sent, r.suppressed_frequency_cap) for r in results] == [(1, 0), (1, 0), (0, 1)]
    assert len(channel) == 2
    assert [m.status for m in profiles.message_log if m.campaign_id == "autumn"] == ["suppressed_frequency_cap"]


def test_quiet_hours_are_the_recipients_and_a_held_message_leaves_when_they_end(db: Any) -> None:
    # Given two persons: one in Shanghai (noon there), one in New York (23:00 there: quiet hours)
    profiles = InMemoryProfiles([person("cai"), person("dan", timezone="America/New_York")])
    deferred = DynamoDeferredSends(topology.CAMPAIGNS_TABLE.local_name, client=db)
    contact = ContactRules(ORG, DynamoContactLedger(topology.LEDGER_TABLE.local_name, client=db), deferred)
    channel, ledger = RecordingChannel(), InMemorySendLedger()
    # When one batch sends to both
    result = send_batch(
        request("winter", ["cai", "dan"]), profiles, profiles, ledger, {"sms": channel}, T0, contact=contact
    )
    # Then cai got it now, dan's is held until 09:00 New York time (14:00 UTC), not dropped
    assert (result.sent, result.deferred_quiet_hours) == (1, 1) and channel.sent_to() == ["cai"]
    nine_in_new_york = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)
    assert [(d.until, d.request.person_ids) for d in deferred.due(nine_in_new_york, 10)] == [
        (nine_in_new_york, ["dan"])
    ]
    # When the tick comes before 09:00 there, nothing is ordered; at 09:00 his message is ordered again, once
    orders = Orders()
    assert release_deferred(deferred, orders, nine_in_new_york - timedelta(minutes=1)) == 0
    assert release_deferred(deferred, orders, nine_in_new_york) == 1
    assert release_deferred(deferred, orders, nine_in_new_york + timedelta(minutes=1)) == 0
    (again,) = orders.sent
    assert again.person_ids == ["dan"] and again.campaign_id == "winter" and again.step == "touch1"
    # and sent then, it leaves (the same campaign and step: the send ledger still delivers it once)
    later = send_batch(again, profiles, profiles, ledger, {"sms": channel}, nine_in_new_york, contact=contact)
    assert later.sent == 1 and channel.sent_to() == ["cai", "dan"]


def test_a_journeys_held_send_counts_as_held_until_ordered_again_then_as_what_became_of_it(db: Any) -> None:
    # Given a journey's send to dan, at 23:00 in New York (quiet hours there)
    profiles = InMemoryProfiles([person("dan", timezone="America/New_York")])
    deferred = DynamoDeferredSends(topology.CAMPAIGNS_TABLE.local_name, client=db)
    journeys = DynamoJourneyStore(topology.CAMPAIGNS_TABLE.local_name, client=db)
    contact = ContactRules(ORG, DynamoContactLedger(topology.LEDGER_TABLE.local_name, client=db), deferred)
    channel, ledger = RecordingChannel(), InMemorySendLedger()
    order = request("cart", ["dan"]).model_copy(update={"run_id": f"cart-v1{JOURNEY_RUN_SUFFIX}"})

    def send(req: SendBatchRequest, at: datetime) -> None:
        result = send_batch(req, profiles, profiles, ledger, {"sms": channel}, at, contact=contact)
        journeys.tally(BRAND, "cart", journey_outcomes(req.run_id, result))

    send(order, T0)
    assert journeys.outcomes(BRAND, "cart") == {"deferred_quiet_hours": 1}
    # When a tick orders it at 09:00 there but stops before forgetting it, and the next tick orders it again
    orders, nine = Orders(), datetime(2026, 12, 7, 14, 0, tzinfo=UTC)
    orders.order([held.request for held in deferred.due(nine, 10)])
    assert release_deferred(deferred, orders, nine, tally=journeys.tally) == 1
    assert release_deferred(deferred, orders, nine, tally=journeys.tally) == 0
    first, second = orders.sent
    assert first == second and first.held_for == "quiet_hours"
    send(first, nine)
    send(second, nine)
    # Then it is no longer counted as held, and counts once as sent
    outcomes = journeys.outcomes(BRAND, "cart")
    assert (outcomes["deferred_quiet_hours"], outcomes["sent"]) == (0, 1) and channel.sent_to() == ["dan"]


def test_a_journeys_tallies_land_on_their_step_and_arm_once_whatever_the_retries(db: Any) -> None:
    # Given a journey step's SMS to cai (noon in Shanghai), to dan (23:00 in New York: quiet hours) and to fay (her
    # 2 SMS of the week had: the cap), arm b
    profiles = InMemoryProfiles([person("cai"), person("dan", timezone="America/New_York"), person("fay")])
    deferred = DynamoDeferredSends(topology.CAMPAIGNS_TABLE.local_name, client=db)
    journeys = DynamoJourneyStore(topology.CAMPAIGNS_TABLE.local_name, client=db)
    history = DynamoContactLedger(topology.LEDGER_TABLE.local_name, client=db)
    for hours in (30, 20):
        assert history.reserve(BRAND, "fay", "sms", T0 - timedelta(hours=hours), ORG.brand(BRAND).contact.caps) is None
    contact = ContactRules(ORG, history, deferred)
    channel, ledger = RecordingChannel(), InMemorySendLedger()
    changes = {"run_id": f"cart-v2{JOURNEY_RUN_SUFFIX}", "step": "e1-reminder-s1", "variant": "b"}
    orders = [request("cart", [p]).model_copy(update=changes) for p in ("cai", "dan", "fay")]

    def send(req: SendBatchRequest, at: datetime) -> None:  # as the send function does, after each delivery
        result = send_batch(req, profiles, profiles, ledger, {"sms": channel}, at, contact=contact)
        journeys.tally(BRAND, "cart", journey_outcomes(req.run_id, result), tally_key(req))

    # When each order is delivered twice (the queue redelivers), and the tick releases dan's at 09:00 there, twice
    for order in orders * 2:
        send(order, T0)
    nine = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)
    released = Orders()
    assert release_deferred(deferred, released, nine, tally=journeys.tally) == 1
    for again in released.sent * 2:
        send(again, nine)
    # Then the step (version 2, place reminder-s1, arm b) counts two sent, the held one no longer held, fay's once
    step = TallyKey(2, "reminder-s1", "b")
    assert journeys.step_outcomes(BRAND, "cart") == {
        step: {"sent": 2, "deferred_quiet_hours": 0, "suppressed_frequency_cap": 1}
    }
    assert channel.sent_to() == ["cai", "dan"]
    # and a scheduled run's capped send stays open to its retry (only a journey entry's step is kept back for good)
    run = request("spring", ["fay"])
    assert [send_batch(run, profiles, profiles, ledger, {"sms": channel}, T0, contact=contact).suppressed_frequency_cap
            for _ in range(2)] == [1, 1]  # fmt: skip


def test_a_person_without_a_time_zone_has_their_usual_stores(db: Any) -> None:
    # Given a brand whose Seattle store keeps Pacific time, and eve, who gave no time zone and shops there mostly
    stores = {"sea-1": "America/Los_Angeles", "sha-1": "Asia/Shanghai"}
    brand = ORG.brand(BRAND).model_copy(update={"store_timezones": stores})
    org = OrgDirectory.model_validate({"brands": {BRAND: brand.model_dump(exclude={"brand_id"})}})
    facts = {
        f"{BRAND}/sea-1": ProfileFacts(store_counts={"sea-1": 5}),
        f"{BRAND}/sha-1": ProfileFacts(store_counts={"sha-1": 2}),
    }
    eve = person("eve").model_copy(update={"scoped_facts": facts})
    deferred = DynamoDeferredSends(topology.CAMPAIGNS_TABLE.local_name, client=db)
    contact = ContactRules(org, DynamoContactLedger(topology.LEDGER_TABLE.local_name, client=db), deferred)
    # Then at noon in Shanghai (20:00 in Seattle) she is not in quiet hours; at 13:00 Shanghai (21:00 Seattle) she is,
    # until 09:00 Seattle time; a person with no store stays on the brand's zone
    assert usual_store(eve) == "sea-1" and person_zone(brand, eve).key == "America/Los_Angeles"
    assert contact.quiet_until(eve, T0) is None
    assert contact.quiet_until(eve, T0 + timedelta(hours=1)) == datetime(2026, 12, 7, 17, 0, tzinfo=UTC)
    assert person_zone(brand, person("fay")).key == "Asia/Shanghai"
    # and her own time zone, once she gives one, wins over her store's
    told = eve.model_copy(update={"traits": Traits(timezone="Europe/Berlin")})
    assert person_zone(brand, told).key == "Europe/Berlin"


def test_a_store_time_zone_must_be_known() -> None:
    with pytest.raises(ValueError, match="store sea-1"):
        OrgDirectory.model_validate({"brands": {BRAND: {"group_id": BRAND, "store_timezones": {"sea-1": "Mars/Base"}}}})


def test_the_quiet_window_may_wrap_midnight_or_not() -> None:
    from zoneinfo import ZoneInfo

    from cdp.org import QuietHours

    night = QuietHours.model_validate({"start": "21:00", "end": "09:00"})
    lunch = QuietHours.model_validate({"start": "12:00", "end": "13:30"})
    shanghai = ZoneInfo("Asia/Shanghai")
    at = datetime(2026, 12, 7, 22, 15, tzinfo=shanghai)
    assert night.until(at) == datetime(2026, 12, 8, 9, 0, tzinfo=shanghai)
    assert night.until(at.replace(hour=7)) == datetime(2026, 12, 7, 9, 0, tzinfo=shanghai)
    assert night.until(at.replace(hour=9, minute=0)) is None
    assert lunch.until(at.replace(hour=12, minute=40)) == datetime(2026, 12, 7, 13, 30, tzinfo=shanghai)
    assert lunch.until(at.replace(hour=13, minute=30)) is None
    assert FrequencyCap(channel="all", max=1, per_days=1).max == 1


POLICY_BRAND = "policy-brand"
POLICY_ORG = OrgDirectory.model_validate(
    {
        "brands": {
            POLICY_BRAND: {
                "group_id": POLICY_BRAND,
                "contact": {
                    "caps": [{"channel": "all", "max": 1, "per_days": 7}],
                    "quiet_hours": {"start": "00:00", "end": "23:59"},  # always quiet: marketing waits
                    "global_control_share": 0.1,
                    "suppress_audiences": ["complaints"],
                },
            }
        }
    }
)


def _rules(db: Any) -> ContactRules:
    return ContactRules(
        POLICY_ORG,
        DynamoContactLedger(topology.LEDGER_TABLE.local_name, client=db),
        DynamoDeferredSends(topology.CAMPAIGNS_TABLE.local_name, client=db),
    )


def _policy_person(person_id: str, **changes: Any) -> Profile:
    return person(person_id).model_copy(update={"brand_id": POLICY_BRAND, **changes})


def _policy_request(purpose: str, person_ids: list[str], **extra: Any) -> SendBatchRequest:
    raw = request("notice", person_ids).model_dump()
    return SendBatchRequest.model_validate({**raw, "brand_id": POLICY_BRAND, "purpose": purpose, **extra})


def test_the_global_control_group_and_suppression_lists_get_no_marketing_but_service_messages(db: Any) -> None:
    from cdp.channels.contact import in_global_control
    from cdp.profile.models import TagValue

    # Given a hundred persons: about a tenth in the brand's global control group (stable), one on the complaints list
    ids = [f"c{i:03}" for i in range(100)]
    control = [p for p in ids if in_global_control(POLICY_BRAND, p, 0.1)]
    assert 3 <= len(control) <= 20 and control == [p for p in ids if in_global_control(POLICY_BRAND, p, 0.1)]
    complainer = next(p for p in ids if p not in control)
    members = {"audience:complaints": TagValue(value=True, since=T0)}
    profiles = InMemoryProfiles(
        [_policy_person(p, tags=members if p == complainer else {}) for p in ids]  # type: ignore[arg-type]
    )
    channel = RecordingChannel()
    # When a marketing message goes to all of them (quiet hours hold it) and then a service message
    marketing = send_batch(
        _policy_request("marketing", ids),
        profiles,
        profiles,
        InMemorySendLedger(),
        {"sms": channel},
        T0,
        contact=_rules(db),
    )
    service = send_batch(
        _policy_request("service", ids, step="notice"),
        profiles,
        profiles,
        InMemorySendLedger(),
        {"sms": channel},
        T0,
        contact=_rules(db),
    )
    # Then marketing left out the control group and the complainer (each recorded with the reason) and deferred the
    # rest to the end of the quiet hours; the service message reached everyone at once, past caps and quiet hours
    assert (marketing.suppressed_global_control, marketing.suppressed_list) == (len(control), 1)
    assert marketing.deferred_quiet_hours == 100 - len(control) - 1 and marketing.sent == 0
    statuses = {m.person_id: m.status for m in profiles.message_log if m.step == "touch1"}
    assert statuses[complainer] == "suppressed_suppression_list"
    assert {statuses[p] for p in control} == {"suppressed_global_control"}
    assert service.sent == 100 and service.suppressed_frequency_cap == 0


def test_service_messages_need_no_opt_in_but_respect_a_refusal(db: Any) -> None:
    from cdp.profile.models import ConsentState

    refused = {"service:sms": ConsentState(granted=False, changed_at=T0, source="app")}
    no_opt_in = _policy_person("quiet", consent={})
    profiles = InMemoryProfiles([no_opt_in, _policy_person("refuser", consent=refused)])
    channel = RecordingChannel()
    result = send_batch(
        _policy_request("service", ["quiet", "refuser"]),
        profiles,
        profiles,
        InMemorySendLedger(),
        {"sms": channel},
        T0,
        contact=_rules(db),
    )
    assert (result.sent, result.suppressed_no_consent) == (1, 1) and channel.sent[0].person_id == "quiet"
    marketing = send_batch(
        _policy_request("marketing", ["quiet"]), profiles, profiles, InMemorySendLedger(), {"sms": channel}, T0
    )
    assert marketing.suppressed_no_consent == 1  # marketing still needs the opt-in


def test_a_step_with_several_channels_uses_the_preferred_then_the_first_with_consent_and_address(db: Any) -> None:
    from cdp.profile.models import ConsentState, TagValue

    granted = ConsentState(granted=True, changed_at=T0, source="app")
    wechat_fan = person("fan").model_copy(
        update={
            "identifiers": ["phone:+8613800000001", "wechat_openid:wx-app:o-fan"],
            "consent": {"all": granted},
            "tags": {"preferred_channel": TagValue(value="wechat", since=T0)},
        }
    )
    sms_only = person("texter")  # SMS consent and a phone, no WeChat
    nothing = person("none").model_copy(update={"consent": {}})
    profiles = InMemoryProfiles([wechat_fan, sms_only, nothing])
    sms, wechat = RecordingChannel(), RecordingChannel(name="wechat")
    result = send_batch(
        request("pick", ["fan", "texter", "none"]).model_copy(update={"or_channels": ["wechat"]}),
        profiles,
        profiles,
        InMemorySendLedger(),
        {"sms": sms, "wechat": wechat},
        T0,
    )
    assert result.sent == 2 and result.suppressed_no_consent == 1
    assert [m.person_id for m in wechat.sent] == ["fan"] and [m.person_id for m in sms.sent] == ["texter"]
    assert {m.person_id: m.channel for m in profiles.message_log if m.status == "sent"} == {
        "fan": "wechat",
        "texter": "sms",
    }


def test_a_batch_the_providers_rate_would_outlast_holds_the_rest_for_the_next_tick(db: Any) -> None:
    # Given a batch of six and an invocation whose time runs out after two sends (a slow provider rate)
    people = [f"p{n}" for n in range(6)]
    profiles = InMemoryProfiles([person(p) for p in people])
    deferred = DynamoDeferredSends(topology.CAMPAIGNS_TABLE.local_name, client=db)
    contact = ContactRules(ORG, DynamoContactLedger(topology.LEDGER_TABLE.local_name, client=db), deferred)
    channel, ledger = RecordingChannel(), InMemorySendLedger()
    left = iter([60.0, 40.0, 19.0])
    result = send_batch(
        request("burst", people), profiles, profiles, ledger, {"sms": channel}, T0, contact=contact,
        time_left=lambda: next(left),
    )  # fmt: skip
    # Then two left now and four are held (not failed, not claimed), as one request
    assert (result.sent, result.deferred_rate_limit, result.failed) == (2, 4, 0)
    assert channel.sent_to() == ["p0", "p1"]
    # When the tick comes a minute later, the held request is ordered again through the send queue
    orders = Orders()
    assert release_deferred(deferred, orders, T0 + timedelta(seconds=30)) == 0
    assert release_deferred(deferred, orders, T0 + timedelta(minutes=1)) == 1
    [again] = orders.sent
    assert again.person_ids == ["p2", "p3", "p4", "p5"] and again.batch_key is None
    # And sending it delivers the other four (nobody twice)
    rest = send_batch(again, profiles, profiles, ledger, {"sms": channel}, T0 + timedelta(minutes=1), contact=contact)
    assert rest.sent == 4 and sorted(channel.sent_to()) == people
