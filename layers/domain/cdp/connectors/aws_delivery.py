"""Delivery events of the AWS senders, as EventBridge delivers them from the account's default bus: SES v2 (the
stack's configuration set publishes to EventBridge: source `aws.ses`) and AWS End User Messaging SMS (source
`aws.sms-voice`, detail-type "Text Message Delivery Status Updated", sent to EventBridge for every message).

No signature to check: only AWS puts `aws.*` events on the account's default bus, and the rule that forwards them
names those sources. The brand comes from the message itself: the send path tags every SES message and sets the
SMS context with `brand_id`, `message_id` and `campaign_id` (`cdp.channels.adapters`); an event without a brand is
not ours (another system sending through the same account) and is refused with the reason.

SES: the detail is the SES event (`cdp.connectors.feedback_ses.ses_events` maps it). SMS: TEXT_DELIVERED and
TEXT_SUCCESSFUL (accepted by the carrier; some countries report only that) -> message_delivered delivered; a failure
type (TEXT_INVALID, TEXT_BLOCKED, TEXT_UNREACHABLE, TEXT_SPAM, ...) -> message_delivered failed, its type as the
error code; TEXT_QUEUED / TEXT_PENDING (not final) -> nothing. Event ids: `eum-{messageId}-{eventType}`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from cdp.connectors.base import Binding, MappingError, event_dict, ident, obj, present, require
from cdp.connectors.feedback import stable_id
from cdp.connectors.feedback_ses import ses_events
from cdp.errors import InvalidInputError
from cdp.ingest.ports import DedupeLedger, RawArchive
from cdp.ingest.service import WriteScope, accept
from cdp.org import ScopeRef, load_org
from cdp.shared.ports import EventPublisher
from cdp.shared.safe_json import loads as safe_loads

SES_SOURCE = "aws.ses"
SMS_SOURCE = "aws.sms-voice"
SMS_DETAIL_TYPE = "Text Message Delivery Status Updated"
BRAND_KEY = "brand_id"
SMS_DELIVERED = frozenset({"TEXT_DELIVERED", "TEXT_SUCCESSFUL"})
SMS_FAILED = frozenset(
    {
        "TEXT_BLOCKED",
        "TEXT_TTL_EXPIRED",
        "TEXT_CARRIER_UNREACHABLE",
        "TEXT_INVALID",
        "TEXT_INVALID_MESSAGE",
        "TEXT_CARRIER_BLOCKED",
        "TEXT_UNREACHABLE",
        "TEXT_SPAM",
        "TEXT_UNKNOWN",
        "TEXT_PROTECT_BLOCKED",
    }
)


def brand_of(event: dict[str, Any]) -> str:
    """The brand the send path stamped on the message (SES tag, SMS context)."""
    detail = obj(event, "detail")
    if event.get("source") == SES_SOURCE:
        values = obj(obj(detail, "mail"), "tags").get(BRAND_KEY)
        brand = _untagged(values[0]) if isinstance(values, list) and values and isinstance(values[0], str) else None
    else:
        brand = obj(detail, "context").get(BRAND_KEY)
    if not isinstance(brand, str) or not brand:
        raise MappingError("detail", f"no {BRAND_KEY} on the message: not sent by this platform")
    return brand


def _untagged(value: str) -> str | None:
    """The brand from its SES tag value (`cdp.channels.adapters.brand_tag`: "x-" + hex when it did not fit)."""
    if not value.startswith("x-"):
        return value
    try:
        return bytes.fromhex(value[2:]).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def delivery_events(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The canonical events of one EventBridge event from an AWS sender (empty: nothing to record)."""
    source = event.get("source")
    binding = Binding(brand_id=brand_of(event), label=str(source), channel="email" if source == SES_SOURCE else "sms")
    detail = obj(event, "detail")
    if source == SES_SOURCE:
        return ses_events(detail, binding)
    if source == SMS_SOURCE and event.get("detail-type") == SMS_DETAIL_TYPE:
        return _sms_events(detail, binding)
    raise MappingError("source", f"not a delivery event of SES or End User Messaging SMS: {source!r}")


def _sms_events(detail: dict[str, Any], binding: Binding) -> list[dict[str, Any]]:
    kind = require(detail, "eventType")
    if kind not in SMS_DELIVERED | SMS_FAILED:
        return []  # queued, pending: not final yet
    context = obj(detail, "context")
    message_id = context.get("message_id")
    if not isinstance(message_id, str) or not message_id:
        raise MappingError("detail.context.message_id", "the message carries no message_id in its context")
    provider_id = require(detail, "messageId")
    properties: dict[str, Any] = {"message_id": message_id, "channel": "sms", "status": "delivered"}
    if isinstance(context.get("campaign_id"), str):
        properties["campaign_id"] = context["campaign_id"]
    if kind in SMS_FAILED:
        properties.update(status="failed", error_code=kind)
    stamp = detail.get("eventTimestamp")
    if not isinstance(stamp, int | float) or isinstance(stamp, bool):
        raise MappingError("detail.eventTimestamp", "eventTimestamp must be unix milliseconds")
    phone = detail.get("destinationPhoneNumber")
    return [
        event_dict(
            event_type="message_delivered",
            event_id=stable_id("eum", provider_id, kind.lower()),
            source="sms",
            binding=binding,
            occurred_at=datetime.fromtimestamp(stamp / 1000, UTC),
            identifiers=present(ident("phone", phone if isinstance(phone, str) else None)),
            properties=properties,
        )
    ]


ARCHIVE_SOURCE = "aws-delivery"


def ingest_delivery_event(
    body: bytes,
    message_id: str,
    archive: RawArchive,
    ledger: DedupeLedger,
    publisher: EventPublisher,
    received_at: datetime,
) -> int:
    """One EventBridge event as the rule's queue delivers it: archived as received, mapped, and its receipts accepted
    like any channel's (dedupe, publish), for the brand the message names. Returns how many were accepted.
    InvalidInputError (parked, never retried) for an event that is not ours or cannot be read, and for one some of
    whose receipts were rejected (the others are in; the archive keeps it whole)."""
    try:
        event = safe_loads(body)
        if not isinstance(event, dict):
            raise InvalidInputError("the message is not an EventBridge event", "body")
        brand_id = brand_of(event)
        items = delivery_events(event)
    except MappingError as exc:
        raise InvalidInputError(f"delivery event {message_id}: {exc}", "body") from exc
    if not items:
        return 0
    raw_key = archive.archive(message_id, body, received_at, ARCHIVE_SOURCE, {"brand-id": brand_id})
    result = accept(
        items,
        request_id=str(event.get("id") or message_id),
        received_at=received_at,
        raw_key=raw_key,
        ledger=ledger,
        publisher=publisher,
        region_of=lambda _brand: "CN",  # the events' phones are E.164 already
        write_scope=WriteScope(load_org(), (ScopeRef(brand_id=brand_id),)),
    )
    if result.rejected:
        problems = json.dumps(result.model_dump(mode="json")["rejected"])[:1000]
        raise InvalidInputError(f"delivery event {message_id} ({raw_key}): rejected {problems}", "body")
    return result.accepted
