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
import hashlib
import json
import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
from cdp.connectors.sources import SourcesConfig
from cdp.errors import AuthenticationError, InvalidInputError
from cdp.identifiers.model import normalize_email, normalize_phone
from cdp.ingest.events import CanonicalEvent, CustomProperties, IdentifyProperties
from cdp.ingest.security import same
from cdp.shared.safe_json import loads as safe_loads
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
# the canonical properties model of each event type (what a typed mapping is checked against before it is kept)
_PROPERTIES: dict[str, type[BaseModel]] = {
    get_args(model.model_fields["event_type"].annotation)[0]: model.model_fields["properties"].annotation
    for model in get_args(get_args(CanonicalEvent)[0])
}
_TOKEN = re.compile(r"^[A-Za-z0-9_.:@+\-]{1,128}$")  # identifier and event id values (cdp.identifiers.model)
_PHONE_LIKE = re.compile(r"^\+?[\d\s().\-]+$")


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
        # Segment's Python SDK writes a NaN property as NaN (json.dumps' default): that value is dropped, not the call
        payload = safe_loads(request.body, constants="null")
        if not isinstance(payload, dict):
            raise InvalidInputError("body must be a JSON object", "body")
        kept = 0

        def one(message: Any, shared: dict[str, Any] | None = None) -> list[dict[str, Any]]:
            nonlocal kept
            if not isinstance(message, dict):
                raise MappingError("", "each call must be a JSON object")
            if shared is not None:
                message = {**message, "context": {**obj(shared, "context"), **obj(message, "context")}}
                message.setdefault("sentAt", shared.get("sentAt"))
            event, as_custom = _message(message, binding, request.received_at)
            kept += as_custom
            return [event]

        if self.call != "batch":
            if len(request.body) > MAX_MESSAGE_BYTES:
                raise InvalidInputError(f"a single call is limited to {MAX_MESSAGE_BYTES} bytes", "body")
            payload.setdefault("type", self.call)
            mapped = map_items([with_message_id(payload, 0)], one, prefix="", batch=False)
        else:
            messages = payload.get("batch")
            if not isinstance(messages, list) or not messages:
                raise InvalidInputError("batch must be a non-empty list of calls", "batch")
            if len(messages) > MAX_BATCH:
                raise InvalidInputError(f"batch holds {len(messages)} calls; the limit is {MAX_BATCH}", "batch")
            messages = [with_message_id(m, i) for i, m in enumerate(messages)]
            mapped = map_items(messages, lambda m: one(m, payload), id_field="messageId")
        mapped.kept_as_custom = kept
        return mapped


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
        payload = safe_loads(body, constants="null")
    except InvalidInputError:
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


def _id_value(message: dict[str, Any], name: str) -> str | None:
    """An id as Segment allows it: a string or a number (the Python SDK sends numbers as they are)."""
    value = message.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MappingError(name, f"{name} must be a string or a number")
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return str(int(value))
    return str(value)


def _token(value: str) -> str:
    """Ids outside our identifier alphabet (spaces, other scripts, over 128 characters) are valid Segment ids: they
    become a stable digest, so every call with the same id still links to the same person."""
    return value if _TOKEN.match(value) else f"h:{hashlib.sha256(value.encode()).hexdigest()[:40]}"


def _identifiers(message: dict[str, Any], traits: dict[str, Any]) -> list[dict[str, Any]]:
    context = obj(message, "context")
    device = obj(context, "device")
    user_id, anonymous_id = _id_value(message, "userId"), _id_value(message, "anonymousId")
    device_ids = [_id_value(device, "id"), _id_value(device, "advertisingId")]
    if message.get("type") == "alias":
        previous = _id_value(message, "previousId")
        if previous is None:
            raise MappingError("previousId", "an alias call needs the previousId it links")
        device_ids.append(previous)
    found = present(
        ident("user_id", _token(user_id) if user_id else None),
        ident("device_id", _token(anonymous_id) if anonymous_id else None),
        *(ident("device_id", _token(d)) for d in device_ids if d),
        ident("email", _trait_email(traits.get("email"))),
        ident("phone", _trait_phone(traits.get("phone"))),
    )
    if not (user_id or anonymous_id or any(device_ids)):  # the spec's rule; a mobile SDK's device id stands in
        raise MappingError("userId", "a call needs a userId or an anonymousId")
    unique = {(i["type"], i["value"]): i for i in found}
    return list(unique.values())


def _trait_email(value: Any) -> str | None:
    """Traits are free-form in Segment: an e-mail that is not one is dropped as an identifier, not the call."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        normalize_email(value.strip())  # cached: ingest's own validation of the kept value costs nothing more
    except ValueError:
        return None
    return value


def _trait_phone(value: Any) -> str | None:
    """A phone trait that cannot be a phone anywhere is dropped; a local number is left to ingest, which knows the
    brand's phone region (an international one is checked here, where no region is needed)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _PHONE_LIKE.match(value.strip()):
        return None
    digits = sum(c.isdigit() for c in value)
    if not 5 <= digits <= 17:
        return None
    if value.strip().startswith("+"):
        try:
            normalize_phone(value.strip(), "ZZ")
        except ValueError:
            return None
    return value


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


def _event_id(message: dict[str, Any]) -> str:
    value = message.get("messageId")
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise MappingError("messageId", "messageId must be a string")
    return _token(str(value))


def with_message_id(message: Any, index: int) -> Any:
    """messageId is optional in the HTTP API (the libraries always set one): a call without it gets a digest of the
    call and its position, so a resent request (and an archive replay) dedupes while two calls stay two events."""
    if not isinstance(message, dict) or message.get("messageId") not in (None, ""):
        return message
    digest = hashlib.sha256(f"{index}#{json.dumps(message, sort_keys=True, default=str)}".encode()).hexdigest()
    return {**message, "messageId": f"h:{digest[:40]}"}


def _message(message: dict[str, Any], binding: Binding, received_at: datetime) -> tuple[dict[str, Any], bool]:
    """One call as a canonical event dict, and whether it was kept as `custom` because its type did not fit."""
    kind = require(message, "type")
    if kind not in CALLS:
        raise MappingError("type", f"unknown call type {kind!r}; expected one of {', '.join(CALLS)}")
    message_id = _event_id(message)
    context = obj(message, "context")
    traits = obj(message, "traits") or obj(context, "traits")
    properties = obj(message, "properties")
    identifiers = _identifiers(message, traits)
    event_type, props, kept = _fitted(kind, message, traits, properties, context)
    event = event_dict(
        event_type=event_type,
        event_id=message_id,
        source=_channel(message, context, binding),
        binding=binding,
        occurred_at=_timestamp(message, received_at),
        identifiers=identifiers,
        properties=props,
        context=_context(context),
    )
    return event, kept


def _fitted(
    kind: str, message: dict[str, Any], traits: dict[str, Any], properties: dict[str, Any], context: dict[str, Any]
) -> tuple[str, dict[str, Any], bool]:
    """Typed where the canonical type fits; otherwise a `custom` event named as Segment names the call. The typed
    properties are checked here against their canonical model, so a call that would fail validation at ingest (a
    negative quantity, a total above its lines, a rating of 9) is kept rather than refused."""
    if kind == "alias":
        return "identify", {}, False
    if kind == "identify":
        return "identify", _fit(IdentifyProperties, _identify_properties(traits, context)), False
    if kind == "group":
        group_id = _id_value(message, "groupId")
        if group_id is None:
            raise MappingError("groupId", "a group call needs its groupId")
        return "custom", _custom("group", {"group_id": group_id, **traits}), False
    if kind == "track":
        event = require(message, "event")
        typed = _ECOMMERCE.get(event.strip().lower())
        if typed is None:
            return "custom", _custom(event, properties), False
        fallback = event
    else:
        name = message.get("name")
        noun = "Page" if kind == "page" else "Screen"
        fallback = f"Viewed {name} {noun}" if isinstance(name, str) and name.strip() else f"Loaded a {noun}"
        typed = "page_view"
    try:
        props = _TYPED_BUILDERS[kind if kind != "track" else typed](message, properties, context)
        _PROPERTIES[typed].model_validate(props)
    except (MappingError, ValidationError):
        return "custom", _custom(fallback, properties), True
    return typed, props, False


def _page(message: dict[str, Any], properties: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    page = obj(context, "page")
    url = properties.get("url") or page.get("url")
    if not url:
        raise MappingError("properties.url", "a page call without a url is kept as a custom event")
    title = properties.get("title") or page.get("title") or message.get("name")
    return _clean({"url": url, "title": title, "referrer": properties.get("referrer") or page.get("referrer")})


def _screen(message: dict[str, Any], properties: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    name = message.get("name")
    if not isinstance(name, str) or not name.strip():
        raise MappingError("name", "a screen call without a name is kept as a custom event")
    return {"url": f"screen://{name}", "title": name}


_TYPED_BUILDERS: dict[str, Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], dict[str, Any]]] = {
    "page": _page,
    "screen": _screen,
    "order_placed": lambda _m, p, _c: _order(p),
    "add_to_cart": lambda _m, p, _c: _cart(p),
    "order_returned": lambda _m, p, _c: _refund(p),
    "review_posted": lambda _m, p, _c: _review(p),
}


def _fit(model: type[BaseModel], values: dict[str, Any]) -> dict[str, Any]:
    """The values minus those the canonical model refuses (a trait that is not a date, a name over 200 characters):
    Segment traits are free-form, so a bad one is dropped, not the call."""
    try:
        model.model_validate(values)
    except ValidationError as exc:
        bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
        values = {k: v for k, v in values.items() if k not in bad} if bad else {}
    return values


def _custom(name: str, values: dict[str, Any]) -> dict[str, Any]:
    return _fit(CustomProperties, {"name": name.strip()[:200] or "unnamed", **_scalars(values)})


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
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(value)  # 1.5 items is not an order line (truncating would change the order)
        return int(value)
    except (ValueError, OverflowError) as exc:
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
            "coupon_code": properties.get("coupon"),  # Segment's `coupon` is the code the order used
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
    """Custom events keep the channel's scalar properties (nested objects would make item sizes unbounded); numbers
    a JSON document or the profile store cannot hold (NaN, infinities, beyond 38 digits) are left out."""
    return {
        str(k)[:64]: v
        for k, v in list(values.items())[:50]
        if k != "name" and isinstance(v, str | bool | int | float) and _storable(v)
    }


def _storable(value: str | bool | int | float) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return not isinstance(value, int) or isinstance(value, bool) or abs(value) < 10**38


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v != ""}


class SegmentMessage(BaseModel):
    """One call as the Segment HTTP Tracking API defines it (documentation of the accepted shape; extra keys are
    allowed and the mapping above is what reads it)."""

    model_config = ConfigDict(extra="allow")

    type: Literal["identify", "track", "page", "screen", "alias", "group"] | None = None
    messageId: str | None = Field(
        default=None,
        description="unique per call; the same id twice is accepted once (absent: a digest of the call stands in)",
    )
    userId: str | float | None = Field(default=None, description="userId or anonymousId is required")
    anonymousId: str | float | None = None
    event: str | None = Field(default=None, description="track: the event name (required)")
    name: str | None = Field(default=None, description="page / screen: the page name")
    previousId: str | float | None = Field(default=None, description="alias: the previous (anonymous) id (required)")
    groupId: str | float | None = Field(default=None, description="group: required")
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
