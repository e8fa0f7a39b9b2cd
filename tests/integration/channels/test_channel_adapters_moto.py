"""SES v2 e-mail, the S3 outbox and the S3 batch reader against emulated AWS (moto)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from cdp import topology
from cdp.channels.adapters import OutboxChannel, S3BatchReader, SesEmailChannel, outbox_key
from cdp.channels.models import OutboundMessage
from cdp.channels.ports import DeliveryRejected
from cdp.errors import InvalidInputError, NotFoundError

NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
BUCKET = topology.DATA_BUCKET_LOCAL_NAME


def message(**overrides: Any) -> OutboundMessage:
    base: dict[str, Any] = {
        "message_id": "6f1c0e0e-0000-5000-8000-000000000001",
        "campaign_id": "spring-cake",
        "run_id": "r1",
        "step": "touch1",
        "channel": "email",
        "person_id": "p1",
        "address": "li.lei@example.com",
        "subject": "Your cake coupon",
        "body": "Li Lei, coupon CAKE20",
        "created_at": NOW,
    }
    base.update(overrides)
    return OutboundMessage(**base)


def test_ses_sends_the_email_from_the_verified_sender(aws: Any) -> None:
    # Given SES v2 with a verified sender
    channel = SesEmailChannel(aws.sender, client=aws.sesv2)
    # When an e-mail is sent
    receipt = channel.send(message())
    # Then SES recorded it with our subject and body, and the receipt carries SES's message id
    sent = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    (mail,) = sent
    assert mail.source == aws.sender
    assert mail.destinations["ToAddresses"] == ["li.lei@example.com"]
    assert (mail.subject, mail.body) == ("Your cake coupon", "Li Lei, coupon CAKE20")
    assert receipt.provider_id == mail.id and receipt.channel == "email"


def test_ses_refuses_an_unverified_sender(aws: Any) -> None:
    # Given a sender that was never verified
    channel = SesEmailChannel("spoof@elsewhere.example", client=aws.sesv2)
    # When an e-mail is sent / Then the rejection is typed (safe to retry, nothing went out)
    with pytest.raises(DeliveryRejected):
        channel.send(message())


def test_outbox_writes_one_json_object_per_message(aws: Any) -> None:
    # Given the outbox channel on the data bucket
    channel = OutboxChannel(BUCKET, client=aws.s3, clock=lambda: NOW)
    sms = message(channel="sms", address="+8613800138000", subject=None)
    # When the same message is delivered twice (a retry after an unknown outcome)
    receipt = channel.send(sms)
    channel.send(sms)
    # Then one object under outbox/{channel}/{run_id}/{message_id}.json holds it
    key = f"{topology.OUTBOX_PREFIX}sms/r1/{sms.message_id}.json"
    assert receipt.provider_id == key == outbox_key(sms)
    listed = aws.s3.list_objects_v2(Bucket=BUCKET, Prefix=topology.OUTBOX_PREFIX)["Contents"]
    assert [o["Key"] for o in listed] == [key]
    body = json.loads(aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert body["message"]["address"] == "+8613800138000" and body["message"]["body"] == sms.body


def test_batch_reader_reads_a_list_and_rejects_missing_or_malformed_files(aws: Any) -> None:
    # Given one good batch file and one malformed
    good, bad = "campaigns/r1/batches/0.json", "campaigns/r1/batches/1.json"
    aws.s3.put_object(Bucket=BUCKET, Key=good, Body=b'["p1", "p2"]')
    aws.s3.put_object(Bucket=BUCKET, Key=bad, Body=b'{"person_ids": ["p1"]}')
    reader = S3BatchReader(BUCKET, client=aws.s3)
    # When they are read / Then the good one yields its ids and the others raise typed errors
    assert reader.person_ids(good) == ["p1", "p2"]
    with pytest.raises(InvalidInputError):
        reader.person_ids(bad)
    with pytest.raises(NotFoundError):
        reader.person_ids("campaigns/r1/batches/9.json")
