"""send_batch: consent, address, rendering, exactly-once through the ledger, and partial failure."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdp.channels.models import OutboundMessage, SendBatchRequest, message_id_for
from cdp.channels.ports import DEFAULT_LEASE, DeliveryRejected, SendKey
from cdp.channels.service import find_address, send_batch
from cdp.errors import ChannelError, InvalidInputError
from cdp.profile.models import ConsentState, Profile, Traits
from tests.fakes.channels import InMemoryDeadAddresses, InMemorySendLedger, RecordingChannel, StaticBatches
from tests.fakes.profiles import InMemoryProfiles

NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def person(
    pid: str,
    *identifiers: str,
    consent: tuple[str, ...] = ("sms",),
    name: str | None = None,
    merged_into: str | None = None,
) -> Profile:
    return Profile(
        person_id=pid,
        brand_id="bakery",
        created_at=NOW - timedelta(days=30),
        updated_at=NOW - timedelta(days=1),
        identifiers=list(identifiers),
        traits=Traits(name=name),
        consent={c: ConsentState(granted=True, changed_at=NOW - timedelta(days=2), source="app") for c in consent},
        merged_into=merged_into,
    )


def phone(n: int) -> str:
    return f"phone:+86138001380{n:02d}"


def sms_request(*person_ids: str, **overrides: Any) -> SendBatchRequest:
    body: dict[str, Any] = {
        "campaign_id": "cake",
        "run_id": "cake-r1",
        "step": "touch1",
        "channel": "sms",
        "template": {"body": "{{ traits.name or 'Hi' }}, coupon {{ offer.code }}"},
        "offer": {"coupon_id": "cpn-1", "code": "CAKE20"},
        "person_ids": list(person_ids),
    }
    body.update(overrides)
    return SendBatchRequest.model_validate(body)


class World:
    def __init__(self, *profiles: Profile, fail: Any = None) -> None:
        self.profiles = InMemoryProfiles(list(profiles))
        self.ledger = InMemorySendLedger()
        self.channel = RecordingChannel(fail=fail or (lambda _m: None))

    def send(self, request: SendBatchRequest, now: datetime = NOW, **kwargs: Any) -> Any:
        channels = {name: self.channel for name in ("sms", "email", "push", "wechat", "webhook", "outbox")}
        return send_batch(request, self.profiles, self.profiles, self.ledger, channels, now, **kwargs)

    def statuses(self, person_id: str) -> list[str]:
        return [m.status for m in self.profiles.messages(person_id)]


def test_sends_rendered_message_to_consenting_person_and_records_it() -> None:
    # Given a person with a phone and SMS consent
    world = World(person("p1", phone(1), name="Li Lei"))
    # When the batch is sent
    result = world.send(sms_request("p1"))
    # Then one SMS goes to the phone with the rendered text, and the ledger and timeline say "sent"
    assert result.sent == 1 and result.by_channel == {"sms": 1}
    (message,) = world.channel.sent
    assert message.address == "+8613800138001"
    assert message.body == "Li Lei, coupon CAKE20"
    assert message.coupon_id == "cpn-1"
    assert world.ledger.status(SendKey("cake", "touch1", "p1")) == "sent"
    (record,) = world.profiles.messages("p1")
    assert (record.status, record.provider_id, record.message_id) == ("sent", "prov-1", message.message_id)


def test_suppresses_without_consent_or_address_and_counts_unknown() -> None:
    # Given one person without SMS consent, one without a phone, and an id nobody knows
    world = World(
        person("no-consent", phone(1), consent=("email",)),
        person("no-phone", "email:a@example.com"),
    )
    # When the batch is sent
    result = world.send(sms_request("no-consent", "no-phone", "ghost"))
    # Then nothing is sent; the suppressions are counted and recorded with their reason
    assert len(world.channel) == 0
    assert (result.suppressed_no_consent, result.suppressed_no_address, result.unknown_person) == (1, 1, 1)
    assert world.statuses("no-consent") == ["suppressed_no_consent"]
    assert world.statuses("no-phone") == ["suppressed_no_address"]
    assert world.ledger.records == {}


def test_all_channel_consent_covers_a_specific_channel() -> None:
    # Given a person who opted in to "all" marketing
    world = World(person("p1", phone(1), consent=("all",)))
    # When an SMS batch is sent / Then they receive it
    assert world.send(sms_request("p1")).sent == 1


def test_rerun_of_a_batch_never_sends_twice() -> None:
    # Given a batch that was fully sent
    world = World(person("p1", phone(1)), person("p2", phone(2)))
    world.send(sms_request("p1", "p2"))
    # When the same batch runs again (a Step Functions retry), even with another run id
    again = world.send(sms_request("p1", "p2", run_id="cake-r2"), now=NOW + timedelta(hours=1))
    # Then nothing more is sent
    assert len(world.channel) == 2
    assert (again.sent, again.duplicates_skipped) == (0, 2)


def test_same_person_twice_in_a_batch_or_via_a_merge_gets_one_message() -> None:
    # Given p2 merged into p1, and p1 listed twice
    world = World(person("p1", phone(1)), person("p2", phone(2), merged_into="p1"))
    # When the batch is sent
    result = world.send(sms_request("p1", "p1", "p2"))
    # Then p1 (the survivor) gets exactly one message
    assert world.channel.sent_to() == ["p1"]
    assert (result.sent, result.duplicates_skipped, result.requested) == (1, 2, 3)


def test_one_failure_does_not_lose_the_others_and_a_rerun_sends_it() -> None:
    # Given a provider that throttles p2 once
    throttled = {"p2"}

    def fail(message: OutboundMessage) -> Exception | None:
        if message.person_id in throttled:
            throttled.discard(message.person_id)
            return DeliveryRejected("ThrottlingException")
        return None

    world = World(person("p1", phone(1)), person("p2", phone(2)), person("p3", phone(3)), fail=fail)
    # When the batch is sent
    first = world.send(sms_request("p1", "p2", "p3"))
    # Then the others are sent, p2 is reported failed and stays pending (released for an immediate retry)
    assert (first.sent, first.failed) == (2, 1)
    assert first.failures and "p2" in first.failures[0]
    assert world.ledger.status(SendKey("cake", "touch1", "p2")) == "pending"
    # When the batch is rerun a moment later
    second = world.send(sms_request("p1", "p2", "p3"), now=NOW + timedelta(seconds=5))
    # Then only p2 is sent, once
    assert (second.sent, second.duplicates_skipped) == (1, 2)
    assert sorted(world.channel.sent_to()) == ["p1", "p2", "p3"]
    assert world.statuses("p2") == ["failed", "sent"]


def test_failures_are_counted_per_channel_they_were_going_out_on() -> None:
    # Given an SMS batch that may fall back to e-mail: p1 and p2 have phones, p3 only an e-mail address
    def fail(message: OutboundMessage) -> Exception | None:
        return DeliveryRejected("down") if message.person_id in {"p2", "p3"} else None

    world = World(
        person("p1", phone(1)),
        person("p2", phone(2)),
        person("p3", "email:p3@example.com", consent=("email",)),
        fail=fail,
    )
    # When the batch is sent and the provider refuses p2's SMS and p3's e-mail
    template = {"subject": "For you", "body": "coupon {{ offer.code }}"}
    result = world.send(sms_request("p1", "p2", "p3", or_channels=["email"], template=template))
    # Then each failure is counted on the channel it was going out on, beside the sends per channel
    assert (result.sent, result.failed) == (1, 2)
    assert result.by_channel == {"sms": 1}
    assert result.failed_by_channel == {"sms": 1, "email": 1}
    assert sum(result.failed_by_channel.values()) == result.failed


def test_everything_failing_raises_for_a_retry() -> None:
    # Given a provider that rejects everything (and a batch that names p1 twice)
    world = World(person("p1", phone(1)), person("p2", phone(2)), fail=lambda _m: DeliveryRejected("down"))
    # When the batch is sent / Then a ChannelError asks Step Functions to retry
    with pytest.raises(ChannelError, match="all 2 deliveries"):
        world.send(sms_request("p1", "p2", "p1"))
    assert world.statuses("p1") == ["failed"]


def test_a_batch_that_fails_every_message_reports_its_counts_before_it_raises() -> None:
    # Given a provider that rejects everything, and a report of the batch's counts
    world = World(person("p1", phone(1)), person("p2", phone(2)), fail=lambda _m: DeliveryRejected("down"))
    reported: list[Any] = []
    # When the batch is sent / Then it raises for a retry, and its failures were reported first (an outage counts)
    with pytest.raises(ChannelError):
        world.send(sms_request("p1", "p2"), report=reported.append)
    (result,) = reported
    assert (result.failed, result.failed_by_channel) == (2, {"sms": 2})


def test_a_refusal_for_good_is_final_and_never_hides_the_others_transient_failures() -> None:
    # Given a provider that refuses p1's number for good and is down for everyone else
    def fail(message: OutboundMessage) -> Exception | None:
        if message.person_id == "p1":
            return DeliveryRejected("isv.MOBILE_NUMBER_ILLEGAL", code="isv.MOBILE_NUMBER_ILLEGAL", invalid_address=True)
        return DeliveryRejected("HTTP 503")

    world = World(person("p1", phone(1)), person("p2", phone(2)), person("p3", phone(3)), fail=fail)
    # When the batch is sent, and retried by the state machine
    for attempt in range(2):
        with pytest.raises(ChannelError, match="deliveries of the batch failed"):
            world.send(sms_request("p1", "p2", "p3"), now=NOW + timedelta(seconds=attempt))
    # Then p1 was asked once (final in the ledger) and the others stay claimable for the next retry
    assert [m.person_id for m in world.channel.attempts].count("p1") == 1
    assert world.ledger.status(SendKey("cake", "touch1", "p1")) == "failed"
    assert world.ledger.status(SendKey("cake", "touch1", "p2")) == "pending"
    # And a batch of nothing but refusals for good is not retried: it ends, each failed
    only_p1 = world.send(sms_request("p1"), now=NOW + timedelta(seconds=5))
    assert (only_p1.failed, only_p1.duplicates_skipped) == (0, 1)


def test_an_address_refused_for_good_is_never_sent_to_again_and_an_older_one_is_used() -> None:
    # Given two members: p1 with an older and a newer phone, p2 with one phone; the provider says both newest numbers
    # do not exist
    dead_numbers = {"+8613800138001", "+8613800138002"}

    def fail(message: OutboundMessage) -> Exception | None:
        if message.address in dead_numbers:
            return DeliveryRejected("isv.MOBILE_NUMBER_ILLEGAL", code="isv.MOBILE_NUMBER_ILLEGAL", invalid_address=True)
        return None

    world = World(person("p1", "phone:+8613900139000", phone(1)), person("p2", phone(2)), fail=fail)
    graveyard = InMemoryDeadAddresses()
    first = world.send(sms_request("p1", "p2", brand_id="bakery"), dead_addresses=graveyard)
    assert (first.failed_for_good, first.sent) == (2, 0)
    assert set(graveyard.buried) == {("bakery", "phone:+8613800138001"), ("bakery", "phone:+8613800138002")}
    # When the next campaign sends to them
    second = world.send(sms_request("p1", "p2", brand_id="bakery", campaign_id="next"), dead_addresses=graveyard)
    # Then p1 gets it on their older number, p2 has no live address and the provider is not asked again
    assert (second.sent, second.suppressed_no_address) == (1, 1)
    assert [m.address for m in world.channel.sent] == ["+8613900139000"]
    assert [m.address for m in world.channel.attempts].count("+8613800138002") == 1
    assert graveyard.reads == 2  # one read per batch


def test_a_person_merged_into_another_brand_since_selection_is_not_sent() -> None:
    world = World(person("p1", phone(1)))
    result = world.send(sms_request("p1", brand_id="other-brand"))
    assert (result.sent, result.unknown_person) == (0, 1) and world.channel.sent == []


def test_unknown_outcome_keeps_the_lease_so_a_quick_retry_cannot_double_send() -> None:
    # Given a provider call that times out for p1 (it may or may not have been sent)
    timeouts = {"p1"}

    def fail(message: OutboundMessage) -> Exception | None:
        if message.person_id in timeouts:
            timeouts.discard(message.person_id)
            return ChannelError("read timeout (outcome unknown)")
        return None

    world = World(person("p1", phone(1)), person("p2", phone(2)), fail=fail)
    world.send(sms_request("p1", "p2"))
    # When the batch is retried within the lease
    quick = world.send(sms_request("p1", "p2"), now=NOW + timedelta(minutes=1))
    # Then p1 is skipped as in flight
    assert (quick.sent, quick.in_flight_skipped, quick.duplicates_skipped) == (0, 1, 1)
    # When it is retried after the lease expired
    later = world.send(sms_request("p1", "p2"), now=NOW + DEFAULT_LEASE + timedelta(seconds=1))
    # Then the crashed send is taken over and delivered
    assert later.sent == 1
    assert world.channel.sent_to() == ["p2", "p1"]


def test_a_broken_template_for_everyone_is_bad_input_not_a_retry() -> None:
    # Given a template naming a field no profile has
    world = World(person("p1", phone(1)))
    request = sms_request("p1", template={"body": "{{ traits.nickname }}"})
    # When the batch is sent / Then it fails as invalid input, and nothing was claimed
    with pytest.raises(InvalidInputError, match="render"):
        world.send(request)
    assert world.ledger.records == {}


def test_reads_person_ids_from_a_batch_file() -> None:
    # Given a batch file with two persons
    world = World(person("p1", phone(1)), person("p2", phone(2)))
    key = "campaigns/cake-r1/batches/0.json"
    request = sms_request(person_ids=None, batch_key=key)
    # When the batch is sent with a batch reader
    result = world.send(request, batches=StaticBatches({key: ["p1", "p2"]}))
    # Then both are sent
    assert result.sent == 2


@pytest.mark.parametrize(
    ("channel", "identifiers", "expected"),
    [
        ("sms", [phone(1), "email:a@example.com", phone(2)], ("+8613800138002", None)),
        ("email", [phone(1), "email:a@example.com"], ("a@example.com", None)),
        ("push", ["device_id:abc-123"], ("abc-123", None)),
        ("wechat", ["wechat_openid:wx-app:oPENID1"], ("oPENID1", "wx-app")),
        ("webhook", [], ("p1", None)),
        ("push", [phone(1)], None),
    ],
)
def test_address_is_the_latest_identifier_of_the_channel_type(
    channel: Any, identifiers: list[str], expected: tuple[str, str | None] | None
) -> None:
    # Given a profile with some identifiers
    profile = person("p1", *identifiers)
    # When the channel's address is looked up
    address = find_address(profile, channel)
    # Then it is the most recent matching identifier (and the WeChat app id for an OpenID)
    assert (None if address is None else (address.value, address.scope)) == expected


@settings(max_examples=60, deadline=None)
@given(
    failures=st.lists(st.sets(st.integers(min_value=0, max_value=5), max_size=6), min_size=1, max_size=5),
    timeouts=st.sets(st.integers(min_value=0, max_value=5), max_size=2),
)
def test_property_any_sequence_of_retries_sends_each_person_at_most_once(
    failures: list[set[int]], timeouts: set[int]
) -> None:
    # Given six persons and runs where random persons are rejected or time out
    ids = [f"p{i}" for i in range(6)]
    run = {"n": 0}

    def fail(message: OutboundMessage) -> Exception | None:
        index = int(message.person_id[1:])
        if run["n"] < len(failures) and index in failures[run["n"]]:
            return DeliveryRejected("throttled")
        if run["n"] == 0 and index in timeouts:
            return ChannelError("timeout")
        return None

    world = World(*(person(pid, phone(i)) for i, pid in enumerate(ids)), fail=fail)
    # When the batch is rerun until failures stop, with time passing beyond the lease
    for n in range(len(failures) + 1):
        run["n"] = n
        with contextlib.suppress(ChannelError):
            world.send(sms_request(*ids), now=NOW + n * (DEFAULT_LEASE + timedelta(seconds=1)))
    # Then every person got exactly one message (at most once always; here also at least once in the end)
    assert sorted(world.channel.sent_to()) == ids
    assert {m.message_id for m in world.channel.sent} == {message_id_for("cake", "touch1", p) for p in ids}
