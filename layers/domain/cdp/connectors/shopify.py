"""Shopify webhooks (`POST /v1/webhooks/shopify/{shop domain}`), signed X-Shopify-Hmac-Sha256 = base64(HMAC-SHA256(
app secret, raw body)) and named by the X-Shopify-Topic header.

Topics: orders/create, orders/paid and orders/updated -> order_placed (event id "order-{id}", so each order counts
once whichever topic arrives first) plus one order_returned per refund in the order's `refunds` (event id
"refund-{id}"); customers/create and customers/update -> identify ("customer-{id}-{updated_at}"). Identifiers: the
e-mail, the phone and the Shopify customer id (platform_buyer_id scoped "shopify").

refunds/create is acknowledged with nothing ingested: its payload names the order and the staff member but no buyer,
and mapping is pure (no Admin API call), so a refund is taken from the next orders/updated, which Shopify sends when
a refund is created and which carries the customer. Every other topic (compliance webhooks included) is also answered
200 with nothing ingested and a note: a non-2xx makes Shopify retry and finally delete the subscription.

Replay protection: Shopify signs the body only, no timestamp. A re-sent or replayed body maps to the same event ids
(taken from the resource, not from X-Shopify-Webhook-Id), so the dedupe ledger accepts it once; X-Shopify-Triggered-At,
when present, must be within 48 h (Shopify retries with the original payload for 4 h; 48 h is generous). That header
is not signed, so it only stops stale legitimate deliveries. Since the topic header is not signed either, a payload
whose admin_graphql_api_id names another resource than the topic's is rejected (an order body posted as a customer
would otherwise link the order id as a customer id).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from cdp.connectors.base import (
    Binding,
    Connector,
    InboundRequest,
    Mapped,
    MappingError,
    Reply,
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
from cdp.ingest.security import REPLAY_WINDOW_S, hmac_base64, same
from cdp.shared.safe_json import loads as safe_loads
from cdp.shared.time import parse_iso

TOPIC_HEADER = "x-shopify-topic"
HMAC_HEADER = "x-shopify-hmac-sha256"
SHOP_HEADER = "x-shopify-shop-domain"
TRIGGERED_AT_HEADER = "x-shopify-triggered-at"
MAX_AGE = timedelta(hours=48)
PLATFORM = "shopify"

ORDER_TOPICS = ("orders/create", "orders/paid", "orders/updated")
CUSTOMER_TOPICS = ("customers/create", "customers/update")
_RESOURCE = {**dict.fromkeys(ORDER_TOPICS, "Order"), **dict.fromkeys(CUSTOMER_TOPICS, "Customer")}
_TOKEN = re.compile(r"^[A-Za-z0-9_.:@/#+\-]{1,128}$")  # the canonical Token (sku, coupon id)


class ShopifyConnector(Connector):
    name = "shopify"
    max_body_bytes = 1024 * 1024  # an order with hundreds of lines

    def authenticate(self, request: InboundRequest, secrets: SourcesConfig) -> Binding:
        source = secrets.shopify.get(request.key or "")
        if source is None:
            raise AuthenticationError("unknown shop")
        signature = request.headers.get(HMAC_HEADER, "")
        if not signature or not same(hmac_base64(source.secret.get_secret_value(), request.body), signature):
            raise AuthenticationError("bad X-Shopify-Hmac-Sha256 signature")
        if request.headers.get(SHOP_HEADER, "").lower() != (request.key or "").lower():
            raise AuthenticationError("X-Shopify-Shop-Domain does not match the shop of this endpoint")
        _check_triggered_at(request.headers.get(TRIGGERED_AT_HEADER), request.signed_window_at)
        return Binding(
            brand_id=source.brand_id, label=f"shopify:{request.key}", store_id=source.store_id, channel=PLATFORM
        )

    def archive_meta(self, request: InboundRequest) -> dict[str, str]:
        # replay maps the body again with this topic (restored as the X-Shopify-Topic header)
        return {TOPIC_HEADER: request.headers.get(TOPIC_HEADER, "")[:64]}

    def map(self, request: InboundRequest, binding: Binding) -> Mapped:
        topic = request.headers.get(TOPIC_HEADER, "").strip().lower()
        if not topic:
            raise InvalidInputError("missing X-Shopify-Topic header", TOPIC_HEADER)
        if topic not in _RESOURCE:
            return _ignored(topic)
        payload = safe_loads(request.body)
        if not isinstance(payload, dict):
            raise InvalidInputError("body must be a JSON object", "body")
        mapper = _order if topic in ORDER_TOPICS else _customer

        def one(resource: dict[str, Any]) -> list[dict[str, Any]]:
            _check_resource(resource, _RESOURCE[topic])
            return mapper(resource, binding)

        return map_items([payload], one, prefix="", batch=False)


def _check_triggered_at(value: str | None, now: datetime) -> None:
    if not value:
        return
    try:
        triggered = parse_iso(value)
    except ValueError as exc:
        raise AuthenticationError("malformed X-Shopify-Triggered-At") from exc
    if triggered < now - MAX_AGE or triggered > now + timedelta(seconds=REPLAY_WINDOW_S):
        raise AuthenticationError("X-Shopify-Triggered-At is outside the 48 h delivery window")


def _ignored(topic: str) -> Mapped:
    if topic == "refunds/create":
        note = "refunds/create names no buyer: refunds are ingested from orders/updated (the order's refunds)"
    else:
        note = f"topic {topic} is not mapped; nothing ingested"
    body = {"success": True, "accepted": 0, "duplicates": 0, "rejected": [], "note": note}
    return Mapped(reply=Reply(status=200, content_type="application/json", body=json.dumps(body)), batch=False)


def _check_resource(resource: dict[str, Any], kind: str) -> None:
    gid = resource.get("admin_graphql_api_id")
    if isinstance(gid, str) and not gid.startswith(f"gid://shopify/{kind}/"):
        raise MappingError("admin_graphql_api_id", f"the topic expects a {kind}, the payload is {gid}")


def _identifiers(email: Any, phone: Any, customer_id: Any) -> list[dict[str, Any]]:
    found = present(ident("email", email), ident("phone", phone), ident("platform_buyer_id", customer_id, PLATFORM))
    if not found:
        raise MappingError("customer", "needs an email, a phone or a customer id")
    return found


def _money(value: Any, currency: str, field_path: str) -> int:
    try:
        return to_minor(value, currency)
    except ValueError as exc:
        raise MappingError(field_path, str(exc)) from exc


def _token(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text if _TOKEN.match(text) else None


def _order(order: dict[str, Any], binding: Binding) -> list[dict[str, Any]]:
    if order.get("test"):  # the Bogus Gateway's test orders of a development shop
        return []
    order_id = require(order, "id", int)
    currency = str(require(order, "currency")).upper()
    customer = obj(order, "customer")
    identifiers = _identifiers(
        order.get("email") or order.get("contact_email") or customer.get("email"),
        order.get("phone") or customer.get("phone"),
        customer.get("id"),
    )
    raw_lines = order.get("line_items")
    if not isinstance(raw_lines, list) or not raw_lines:
        raise MappingError("line_items", "an order needs a non-empty line_items list")
    lines = [_line(line, i, currency) for i, line in enumerate(raw_lines)]
    lines_total = sum(line["quantity"] * line["unit_price_minor"] for line in lines)
    # subtotal_price is the lines after discounts, before shipping and taxes: what the canonical total means (it may
    # not exceed the lines). total_price, with shipping and taxes, travels as total_price_minor.
    subtotal = order.get("subtotal_price", order.get("total_price"))
    codes = [c.get("code") for c in order.get("discount_codes") or [] if isinstance(c, dict)]
    properties = {
        "order_id": str(order_id),
        "order_name": order.get("name"),
        "lines": lines,
        "total_minor": min(_money(subtotal, currency, "subtotal_price"), lines_total),
        "total_price_minor": _money(require(order, "total_price", (str, int, float)), currency, "total_price"),
        "currency": currency,
        "fulfilment": "offline" if order.get("source_name") == "pos" else "online",  # Shopify POS sales
        "coupon_id": _token(codes[0]) if codes else None,
        "coupon_code": _token(codes[0]) if codes else None,  # a discount code the platform issued is redeemed
    }
    events = [
        event_dict(
            event_type="order_placed",
            event_id=f"order-{order_id}",
            source=PLATFORM,
            binding=binding,
            occurred_at=require(order, "created_at"),
            identifiers=identifiers,
            properties={k: v for k, v in properties.items() if v is not None},
            context={"ip": str(order.get("browser_ip") or ""), "user_agent": _agent(order)},
        )
    ]
    for i, refund in enumerate(order.get("refunds") or []):
        if not isinstance(refund, dict):
            raise MappingError(f"refunds.{i}", "each refund must be an object")
        try:
            events.append(_refund(refund, order_id, currency, identifiers, binding))
        except MappingError as exc:
            raise MappingError(f"refunds.{i}.{exc.field}", exc.message) from exc
    return events


def _agent(order: dict[str, Any]) -> str:
    return str(obj(order, "client_details").get("user_agent") or "")[:512]


def _line(line: Any, index: int, currency: str) -> dict[str, Any]:
    if not isinstance(line, dict):
        raise MappingError(f"line_items.{index}", "each line item must be an object")
    # a Shopify SKU is free text (spaces are common): fall back to the variant id, then the product, then the line
    sku = _token(line.get("sku")) or next(
        (str(line[k]) for k in ("variant_id", "product_id", "id") if line.get(k) is not None), None
    )
    if sku is None:
        raise MappingError(f"line_items.{index}.sku", "a line item needs a sku, variant_id, product_id or id")
    quantity = line.get("quantity")
    if not isinstance(quantity, int) or isinstance(quantity, bool):
        raise MappingError(f"line_items.{index}.quantity", "quantity must be an integer")
    title = line.get("title") or line.get("name")
    return {
        "sku": sku,
        **({"name": str(title)[:256]} if title else {}),
        "quantity": quantity,
        "unit_price_minor": _money(line.get("price"), currency, f"line_items.{index}.price"),
    }


def _refund(
    refund: dict[str, Any], order_id: int, currency: str, identifiers: list[dict[str, Any]], binding: Binding
) -> dict[str, Any]:
    refund_id = require(refund, "id", int)
    items = [r for r in refund.get("refund_line_items") or [] if isinstance(r, dict)]
    refunds = [
        t
        for t in refund.get("transactions") or []
        if isinstance(t, dict)
        and t.get("kind") == "refund"
        and t.get("status") == "success"
        and str(t.get("currency") or currency).upper() == currency
    ]
    # the money actually paid back in the shop's currency; else (store credit, a refund paid in the buyer's
    # presentment currency) the refunded lines, which Shopify values in the shop's currency
    if refunds:
        amount = sum(_money(t.get("amount"), currency, "transactions.amount") for t in refunds)
    else:
        amount = sum(
            _money(r.get("subtotal", 0), currency, "refund_line_items.subtotal")
            + _money(r.get("total_tax", 0), currency, "refund_line_items.total_tax")
            for r in items
        )
    skus = [_token(obj(r, "line_item").get("sku")) or str(obj(r, "line_item").get("variant_id") or "") for r in items]
    note = refund.get("note")
    return event_dict(
        event_type="order_returned",
        event_id=f"refund-{refund_id}",
        source=PLATFORM,
        binding=binding,
        occurred_at=refund.get("processed_at") or require(refund, "created_at"),
        identifiers=identifiers,
        properties={
            "order_id": str(order_id),
            "refund_minor": amount,
            "currency": currency,
            "skus": [s for s in skus if s],
            **({"reason": str(note)[:500]} if note else {}),
        },
    )


def _customer(customer: dict[str, Any], binding: Binding) -> list[dict[str, Any]]:
    customer_id = require(customer, "id", int)
    address = obj(customer, "default_address")
    name = " ".join(str(customer[k]) for k in ("first_name", "last_name") if customer.get(k)) or None
    country = address.get("country_code")
    properties = {
        "name": name,
        "city": address.get("city"),
        "country": str(country).upper() if isinstance(country, str) and len(country) == 2 else None,
    }
    return [
        event_dict(
            event_type="identify",
            event_id=f"customer-{customer_id}-{require(customer, 'updated_at')}",
            source=PLATFORM,
            binding=binding,
            occurred_at=customer["updated_at"],
            identifiers=_identifiers(customer.get("email"), customer.get("phone"), customer_id),
            properties={k: v for k, v in properties.items() if v},
        )
    ]
