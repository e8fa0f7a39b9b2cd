"""The Alibaba Cloud SMS sender over real HTTP (urllib) to the loopback fake: accepted, its delivery receipts mapped
by the SMS feedback connector back onto our message, a 503, and a read timeout (the outcome unknown)."""

# ruff: noqa: RUF001 - Chinese template texts, with full-width punctuation

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from cdp.channels.aliyun_sms import AliyunSmsChannel
from cdp.channels.models import OutboundMessage, message_id_for
from cdp.channels.ports import DeliveryRejected
from cdp.connectors.base import InboundRequest
from cdp.connectors.feedback import SmsReceiptConnector
from cdp.connectors.sender_accounts import AliyunSms
from cdp.connectors.sources import parse_sources
from cdp.errors import ChannelError
from cdp.ingest.events import parse_event
from cdp.ingest.security import sign_cdp
from cdp_local.fakes.aliyun_sms import FakeAliyunSms

TEMPLATE = "SMS_468190012"
FEEDBACK_SECRET = "aliyun-receipts-relay-secret"
SOURCES = parse_sources({"sms": {"aliyun": {"brand_id": "demo-brand", "secret": FEEDBACK_SECRET}}})


@pytest.fixture
def fake() -> Iterator[FakeAliyunSms]:
    with FakeAliyunSms() as fake:
        fake.register_template(TEMPLATE, "${name}您好，春季新品上市，回TD退订")
        yield fake


def message(person_id: str, phone: str) -> OutboundMessage:
    return OutboundMessage(
        message_id=message_id_for("spring-launch", "touch1", person_id),
        campaign_id="spring-launch",
        run_id="r1",
        step="touch1",
        channel="sms",
        person_id=person_id,
        brand_id="demo-brand",
        address=phone,
        body="【本地测试】小王您好，春季新品上市，回TD退订",
        template_ref=TEMPLATE,
        fields={"name": "小王"},
        created_at=datetime.now(UTC),
    )


def sender(fake: FakeAliyunSms, **account: Any) -> AliyunSmsChannel:
    return AliyunSmsChannel(AliyunSms(**fake.account(**account)))  # the default transport: urllib over HTTP


def test_a_message_is_accepted_and_recorded(fake: FakeAliyunSms) -> None:
    sent = message("p1", "+8613900001111")
    receipt = sender(fake).send(sent)

    [record] = fake.sent
    assert receipt.provider == "aliyun" and receipt.provider_id == record.biz_id
    assert (record.phone, record.template_code, record.params) == ("13900001111", TEMPLATE, {"name": "小王"})
    assert record.text == sent.body
    assert record.out_id == f"{sent.message_id}|spring-launch"


def test_the_fakes_receipts_map_onto_our_messages(fake: FakeAliyunSms) -> None:
    channel = sender(fake)
    delivered, failed = message("p1", "+8613900001111"), message("p2", "+8613900002222")
    channel.send(delivered)
    channel.send(failed)

    body = json.dumps(fake.receipts(failed_phones=("13900002222",), err_code="MK:0001"), ensure_ascii=False).encode()
    now = datetime.now(UTC)
    request = InboundRequest(
        connector="sms-feedback",
        method="POST",
        body=body,
        received_at=now,
        request_id="req-1",
        key="aliyun",
        headers={
            "content-type": "application/json",
            "x-cdp-signature": sign_cdp(FEEDBACK_SECRET, body, int(now.timestamp())),
        },
    )
    connector = SmsReceiptConnector()
    mapped = connector.map(request, connector.authenticate(request, SOURCES))

    assert not mapped.rejected
    for item in mapped.items:
        parse_event(item)
    events = {item["properties"]["message_id"]: item for item in mapped.items}
    assert set(events) == {delivered.message_id, failed.message_id}
    assert all(e["event_type"] == "message_delivered" for e in events.values())
    assert events[delivered.message_id]["properties"] == {
        "message_id": delivered.message_id,
        "channel": "sms",
        "status": "delivered",
        "campaign_id": "spring-launch",
    }
    assert events[failed.message_id]["properties"]["status"] == "failed"
    assert events[failed.message_id]["properties"]["error_code"] == "MK:0001"


def test_a_503_is_a_transient_refusal(fake: FakeAliyunSms) -> None:
    fake.fail_next(503, b"<html>503 Service Temporarily Unavailable</html>")
    with pytest.raises(DeliveryRejected) as caught:
        sender(fake).send(message("p1", "+8613900001111"))
    assert (caught.value.code, caught.value.permanent) == ("http_503", False)
    assert fake.sent == []


def test_an_answer_later_than_the_timeout_leaves_the_outcome_unknown(fake: FakeAliyunSms) -> None:
    fake.delay_next(0.5)  # answers late, but sends it for real
    started = time.monotonic()
    with pytest.raises(ChannelError) as caught:
        sender(fake, timeout_s=0.2).send(message("p1", "+8613900001111"))
    assert not isinstance(caught.value, DeliveryRejected)
    assert time.monotonic() - started < 0.45  # the client gave up at its timeout

    deadline = time.monotonic() + 3
    while not fake.sent and time.monotonic() < deadline:  # the provider did send it: why it must not be retried
        time.sleep(0.05)
    assert len(fake.sent) == 1
