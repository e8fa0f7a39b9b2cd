"""The in-app inbox on DynamoDB (moto): the channel writes a message once into the person's inbox (a retried send
never resets what the app did), with its 30-day expiry; reads list newest first across a merged person's inboxes,
marks keep their first times; the receipts are archived, deduped and published like ingest's; an erasure removes the
person's inbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config

from cdp import topology
from cdp.app.inbox_api import opened_event_id
from cdp.app.person_events import IngestedEvents
from cdp.channels.inbox import DynamoInbox, InboxChannel, inbox_pk, inbox_sk
from cdp.channels.models import OutboundMessage
from cdp.channels.ports import DeliveryRejected
from cdp.ingest.aws import DynamoDedupeLedger, S3RawArchive
from cdp.ingest.service import EventsReceived, MessageReceipts
from cdp.org import OrgDirectory
from cdp.privacy.aws import DynamoLedgerRecords
from tests.fakes.identity import NullPublisher

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
TABLE = topology.LEDGER_TABLE.local_name


def outbound(n: int, person: str = "p1", minutes: int = 0, **changes: Any) -> OutboundMessage:
    values: dict[str, Any] = {
        "message_id": f"6f1c0e0e-0000-5000-8000-00000000000{n}",
        "campaign_id": "spring-cake",
        "run_id": "r1",
        "step": "touch1",
        "channel": "inapp",
        "person_id": person,
        "brand_id": "bakery",
        "address": person,
        "subject": f"Cake {n}",
        "body": f"Your coupon CAKE2{n}",
        "link": "bakery://coupons/CAKE20",
        "created_at": T0 + timedelta(minutes=minutes),
    }
    return OutboundMessage(**{**values, **changes})


@pytest.fixture
def inbox(aws: Any) -> DynamoInbox:
    return DynamoInbox(TABLE, client=aws.dynamodb)


def test_the_channel_puts_the_message_in_the_persons_inbox_for_30_days(aws: Any, inbox: DynamoInbox) -> None:
    channel = InboxChannel(inbox, clock=lambda: T0 + timedelta(seconds=2))
    # When an in-app message is sent
    receipt = channel.send(outbound(1))
    # Then the receipt is the inbox's, under our message id
    assert (receipt.channel, receipt.provider, receipt.provider_id) == ("inapp", "inapp", outbound(1).message_id)
    assert receipt.accepted_at == T0 + timedelta(seconds=2)
    # And the person's inbox holds it, with its title, link, campaign and a TTL 30 days after it was sent
    item = aws.dynamodb.get_item(
        TableName=TABLE, Key={"pk": {"S": inbox_pk("bakery", "p1")}, "sk": {"S": inbox_sk(outbound(1).message_id)}}
    )["Item"]
    assert {k: item[k]["S"] for k in ("title", "body", "link", "campaign_id")} == {
        "title": "Cake 1",
        "body": "Your coupon CAKE21",
        "link": "bakery://coupons/CAKE20",
        "campaign_id": "spring-cake",
    }
    assert int(item["expires_at"]["N"]) == int((T0 + timedelta(days=30)).timestamp())
    [listed] = inbox.messages("bakery", ["p1"])
    assert (listed.status, listed.sent_at, listed.title) == ("unread", T0, "Cake 1")


def test_a_retried_send_keeps_what_the_app_did_with_the_message(inbox: DynamoInbox) -> None:
    channel = InboxChannel(inbox)
    channel.send(outbound(1))
    [found] = inbox.messages("bakery", ["p1"])
    read = inbox.mark(found, T0 + timedelta(hours=1))
    assert read is not None and read.read_at == T0 + timedelta(hours=1)
    # When the send is retried (the same message id) / Then it is accepted again and the message stays read
    assert channel.send(outbound(1)).provider_id == outbound(1).message_id
    [again] = inbox.messages("bakery", ["p1"])
    assert (again.status, again.read_at) == ("read", T0 + timedelta(hours=1))


def test_inboxes_list_newest_first_across_a_merged_persons_ids_and_marks_keep_their_first_times(
    inbox: DynamoInbox,
) -> None:
    channel = InboxChannel(inbox)
    channel.send(outbound(1, person="p1", minutes=1))
    channel.send(outbound(2, person="p2", minutes=3))
    channel.send(outbound(3, person="p1", minutes=2))
    channel.send(outbound(4, person="p3", minutes=4))
    listed = inbox.messages("bakery", ["p2", "p1"])
    assert [m.title for m in listed] == ["Cake 2", "Cake 3", "Cake 1"]
    assert inbox.messages("outlet", ["p1"]) == []
    # When one of p1's messages is found through the survivor's ids, read, then dismissed later
    found = inbox.find("bakery", ["p2", "p1"], outbound(1).message_id)
    assert found is not None and found.person_id == "p1"
    assert inbox.find("bakery", ["p2"], outbound(1).message_id) is None
    first = inbox.mark(found, T0 + timedelta(hours=1))
    dismissed = inbox.mark(found, T0 + timedelta(hours=2), dismiss=True)
    assert first is not None and dismissed is not None
    assert (dismissed.status, dismissed.read_at, dismissed.dismissed_at) == (
        "dismissed",
        T0 + timedelta(hours=1),
        T0 + timedelta(hours=2),
    )
    inbox.reported(dismissed)
    assert inbox.find("bakery", ["p1"], outbound(1).message_id).opened_reported  # type: ignore[union-attr]


def test_a_message_swept_meanwhile_is_not_marked(aws: Any, inbox: DynamoInbox) -> None:
    InboxChannel(inbox).send(outbound(1))
    [found] = inbox.messages("bakery", ["p1"])
    aws.dynamodb.delete_item(
        TableName=TABLE, Key={"pk": {"S": inbox_pk("bakery", "p1")}, "sk": {"S": inbox_sk(found.message_id)}}
    )
    assert inbox.mark(found, T0) is None
    inbox.reported(found)  # nothing to mark, no error
    assert inbox.messages("bakery", ["p1"]) == []


@pytest.mark.parametrize(
    "link", ["javascript:alert(1)", "http://shop.example/x", "data:text/html,x", "file:///etc/passwd", "/relative"]
)
def test_a_link_that_is_neither_https_nor_an_apps_scheme_is_refused_for_good(inbox: DynamoInbox, link: str) -> None:
    with pytest.raises(DeliveryRejected) as refused:
        InboxChannel(inbox).send(outbound(1, link=link))
    assert (refused.value.permanent, refused.value.code) == (True, "invalid_link")
    assert inbox.messages("bakery", ["p1"]) == []


def test_a_store_that_cannot_be_written_is_a_transient_refusal(aws: Any) -> None:
    broken = DynamoInbox("no-such-table", client=aws.dynamodb)
    with pytest.raises(DeliveryRejected) as refused:
        InboxChannel(broken).send(outbound(1))
    assert (refused.value.permanent, refused.value.code) == (False, "store_unavailable")


def test_an_unreachable_store_is_a_transient_refusal() -> None:
    unreachable = boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        config=Config(connect_timeout=0.2, read_timeout=0.2, retries={"max_attempts": 1}),
    )
    with pytest.raises(DeliveryRejected):
        InboxChannel(DynamoInbox(TABLE, client=unreachable)).send(outbound(1))


def test_receipts_are_archived_deduped_and_published_like_ingest(aws: Any) -> None:
    publisher = NullPublisher()
    clock = iter(T0 + timedelta(seconds=n) for n in range(10))
    receipts = IngestedEvents(
        S3RawArchive(topology.DATA_BUCKET_LOCAL_NAME, client=aws.s3),
        DynamoDedupeLedger(TABLE, client=aws.dynamodb),
        publisher,
        OrgDirectory(),
        client="inbox",
        now=lambda: next(clock),
    )
    event = {
        "schema_version": "1",
        "event_id": opened_event_id("m-1"),
        "event_type": "message_opened",
        "source": "app",
        "brand_id": "bakery",
        "occurred_at": T0.isoformat(),
        "identifiers": [{"type": "phone", "value": "+8613900000001"}],
        "properties": {"message_id": "m-1", "channel": "inapp", "campaign_id": "spring-cake"},
    }
    # When the receipt is published twice (a read, then a dismissal whose first attempt failed)
    assert receipts.publish(event, "inbox-m-1")
    assert receipts.publish(event, "inbox-m-1")
    # Then it was published once: on the bus for the timelines and, as a receipt, for the message log
    assert [type(p) for p in publisher.published] == [EventsReceived, MessageReceipts]
    assert publisher.published[1].events[0].event_id == "inapp-opened-m-1"  # type: ignore[attr-defined]
    # And each request was archived under raw/events/, where replay reads canonical events, with its writer's scope
    listed = aws.s3.list_objects_v2(Bucket=topology.DATA_BUCKET_LOCAL_NAME, Prefix=f"{topology.RAW_PREFIX}events/")
    keys = [o["Key"] for o in listed["Contents"]]
    assert len(keys) == 2
    stored = aws.s3.get_object(Bucket=topology.DATA_BUCKET_LOCAL_NAME, Key=keys[0])
    assert json.loads(stored["Body"].read()) == event
    assert json.loads(stored["Metadata"]["writer-scope"]) == {"brand_id": "bakery"}
    # And an event outside the brand's place (the platform's own source) is not accepted
    assert not receipts.publish({**event, "event_id": "other", "source": "cdp"}, "inbox-m-2")


def test_an_erasure_removes_the_persons_inboxes(aws: Any, inbox: DynamoInbox) -> None:
    channel = InboxChannel(inbox)
    channel.send(outbound(1, person="p1"))
    channel.send(outbound(2, person="p2"))
    channel.send(outbound(3, person="p3"))
    removed = DynamoLedgerRecords(TABLE, client=aws.dynamodb).delete_inbox("bakery", ["p1", "p2"])
    assert sorted(removed) == sorted(
        f"{inbox_pk('bakery', p)}/{inbox_sk(outbound(n).message_id)}" for n, p in ((1, "p1"), (2, "p2"))
    )
    assert inbox.messages("bakery", ["p1", "p2"]) == []
    assert [m.person_id for m in inbox.messages("bakery", ["p3"])] == ["p3"]
