"""Channel adapters against the real service models (botocore Stubber): End User Messaging SMS and SES v2.

moto does not implement `pinpoint-sms-voice-v2`, so the Stubber checks our request against the service's own model.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.stub import Stubber

from cdp.channels.adapters import EndUserMessagingSmsChannel, SesEmailChannel
from cdp.channels.models import OutboundMessage
from cdp.channels.ports import DeliveryRejected
from cdp.errors import ChannelError

NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def message(**overrides: Any) -> OutboundMessage:
    base: dict[str, Any] = {
        "message_id": "6f1c0e0e-0000-5000-8000-000000000001",
        "campaign_id": "spring-cake",
        "run_id": "r1",
        "step": "touch1",
        "channel": "sms",
        "person_id": "p1",
        "address": "+8613800138000",
        "body": "Li Lei, coupon CAKE20",
        "created_at": NOW,
    }
    base.update(overrides)
    return OutboundMessage(**base)


@pytest.fixture
def sms_client() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("pinpoint-sms-voice-v2", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def test_sms_is_sent_as_promotional_from_the_origination_identity(sms_client: tuple[Any, Stubber]) -> None:
    # Given End User Messaging that accepts the message
    client, stubber = sms_client
    stubber.add_response(
        "send_text_message",
        {"MessageId": "sms-123"},
        expected_params={
            "DestinationPhoneNumber": "+8613800138000",
            "OriginationIdentity": "pool-abc",
            "MessageBody": "Li Lei, coupon CAKE20",
            "MessageType": "PROMOTIONAL",
            "Context": {"campaign_id": "spring-cake", "step": "touch1", "message_id": message().message_id},
        },
    )
    channel = EndUserMessagingSmsChannel("pool-abc", client=client)
    # When a message is sent
    receipt = channel.send(message())
    # Then the provider's message id comes back on the receipt
    assert (receipt.provider_id, receipt.channel, receipt.message_id) == ("sms-123", "sms", message().message_id)


def test_a_service_sms_is_sent_as_transactional(sms_client: tuple[Any, Stubber]) -> None:
    client, stubber = sms_client
    notice = message(purpose="service", body="Your order is ready")
    stubber.add_response(
        "send_text_message",
        {"MessageId": "sms-124"},
        expected_params={
            "DestinationPhoneNumber": "+8613800138000",
            "OriginationIdentity": "pool-abc",
            "MessageBody": "Your order is ready",
            "MessageType": "TRANSACTIONAL",
            "Context": {"campaign_id": "spring-cake", "step": "touch1", "message_id": notice.message_id},
        },
    )
    assert EndUserMessagingSmsChannel("pool-abc", client=client).send(notice).provider_id == "sms-124"


def test_sms_throttling_is_a_rejection_safe_to_retry(sms_client: tuple[Any, Stubber]) -> None:
    # Given End User Messaging throttling the account
    client, stubber = sms_client
    stubber.add_client_error(
        "send_text_message",
        service_error_code="ThrottlingException",
        service_message="Rate exceeded",
        http_status_code=429,
    )
    channel = EndUserMessagingSmsChannel("pool-abc", client=client)
    # When a message is sent / Then the typed error says it was certainly not sent
    with pytest.raises(DeliveryRejected, match="ThrottlingException"):
        channel.send(message())


def test_sms_read_timeout_is_an_unknown_outcome() -> None:
    # Given a client whose call times out after the request left
    class TimingOut:
        def send_text_message(self, **_: Any) -> dict[str, Any]:
            raise ReadTimeoutError(endpoint_url="https://sms-voice.us-east-1.amazonaws.com")

    channel = EndUserMessagingSmsChannel("pool-abc", client=TimingOut())  # type: ignore[arg-type]
    # When a message is sent / Then it is a ChannelError but not a DeliveryRejected (it may have gone out)
    with pytest.raises(ChannelError) as caught:
        channel.send(message())
    assert not isinstance(caught.value, DeliveryRejected)


def test_ses_rejection_is_wrapped() -> None:
    # Given SES v2 rejecting an unverified sender
    client = boto3.client("sesv2", region_name="us-east-1")
    with Stubber(client) as stubber:
        stubber.add_client_error("send_email", service_error_code="MessageRejected", http_status_code=400)
        channel = SesEmailChannel("news@bakery.example", client=client)
        # When an e-mail is sent / Then the typed error is raised
        with pytest.raises(DeliveryRejected, match="MessageRejected"):
            channel.send(message(channel="email", address="li@example.com", subject="Your coupon"))
