"""The Segment HTTP Tracking API (also what RudderStack SDKs speak): identify, track, page, screen, alias, group
and batch, authenticated by a write key (HTTP Basic user name, or `writeKey` in the body).

Mapping: `userId` -> user_id, `anonymousId` and `context.device.id`/`advertisingId` -> device_id, traits' email and
phone -> identifiers; e-commerce spec v2 events (Product Added, Order Completed, Order Refunded, Product Reviewed)
become their canonical types, any other track call a `custom` event; `messageId` is the event id (dedupe).
Timestamps follow Segment's clock-skew correction: `timestamp`, else receivedAt - (sentAt - originalTimestamp).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cdp.connectors.base import (
    Binding,
    Connector,
    InboundRequest,
    Mapped,
    MappingError,
    event_dict,
    ident,
    map_items,
    obj,
    present,
    require,
)
from cdp.connectors.money import to_minor
from cdp.connectors.security import same
from cdp.connectors.sources import SourcesConfig
from cdp.errors import AuthenticationError, InvalidInputError
from cdp.shared.time import to_utc

CALLS = ("identify", "track", "page", "screen", "alias", "group")
MAX_MESSAGE_BYTES = 32 * 1024  # Segment's limit per call
MAX_BATCH_BYTES = 500 * 1024  # and per batch request
MAX_BATCH = 500

_MOBILE_LIBRARIES = (
    "analytics-ios",
    "analytics-android",
    "analytics-react-native",
    "analytics-flutter",
    "analytics-kotlin",
    "analytics-swift",
)
_GENDERS = {"f": "female", "female": "female", "woman": "female", "m": "male", "male": "male", "man": "male"}
_ECOMMERCE = {
    "product added": "add_to_cart",
    "order completed": "order_placed",
    "order refunded": "order_returned",
    "product reviewed": "review_posted",
}


class SegmentConnector(Connector):
    name = "segment"
    max_body_bytes = MAX_BATCH_BYTES

    def __init__(self, call: str) -> None:
        if call not in (*CALLS, "batch"):
            raise ValueError(f"unknown Segment call {call}")
        self.call = call

    def authenticate(self, request: InboundRequest, secrets: SourcesConfig) -> Binding:
        key = _basic_user(request.headers.get("authorization", "")) or _body_write_key(request.body)
        if not key:
            raise AuthenticationError("missing write key: send HTTP Basic auth with the write key as user name")
        for known, source in secrets.write_keys.items():
            if same(known, key):
                return Binding(brand_id=source.brand_id, label=f"write-key:{known[:4]}...", channel=source.channel)
        raise AuthenticationError("unknown write key")

    def archive_meta(self, request: InboundRequest) -> dict[str, str]:
        return {"call": self.call}

    def map(self, request: InboundRequest, binding: Binding) -> Mapped:
        try:
            payload = json.loads(request.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInputError(f"body is not valid JSON: {exc}", "body") from exc
        if not isinstance(payload, dict):
            raise InvalidInputError("body must be a JSON object", "body")
        if self.call != "batch":
            if len(request.body) > MAX_MESSAGE_BYTES:
                raise InvalidInputError(f"a single call is limited to {MAX_MESSAGE_BYTES} bytes", "body")
            payload.setdefault("type", self.call)
            return map_items([payload], lambda m: _message(m, binding, request.received_at), prefix="", batch=False)
        messages = payload.get("batch")
        if not isinstance(messages, list) or not messages:
            raise InvalidInputError("batch must be a non-empty list of calls", "batch")
        if len(messages) > MAX_BATCH:
            raise InvalidInputError(f"batch holds {len(messages)} calls; the limit is {MAX_BATCH}", "batch")
        shared_context = obj(payload, "context")
        sent_at = payload.get("sentAt")

        def one(message: Any) -> list[dict[str, Any]]:
            if not isinstance(message, dict):
                raise MappingError("", "each call must be a JSON object")
            merged = {**message, "context": {**shared_context, **obj(message, "context")}}
            merged.setdefault("sentAt", sent_at)
            return _message(merged, binding, request.received_at)

        return map_items(messages, one, id_field="messageId")


def _basic_user(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


def _body_write_key(body: bytes) -> str | None:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    key = payload.get("writeKey") if isinstance(payload, dict) else None
    return key if isinstance(key, str) and key else None


def _timestamp(message: dict[str, Any], received_at: datetime) -> datetime:
    """Segment's rule: an explicit `timestamp` wins; else correct the device clock with sentAt; else receivedAt."""
    try:
        if message.get("timestamp"):
            return to_utc(datetime.fromisoformat(str(message["timestamp"]).replace("Z", "+00:00")))
        original, sent = message.get("originalTimestamp"), message.get("sentAt")
        if original and sent:
            skew: timedelta = _parse(sent) - _parse(original)
            return received_at - skew
        if original:
            return _parse(original)
    except ValueError as exc:
        raise MappingError("timestamp", f"not an ISO-8601 timestamp: {exc}") from exc
    return received_at


def _parse(value: Any) -> datetime:
    return to_utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))


def _channel(message: dict[str, Any], context: dict[str, Any], binding: Binding) -> str:
    library = str(obj(context, "library").get("name", "")).lower()
    channel = str(message.get("channel") or context.get("channel") or "").lower()  # RudderStack: web|mobile|server
    if library == "analytics.js" or library.startswith("analytics-next") or channel == "web":
        return "web"
    if library.startswith(_MOBILE_LIBRARIES) or channel == "mobile":
        return "app"
    return binding.channel or "segment"


def _identifiers(message: dict[str, Any], traits: dict[str, Any]) -> list[dict[str, Any]]:
    context = message.get("context") or {}
    device = obj(context, "device")
    found = present(
        ident("user_id", message.get("userId")),
        ident("device_id", message.get("anonymousId")),
        ident("device_id", device.get("id")),
        ident("device_id", device.get("advertisingId")),
        ident("email", traits.get("email")),
        ident("phone", traits.get("phone")),
    )
    if message.get("type") == "alias":
        found.append(ident("device_id", require(message, "previousId")) or {})
    unique = {(i["type"], i["value"]): i for i in found}
    if not unique:
        raise MappingError("userId", "a call needs a userId or an anonymousId")
    return list(unique.values())


def _context(context: dict[str, Any]) -> dict[str, str]:
    campaign = obj(context, "campaign")
    library = obj(context, "library")
    out = {
        "ip": context.get("ip"),
        "user_agent": context.get("userAgent"),
        "locale": context.get("locale"),
        "library": f"{library.get('name', '')}/{library.get('version', '')}".strip("/") if library else None,
        "utm_source": campaign.get("source"),
        "utm_medium": campaign.get("medium"),
        "utm_campaign": campaign.get("name"),
    }
    return {k: str(v)[:512] for k, v in out.items() if v}


def _message(message: dict[str, Any], binding: Binding, received_at: datetime) -> list[dict[str, Any]]:
    kind = require(message, "type")
    if kind not in CALLS:
        raise MappingError("type", f"unknown call type {kind!r}; expected one of {', '.join(CALLS)}")
    message_id = require(message, "messageId")
    context = obj(message, "context")
    traits = obj(message, "traits") or obj(context, "traits")
    properties = obj(message, "properties")
    event_type, props = _typed(kind, message, traits, properties, context)
    return [
        event_dict(
            event_type=event_type,
            event_id=message_id,
            source=_channel(message, context, binding),
            binding=binding,
            occurred_at=_timestamp(message, received_at),
            identifiers=_identifiers(message, traits),
            properties=props,
            context=_context(context),
        )
    ]


def _typed(
    kind: str, message: dict[str, Any], traits: dict[str, Any], properties: dict[str, Any], context: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    if kind in ("identify", "alias"):
        return "identify", _identify_properties(traits, context) if kind == "identify" else {}
    if kind == "page":
        page = obj(context, "page")
        url = properties.get("url") or page.get("url")
        if not url:
            raise MappingError("properties.url", "a page call needs properties.url (or context.page.url)")
        title = properties.get("title") or page.get("title") or message.get("name")
        return "page_view", _clean(
            {"url": url, "title": title, "referrer": properties.get("referrer") or page.get("referrer")}
        )
    if kind == "screen":
        name = require(message, "name")
        return "page_view", {"url": f"screen://{name}", "title": name}
    if kind == "group":
        return "custom", {"name": "group", "group_id": str(require(message, "groupId")), **_scalars(traits)}
    event = require(message, "event")
    typed = _ECOMMERCE.get(event.strip().lower())
    try:
        if typed == "order_placed":
            return typed, _order(properties)
        if typed == "add_to_cart":
            return typed, _cart(properties)
        if typed == "order_returned":
            return typed, _refund(properties)
        if typed == "review_posted":
            return typed, _review(properties)
    except MappingError as exc:
        raise MappingError(f"properties.{exc.field}", exc.message) from exc
    return "custom", {"name": event, **_scalars(properties)}


def _identify_properties(traits: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    address = obj(traits, "address")
    name = traits.get("name") or " ".join(str(traits[k]) for k in ("firstName", "lastName") if traits.get(k)) or None
    gender = traits.get("gender")
    birthday = traits.get("birthday")
    country = address.get("country") or traits.get("country")
    return _clean(
        {
            "name": name,
            "gender": _GENDERS.get(str(gender).strip().lower(), "other") if gender else None,
            "birthday": str(birthday)[:10] if birthday else None,
            "city": address.get("city") or traits.get("city"),
            "country": str(country).upper() if country and len(str(country)) == 2 else None,
            "timezone": context.get("timezone"),
            "member_level": traits.get("member_level") or traits.get("memberLevel"),
        }
    )


def _currency(properties: dict[str, Any]) -> str:
    return str(properties.get("currency") or "USD").upper()


def _money(properties: dict[str, Any], name: str, currency: str) -> int:
    try:
        return to_minor(properties.get(name), currency)
    except ValueError as exc:
        raise MappingError(name, str(exc)) from exc


def _sku(product: dict[str, Any], path: str) -> str:
    sku = product.get("sku") or product.get("product_id")
    if not sku:
        raise MappingError(f"{path}sku", "a product needs a sku or product_id")
    return str(sku)


def _count(data: dict[str, Any], name: str, path: str) -> int:
    value = data.get(name)
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise MappingError(f"{path}{name}", f"{name} must be a whole number")
    try:
        return int(value)
    except ValueError as exc:
        raise MappingError(f"{path}{name}", f"{name} must be a whole number") from exc


def _order(properties: dict[str, Any]) -> dict[str, Any]:
    currency = _currency(properties)
    products = properties.get("products")
    if not isinstance(products, list) or not products:
        raise MappingError("products", "Order Completed needs a non-empty products list")
    lines = []
    for i, product in enumerate(products):
        if not isinstance(product, dict):
            raise MappingError(f"products.{i}", "each product must be an object")
        lines.append(
            _clean(
                {
                    "sku": _sku(product, f"products.{i}."),
                    "name": product.get("name"),
                    "category": product.get("category"),
                    "quantity": _count(product, "quantity", f"products.{i}."),
                    "unit_price_minor": _money(product, "price", currency),
                }
            )
        )
    total_field = "total" if properties.get("total") is not None else "revenue"
    return _clean(
        {
            "order_id": str(require(properties, "order_id", (str, int))),
            "lines": lines,
            "total_minor": _money(properties, total_field, currency),
            "currency": currency,
            "coupon_id": properties.get("coupon"),
        }
    )


def _cart(properties: dict[str, Any]) -> dict[str, Any]:
    currency = _currency(properties)
    return _clean(
        {
            "sku": _sku(properties, ""),
            "category": properties.get("category"),
            "quantity": _count(properties, "quantity", ""),
            "unit_price_minor": _money(properties, "price", currency),
            "currency": currency,
        }
    )


def _refund(properties: dict[str, Any]) -> dict[str, Any]:
    currency = _currency(properties)
    products = properties.get("products")
    skus = [
        str(p.get("sku") or p.get("product_id"))
        for p in (products if isinstance(products, list) else [])
        if isinstance(p, dict) and (p.get("sku") or p.get("product_id"))
    ]
    return {
        "order_id": str(require(properties, "order_id", (str, int))),
        "refund_minor": _money(properties, "total" if properties.get("total") is not None else "revenue", currency),
        "currency": currency,
        "skus": skus,
    }


def _review(properties: dict[str, Any]) -> dict[str, Any]:
    rating = properties.get("rating")
    if not isinstance(rating, int | float) or isinstance(rating, bool):
        raise MappingError("rating", "Product Reviewed needs a numeric rating")
    return _clean(
        {
            "sku": _sku(properties, ""),
            "rating": round(rating),
            "text": properties.get("review_body"),
            "order_id": properties.get("order_id"),
        }
    )


def _scalars(values: dict[str, Any]) -> dict[str, Any]:
    """Custom events keep the channel's scalar properties (nested objects would make item sizes unbounded)."""
    return {
        str(k)[:64]: v for k, v in list(values.items())[:50] if isinstance(v, str | int | float | bool) and k != "name"
    }


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v != ""}


class SegmentMessage(BaseModel):
    """One call as the Segment HTTP Tracking API defines it (documentation of the accepted shape; extra keys are
    allowed and the mapping above is what reads it)."""

    model_config = ConfigDict(extra="allow")

    type: Literal["identify", "track", "page", "screen", "alias", "group"] | None = None
    messageId: str = Field(description="unique per call; the same id twice is accepted once")
    userId: str | None = None
    anonymousId: str | None = None
    event: str | None = Field(default=None, description="track: the event name")
    name: str | None = Field(default=None, description="page / screen: the page name")
    previousId: str | None = Field(default=None, description="alias: the previous (anonymous) id")
    groupId: str | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    timestamp: str | None = None
    originalTimestamp: str | None = None
    sentAt: str | None = None


class SegmentBatch(BaseModel):
    model_config = ConfigDict(extra="allow")

    batch: list[SegmentMessage] = Field(min_length=1, max_length=MAX_BATCH)
    context: dict[str, Any] | None = None
    sentAt: str | None = None
