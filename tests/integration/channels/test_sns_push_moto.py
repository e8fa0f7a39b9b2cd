"""App push through Amazon SNS mobile push against emulated AWS (moto 5.2.5), and the SNS error answers moto does
not give (botocore Stubber against the real service model, or a small fake client for SDK-side failures).

moto keeps what was published to a platform endpoint in `sns_backends[account][region].platform_endpoints[arn]
.messages` (message id -> the raw Message), raises EndpointDisabled when publishing to a disabled endpoint, and
answers CreatePlatformEndpoint for a known token with other attributes (CustomUserData, or Enabled) with
InvalidParameter naming the existing endpoint, as SNS does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.sns.models import PlatformEndpoint, sns_backends

from cdp.channels.models import OutboundMessage
from cdp.channels.ports import DeliveryRejected
from cdp.channels.sns_push import SnsPushChannel, push_payload
from cdp.connectors.sender_accounts import SnsPush
from cdp.errors import ChannelError

NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
REGION = "us-east-1"
ANDROID_TOKEN = "fcm-token-cZ3k9:APA91bH-androidDevice01"
IOS_TOKEN = "a" * 64


def message(**overrides: Any) -> OutboundMessage:
    base: dict[str, Any] = {
        "message_id": "6f1c0e0e-0000-5000-8000-000000000001",
        "campaign_id": "spring-cake",
        "run_id": "r1",
        "step": "touch1",
        "channel": "push",
        "person_id": "p1",
        "brand_id": "bakery",
        "address": ANDROID_TOKEN,
        "subject": "Spring cakes",
        "body": "Li Lei, 20% off with CAKE20",
        "link": "https://bakery.example/spring",
        "created_at": NOW,
    }
    base.update(overrides)
    return OutboundMessage(**base)


@dataclass
class Sns:
    client: Any
    android: str
    ios: str

    def account(self, **changes: Any) -> SnsPush:
        return SnsPush(**{"platform_applications": {"android": self.android, "ios": self.ios}, **changes})

    def endpoints(self) -> dict[str, PlatformEndpoint]:
        return dict(sns_backends[DEFAULT_ACCOUNT_ID][REGION].platform_endpoints)


@pytest.fixture
def sns() -> Iterator[Sns]:
    with mock_aws():
        client = boto3.client("sns", region_name=REGION)
        android = client.create_platform_application(
            Name="bakery-android", Platform="GCM", Attributes={"PlatformCredential": "fcm-service-account-json"}
        )["PlatformApplicationArn"]
        ios = client.create_platform_application(
            Name="bakery-ios",
            Platform="APNS",
            Attributes={"PlatformCredential": "apns-key", "PlatformPrincipal": "apns-cert"},
        )["PlatformApplicationArn"]
        yield Sns(client, android, ios)


def test_an_android_push_is_published_to_the_tokens_endpoint_in_the_fcm_v1_form(sns: Sns) -> None:
    # Given the brand's account with an FCM and an APNs application (android the default platform)
    channel = SnsPushChannel(sns.account(), client=sns.client)
    # When a push goes to a device whose platform the profile does not say
    receipt = channel.send(message())
    # Then an endpoint for the token was created in the FCM application, for this person
    (endpoint,) = sns.endpoints().values()
    assert endpoint.application.arn == sns.android and endpoint.token == ANDROID_TOKEN
    assert endpoint.custom_user_data == "p1"
    # And it got one message: the FCM v1 payload under "GCM" with our title, body and data keys
    ((message_id, raw),) = endpoint.messages.items()
    assert (receipt.provider, receipt.provider_id, receipt.channel) == ("sns", message_id, "push")
    sent = json.loads(raw)
    assert sent["default"] == "Li Lei, 20% off with CAKE20"
    assert json.loads(sent["GCM"]) == {
        "fcmV1Message": {
            "message": {
                "notification": {"title": "Spring cakes", "body": "Li Lei, 20% off with CAKE20"},
                "data": {
                    "message_id": "6f1c0e0e-0000-5000-8000-000000000001",
                    "campaign_id": "spring-cake",
                    "link": "https://bakery.example/spring",
                },
            }
        }
    }


def test_an_ios_push_goes_to_the_apns_application_with_an_aps_alert(sns: Sns) -> None:
    # Given a device the profile says is an iPhone
    channel = SnsPushChannel(sns.account(), client=sns.client)
    # When a push without a subject or link goes to it
    receipt = channel.send(message(address=IOS_TOKEN, address_scope="ios", subject=None, link=None))
    # Then the APNs application's endpoint got the aps alert, our ids beside it (no link key at all)
    (endpoint,) = sns.endpoints().values()
    assert endpoint.application.arn == sns.ios
    sent = json.loads(endpoint.messages[receipt.provider_id])
    assert set(sent) == {"default", "APNS"}
    assert json.loads(sent["APNS"]) == {
        "aps": {"alert": {"title": "", "body": "Li Lei, 20% off with CAKE20"}},
        "message_id": "6f1c0e0e-0000-5000-8000-000000000001",
        "campaign_id": "spring-cake",
    }


def test_the_same_token_twice_reuses_its_endpoint(sns: Sns) -> None:
    # Given the default client (boto3 "sns" from cdp.shared.aws) inside the emulation
    channel = SnsPushChannel(sns.account())
    # When two messages go to the same device
    first = channel.send(message())
    second = channel.send(message(message_id="6f1c0e0e-0000-5000-8000-000000000002", body="Last day"))
    # Then one endpoint holds both
    (endpoint,) = sns.endpoints().values()
    assert list(endpoint.messages) == [first.provider_id, second.provider_id]


def test_a_token_now_used_by_another_person_is_taken_over(sns: Sns) -> None:
    # Given a device first registered for p1, then signed in by p2 (a shared tablet)
    channel = SnsPushChannel(sns.account(), client=sns.client)
    channel.send(message())
    # When p2 is pushed to on that token (SNS: "already exists with the same Token, but different attributes")
    receipt = channel.send(message(message_id="6f1c0e0e-0000-5000-8000-000000000002", person_id="p2"))
    # Then the existing endpoint now names p2 and got the message; no second endpoint was made
    ((arn, endpoint),) = sns.endpoints().items()
    attributes = sns.client.get_endpoint_attributes(EndpointArn=arn)["Attributes"]
    assert attributes["CustomUserData"] == "p2" and attributes["Enabled"].lower() == "true"
    assert receipt.provider_id in endpoint.messages and len(endpoint.messages) == 2


def test_a_disabled_endpoint_is_deleted_and_its_token_refused_for_good(sns: Sns) -> None:
    # Given a device whose endpoint SNS disabled (the push service said the token is no longer valid)
    channel = SnsPushChannel(sns.account(), client=sns.client)
    channel.send(message())
    (arn,) = sns.endpoints()
    sns.client.set_endpoint_attributes(EndpointArn=arn, Attributes={"Enabled": "false"})
    # When it is pushed to again
    with pytest.raises(DeliveryRejected) as refused:
        channel.send(message(message_id="6f1c0e0e-0000-5000-8000-000000000002"))
    # Then the address is dead (not retried, not pushed to there again) and the endpoint is gone
    assert refused.value.invalid_address and refused.value.permanent
    assert refused.value.code == "endpoint_disabled"
    assert sns.endpoints() == {}
    assert sns.client.list_endpoints_by_platform_application(PlatformApplicationArn=sns.android)["Endpoints"] == []


class DisabledOnCreate:
    """The real (moto) client, except that the push service disables each endpoint right after it is created:
    Publish then answers moto's own EndpointDisabled (the race between a send and the token's feedback)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def create_platform_endpoint(self, **kwargs: Any) -> Any:
        created = self._client.create_platform_endpoint(**kwargs)
        self._client.set_endpoint_attributes(EndpointArn=created["EndpointArn"], Attributes={"Enabled": "false"})
        return created

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_endpoint_disabled_from_publish_deletes_the_endpoint(sns: Sns) -> None:
    # Given an endpoint disabled between its creation and the Publish
    channel = SnsPushChannel(sns.account(), client=DisabledOnCreate(sns.client))
    # When a push is sent / Then Publish's EndpointDisabled refuses the address and the endpoint is deleted
    with pytest.raises(DeliveryRejected) as refused:
        channel.send(message())
    assert refused.value.invalid_address and refused.value.code == "endpoint_disabled"
    assert "EndpointDisabled" in str(refused.value)
    assert sns.endpoints() == {}


def test_a_platform_the_account_has_no_application_for_is_refused_for_good(sns: Sns) -> None:
    # Given an account with an android application only
    channel = SnsPushChannel(SnsPush(platform_applications={"android": sns.android}), client=sns.client)
    # When an iPhone is pushed to / Then it is a permanent refusal (not an FCM send of an APNs token)
    with pytest.raises(DeliveryRejected) as refused:
        channel.send(message(address=IOS_TOKEN, address_scope="ios"))
    assert refused.value.permanent and not refused.value.invalid_address
    assert refused.value.code == "no_platform_application"
    # And an unknown scope (a WeChat app id) falls back to the default platform
    assert channel.send(message(address_scope="wx123")).provider == "sns"
    assert sns.endpoints() and all(e.application.arn == sns.android for e in sns.endpoints().values())


# ---- the answers moto does not give: the real SNS model through botocore's Stubber ----------------------------

APP = "arn:aws:sns:us-east-1:123456789012:app/GCM/bakery-android"
ENDPOINT = "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/bakery-android/0f4e1a2b-0000-4000-8000-000000000001"


@pytest.fixture
def stubbed() -> Iterator[tuple[SnsPushChannel, Stubber]]:
    client = boto3.client("sns", region_name=REGION)
    with Stubber(client) as stubber:
        yield SnsPushChannel(SnsPush(platform_applications={"android": APP}), client=client), stubber
        stubber.assert_no_pending_responses()


def created(stubber: Stubber) -> None:
    stubber.add_response(
        "create_platform_endpoint",
        {"EndpointArn": ENDPOINT},
        expected_params={"PlatformApplicationArn": APP, "Token": ANDROID_TOKEN, "CustomUserData": "p1"},
    )


@pytest.mark.parametrize(
    ("code", "permanent", "expected_code"),
    [
        ("Throttled", False, "throttled"),
        ("InternalError", False, "internal_error"),
        ("KMSThrottling", False, "kms_throttling"),
        ("NotFound", False, "not_found"),  # the endpoint was deleted meanwhile: a new one is made next time
        ("PlatformApplicationDisabled", True, "platform_application_disabled"),
        ("AuthorizationError", True, "authorization_error"),
        ("KMSDisabled", True, "kms_disabled"),
        ("InvalidParameter", True, "invalid_parameter"),  # e.g. "Message too long": not the address's fault
    ],
)
def test_publish_refusals_are_transient_or_permanent(
    stubbed: tuple[SnsPushChannel, Stubber], code: str, permanent: bool, expected_code: str
) -> None:
    channel, stubber = stubbed
    created(stubber)
    stubber.add_client_error("publish", service_error_code=code, service_message=f"{code} said SNS")
    with pytest.raises(DeliveryRejected) as refused:
        channel.send(message())
    assert (refused.value.permanent, refused.value.code) == (permanent, expected_code)
    assert not refused.value.invalid_address


def test_an_invalid_token_is_an_invalid_address(stubbed: tuple[SnsPushChannel, Stubber]) -> None:
    channel, stubber = stubbed
    stubber.add_client_error(
        "create_platform_endpoint",
        service_error_code="InvalidParameter",
        service_message="Invalid parameter: Token Reason: malformed registration id",
    )
    with pytest.raises(DeliveryRejected) as refused:
        channel.send(message())
    assert refused.value.invalid_address and refused.value.code == "invalid_token"


def test_a_disabled_platform_application_at_create_is_permanent(stubbed: tuple[SnsPushChannel, Stubber]) -> None:
    channel, stubber = stubbed
    stubber.add_client_error("create_platform_endpoint", service_error_code="AuthorizationError", http_status_code=403)
    with pytest.raises(DeliveryRejected) as refused:
        channel.send(message())
    assert refused.value.permanent and not refused.value.invalid_address


def test_the_same_token_answer_takes_over_the_named_endpoint(stubbed: tuple[SnsPushChannel, Stubber]) -> None:
    # Given SNS's answer for a token registered with other attributes (it names the endpoint, with a full stop)
    channel, stubber = stubbed
    stubber.add_client_error(
        "create_platform_endpoint",
        service_error_code="InvalidParameter",
        service_message=f"Invalid parameter: Token Reason: Endpoint {ENDPOINT} already exists with the same Token, "
        "but different attributes.",
    )
    stubber.add_response(
        "get_endpoint_attributes",
        {"Attributes": {"Enabled": "true", "Token": ANDROID_TOKEN, "CustomUserData": "p9"}},
        {"EndpointArn": ENDPOINT},
    )
    stubber.add_response(
        "set_endpoint_attributes",
        {},
        {"EndpointArn": ENDPOINT, "Attributes": {"CustomUserData": "p1", "Enabled": "true"}},
    )
    stubber.add_response("publish", {"MessageId": "sns-msg-1"})
    # Then the message goes to that endpoint
    assert channel.send(message()).provider_id == "sns-msg-1"


class FailingClient:
    """An SDK-side failure (no answer from SNS) at one call; the calls before it succeed."""

    def __init__(self, at: str, error: Exception) -> None:
        self.at, self.error = at, error

    def create_platform_endpoint(self, **kwargs: Any) -> Any:
        if self.at == "create":
            raise self.error
        return {"EndpointArn": ENDPOINT}

    def publish(self, **kwargs: Any) -> Any:
        raise self.error


def test_a_read_timeout_on_publish_is_unknown_but_anywhere_before_it_is_not_sent() -> None:
    account = SnsPush(platform_applications={"android": APP})
    timeout = ReadTimeoutError(endpoint_url="https://sns.us-east-1.amazonaws.com")
    # A read timeout on Publish: SNS may have taken it (ChannelError, not retried at once)
    with pytest.raises(ChannelError) as unknown:
        SnsPushChannel(account, client=FailingClient("publish", timeout)).send(message())
    assert not isinstance(unknown.value, DeliveryRejected)
    # A failed connection on Publish, or any failure while finding the endpoint: certainly not sent (transient)
    refused = EndpointConnectionError(endpoint_url="https://sns.us-east-1.amazonaws.com")
    for client in (FailingClient("publish", refused), FailingClient("create", timeout)):
        with pytest.raises(DeliveryRejected) as not_sent:
            SnsPushChannel(account, client=client).send(message())
        assert not not_sent.value.permanent


def test_the_payload_is_valid_json_for_each_service() -> None:
    sandbox = "arn:aws:sns:us-east-1:123456789012:app/APNS_SANDBOX/bakery-ios-dev"
    payload = json.loads(push_payload(message(body='say "hi" 春'), sandbox))
    assert json.loads(payload["APNS_SANDBOX"])["aps"]["alert"]["body"] == 'say "hi" 春'
