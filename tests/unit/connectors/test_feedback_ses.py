"""SES feedback through SNS, pure: the SNS signature (v1 SHA1withRSA, v2 SHA256withRSA) against a self-signed test
certificate, the certificate-host, topic and replay-window checks, subscription confirmation, each SES event type."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from cdp.connectors import feedback_ses
from cdp.connectors.base import Binding, InboundRequest, Mapped
from cdp.connectors.feedback_ses import (
    CertificateFetcher,
    HttpsCertificateFetcher,
    SesConnector,
    StaticCertificateFetcher,
    SubscriptionConfirmer,
    canonical_string,
    https_get,
    ses_events,
    set_certificate_fetcher,
    verify_sns,
)
from cdp.connectors.sources import parse_sources
from cdp.errors import AuthenticationError, InvalidInputError, RetryableError
from cdp.ingest.events import parse_event
from cdp_local.runtime.environment import LOCAL_SOURCES

SAMPLES = Path(__file__).resolve().parents[3] / "events" / "feedback"
NOW = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
TOPIC = "arn:aws:sns:us-east-1:123456789012:cdp-ses-events"  # the local SES source's topic
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem"
SOURCES = parse_sources(LOCAL_SOURCES)
BINDING = Binding(brand_id="demo-brand", label="sns:cdp-ses-events", channel="email")


# ---- a test signer: SNS's scheme with a self-signed certificate -------------------------------------------------


class SnsTestKey:
    """Signs SNS messages the way SNS does, with a key whose self-signed certificate the tests serve."""

    def __init__(self, valid_from: datetime, valid_days: int = 3650) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(valid_from)
            .not_valid_after(valid_from + timedelta(days=valid_days))
            .sign(self.key, hashes.SHA256())
        )
        self.pem = certificate.public_bytes(serialization.Encoding.PEM)

    def sign(
        self, envelope: dict[str, Any], at: datetime, version: str = "1", cert_url: str = CERT_URL
    ) -> dict[str, Any]:
        signed = {**envelope, "Timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"}
        signed.update(SignatureVersion=version, SigningCertURL=cert_url)
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303 - SNS SignatureVersion 1 is SHA1
        signature = self.key.sign(canonical_string(signed), padding.PKCS1v15(), digest)
        signed["Signature"] = base64.b64encode(signature).decode()
        return signed


@cache
def sns_key() -> SnsTestKey:
    return SnsTestKey(datetime(2025, 1, 1, tzinfo=UTC))


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    return loaded


def with_event(envelope: dict[str, Any], **changes: Any) -> dict[str, Any]:
    event = json.loads(envelope["Message"])
    event.update(changes)
    return {**envelope, "Message": json.dumps(event)}


class RecordingConfirmer(SubscriptionConfirmer):
    def __init__(self) -> None:
        self.confirmed: list[str] = []

    def confirm(self, url: str) -> None:
        self.confirmed.append(url)


class CountingFetcher(CertificateFetcher):
    def __init__(self, pem: bytes) -> None:
        self.pem = pem
        self.calls = 0

    def fetch(self, url: str) -> bytes:
        self.calls += 1
        return self.pem


def request(envelope: dict[str, Any] | bytes, at: datetime = NOW) -> InboundRequest:
    body = envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode()
    return InboundRequest(
        connector="ses",
        method="POST",
        body=body,
        received_at=at,
        request_id="req-ses-1",
        headers={"content-type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification"},
    )


def connector(confirmer: SubscriptionConfirmer | None = None) -> SesConnector:
    return SesConnector(StaticCertificateFetcher({CERT_URL: sns_key().pem}), confirmer or RecordingConfirmer())


def signed(name: str, version: str = "1", at: datetime = NOW - timedelta(seconds=5), **changes: Any) -> dict[str, Any]:
    envelope = with_event(sample(name), **changes) if changes else sample(name)
    return sns_key().sign(envelope, at, version)


def mapped(envelope: dict[str, Any]) -> Mapped:
    ses = connector()
    binding = ses.authenticate(request(envelope), SOURCES)
    return ses.map(request(envelope), binding)


def only(envelope: dict[str, Any]) -> dict[str, Any]:
    result = mapped(envelope)
    assert not result.rejected, result.rejected
    assert len(result.items) == 1
    parse_event(result.items[0])  # every mapped event is a valid canonical event
    return result.items[0]


# ---- the SNS signature ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_notification_authenticates_to_the_ses_brand(version: str) -> None:
    # Given a delivery notification signed with SignatureVersion 1 (SHA1) or 2 (SHA256)
    envelope = signed("ses_delivery", version)
    # When authenticated / Then it is bound to the SES source's brand, channel email
    binding = connector().authenticate(request(envelope), SOURCES)
    assert binding == Binding(brand_id="demo-brand", label="sns:cdp-ses-events", channel="email")


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_changed_message_fails_the_signature(version: str) -> None:
    # Given a signed notification whose Message was changed afterwards
    envelope = signed("ses_delivery", version)
    envelope["Message"] = envelope["Message"].replace("li.na@example.cn", "attacker@example.cn")
    # When authenticated / Then 401
    with pytest.raises(AuthenticationError, match="bad SNS signature"):
        connector().authenticate(request(envelope), SOURCES)


def test_a_signature_by_another_key_or_version_fails() -> None:
    # Given one message signed by an unknown key, one v1 signature presented as v2, one unknown version
    other = SnsTestKey(datetime(2025, 1, 1, tzinfo=UTC)).sign(sample("ses_open"), NOW, "1")
    relabelled = {**signed("ses_open", "1"), "SignatureVersion": "2"}
    unknown = {**signed("ses_open", "1"), "SignatureVersion": "3"}
    # When authenticated / Then each is refused
    for envelope in (other, relabelled):
        with pytest.raises(AuthenticationError, match="bad SNS signature"):
            connector().authenticate(request(envelope), SOURCES)
    with pytest.raises(AuthenticationError, match="SignatureVersion"):
        connector().authenticate(request(unknown), SOURCES)


def test_the_subject_is_signed_when_present() -> None:
    # Given a notification with a Subject, signed
    envelope = sns_key().sign({**sample("ses_open"), "Subject": "Amazon SES Email Event Notification"}, NOW, "2")
    assert b"Subject\nAmazon SES Email Event Notification\n" in canonical_string(envelope)
    # When its subject changes / Then the signature no longer holds
    connector().authenticate(request(envelope), SOURCES)
    with pytest.raises(AuthenticationError):
        connector().authenticate(request({**envelope, "Subject": "changed"}), SOURCES)


@pytest.mark.parametrize(
    "cert_url",
    [
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService.pem",
        "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService.pem",
        "https://evil.example/sns.us-east-1.amazonaws.com/SimpleNotificationService.pem",
        "https://s3.us-east-1.amazonaws.com/SimpleNotificationService.pem",
        "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService.pem",
        "https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService.pem",
        "https://SNS.US-EAST-1.AMAZONAWS.COM.evil.example/x.pem",
    ],
)
def test_a_certificate_off_the_sns_hosts_is_never_fetched(cert_url: str) -> None:
    # Given a message (validly signed) that points its SigningCertURL somewhere else
    envelope = sns_key().sign(sample("ses_delivery"), NOW, "1", cert_url=cert_url)
    fetcher = CountingFetcher(sns_key().pem)
    # When authenticated / Then 401, and nothing was fetched from that URL
    with pytest.raises(AuthenticationError, match="SigningCertURL"):
        SesConnector(fetcher, RecordingConfirmer()).authenticate(request(envelope), SOURCES)
    assert fetcher.calls == 0


def test_the_china_regions_sns_host_is_accepted() -> None:
    url = "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem"
    envelope = sns_key().sign(sample("ses_delivery"), NOW, "2", cert_url=url)
    verify_sns(envelope, StaticCertificateFetcher({url: sns_key().pem}), NOW)


def test_a_topic_outside_the_source_is_refused() -> None:
    # Given a validly signed notification of another topic
    envelope = sns_key().sign({**sample("ses_delivery"), "TopicArn": f"{TOPIC}-other"}, NOW, "1")
    # When authenticated / Then 401
    with pytest.raises(AuthenticationError, match="topic"):
        connector().authenticate(request(envelope), SOURCES)


def test_the_replay_window_is_one_hour() -> None:
    # Given notifications signed 59 minutes and 61 minutes before they arrive (SNS retries keep the timestamp)
    recent = signed("ses_delivery", at=NOW - timedelta(minutes=59))
    stale = signed("ses_delivery", at=NOW - timedelta(minutes=61))
    # When authenticated / Then the first passes and the second is 401
    connector().authenticate(request(recent), SOURCES)
    with pytest.raises(AuthenticationError, match="replay window"):
        connector().authenticate(request(stale), SOURCES)


def test_an_expired_certificate_is_refused() -> None:
    old = SnsTestKey(datetime(2020, 1, 1, tzinfo=UTC), valid_days=30)
    envelope = old.sign(sample("ses_delivery"), NOW, "1")
    with pytest.raises(AuthenticationError, match="not valid now"):
        verify_sns(envelope, StaticCertificateFetcher({CERT_URL: old.pem}), NOW)


def test_no_ses_source_and_unsigned_bodies_are_refused() -> None:
    # Given no SES source configured, and a body that is not an SNS message
    with pytest.raises(AuthenticationError, match="not configured"):
        connector().authenticate(request(signed("ses_delivery")), parse_sources({}))
    with pytest.raises(InvalidInputError) as not_json:
        connector().authenticate(request(b"{not json"), SOURCES)
    assert not_json.value.location == "body"
    # a raw SES event (raw message delivery on): no signature to check
    raw = json.loads(sample("ses_delivery")["Message"])
    with pytest.raises(InvalidInputError) as unsigned:
        connector().authenticate(request(raw), SOURCES)
    assert unsigned.value.location == "Type"


# ---- subscription confirmation ------------------------------------------------------------------------------------


def test_a_subscription_confirmation_visits_the_subscribe_url_and_ingests_nothing() -> None:
    # Given SNS's signed SubscriptionConfirmation
    envelope = sns_key().sign(sample("sns_subscription_confirmation"), NOW, "1")
    confirmer = RecordingConfirmer()
    ses = connector(confirmer)
    # When received
    binding = ses.authenticate(request(envelope), SOURCES)
    result = ses.map(request(envelope), binding)
    # Then the SubscribeURL was visited once and nothing is ingested
    assert confirmer.confirmed == [envelope["SubscribeURL"]]
    assert result.items == [] and result.rejected == []


def test_a_subscribe_url_off_the_sns_hosts_is_not_visited() -> None:
    confirmation = {**sample("sns_subscription_confirmation"), "SubscribeURL": "https://evil.example/?Action=x"}
    confirmer = RecordingConfirmer()
    with pytest.raises(AuthenticationError, match="SubscribeURL"):
        connector(confirmer).authenticate(request(sns_key().sign(confirmation, NOW, "2")), SOURCES)
    assert confirmer.confirmed == []


def test_the_module_default_fetcher_is_replaceable() -> None:
    # Given the handler's way of building the connector (no arguments) and a replaced default fetcher
    previous = set_certificate_fetcher(StaticCertificateFetcher({CERT_URL: sns_key().pem}))
    try:
        # When a signed notification is authenticated / Then the replaced fetcher served the certificate
        SesConnector().authenticate(request(signed("ses_click")), SOURCES)
    finally:
        set_certificate_fetcher(previous)
    assert isinstance(feedback_ses._DEFAULTS.fetcher, HttpsCertificateFetcher)


def test_the_https_fetcher_caches_and_refuses_plain_http(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fake_get(url: str, limit: int) -> bytes:
        calls.append(url)
        return sns_key().pem

    monkeypatch.setattr(feedback_ses, "https_get", fake_get)
    fetcher = HttpsCertificateFetcher()
    assert fetcher.fetch(CERT_URL) == fetcher.fetch(CERT_URL) == sns_key().pem
    assert calls == [CERT_URL]
    with pytest.raises(ValueError, match="non-https"):
        https_get("http://sns.us-east-1.amazonaws.com/x.pem", 1024)
    with pytest.raises(RetryableError):
        StaticCertificateFetcher({}).fetch(CERT_URL)


# ---- SES events -> canonical events ------------------------------------------------------------------------------


def test_delivery_is_message_delivered_with_our_message_and_campaign() -> None:
    event = only(signed("ses_delivery"))
    assert event["event_type"] == "message_delivered" and event["source"] == "email"
    assert event["identifiers"] == [{"type": "email", "value": "li.na@example.cn"}]
    assert event["properties"] == {
        "message_id": "3f2b8c1e-5d4a-5b6c-9e7f-0a1b2c3d4e5f",  # the send path's message_id tag
        "campaign_id": "spring-launch",
        "channel": "email",
        "status": "delivered",
    }
    assert event["occurred_at"] == "2026-03-02T02:00:02.734Z"
    assert event["event_id"].startswith("ses-010001906a5b1c2d-3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7-000000-delivery-")


def test_a_permanent_bounce_is_bounced_and_a_transient_one_failed() -> None:
    permanent = only(signed("ses_bounce"))
    assert permanent["properties"]["status"] == "bounced"
    assert permanent["identifiers"] == [{"type": "email", "value": "no.such.user@example.cn"}]
    bounce = json.loads(sample("ses_bounce")["Message"])["bounce"]
    transient = only(signed("ses_bounce", bounce={**bounce, "bounceType": "Transient", "bounceSubType": "MailboxFull"}))
    assert transient["properties"]["status"] == "failed"


def test_a_complaint_is_an_email_opt_out() -> None:
    event = only(signed("ses_complaint"))
    assert event["event_type"] == "consent_changed"
    ids = {"message_id": "3f2b8c1e-5d4a-5b6c-9e7f-0a1b2c3d4e5f", "campaign_id": "spring-launch"}
    assert event["properties"] == {"channel": "email", "granted": False, "complaint": True, **ids}  # it ends complained
    assert event["occurred_at"] == "2026-03-02T09:12:44.000Z"


def test_open_and_click() -> None:
    opened, clicked = only(signed("ses_open")), only(signed("ses_click"))
    assert opened["event_type"] == "message_opened"
    assert opened["properties"]["message_id"] == "3f2b8c1e-5d4a-5b6c-9e7f-0a1b2c3d4e5f"
    assert opened["context"]["user_agent"].startswith("Mozilla/5.0 (iPhone")
    assert clicked["event_type"] == "message_clicked"
    assert clicked["properties"]["url"] == (
        "https://shop.demo-bakery.example.cn/spring?utm_source=email&utm_campaign=spring-launch"
    )


def test_event_ids_count_each_open_and_each_link_once() -> None:
    # Given the same open re-sent, a second open later, and a click on another link
    click = json.loads(sample("ses_click")["Message"])["click"]
    opened = json.loads(sample("ses_open")["Message"])["open"]
    ids = {
        "open": only(signed("ses_open"))["event_id"],
        "open again (re-sent)": only(signed("ses_open", version="2"))["event_id"],
        "second open": only(signed("ses_open", open={**opened, "timestamp": "2026-03-02T09:00:00.000Z"}))["event_id"],
        "click": only(signed("ses_click"))["event_id"],
        "same link later": only(signed("ses_click", click={**click, "timestamp": "2026-03-02T09:00:00.000Z"}))[
            "event_id"
        ],
        "other link": only(signed("ses_click", click={**click, "link": "https://shop.example.cn/b"}))["event_id"],
    }
    # Then re-sends and repeated clicks of a link share an id; a second open and another link do not
    assert ids["open"] == ids["open again (re-sent)"] != ids["second open"]
    assert ids["click"] == ids["same link later"] != ids["other link"]


def test_reject_subscription_and_the_untracked_types() -> None:
    mail = json.loads(sample("ses_delivery")["Message"])["mail"]
    binding = BINDING
    reject = ses_events({"eventType": "Reject", "mail": mail, "reject": {"reason": "Bad content"}}, binding)
    assert reject[0]["properties"]["status"] == "failed"
    unsubscribe = {"eventType": "Subscription", "mail": mail, "subscription": {"newTopicPreferences": {}}}
    unsubscribe["subscription"]["newTopicPreferences"] = {"unsubscribeAll": True}
    ids = {"message_id": "3f2b8c1e-5d4a-5b6c-9e7f-0a1b2c3d4e5f", "campaign_id": "spring-launch"}
    assert ses_events(unsubscribe, binding)[0]["properties"] == {"channel": "email", "granted": False, **ids}
    for kind in ("Send", "DeliveryDelay", "Rendering Failure"):
        assert ses_events({"eventType": kind, "mail": mail}, binding) == []
    topics_only = {"eventType": "Subscription", "mail": mail, "subscription": {"newTopicPreferences": {"topics": []}}}
    assert ses_events(topics_only, binding) == []


def test_an_untagged_message_uses_the_ses_message_id() -> None:
    mail = json.loads(sample("ses_delivery")["Message"])["mail"]
    event = ses_events({"eventType": "Open", "mail": {**mail, "tags": {}}, "open": {}}, BINDING)[0]
    assert event["properties"] == {"message_id": mail["messageId"], "channel": "email"}
    # an identity notification (notificationType) maps the same way
    notification = {"notificationType": "Delivery", "mail": mail, "delivery": {"recipients": ["A <a@example.cn>"]}}
    assert ses_events(notification, BINDING)[0]["identifiers"] == [{"type": "email", "value": "a@example.cn"}]


def test_malformed_ses_events_name_the_field() -> None:
    # Given a signed notification whose Message is not JSON, and ones missing required parts
    not_json = sns_key().sign({**sample("ses_delivery"), "Message": "not json"}, NOW, "1")
    with pytest.raises(InvalidInputError) as error:
        mapped(not_json)
    assert error.value.location == "Message"
    mail = json.loads(sample("ses_click")["Message"])["mail"]
    cases = {
        "Message.mail": {"eventType": "Delivery"},
        "Message.eventType": {"mail": mail},
        "Message.click.link": {"eventType": "Click", "mail": mail, "click": {}},
        "Message.mail.destination": {"eventType": "Open", "mail": {**mail, "destination": ["a@x.cn", "b@x.cn"]}},
    }
    for field, event in cases.items():
        result = mapped(sns_key().sign({**sample("ses_click"), "Message": json.dumps(event)}, NOW, "1"))
        # Then the item is rejected with the field inside the SES event named
        assert result.items == []
        assert result.rejected[0].errors[0].field == field, field


def test_every_feedback_sample_maps_to_valid_events() -> None:
    for name in ("ses_delivery", "ses_bounce", "ses_complaint", "ses_open", "ses_click"):
        only(signed(name))
