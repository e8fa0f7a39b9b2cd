"""SMS delivery receipts (Alibaba Cloud's SmsReport / SmsUp) and push opens, pure: our signature, the mapping."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cdp.connectors.base import Binding, InboundRequest, Mapped
from cdp.connectors.feedback import (
    PushFeedbackConnector,
    SmsReceiptConnector,
    parse_out_id,
    sms_out_id,
    stable_id,
)
from cdp.connectors.sources import parse_sources
from cdp.errors import AuthenticationError, InvalidInputError
from cdp.ingest.events import parse_event
from cdp.ingest.security import sign_cdp
from cdp_local.runtime.environment import LOCAL_SOURCES

SAMPLES = Path(__file__).resolve().parents[3] / "events" / "feedback"
NOW = datetime(2026, 3, 2, 2, 5, tzinfo=UTC)
SOURCES = parse_sources(LOCAL_SOURCES)
SMS_SECRET, PUSH_SECRET = "local-sms-secret", "local-push-secret"


def signed_request(
    connector: str, key: str, body: Any, secret: str, at: datetime = NOW, received: datetime = NOW
) -> InboundRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return InboundRequest(
        connector=connector,
        method="POST",
        body=raw,
        received_at=received,
        request_id="req-1",
        key=key,
        headers={"content-type": "application/json", "x-cdp-signature": sign_cdp(secret, raw, int(at.timestamp()))},
    )


def sample(name: str) -> Any:
    return json.loads((SAMPLES / f"{name}.json").read_text())


def sms(body: Any, key: str = "aliyun") -> Mapped:
    connector = SmsReceiptConnector()
    request = signed_request("sms-feedback", key, body, SMS_SECRET)
    return connector.map(request, connector.authenticate(request, SOURCES))


def push(body: Any, key: str = "jpush") -> Mapped:
    connector = PushFeedbackConnector()
    request = signed_request("push-feedback", key, body, PUSH_SECRET)
    return connector.map(request, connector.authenticate(request, SOURCES))


def valid(result: Mapped) -> list[dict[str, Any]]:
    assert not result.rejected, result.rejected
    for item in result.items:
        parse_event(item)
    return result.items


# ---- authentication ----------------------------------------------------------------------------------------------


def test_signed_reports_bind_to_the_providers_brand() -> None:
    request = signed_request("sms-feedback", "aliyun", sample("sms_receipts"), SMS_SECRET)
    assert SmsReceiptConnector().authenticate(request, SOURCES) == Binding(
        brand_id="demo-brand", label="sms:aliyun", channel="sms"
    )
    request = signed_request("push-feedback", "jpush", sample("push_opens"), PUSH_SECRET)
    assert PushFeedbackConnector().authenticate(request, SOURCES).channel == "push"


@pytest.mark.parametrize(
    ("key", "secret", "at", "message"),
    [
        ("aliyun", "wrong-secret", NOW, "bad signature"),
        ("aliyun", SMS_SECRET, NOW - timedelta(minutes=6), "replay window"),
        ("tencent", SMS_SECRET, NOW, "unknown sms"),
        ("aliyun", PUSH_SECRET, NOW, "bad signature"),  # another source's secret
    ],
)
def test_bad_signatures_stale_timestamps_and_unknown_providers_are_401(
    key: str, secret: str, at: datetime, message: str
) -> None:
    request = signed_request("sms-feedback", key, sample("sms_receipts"), secret, at=at)
    with pytest.raises(AuthenticationError, match=message):
        SmsReceiptConnector().authenticate(request, SOURCES)


def test_an_unsigned_request_is_401() -> None:
    request = signed_request("push-feedback", "jpush", sample("push_opens"), PUSH_SECRET)
    unsigned = InboundRequest(**{**request.__dict__, "headers": {"content-type": "application/json"}})
    with pytest.raises(AuthenticationError, match="x-cdp-signature"):
        PushFeedbackConnector().authenticate(unsigned, SOURCES)


# ---- SMS receipts ------------------------------------------------------------------------------------------------


def test_receipts_become_delivered_and_failed_messages() -> None:
    # Given Alibaba Cloud's receipts: one delivered, one failed (empty number)
    delivered, failed = valid(sms(sample("sms_receipts")))
    # Then each is a message_delivered of the sms channel naming our message and campaign (from out_id)
    assert delivered["event_type"] == failed["event_type"] == "message_delivered"
    assert delivered["source"] == "sms" and delivered["identifiers"] == [{"type": "phone", "value": "13900001111"}]
    assert delivered["properties"] == {
        "message_id": "5d9e2f4a-7b1c-5e3d-8f6a-1b2c3d4e5f60",
        "campaign_id": "spring-launch",
        "channel": "sms",
        "status": "delivered",
    }
    assert failed["properties"]["status"] == "failed" and failed["properties"]["error_code"] == "MK:0001"
    # report_time is China time
    assert delivered["occurred_at"] == "2026-03-02T02:00:04.000Z"
    # the same biz id (one send call to two numbers) still gives two event ids, stable across re-sends
    assert delivered["event_id"] != failed["event_id"]
    assert [e["event_id"] for e in valid(sms(sample("sms_receipts")))] == [delivered["event_id"], failed["event_id"]]


def test_out_id_round_trip_and_stable_ids() -> None:
    assert parse_out_id(sms_out_id("m-1", "spring")) == ("m-1", "spring")
    assert parse_out_id(sms_out_id("m-1")) == ("m-1", None)
    # a provider id outside the event-id alphabet (Alibaba's biz ids hold "^") falls back to a fingerprint
    assert stable_id("sms", "aliyun", "9327^0").startswith("sms-") and "^" not in stable_id("sms", "aliyun", "9327^0")
    assert stable_id("sms", "aliyun", "9327^0") == stable_id("sms", "aliyun", "9327^0") != stable_id("sms", "x", "1^0")


def test_unsubscribe_replies_are_opt_outs_and_other_replies_are_ignored() -> None:
    # Given two upstream messages (SmsUp): "TD" and an ordinary reply
    replies = [
        {
            "phone_number": "13900003333",
            "send_time": "2026-03-02 10:05:00",
            "content": " td ",
            "sign_name": "烘焙坊",
            "dest_code": "1234",
            "sequence_id": 1234567890,
        },
        {
            "phone_number": "13900003333",
            "send_time": "2026-03-02 10:06:00",
            "content": "谢谢",
            "sequence_id": 1234567891,
        },
    ]
    # When mapped / Then only the keyword is an sms opt-out
    (event,) = valid(sms(replies))
    assert event["event_type"] == "consent_changed"
    assert event["properties"] == {"channel": "sms", "granted": False, "purpose": "marketing", "reply": "td"}
    assert event["event_id"] == "sms-mo-aliyun-1234567890"


def test_a_bad_receipt_is_rejected_with_its_field_and_the_others_kept() -> None:
    good, _ = sample("sms_receipts")
    no_out_id = {k: v for k, v in good.items() if k != "out_id"}
    bad_time = {**good, "biz_id": "x2", "report_time": "yesterday"}
    bad_success = {**good, "biz_id": "x3", "success": "maybe"}
    result = sms([good, no_out_id, bad_time, bad_success, "not an object"])
    assert len(result.items) == 1
    assert [(r.index, r.errors[0].field) for r in result.rejected] == [
        (1, "batch.1.out_id"),
        (2, "batch.2.report_time"),
        (3, "batch.3.success"),
        (4, "batch.4"),
    ]


@pytest.mark.parametrize(("body", "field"), [(b"[oops", "body"), ({"phone_number": "1"}, "body"), ([], "body")])
def test_a_malformed_sms_body_is_400_with_the_field(body: Any, field: str) -> None:
    with pytest.raises(InvalidInputError) as error:
        sms(body)
    assert error.value.location == field


# ---- push --------------------------------------------------------------------------------------------------------


def test_push_received_and_opened() -> None:
    received, opened = valid(push(sample("push_opens")))
    assert received["event_type"] == "message_delivered" and received["properties"]["status"] == "delivered"
    assert opened["event_type"] == "message_opened" and opened["source"] == "push"
    assert opened["identifiers"] == [{"type": "device_id", "value": "1a0018970af3f1c7b4e"}]
    assert opened["properties"] == {
        "message_id": "9a8b7c6d-1e2f-5a3b-8c4d-5e6f7a8b9c0d",
        "channel": "push",
        "campaign_id": "spring-launch",
    }
    assert opened["context"] == {"platform": "android"}
    assert opened["occurred_at"] == "2026-03-02T02:03:32.000Z"
    # the provider, the type and our message id, then a fingerprint of the device
    assert opened["event_id"].startswith("push-jpush-opened-9a8b7c6d-1e2f-5a3b-8c4d-5e6f7a8b9c0d-")
    assert "1a0018970af3f1c7b4e" not in opened["event_id"]


def test_push_times_in_milliseconds_and_iso() -> None:
    base = sample("push_opens")["events"][1]
    events = [{**base, "ts": 1772417012000}, {**base, "ts": "2026-03-02T10:03:32+08:00"}]
    assert {e["occurred_at"] for e in valid(push({"events": events}))} == {"2026-03-02T02:03:32.000Z"}


def test_bad_push_events_are_rejected_with_their_field() -> None:
    base = sample("push_opens")["events"][1]
    result = push({"events": [{**base, "type": "dismissed"}, {**base, "device_id": None}, {**base, "ts": None}, base]})
    assert len(result.items) == 1
    assert [r.errors[0].field for r in result.rejected] == ["events.0.type", "events.1.device_id", "events.2.ts"]
    with pytest.raises(InvalidInputError) as error:
        push({"events": {}})
    assert error.value.location == "events"
