"""The webhook channel against the fake brand endpoint, in process (`fake.transport()`): the signature a brand
verifies, what each answer means for the send, the brand's dedupe by idempotency key, and the secret kept out of
every error."""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cdp.channels.models import OutboundMessage
from cdp.channels.ports import DeliveryRejected
from cdp.channels.webhook import WebhookChannel, sign_webhook, verify_webhook, webhook_body
from cdp.connectors.sender_accounts import Webhook
from cdp.errors import AuthenticationError, ChannelError
from cdp.shared.http import HttpAnswer, HttpUnreachable
from cdp_local.fakes.webhook_receiver import FakeWebhookReceiver

NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
SECRET = "brand-webhook-secret-0123456789abcdef"


def message(**overrides: Any) -> OutboundMessage:
    base: dict[str, Any] = {
        "message_id": "6f1c0e0e-0000-5000-8000-000000000001",
        "campaign_id": "spring-cake",
        "run_id": "r1",
        "step": "touch1",
        "channel": "webhook",
        "person_id": "p1",
        "brand_id": "bakery",
        "address": "p1",
        "subject": "Your cake coupon",
        "body": "Li Lei, coupon CAKE20 — 春季蛋糕",
        "fields": {"tier": "gold"},
        "link": "https://bakery.example/spring",
        "coupon_id": "CAKE20",
        "created_at": NOW,
    }
    base.update(overrides)
    return OutboundMessage(**base)


@pytest.fixture
def fake() -> Iterator[FakeWebhookReceiver]:
    receiver = FakeWebhookReceiver(secret=SECRET, clock=lambda: NOW)  # never started: called in process
    yield receiver
    receiver.stop()


def channel_for(fake: FakeWebhookReceiver, **changes: Any) -> WebhookChannel:
    return WebhookChannel(Webhook(**fake.account(**changes)), transport=fake.transport(), clock=lambda: NOW)


# ---- the signature ------------------------------------------------------------------------------------------


def test_the_sent_webhook_carries_a_signature_the_brand_verifies(fake: FakeWebhookReceiver) -> None:
    # Given the channel pointed at the brand's endpoint
    channel = channel_for(fake)
    # When a message is sent
    receipt = channel.send(message())
    # Then the endpoint verified and recorded it: our fields, the message id twice (header and idempotency key)
    (delivery,) = fake.received
    assert delivery.body == {
        "message_id": "6f1c0e0e-0000-5000-8000-000000000001",
        "campaign_id": "spring-cake",
        "step": "touch1",
        "person_id": "p1",
        "brand_id": "bakery",
        "subject": "Your cake coupon",
        "body": "Li Lei, coupon CAKE20 — 春季蛋糕",
        "fields": {"tier": "gold"},
        "link": "https://bakery.example/spring",
        "coupon_id": "CAKE20",
        "sent_at": "2026-03-01T10:00:00.000Z",
    }
    headers = delivery.headers
    assert headers["content-type"] == "application/json"
    assert headers["x-cdp-message-id"] == headers["idempotency-key"] == "6f1c0e0e-0000-5000-8000-000000000001"
    assert headers["x-cdp-signature"].startswith(f"t={int(NOW.timestamp())},v1=")
    # And the receipt names the brand's own id for it
    assert (receipt.provider, receipt.provider_id, receipt.channel) == ("webhook", delivery.id, "webhook")
    assert receipt.accepted_at == NOW
    assert fake.rejected == []


def test_a_tampered_body_or_an_old_timestamp_fails_verification() -> None:
    # Given a body signed now
    body = webhook_body(message(), NOW)
    headers = {"X-Cdp-Signature": sign_webhook(SECRET, body, NOW)}
    verify_webhook(headers, body, SECRET, NOW + timedelta(seconds=299))  # header names in any case
    # When the body is changed by one character / Then the signature no longer matches
    with pytest.raises(AuthenticationError, match="bad signature"):
        verify_webhook(headers, body.replace(b"CAKE20", b"CAKE90"), SECRET, NOW)
    # When it is checked with another secret / Then it fails too
    with pytest.raises(AuthenticationError, match="bad signature"):
        verify_webhook(headers, body, SECRET + "x", NOW)
    # When it is replayed past the tolerance (or comes from the future) / Then the timestamp is refused
    with pytest.raises(AuthenticationError, match="replay window"):
        verify_webhook(headers, body, SECRET, NOW + timedelta(seconds=301))
    with pytest.raises(AuthenticationError, match="replay window"):
        verify_webhook(headers, body, SECRET, NOW - timedelta(seconds=301))
    with pytest.raises(AuthenticationError, match="60s"):
        verify_webhook(headers, body, SECRET, NOW + timedelta(seconds=61), tolerance_s=60)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing x-cdp-signature"),
        ({"x-cdp-signature": "v1=abc"}, "malformed"),
        ({"x-cdp-signature": "t=1772359200"}, "malformed"),
        ({"x-cdp-signature": "t=soon,v1=abc"}, "malformed signature timestamp"),
    ],
)
def test_a_missing_or_malformed_signature_header_says_what_is_wrong(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(AuthenticationError, match=reason):
        verify_webhook(headers, b"{}", SECRET, NOW)


def test_any_matching_signature_of_a_rotation_header_is_accepted() -> None:
    # Given a header with the old secret's signature and the new one's (a secret being rotated)
    body = b'{"message_id":"m1"}'
    old = sign_webhook("old-" + SECRET, body, NOW).split("v1=", 1)[1]
    headers = {"x-cdp-signature": f"{sign_webhook(SECRET, body, NOW)},v1={old}"}
    # Then either secret verifies it
    verify_webhook(headers, body, SECRET, NOW)
    verify_webhook(headers, body, "old-" + SECRET, NOW)
    with pytest.raises(AuthenticationError):
        verify_webhook(headers, body, "other-" + SECRET, NOW)


def test_the_receiver_refuses_a_wrong_secret_and_a_stale_send_with_401(fake: FakeWebhookReceiver) -> None:
    # Given a sender whose secret differs from the brand's
    wrong = channel_for(fake, secret="not-the-brand-secret-0123456789abcdef")
    # When it sends / Then the brand's 401 is a permanent refusal and nothing was recorded
    with pytest.raises(DeliveryRejected) as refused:
        wrong.send(message())
    assert (refused.value.code, refused.value.permanent) == ("http_401", True)
    # And a sender whose clock is 10 minutes behind is refused as a replay
    late = WebhookChannel(
        Webhook(**fake.account()), transport=fake.transport(), clock=lambda: NOW - timedelta(minutes=10)
    )
    with pytest.raises(DeliveryRejected, match="answered 401"):
        late.send(message())
    assert fake.received == []
    assert [r.split(":")[0] for r in fake.rejected] == [
        "bad signature",
        "signature timestamp outside the 300s replay window",
    ]


# ---- what each answer means ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 425, 429])
def test_a_5xx_or_a_slow_down_answer_is_transient(fake: FakeWebhookReceiver, status: int) -> None:
    # Given an endpoint that fails once
    fake.fail_next(status, b'{"error":"busy"}')
    channel = channel_for(fake)
    # When a message is sent / Then the refusal is transient (retried), coded by status, and names the answer
    with pytest.raises(DeliveryRejected) as refused:
        channel.send(message())
    assert refused.value.code == f"http_{status}"
    assert not refused.value.permanent and not refused.value.invalid_address
    assert "busy" in str(refused.value)
    # And the next attempt goes through
    assert channel.send(message()).provider == "webhook"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 413, 422, 301, 307])
def test_any_other_4xx_is_permanent(fake: FakeWebhookReceiver, status: int) -> None:
    fake.fail_next(status)
    with pytest.raises(DeliveryRejected) as refused:
        channel_for(fake).send(message())
    assert (refused.value.code, refused.value.permanent, refused.value.invalid_address) == (
        f"http_{status}",
        True,
        False,
    )


def test_410_gone_is_an_invalid_address(fake: FakeWebhookReceiver) -> None:
    # Given a brand that removed its endpoint
    fake.gone()
    # When a message is sent / Then the address itself is dead: permanent, not retried, not sent to again
    with pytest.raises(DeliveryRejected) as refused:
        channel_for(fake).send(message())
    assert refused.value.invalid_address and refused.value.permanent
    assert refused.value.code == "http_410"
    assert fake.received == []


@pytest.mark.parametrize(
    ("answer", "provider_id"),
    [
        (b'{"id":"evt_42"}', "evt_42"),
        (b'{"id":42}', "6f1c0e0e-0000-5000-8000-000000000001"),
        (b'{"id":""}', "6f1c0e0e-0000-5000-8000-000000000001"),
        (b"[1,2]", "6f1c0e0e-0000-5000-8000-000000000001"),
        (b"ok", "6f1c0e0e-0000-5000-8000-000000000001"),
        (b"", "6f1c0e0e-0000-5000-8000-000000000001"),
    ],
)
def test_the_receipt_takes_the_answers_string_id_else_the_message_id(answer: bytes, provider_id: str) -> None:
    def transport(method: str, url: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
        return HttpAnswer(202, answer)

    channel = WebhookChannel(Webhook(url="https://hooks.bakery.example/cdp", secret=SECRET), transport=transport)
    assert channel.send(message()).provider_id == provider_id


def test_no_connection_is_transient_and_no_answer_is_unknown() -> None:
    # Given an endpoint that cannot be reached, then one that took the request and never answered
    def refused(method: str, url: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
        raise HttpUnreachable(url, "connection refused", sent=False)

    def timed_out(method: str, url: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
        raise HttpUnreachable(url, "timed out", sent=None)

    account = Webhook(url="https://hooks.bakery.example/cdp", secret=SECRET)
    # Then the first is certainly not sent (transient), the second's outcome is unknown (not retried at once)
    with pytest.raises(DeliveryRejected) as not_sent:
        WebhookChannel(account, transport=refused).send(message())
    assert not not_sent.value.permanent and not_sent.value.code == "unreachable"
    with pytest.raises(ChannelError) as unknown:
        WebhookChannel(account, transport=timed_out).send(message())
    assert not isinstance(unknown.value, DeliveryRejected)
    assert "outcome unknown" in str(unknown.value)


# ---- the brand's dedupe ---------------------------------------------------------------------------------------


def test_a_repeated_idempotency_key_is_answered_with_the_first_id_and_recorded_once(fake: FakeWebhookReceiver) -> None:
    # Given one message delivered, then sent again (a retry after a lost answer), then another message
    channel = channel_for(fake)
    first = channel.send(message())
    again = channel.send(message(body="edited on the retry"))
    other = channel.send(message(message_id="6f1c0e0e-0000-5000-8000-000000000002", person_id="p2"))
    # Then the repeat answered the first delivery's id and the brand recorded each message once
    assert again.provider_id == first.provider_id != other.provider_id
    assert [d.body["message_id"] for d in fake.received] == [
        "6f1c0e0e-0000-5000-8000-000000000001",
        "6f1c0e0e-0000-5000-8000-000000000002",
    ]
    assert fake.received[0].body["body"] == "Li Lei, coupon CAKE20 — 春季蛋糕"


# ---- the secret ----------------------------------------------------------------------------------------------


def test_the_secret_appears_in_no_request_and_no_error(fake: FakeWebhookReceiver) -> None:
    # Given a URL with a token in it, and every kind of failure
    seen: list[bytes] = []

    def failing(status: int | None, sent: bool | None = None) -> Any:
        def transport(method: str, url: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
            seen.append(json.dumps(dict(headers)).encode() + body)
            if status is None:
                raise HttpUnreachable(url, "timed out", sent=sent)
            return HttpAnswer(status, b'{"error":"no"}')

        return transport

    account = Webhook(url="https://user:pw@hooks.bakery.example/cdp?token=abc", secret=SECRET)
    errors: list[Exception] = []
    for transport in (failing(500), failing(401), failing(410), failing(None, False), failing(None, None)):
        with pytest.raises(ChannelError) as failed:
            WebhookChannel(account, transport=transport).send(message())
        errors.append(failed.value)
    # Then neither the secret nor the URL's credentials show in any error, its repr or its logged traceback
    for error in errors:
        for text in (str(error), repr(error), "".join(traceback.format_exception(error))):
            assert SECRET not in text and "pw@" not in text and "token=abc" not in text
        assert "hooks.bakery.example" in str(error)
    # And the secret was never sent (only the HMAC of it)
    assert all(SECRET.encode() not in request for request in seen)
    assert SECRET not in repr(account)
