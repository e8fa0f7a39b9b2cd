"""Delivery feedback of the SMS and push providers, relayed to us signed with our own scheme (`verify_cdp`).

`POST /v1/feedback/sms/{key}` (key = the SMS provider in `SourcesConfig.sms`, e.g. aliyun): a JSON list of delivery
receipts as Alibaba Cloud SMS reports them (SmsReport: phone_number, send_time, report_time, success, err_code,
err_msg, sms_size, biz_id, out_id) -> message_delivered (channel sms, status delivered/failed). `out_id` is ours:
"{message id}" or "{message id}|{campaign id}" (`sms_out_id`). Items of the upstream-message report (SmsUp:
phone_number, content, send_time, sequence_id, ...) whose content is an unsubscribe keyword (TD, N, 退订, ...) become
consent_changed sms false; any other reply is ignored.

`POST /v1/feedback/push/{key}` (key = the push provider in `SourcesConfig.push`, e.g. jpush): {"events": [{"type":
"opened" | "received", "message_id", "campaign_id", "device_id" (the registration id), "platform", "ts"}]} ->
message_opened / message_delivered (channel push), identified by the device id.

Event ids come from the provider's own ids (biz id + phone, sequence id, message + device), so a re-sent report
is accepted once. The SES feedback (through SNS) is in `feedback_ses`, tracked link clicks in `redirect`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from cdp.connectors.base import (
    Binding,
    Connector,
    InboundRequest,
    Mapped,
    MappingError,
    event_dict,
    ident,
    map_items,
    present,
    require,
)
from cdp.connectors.sources import SignedSource, SourcesConfig
from cdp.errors import AuthenticationError, InvalidInputError
from cdp.ingest.security import verify_cdp
from cdp.shared.safe_json import loads as safe_loads
from cdp.shared.time import parse_iso

MAX_ITEMS = 1000
CHINA_TIME = timezone(timedelta(hours=8))  # Alibaba Cloud reports local time without an offset (no DST in China)
OUT_ID_SEPARATOR = "|"
# Replies that mean "stop": carriers and Alibaba Cloud's own rules (TD = 退订), plus the usual English words.
UNSUBSCRIBE_KEYWORDS = frozenset({"TD", "T", "N", "退订", "退", "STOP", "UNSUBSCRIBE", "取消"})
_EVENT_ID = re.compile(r"^[A-Za-z0-9_.:@/#+\-]{1,128}$")


# ---- shared by the feedback connectors ------------------------------------------------------------------------


def digest(*parts: str, size: int = 16) -> str:
    """A short stable fingerprint (ids only, not security: a phone or e-mail never appears in an event id)."""
    return hashlib.sha1("\x1f".join(parts).encode(), usedforsecurity=False).hexdigest()[:size]


def stable_id(*parts: str, hashed: tuple[str, ...] = ()) -> str:
    """`part-part-...-fingerprint(hashed)`, or `first-fingerprint(everything)` when that is not a valid event id."""
    readable = "-".join((*parts, digest(*hashed))) if hashed else "-".join(parts)
    return readable if _EVENT_ID.match(readable) else f"{parts[0]}-{digest(*parts, *hashed, size=40)}"


def signed_source(request: InboundRequest, sources: Mapping[str, SignedSource], what: str) -> Binding:
    """A webhook signed with our scheme by the source named in the path (x-cdp-signature, 5-minute window);
    `what` is also the canonical source channel (sms, push)."""
    source = sources.get(request.key or "")
    if source is None:
        raise AuthenticationError(f"unknown {what} {request.key!r}")
    verify_cdp(request.headers, request.body, source.secret.get_secret_value(), request.signed_window_at)
    return Binding(brand_id=source.brand_id, label=f"{what}:{request.key}", store_id=source.store_id, channel=what)


def json_body(body: bytes) -> Any:
    return safe_loads(body)


def items_of(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise InvalidInputError(f"{field} must be a non-empty JSON list", field)
    if len(value) > MAX_ITEMS:
        raise InvalidInputError(f"{field} holds {len(value)} items; the limit is {MAX_ITEMS}", field)
    return value


def _as_object(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise MappingError("", "each item must be a JSON object")
    return item


# ---- SMS --------------------------------------------------------------------------------------------------------


def sms_out_id(message_id: str, campaign_id: str | None = None) -> str:
    """What an SMS adapter passes as the provider's OutId, so receipts name our message (and campaign)."""
    return f"{message_id}{OUT_ID_SEPARATOR}{campaign_id}" if campaign_id else message_id


def parse_out_id(out_id: str) -> tuple[str, str | None]:
    message_id, _, campaign_id = out_id.partition(OUT_ID_SEPARATOR)
    return message_id, campaign_id or None


def china_time(value: Any, field: str) -> datetime:
    """Alibaba Cloud's "2017-01-01 00:00:00" (China time); an ISO-8601 value with an offset is taken as is."""
    if not isinstance(value, str) or not value.strip():
        raise MappingError(field, f"{field} is required")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise MappingError(field, f"{field} is not a time like 2017-01-01 00:00:00: {exc}") from exc
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=CHINA_TIME).astimezone(UTC)


def _success(item: dict[str, Any]) -> bool:
    value = item.get("success")
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise MappingError("success", "success must be true or false")


class SmsReceiptConnector(Connector):
    name = "sms-feedback"

    def authenticate(self, request: InboundRequest, secrets: SourcesConfig) -> Binding:
        return signed_source(request, secrets.sms, "sms")

    def map(self, request: InboundRequest, binding: Binding) -> Mapped:
        provider = request.key or "sms"
        items = items_of(json_body(request.body), "body")
        return map_items(items, lambda item: sms_item(_as_object(item), provider, binding), id_field="biz_id")


def sms_item(item: dict[str, Any], provider: str, binding: Binding) -> list[dict[str, Any]]:
    if "success" not in item and "content" in item:
        return _sms_reply(item, provider, binding)
    phone = str(require(item, "phone_number", (str, int)))
    message_id, campaign_id = parse_out_id(require(item, "out_id"))
    if not message_id:
        raise MappingError("out_id", "out_id must start with our message id")
    delivered = _success(item)
    properties: dict[str, Any] = {"message_id": message_id, "channel": "sms", "status": "delivered"}
    if campaign_id:
        properties["campaign_id"] = campaign_id
    if not delivered:
        properties.update(status="failed", error_code=str(item.get("err_code") or "")[:64] or None)
    biz_id = str(require(item, "biz_id", (str, int)))
    return [
        event_dict(
            event_type="message_delivered",
            event_id=stable_id("sms", provider, biz_id, hashed=(phone,)),
            source="sms",
            binding=binding,
            occurred_at=china_time(item.get("report_time") or item.get("send_time"), "report_time"),
            identifiers=present(ident("phone", phone)),
            properties={k: v for k, v in properties.items() if v is not None},
        )
    ]


def _sms_reply(item: dict[str, Any], provider: str, binding: Binding) -> list[dict[str, Any]]:
    """An upstream message (MO): only an unsubscribe keyword means something to us."""
    content = require(item, "content")
    if content.strip().upper() not in UNSUBSCRIBE_KEYWORDS:
        return []
    phone = str(require(item, "phone_number", (str, int)))
    sent = require(item, "send_time")
    sequence = item.get("sequence_id")
    event_id = (
        stable_id("sms-mo", provider, str(sequence))
        if sequence is not None
        else stable_id("sms-mo", provider, hashed=(phone, sent))
    )
    return [
        event_dict(
            event_type="consent_changed",
            event_id=event_id,
            source="sms",
            binding=binding,
            occurred_at=china_time(sent, "send_time"),
            identifiers=present(ident("phone", phone)),
            properties={"channel": "sms", "granted": False, "purpose": "marketing", "reply": content.strip()[:16]},
        )
    ]


# ---- push -------------------------------------------------------------------------------------------------------

_PUSH_TYPES = {"opened": "message_opened", "received": "message_delivered"}


def push_time(value: Any) -> datetime:
    """Unix seconds or milliseconds (what push SDKs report), or ISO-8601 with an offset."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 10**11 else value
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, str) and value.strip():
        try:
            return parse_iso(value.strip())
        except ValueError as exc:
            raise MappingError("ts", f"ts is not unix seconds/milliseconds or ISO-8601 with an offset: {exc}") from exc
    raise MappingError("ts", "ts is required")


class PushFeedbackConnector(Connector):
    name = "push-feedback"

    def authenticate(self, request: InboundRequest, secrets: SourcesConfig) -> Binding:
        return signed_source(request, secrets.push, "push")

    def map(self, request: InboundRequest, binding: Binding) -> Mapped:
        provider = request.key or "push"
        payload = json_body(request.body)
        if not isinstance(payload, dict):
            raise InvalidInputError("body must be a JSON object with an events list", "body")
        items = items_of(payload.get("events"), "events")
        return map_items(items, lambda item: push_item(_as_object(item), provider, binding), prefix="events")


def push_item(item: dict[str, Any], provider: str, binding: Binding) -> list[dict[str, Any]]:
    kind = require(item, "type")
    if kind not in _PUSH_TYPES:
        raise MappingError("type", f"type must be one of {', '.join(_PUSH_TYPES)}")
    message_id = require(item, "message_id")
    device_id = require(item, "device_id")
    properties: dict[str, Any] = {"message_id": message_id, "channel": "push"}
    if item.get("campaign_id"):
        properties["campaign_id"] = str(item["campaign_id"])
    if kind == "received":
        properties["status"] = "delivered"
    platform = item.get("platform")
    return [
        event_dict(
            event_type=_PUSH_TYPES[kind],
            event_id=stable_id("push", provider, kind, message_id, hashed=(device_id,)),
            source="push",
            binding=binding,
            occurred_at=push_time(item.get("ts")),
            identifiers=present(ident("device_id", device_id)),
            properties=properties,
            context={"platform": str(platform)[:32]} if platform else None,
        )
    ]
