"""AWS adapters of the channel ports: SES v2 e-mail, AWS End User Messaging SMS, the S3 outbox, S3 audience batches.

Amazon Pinpoint is past end of support: SMS goes through `pinpoint-sms-voice-v2` (End User Messaging), not `pinpoint`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ParamValidationError,
)
from pydantic import TypeAdapter, ValidationError

from cdp import topology
from cdp.channels.models import ChannelName, DeliveryReceipt, OutboundMessage
from cdp.channels.ports import BatchReader, Channel, DeliveryRejected
from cdp.errors import ChannelError, InvalidInputError, NotFoundError, StoreError
from cdp.shared import aws
from cdp.shared.time import utc_now

if TYPE_CHECKING:
    from mypy_boto3_pinpoint_sms_voice_v2 import PinpointSMSVoiceV2Client
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sesv2 import SESV2Client

_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


# Answers that retrying cannot change: the request, the account, the address (AWS error codes of SES v2 and End User
# Messaging SMS). Throttling, quotas and server errors are transient.
_PERMANENT_CODES = frozenset(
    {
        "MessageRejected",
        "MailFromDomainNotVerifiedException",
        "AccountSuspendedException",
        "SendingPausedException",
        "BadRequestException",
        "NotFoundException",
        "ValidationException",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "ConflictException",
    }
)
# End User Messaging's ValidationException / ConflictException reasons that mean the number itself will not work.
_DEAD_NUMBER_REASONS = ("INVALID_PHONE_NUMBER", "DESTINATION_PHONE_NUMBER_NOT_VERIFIED", "PHONE_NUMBER_OPTED_OUT")


def _delivery_error(what: str, exc: Exception) -> ChannelError:
    """A ClientError (the provider answered) or a failed connection means the message was certainly not sent (for
    good when the answer says so); anything else (a read timeout) leaves the outcome unknown."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "")
        reason = str(exc.response.get("Reason") or error.get("Message") or "")
        dead = any(r in reason.upper().replace(" ", "_") for r in _DEAD_NUMBER_REASONS)
        return DeliveryRejected(
            f"{what}: {code}", code=code or None, permanent=code in _PERMANENT_CODES, invalid_address=dead
        )
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return DeliveryRejected(f"{what}: {exc}", code="unreachable")
    if isinstance(exc, ParamValidationError):  # refused before any call: the request itself is wrong
        return DeliveryRejected(f"{what}: {exc}", code="invalid_request", permanent=True)
    return ChannelError(f"{what} (outcome unknown): {exc}")


_TAG_SAFE = re.compile(r"^[A-Za-z0-9_\-.@]{1,200}$")
ENCODED_TAG = "x-"


def brand_tag(brand_id: str) -> str:
    """The brand as an SES tag value (letters, digits, _ - . @ only): as it is when it fits, else "x-" + its UTF-8 in
    hex, so the delivery events name the brand exactly (`cdp.connectors.aws_delivery.brand_of`)."""
    if _TAG_SAFE.match(brand_id) and not brand_id.startswith(ENCODED_TAG):
        return brand_id
    return ENCODED_TAG + brand_id.encode().hex()


class SesEmailChannel(Channel):
    name: ChannelName = "email"

    def __init__(
        self, from_address: str, client: SESV2Client | None = None, configuration_set: str | None = None
    ) -> None:
        self._from = from_address
        self._client: SESV2Client = client or aws.client("sesv2")
        self._configuration_set = configuration_set

    def send(self, message: OutboundMessage) -> DeliveryReceipt:
        request: dict[str, Any] = {
            "FromEmailAddress": self._from,
            "Destination": {"ToAddresses": [message.address]},
            "Content": {
                "Simple": {
                    "Subject": {"Data": message.subject or "", "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": message.body, "Charset": "UTF-8"}},
                }
            },
            # Tags flow into SES events (delivery, bounce, click), which is how feedback finds its campaign.
            "EmailTags": [
                {"Name": "campaign_id", "Value": _TAG_UNSAFE.sub("_", message.campaign_id)},
                {"Name": "step", "Value": _TAG_UNSAFE.sub("_", message.step)},
                {"Name": "message_id", "Value": message.message_id},
                {"Name": "brand_id", "Value": brand_tag(message.brand_id or "unknown")},
            ],
        }
        if message.unsubscribe_url:  # one-click unsubscribe (RFC 8058): mailbox providers show it, and ask for it
            request["Content"]["Simple"]["Headers"] = [
                {"Name": "List-Unsubscribe", "Value": f"<{message.unsubscribe_url}>"},
                {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"},
            ]
        if self._configuration_set:  # its event destination sends delivery, bounce, open, click back
            request["ConfigurationSetName"] = self._configuration_set
        try:
            response = self._client.send_email(**request)
        except (ClientError, BotoCoreError) as exc:
            raise _delivery_error(f"SES send_email to message {message.message_id} failed", exc) from exc
        return DeliveryReceipt(
            message_id=message.message_id,
            channel=self.name,
            provider="ses",
            provider_id=response["MessageId"],
            accepted_at=utc_now(),
        )


class EndUserMessagingSmsChannel(Channel):
    """SMS through AWS End User Messaging (`pinpoint-sms-voice-v2` SendTextMessage)."""

    name: ChannelName = "sms"

    def __init__(
        self,
        origination_identity: str,
        client: PinpointSMSVoiceV2Client | None = None,
        configuration_set: str | None = None,
    ) -> None:
        self._origination = origination_identity
        self._client: PinpointSMSVoiceV2Client = client or aws.client("pinpoint-sms-voice-v2")
        self._configuration_set = configuration_set

    def send(self, message: OutboundMessage) -> DeliveryReceipt:
        request: dict[str, Any] = {
            "DestinationPhoneNumber": message.address,
            "OriginationIdentity": self._origination,
            "MessageBody": message.body,
            # carriers treat the two differently (delivery priority, opt-out rules, sending hours in some countries)
            "MessageType": "TRANSACTIONAL" if message.purpose == "service" else "PROMOTIONAL",
            # Context comes back on delivery-status events, linking them to the campaign and message.
            "Context": {
                "campaign_id": message.campaign_id,
                "step": message.step,
                "message_id": message.message_id,
                **({"brand_id": message.brand_id} if message.brand_id else {}),
            },
        }
        if self._configuration_set:
            request["ConfigurationSetName"] = self._configuration_set
        try:
            response = self._client.send_text_message(**request)
        except (ClientError, BotoCoreError) as exc:
            raise _delivery_error(f"SMS send_text_message for message {message.message_id} failed", exc) from exc
        return DeliveryReceipt(
            message_id=message.message_id,
            channel=self.name,
            provider="end_user_messaging",
            provider_id=response["MessageId"],
            accepted_at=utc_now(),
        )


def outbox_key(message: OutboundMessage) -> str:
    return f"{topology.OUTBOX_PREFIX}{message.channel}/{message.run_id}/{message.message_id}.json"


class OutboxChannel(Channel):
    """Writes each message as a JSON object to S3: the local runtime's SMS/push/WeChat, and the webhook outbox.

    The key is derived from the deterministic message id, so a repeated write of the same message overwrites
    itself instead of creating a second delivery."""

    name: ChannelName = "outbox"

    def __init__(self, bucket: str, client: S3Client | None = None, clock: Callable[[], datetime] = utc_now) -> None:
        self._bucket = bucket
        self._client: S3Client = client or aws.client("s3")
        self._clock = clock

    def send(self, message: OutboundMessage) -> DeliveryReceipt:
        key = outbox_key(message)
        accepted_at = self._clock()
        body = {"message": message.model_dump(mode="json"), "accepted_at": accepted_at.isoformat()}
        try:
            self._client.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=json.dumps(body, ensure_ascii=False).encode("utf-8"),
                ContentType="application/json",
            )
        except (ClientError, BotoCoreError) as exc:
            raise _delivery_error(f"outbox put_object {key} failed", exc) from exc
        return DeliveryReceipt(
            message_id=message.message_id, channel=message.channel, provider_id=key, accepted_at=accepted_at
        )


_PERSON_IDS: TypeAdapter[list[str]] = TypeAdapter(list[str])
MAX_BATCH_FILE_PERSONS = 5_000


class S3BatchReader(BatchReader):
    """Audience batch files written by the campaign step: `campaigns/{run_id}/batches/{n}.json`, a JSON list of ids."""

    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self._bucket = bucket
        self._client: S3Client = client or aws.client("s3")

    def person_ids(self, key: str) -> list[str]:
        try:
            raw = self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise NotFoundError(f"batch file s3://{self._bucket}/{key} does not exist") from exc
            raise StoreError(f"reading batch file {key} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"reading batch file {key} failed: {exc}") from exc
        try:
            ids = _PERSON_IDS.validate_json(raw)
        except ValidationError as exc:
            raise InvalidInputError(f"batch file {key} is not a JSON list of person ids: {exc}", "batch_key") from exc
        if len(ids) > MAX_BATCH_FILE_PERSONS or any(not i for i in ids):
            raise InvalidInputError(
                f"batch file {key} must hold 1..{MAX_BATCH_FILE_PERSONS} non-empty person ids", "batch_key"
            )
        return ids
