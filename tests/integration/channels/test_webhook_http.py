"""The webhook channel over real HTTP (urllib, the default transport) to a started fake brand endpoint."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from cdp.channels.models import OutboundMessage
from cdp.channels.ports import DeliveryRejected
from cdp.channels.retries import Backoff, RetryingChannel
from cdp.channels.webhook import WebhookChannel
from cdp.connectors.sender_accounts import Webhook
from cdp.errors import ChannelError
from cdp_local.fakes.webhook_receiver import FakeWebhookReceiver

NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


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
        "body": "Li Lei, coupon CAKE20",
        "created_at": NOW,
    }
    base.update(overrides)
    return OutboundMessage(**base)


@pytest.fixture
def receiver() -> Iterator[FakeWebhookReceiver]:
    with FakeWebhookReceiver() as fake:
        yield fake


def wait_for(condition: Any, within_s: float = 2.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def test_a_message_is_posted_signed_and_accepted(receiver: FakeWebhookReceiver) -> None:
    # Given the channel with its default transport, pointed at the started endpoint
    channel = WebhookChannel(Webhook(**receiver.account()))
    # When a message is sent
    receipt = channel.send(message())
    # Then the endpoint verified the signature over the bytes that crossed the socket and recorded it once
    (delivery,) = receiver.received
    assert delivery.body["message_id"] == receipt.message_id and delivery.body["body"] == "Li Lei, coupon CAKE20"
    assert delivery.path == "/hooks/cdp"
    assert receipt.provider_id == delivery.id and receipt.provider == "webhook"
    assert receiver.rejected == []


def test_an_answer_slower_than_the_timeout_is_an_unknown_outcome(receiver: FakeWebhookReceiver) -> None:
    # Given an endpoint that answers after 0.45 s and a sender that waits 0.2 s
    channel = WebhookChannel(Webhook(**receiver.account(timeout_s=0.2)))
    receiver.delay_next(0.45)
    # When a message is sent / Then the outcome is unknown (ChannelError, not a retried DeliveryRejected)
    with pytest.raises(ChannelError) as unknown:
        channel.send(message())
    assert not isinstance(unknown.value, DeliveryRejected)
    # And indeed the brand did get it: the late answer followed real work
    assert wait_for(lambda: len(receiver.received) == 1)
    # And when the send is tried again later, the brand's dedupe by idempotency key keeps one delivery
    assert channel.send(message()).provider_id == receiver.received[0].id
    assert len(receiver.received) == 1


def test_a_gone_endpoint_is_an_invalid_address_and_is_not_retried(receiver: FakeWebhookReceiver) -> None:
    # Given a brand that removed its endpoint, behind the retrying wrapper the send path uses
    receiver.gone()
    sleeps: list[float] = []
    channel = RetryingChannel(WebhookChannel(Webhook(**receiver.account())), Backoff(attempts=3), sleeps.append)
    # When a message is sent / Then the address is refused for good after one attempt
    with pytest.raises(DeliveryRejected) as refused:
        channel.send(message())
    assert refused.value.invalid_address and refused.value.code == "http_410"
    assert sleeps == [] and receiver.received == []


def test_a_5xx_is_retried_by_the_wrapper_and_then_delivered_once(receiver: FakeWebhookReceiver) -> None:
    # Given an endpoint that fails twice with 503 before it accepts
    receiver.fail_next(503, b"maintenance", times=2)
    sleeps: list[float] = []
    channel = RetryingChannel(WebhookChannel(Webhook(**receiver.account())), Backoff(attempts=3), sleeps.append)
    # When a message is sent / Then the third attempt delivers it, once
    receipt = channel.send(message())
    assert len(sleeps) == 2
    assert [d.id for d in receiver.received] == [receipt.provider_id]


def test_a_stopped_endpoint_is_transient_not_sent() -> None:
    # Given an endpoint that is not listening any more
    fake = FakeWebhookReceiver()
    account = Webhook(**fake.account())
    fake.stop()
    # When a message is sent / Then the connection was refused: certainly not sent, so retried
    with pytest.raises(DeliveryRejected) as refused:
        WebhookChannel(account).send(message())
    assert not refused.value.permanent and refused.value.code == "unreachable"
