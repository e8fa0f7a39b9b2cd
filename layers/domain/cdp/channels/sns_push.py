"""The app push channel: Amazon SNS mobile push to the brand's platform applications (`sender_accounts.SnsPush`).

Per message: the platform is the message's `address_scope` when it says "ios" or "android", else the account's
default; the device token (`address`) gets its platform endpoint (`CreatePlatformEndpoint` is idempotent for the
same token and attributes, CustomUserData = the person id); then one `Publish` to that endpoint with a
per-platform JSON payload (MessageStructure json):
- an FCM application (ARN `app/GCM/...`): the FCM HTTP v1 form SNS documents today,
  `{"fcmV1Message": {"message": {"notification": {"title", "body"}, "data": {...}}}}` (the legacy
  `{"notification", "data"}` form is what SNS converts for older apps; we send v1);
- an APNs application (`app/APNS/...` or `app/APNS_SANDBOX/...`): `{"aps": {"alert": {"title", "body"}}, ...data}`;
- "default": the body (Publish with MessageStructure json requires it).
The data keys (`message_id`, `campaign_id`, `link` when the message has one) are what the app hands back in its
push receipts (`cdp.connectors.feedback`, opened / received events naming the message).

A token that already has an endpoint with other attributes (another person's CustomUserData after a shared device
changed hands) answers InvalidParameter naming that endpoint: it is taken over (CustomUserData, Enabled=true),
unless SNS disabled it. A disabled endpoint means the push service told SNS the token is dead: the endpoint is
deleted and the send is refused with `invalid_address` (the person is not pushed to there again), whether it shows
at the take-over or as EndpointDisabled from Publish.

Outcomes (one attempt per send; `RetryingChannel` retries the transient ones):
- EndpointDisabled, InvalidParameter about the token: `invalid_address`;
- PlatformApplicationDisabled, AuthorizationError, KMS configuration errors, other InvalidParameter: permanent;
- Throttled, InternalError, KMSThrottling, a failed connection, anything failing before Publish: transient;
- no answer to Publish (a read timeout): `ChannelError`, the outcome is unknown.

The `mypy_boto3_sns` stubs are not among the project's `boto3-stubs-lite` extras, so the client is typed `Any`.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError

from cdp.channels.models import ChannelName, DeliveryReceipt, OutboundMessage
from cdp.channels.ports import Channel, DeliveryRejected
from cdp.connectors.sender_accounts import SnsPush
from cdp.errors import ChannelError
from cdp.shared import aws
from cdp.shared.time import utc_now

if TYPE_CHECKING:
    SNSClient = Any  # mypy_boto3_sns is not installed (boto3-stubs-lite extras in pyproject.toml)

Platform = Literal["ios", "android"]
PLATFORMS: tuple[Platform, ...] = ("ios", "android")

TRANSIENT_CODES = frozenset(
    {
        "Throttled",
        "Throttling",
        "ThrottlingException",
        "KMSThrottling",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestTimeout",
    }
)
PERMANENT_CODES = frozenset(
    {
        "PlatformApplicationDisabled",
        "AuthorizationError",
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "InvalidSecurity",
        "KMSAccessDenied",
        "KMSDisabled",
        "KMSInvalidState",
        "KMSNotFound",
        "KMSOptInRequired",
        "ParameterValueInvalid",
        "ValidationException",
    }
)
# "Invalid parameter: Token Reason: Endpoint arn:aws:sns:...:endpoint/GCM/app/id already exists with the same Token,
# but different attributes."
_EXISTING_ENDPOINT = re.compile(r"Endpoint (arn:[^\s]+:endpoint/\S+) already exists with the same token", re.IGNORECASE)
_WORD_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def push_payload(message: OutboundMessage, application_arn: str) -> str:
    """The Publish `Message` (MessageStructure json) for the platform application's push service."""
    title = message.subject or ""
    data = {"message_id": message.message_id, "campaign_id": message.campaign_id}
    if message.link:
        data["link"] = message.link
    service = application_platform(application_arn)
    if service in ("APNS", "APNS_SANDBOX"):
        native: dict[str, Any] = {"aps": {"alert": {"title": title, "body": message.body}}, **data}
    else:  # GCM (FCM): the HTTP v1 form
        native = {"fcmV1Message": {"message": {"notification": {"title": title, "body": message.body}, "data": data}}}
    return json.dumps({"default": message.body, service: json.dumps(native, ensure_ascii=False)}, ensure_ascii=False)


def application_platform(application_arn: str) -> str:
    """GCM, APNS, APNS_SANDBOX, ... from `arn:aws:sns:region:account:app/<platform>/<name>`."""
    return application_arn.split(":app/", 1)[1].split("/", 1)[0]


class SnsPushChannel(Channel):
    name: ChannelName = "push"

    def __init__(self, account: SnsPush, client: SNSClient | None = None) -> None:
        self._account = account
        self._client: SNSClient = client or aws.client("sns")

    def platform_of(self, message: OutboundMessage) -> Platform:
        for platform in PLATFORMS:
            if message.address_scope == platform:
                return platform
        return self._account.default_platform

    def send(self, message: OutboundMessage) -> DeliveryReceipt:
        platform = self.platform_of(message)
        application = self._account.platform_applications.get(platform)
        if application is None:
            raise DeliveryRejected(
                f"push for message {message.message_id}: the account has no {platform} platform application",
                code="no_platform_application",
                permanent=True,
            )
        if not message.address.strip():
            raise DeliveryRejected(
                f"push for message {message.message_id}: no device token", code="invalid_token", invalid_address=True
            )
        endpoint = self._endpoint(application, message)
        try:
            response = self._client.publish(
                TargetArn=endpoint, MessageStructure="json", Message=push_payload(message, application)
            )
        except ClientError as exc:
            if _code(exc) == "EndpointDisabled":
                raise self._dead(endpoint, message, exc) from exc
            raise _refused(f"SNS publish for message {message.message_id}", exc, during="publish") from exc
        except (EndpointConnectionError, ConnectTimeoutError) as exc:
            raise DeliveryRejected(f"SNS publish for message {message.message_id}: not sent: {exc}") from exc
        except BotoCoreError as exc:
            raise ChannelError(f"SNS publish for message {message.message_id} (outcome unknown): {exc}") from exc
        return DeliveryReceipt(
            message_id=message.message_id,
            channel=self.name,
            provider="sns",
            provider_id=response["MessageId"],
            accepted_at=utc_now(),
        )

    # ---- the device's platform endpoint ---------------------------------------------------------------------

    def _endpoint(self, application: str, message: OutboundMessage) -> str:
        """The endpoint ARN of the message's token; nothing was published yet, so every failure here is a
        DeliveryRejected (the message was certainly not sent)."""
        what = f"SNS endpoint for message {message.message_id}"
        try:
            created = self._client.create_platform_endpoint(
                PlatformApplicationArn=application, Token=message.address, CustomUserData=message.person_id
            )
            return str(created["EndpointArn"])
        except ClientError as exc:
            existing = _existing_endpoint(exc)
            if existing is None:
                raise _refused(what, exc, during="create_platform_endpoint") from exc
        except BotoCoreError as exc:
            raise DeliveryRejected(f"{what}: not sent: {exc}") from exc
        return self._take_over(existing, message)

    def _take_over(self, endpoint: str, message: OutboundMessage) -> str:
        what = f"SNS endpoint {endpoint} for message {message.message_id}"
        try:
            attributes = self._client.get_endpoint_attributes(EndpointArn=endpoint).get("Attributes", {})
            if str(attributes.get("Enabled", "true")).lower() == "false":
                raise self._dead(endpoint, message, None)
            self._client.set_endpoint_attributes(
                EndpointArn=endpoint, Attributes={"CustomUserData": message.person_id, "Enabled": "true"}
            )
        except ClientError as exc:
            raise _refused(what, exc, during="set_endpoint_attributes") from exc
        except BotoCoreError as exc:
            raise DeliveryRejected(f"{what}: not sent: {exc}") from exc
        return endpoint

    def _dead(self, endpoint: str, message: OutboundMessage, cause: ClientError | None) -> DeliveryRejected:
        """SNS disabled the endpoint (the push service said the token is invalid): delete it, refuse the address.
        A failed delete leaves it for the next send to find disabled again."""
        with contextlib.suppress(ClientError, BotoCoreError):
            self._client.delete_endpoint(EndpointArn=endpoint)
        said = f": {cause}" if cause is not None else ""
        return DeliveryRejected(
            f"push for message {message.message_id}: endpoint {endpoint} is disabled (dead device token){said}",
            code="endpoint_disabled",
            invalid_address=True,
        )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _snake(code: str) -> str:
    return _WORD_BOUNDARY.sub("_", code).lower() or "sns_error"


def _existing_endpoint(exc: ClientError) -> str | None:
    if _code(exc) != "InvalidParameter":
        return None
    found = _EXISTING_ENDPOINT.search(str(exc.response.get("Error", {}).get("Message", "")))
    return found.group(1).rstrip(".,") if found else None


def _refused(what: str, exc: ClientError, during: str) -> DeliveryRejected:
    """SNS answered: the message was not sent. Which refusals are worth another attempt."""
    code = _code(exc)
    text = f"{what}: {exc}"
    if code == "InvalidParameter":
        detail = str(exc.response.get("Error", {}).get("Message", "")).lower()
        if "token" in detail and during == "create_platform_endpoint":
            return DeliveryRejected(text, code="invalid_token", invalid_address=True)
        return DeliveryRejected(text, code="invalid_parameter", permanent=True)
    if code == "NotFound":  # the platform application is gone (permanent); an endpoint deleted meanwhile is not
        return DeliveryRejected(text, code="not_found", permanent=during != "publish")
    if code in PERMANENT_CODES:
        return DeliveryRejected(text, code=_snake(code), permanent=True)
    if code in TRANSIENT_CODES:
        return DeliveryRejected(text, code=_snake(code))
    return DeliveryRejected(text, code=_snake(code) if code else None)  # an unknown refusal: as the SES/SMS adapters
