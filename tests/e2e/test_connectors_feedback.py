"""Delivery feedback through the local HTTP API: SES events through SNS (signed with a test key whose certificate
the SES connector's module-default fetcher serves), Alibaba Cloud SMS receipts, push opens and tracked-link clicks
end in the recipient's activity and timeline; bad signatures, stale timestamps, oversize and malformed bodies fail.

Each test uses its own e-mail, phone, device and SES message ids: the runtime's state is shared by every e2e test.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from cdp.connectors.feedback_ses import StaticCertificateFetcher, set_certificate_fetcher, set_subscription_confirmer
from cdp.connectors.redirect import LinkClaims, mint_token
from cdp.ingest.security import sign_cdp
from cdp.shared.time import utc_now
from cdp_local.runtime import HttpResponse, LocalRuntime
from tests.unit.connectors.test_feedback_ses import CERT_URL, RecordingConfirmer, sns_key

SAMPLES = Path(__file__).resolve().parents[2] / "events" / "feedback"
BRAND = "demo-brand"  # the brand every local feedback source is bound to (LOCAL_SOURCES)
SMS_SECRET, PUSH_SECRET, REDIRECT_SECRET = "local-sms-secret", "local-push-secret", "local-redirect-secret"
SAMPLE_EMAIL, SAMPLE_SES_ID = "li.na@example.cn", "010001906a5b1c2d-3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7-000000"


@pytest.fixture(scope="module")
def confirmer() -> Iterator[RecordingConfirmer]:
    """The handler builds `SesConnector()` in-process: the module defaults are what it uses, so install a fetcher
    serving the test certificate and a recording confirmer (no SNS host is reachable), and restore them after."""
    recording = RecordingConfirmer()
    previous_fetcher = set_certificate_fetcher(StaticCertificateFetcher({CERT_URL: sns_key().pem}))
    previous_confirmer = set_subscription_confirmer(recording)
    yield recording
    set_certificate_fetcher(previous_fetcher)
    set_subscription_confirmer(previous_confirmer)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def unique_phone() -> str:
    return "139" + str(uuid.uuid4().int)[:8]


def ses_notification(
    name: str, email: str, ses_id: str, *, age: timedelta = timedelta(seconds=2), version: str = "1"
) -> bytes:
    envelope = json.loads((SAMPLES / f"{name}.json").read_text())
    envelope["Message"] = envelope["Message"].replace(SAMPLE_EMAIL, email).replace(SAMPLE_SES_ID, ses_id)
    envelope["MessageId"] = str(uuid.uuid4())  # SNS: one id per notification, also when SES re-publishes
    return json.dumps(sns_key().sign(envelope, datetime.now(UTC) - age, version)).encode()


def post_ses(runtime: LocalRuntime, body: bytes) -> HttpResponse:
    headers = {"content-type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification"}
    return runtime.http("POST", "/v1/feedback/ses", body, headers)


def post_signed(runtime: LocalRuntime, path: str, payload: Any, secret: str, age_s: int = 0) -> HttpResponse:
    body = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
    signature = sign_cdp(secret, body, int(time.time()) - age_s)
    return runtime.http("POST", path, body, {"content-type": "application/json", "x-cdp-signature": signature})


def person(runtime: LocalRuntime, kind: str, value: str) -> dict[str, Any] | None:
    path = f"/v1/profiles/by-identifier/{kind}/{quote(value)}?brand_id={BRAND}"
    response = runtime.http("GET", path, b"", {"x-api-key": runtime.admin_key})
    return json.loads(response.body) if response.status == 200 else None


def known(runtime: LocalRuntime, kind: str, value: str) -> dict[str, Any]:
    found = person(runtime, kind, value)
    assert found is not None, f"no person holds {kind} {value}"
    return found


def timeline(runtime: LocalRuntime, person_id: str) -> list[dict[str, Any]]:
    response = runtime.http("GET", f"/v1/profiles/{person_id}/timeline", b"", {"x-api-key": runtime.admin_key})
    assert response.status == 200, response.body
    entries: list[dict[str, Any]] = json.loads(response.body)["entries"]
    return entries


def identify(runtime: LocalRuntime, identifier: dict[str, str]) -> str:
    """A person the brand already knows (from its web shop): returns their person id."""
    event = {
        "schema_version": "1",
        "event_id": unique("fb-identify-"),
        "event_type": "identify",
        "source": "web",
        "brand_id": BRAND,
        "occurred_at": utc_now().isoformat(),
        "identifiers": [identifier],
        "properties": {"name": "Li Na"},
    }
    headers = {"content-type": "application/json", "x-api-key": runtime.api_key}
    assert runtime.http("POST", "/v1/events", json.dumps(event).encode(), headers).status == 202
    runtime.drain()
    return str(known(runtime, identifier["type"], identifier["value"])["person_id"])


# ---- SES through SNS ---------------------------------------------------------------------------------------------


def test_ses_delivery_open_and_click_land_in_the_known_persons_activity(
    runtime: LocalRuntime, confirmer: RecordingConfirmer
) -> None:
    # Given a person the brand knows by e-mail, and SES events of a campaign e-mail sent to them
    email, ses_id = f"{unique('ses.')}@example.cn", unique("0100019e2e")
    person_id = identify(runtime, {"type": "email", "value": email})
    # When SNS delivers the delivery, open and click notifications (v1 and v2 signatures)
    for name, version in (("ses_delivery", "1"), ("ses_open", "2"), ("ses_click", "1")):
        response = post_ses(runtime, ses_notification(name, email, ses_id, version=version))
        assert response.status == 200, response.body
        assert json.loads(response.body)["accepted"] == 1
    report = runtime.drain()
    # Then the same person counts one delivered, one opened and one clicked message
    profile = known(runtime, "email", email)
    assert profile["person_id"] == person_id and report.dead_lettered == 0
    activity = profile["activity"]
    assert (activity["messages_delivered"], activity["messages_opened"], activity["messages_clicked"]) == (1, 1, 1)
    events = {e["event"]["event_type"]: e["event"] for e in timeline(runtime, person_id)}
    assert events["message_clicked"]["properties"]["campaign_id"] == "spring-launch"
    assert events["message_clicked"]["source"] == "email"


def test_a_resent_notification_is_counted_once(runtime: LocalRuntime, confirmer: RecordingConfirmer) -> None:
    # Given a delivery notification, and SNS re-sending it (a new signature and timestamp, the same SES event)
    email, ses_id = f"{unique('ses.again.')}@example.cn", unique("0100019e2f")
    first = post_ses(runtime, ses_notification("ses_delivery", email, ses_id))
    again = post_ses(runtime, ses_notification("ses_delivery", email, ses_id, version="2"))
    runtime.drain()
    # Then the second is a duplicate and the delivery counts once
    assert json.loads(first.body)["accepted"] == 1
    assert json.loads(again.body)["duplicates"] == 1 and again.status == 200
    assert known(runtime, "email", email)["activity"]["messages_delivered"] == 1


def test_a_complaint_withdraws_email_consent(runtime: LocalRuntime, confirmer: RecordingConfirmer) -> None:
    email, ses_id = f"{unique('ses.complaint.')}@example.cn", unique("0100019e30")
    assert post_ses(runtime, ses_notification("ses_complaint", email, ses_id)).status == 200
    runtime.drain()
    consent = known(runtime, "email", email)["consent"]["email"]
    assert consent["granted"] is False and consent["source"] == "email"


def test_a_subscription_confirmation_is_confirmed_and_ingests_nothing(
    runtime: LocalRuntime, confirmer: RecordingConfirmer
) -> None:
    envelope = json.loads((SAMPLES / "sns_subscription_confirmation.json").read_text())
    body = json.dumps(sns_key().sign(envelope, datetime.now(UTC), "1")).encode()
    response = post_ses(runtime, body)
    assert response.status == 200, response.body
    assert json.loads(response.body)["accepted"] == 0
    assert confirmer.confirmed[-1] == envelope["SubscribeURL"]


def test_ses_bad_signature_stale_oversize_and_malformed(runtime: LocalRuntime, confirmer: RecordingConfirmer) -> None:
    email, ses_id = f"{unique('ses.bad.')}@example.cn", unique("0100019e31")
    # a signature that does not match the message
    forged = json.loads(ses_notification("ses_delivery", email, ses_id))
    forged["Message"] = forged["Message"].replace('"Delivery"', '"Complaint"')
    assert post_ses(runtime, json.dumps(forged).encode()).status == 401
    # a notification signed two hours ago (outside SNS's one-hour window)
    assert post_ses(runtime, ses_notification("ses_delivery", email, ses_id, age=timedelta(hours=2))).status == 401
    # oversize
    assert post_ses(runtime, b"{" + b" " * (600 * 1024) + b"}").status == 413
    # malformed: not an SNS message, and a signed notification whose Message is not an SES event
    not_sns = post_ses(runtime, b"not json")
    assert not_sns.status == 400 and json.loads(not_sns.body)["field"] == "body"
    envelope = json.loads((SAMPLES / "ses_delivery.json").read_text())
    bad_message = sns_key().sign({**envelope, "Message": "{oops"}, datetime.now(UTC), "1")
    response = post_ses(runtime, json.dumps(bad_message).encode())
    assert response.status == 400 and json.loads(response.body)["field"] == "Message"
    runtime.drain()
    assert person(runtime, "email", email) is None


# ---- SMS receipts and push opens ------------------------------------------------------------------------------


def sms_receipts(phone: str) -> list[dict[str, Any]]:
    delivered, failed = json.loads((SAMPLES / "sms_receipts.json").read_text())
    biz_id = unique("9327")
    return [
        {**delivered, "phone_number": phone, "biz_id": biz_id},
        {**failed, "phone_number": phone, "biz_id": biz_id + "b", "out_id": f"{uuid.uuid4()}|spring-launch"},
    ]


def test_sms_receipts_count_delivered_messages_once(runtime: LocalRuntime) -> None:
    # Given a delivered and a failed receipt for one phone, posted twice (the relay retried)
    phone = unique_phone()
    receipts = sms_receipts(phone)
    first = post_signed(runtime, "/v1/feedback/sms/aliyun", receipts, SMS_SECRET)
    again = post_signed(runtime, "/v1/feedback/sms/aliyun", receipts, SMS_SECRET)
    runtime.drain()
    # Then both are accepted once; only the delivered one counts
    assert first.status == 202 and json.loads(first.body)["accepted"] == 2
    assert json.loads(again.body)["duplicates"] == 2
    profile = known(runtime, "phone", f"+86{phone}")
    assert profile["activity"]["messages_delivered"] == 1
    statuses = sorted(e["event"]["properties"]["status"] for e in timeline(runtime, profile["person_id"]))
    assert statuses == ["delivered", "failed"]


def test_sms_bad_signature_stale_oversize_and_malformed(runtime: LocalRuntime) -> None:
    phone = unique_phone()
    receipts = sms_receipts(phone)
    assert post_signed(runtime, "/v1/feedback/sms/aliyun", receipts, "guessed-secret").status == 401
    assert post_signed(runtime, "/v1/feedback/sms/aliyun", receipts, SMS_SECRET, age_s=600).status == 401
    assert post_signed(runtime, "/v1/feedback/sms/unknown-provider", receipts, SMS_SECRET).status == 401
    assert post_signed(runtime, "/v1/feedback/sms/aliyun", b"[" + b" " * (600 * 1024) + b"]", SMS_SECRET).status == 413
    malformed = post_signed(runtime, "/v1/feedback/sms/aliyun", b'{"phone_number": 1', SMS_SECRET)
    assert malformed.status == 400 and json.loads(malformed.body)["field"] == "body"
    no_out_id = post_signed(runtime, "/v1/feedback/sms/aliyun", [{**receipts[0], "out_id": None}], SMS_SECRET)
    assert no_out_id.status == 400
    assert json.loads(no_out_id.body)["rejected"][0]["errors"][0]["field"] == "batch.0.out_id"
    runtime.drain()
    assert person(runtime, "phone", f"+86{phone}") is None


def test_push_received_and_opened_land_on_the_device(runtime: LocalRuntime) -> None:
    # Given the push provider's received and opened events for one device, re-sent once
    device = unique("1a00e2e")
    payload = json.loads((SAMPLES / "push_opens.json").read_text())
    for event in payload["events"]:
        event["device_id"] = device
    first = post_signed(runtime, "/v1/feedback/push/jpush", payload, PUSH_SECRET)
    again = post_signed(runtime, "/v1/feedback/push/jpush", payload, PUSH_SECRET)
    runtime.drain()
    # Then one delivered and one opened message, counted once
    assert first.status == 202 and json.loads(again.body)["duplicates"] == 2
    activity = known(runtime, "device_id", device)["activity"]
    assert (activity["messages_delivered"], activity["messages_opened"]) == (1, 1)
    # and a bad signature, a stale one and a malformed body are refused
    assert post_signed(runtime, "/v1/feedback/push/jpush", payload, SMS_SECRET).status == 401
    assert post_signed(runtime, "/v1/feedback/push/jpush", payload, PUSH_SECRET, age_s=600).status == 401
    malformed = post_signed(runtime, "/v1/feedback/push/jpush", {"events": "opened"}, PUSH_SECRET)
    assert malformed.status == 400 and json.loads(malformed.body)["field"] == "events"


# ---- tracked links --------------------------------------------------------------------------------------------


def test_a_tracked_link_redirects_and_records_the_click(runtime: LocalRuntime) -> None:
    # Given a person known by phone and an SMS link minted for them
    phone = unique_phone()
    person_id = identify(runtime, {"type": "phone", "value": phone})
    target = "https://shop.demo-bakery.example.cn/spring?utm_source=sms"
    claims = LinkClaims(str(uuid.uuid4()), "sms", target, f"phone:+86{phone}", BRAND, "spring-launch")
    token = mint_token(claims, REDIRECT_SECRET)
    # When the link is followed twice within a few seconds (a double tap)
    first = runtime.http("GET", f"/r/{token}", b"", {"user-agent": "Mozilla/5.0 (Linux; Android 14)"})
    again = runtime.http("GET", f"/r/{token}", b"", {"user-agent": "Mozilla/5.0 (Linux; Android 14)"})
    runtime.drain()
    # Then both answer 302 to the target, uncached, and the person has one message_clicked
    for response in (first, again):
        assert response.status == 302, response.body
        assert response.headers["location"] == target and response.headers["cache-control"] == "no-store"
    clicks = [e["event"] for e in timeline(runtime, person_id) if e["event"]["event_type"] == "message_clicked"]
    assert len(clicks) == 1
    assert clicks[0]["source"] == "sms" and clicks[0]["properties"]["url"] == target
    assert known(runtime, "phone", f"+86{phone}")["activity"]["messages_clicked"] == 1


def test_a_tampered_link_is_400_and_never_redirects(runtime: LocalRuntime) -> None:
    claims = LinkClaims(str(uuid.uuid4()), "email", "https://shop.example.cn/", "email:x@example.cn", BRAND)
    token = mint_token(claims, REDIRECT_SECRET)
    payload, mac = token.split(".")
    flip = {"A": "B"}
    for bad in (
        f"{payload[:-1]}{flip.get(payload[-1], 'A')}.{mac}",
        f"{payload}.{mac[:-1]}{flip.get(mac[-1], 'A')}",
        mint_token(claims, "guessed-secret"),
    ):
        response = runtime.http("GET", f"/r/{bad}", b"", {})
        assert response.status == 400 and "location" not in response.headers
        assert json.loads(response.body)["field"] == "token"
