"""Shopify webhooks, pure: the HMAC and shop checks, the delivery window, and each topic's mapping of the samples."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cdp.connectors.base import Binding, InboundRequest, Mapped
from cdp.connectors.shopify import ShopifyConnector
from cdp.connectors.sources import parse_sources
from cdp.errors import AuthenticationError, InvalidInputError
from cdp.ingest.events import parse_event
from cdp.ingest.security import hmac_base64
from cdp_local.runtime.environment import LOCAL_SOURCES

SAMPLES = Path(__file__).resolve().parents[3] / "events" / "shopify"
NOW = datetime(2026, 3, 16, 1, 13, tzinfo=UTC)
SHOP, SECRET = "demo-brand.myshopify.com", "local-shopify-secret"
SOURCES = parse_sources(LOCAL_SOURCES)
BINDING = Binding(brand_id="demo-brand", label=f"shopify:{SHOP}", channel="shopify")


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    return data


def request(
    body: dict[str, Any] | bytes, topic: str = "orders/create", secret: str = SECRET, **headers: str
) -> InboundRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    base = {
        "x-shopify-topic": topic,
        "x-shopify-hmac-sha256": hmac_base64(secret, raw),
        "x-shopify-shop-domain": SHOP,
        "x-shopify-triggered-at": "2026-03-16T01:12:59.123456789Z",
        "x-shopify-webhook-id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    }
    return InboundRequest(
        connector="shopify",
        method="POST",
        body=raw,
        received_at=NOW,
        request_id="req-1",
        key=SHOP,
        headers={**base, **{k.replace("_", "-"): v for k, v in headers.items()}},
    )


def mapped(body: dict[str, Any] | bytes, topic: str = "orders/create") -> Mapped:
    return ShopifyConnector().map(request(body, topic), BINDING)


def events(body: dict[str, Any], topic: str = "orders/create") -> list[dict[str, Any]]:
    result = mapped(body, topic)
    assert not result.rejected, result.rejected
    for item in result.items:
        parse_event(item)  # every mapped item is a valid canonical event
    return result.items


# ---- authentication ------------------------------------------------------------------------------------------------


def test_a_signed_webhook_binds_the_shops_brand() -> None:
    # Given an order signed with the app secret / When authenticated / Then it is bound to the shop's brand
    binding = ShopifyConnector().authenticate(request(sample("orders_create")), SOURCES)
    assert binding.brand_id == "demo-brand" and binding.channel == "shopify"


@pytest.mark.parametrize(
    ("req", "message"),
    [
        (request(b"{}", secret="another-app-secret"), "signature"),
        (request(b"{}", x_shopify_hmac_sha256=""), "signature"),
        (request(b"{}", x_shopify_shop_domain="other.myshopify.com"), "Shop-Domain"),
        (request(b"{}", x_shopify_triggered_at="2026-03-13T01:12:00Z"), "48 h"),  # older than Shopify retries
        (request(b"{}", x_shopify_triggered_at="2026-03-16T02:00:00Z"), "48 h"),  # from the future
        (request(b"{}", x_shopify_triggered_at="yesterday"), "malformed"),
    ],
    ids=["wrong-secret", "no-signature", "other-shop", "stale", "future", "malformed-time"],
)
def test_a_bad_signature_or_stale_delivery_is_refused(req: InboundRequest, message: str) -> None:
    with pytest.raises(AuthenticationError, match=message):
        ShopifyConnector().authenticate(req, SOURCES)


def test_a_tampered_body_or_an_unknown_shop_is_refused() -> None:
    # Given a signature computed over another body, and a shop this deployment does not know
    good = request(b'{"id": 1}')
    tampered = replace(good, body=b'{"id": 2}')
    unknown = replace(good, key="evil.myshopify.com")
    # When authenticated / Then both are refused
    for req in (tampered, unknown):
        with pytest.raises(AuthenticationError):
            ShopifyConnector().authenticate(req, SOURCES)


def test_a_delivery_within_48_hours_or_without_a_trigger_time_is_accepted() -> None:
    for when in ("2026-03-14T02:00:00Z", ""):
        assert ShopifyConnector().authenticate(request(b"{}", x_shopify_triggered_at=when), SOURCES).brand_id


def test_the_topic_is_archived_for_replay() -> None:
    assert ShopifyConnector().archive_meta(request(b"{}", "orders/paid")) == {"x-shopify-topic": "orders/paid"}


# ---- orders ----------------------------------------------------------------------------------------------------------


def test_an_order_becomes_order_placed_with_the_buyers_identifiers() -> None:
    # Given the orders/create sample (two lines, a 20.00 discount code, 8.00 shipping)
    # When mapped
    [order] = events(sample("orders_create"))
    # Then it is one order_placed keyed by the Shopify order id, with e-mail, phone and the customer id
    assert order["event_type"] == "order_placed" and order["event_id"] == "order-5721093685431"
    assert order["source"] == "shopify" and order["brand_id"] == "demo-brand"
    assert {(i["type"], i["value"], i.get("scope")) for i in order["identifiers"]} == {
        ("email", "mei.chen@example.cn", None),
        ("phone", "+8613812345678", None),
        ("platform_buyer_id", "7345678901234", "shopify"),
    }
    props = order["properties"]
    # the free-text SKU with a space falls back to the variant id; prices become fen
    assert [(line["sku"], line["quantity"], line["unit_price_minor"]) for line in props["lines"]] == [
        ("CAKE-MATCHA-6", 1, 19800),
        ("44123456789013", 4, 2500),
    ]
    assert props["total_minor"] == 27800 and props["total_price_minor"] == 28600  # subtotal vs with shipping
    assert props["currency"] == "CNY" and props["coupon_id"] == "SPRING20" and props["fulfilment"] == "online"
    assert order["context"]["ip"] == "203.0.113.24"


def test_orders_create_and_orders_paid_are_one_order() -> None:
    # Given the same order delivered under two topics / When mapped / Then both carry the same event id (dedupe)
    body = sample("orders_create")
    assert events(body, "orders/create")[0]["event_id"] == events(body, "orders/paid")[0]["event_id"]


def test_orders_updated_carries_the_order_and_each_refund_with_the_buyer() -> None:
    # Given orders/updated after a refund of two croissants (46.64 paid back through Alipay)
    placed, returned = events(sample("orders_updated"), "orders/updated")
    # Then the order keeps its id (a duplicate of orders/create) and the refund names the same buyer
    assert placed["event_id"] == "order-5721093685431"
    assert returned["event_type"] == "order_returned" and returned["event_id"] == "refund-1012345678901"
    assert returned["identifiers"] == placed["identifiers"]
    assert returned["properties"] == {
        "order_id": "5721093685431",
        "refund_minor": 4664,
        "currency": "CNY",
        "skus": ["44123456789013"],
        "reason": "Croissants arrived crushed",
    }


def test_a_refund_without_a_shop_currency_transaction_is_valued_at_its_lines() -> None:
    # Given a refund whose only transaction is in another currency (the buyer's presentment currency)
    body = sample("orders_updated")
    body["refunds"][0]["transactions"][0]["currency"] = "USD"
    body["refunds"][0]["refund_line_items"][0]["total_tax"] = 1.5
    # When mapped / Then the refunded lines (subtotal + tax, shop currency) are the amount
    assert events(body, "orders/updated")[1]["properties"]["refund_minor"] == 4814


def test_a_guest_checkout_is_known_by_its_email_and_a_test_order_is_skipped() -> None:
    guest = {**sample("orders_create"), "customer": None, "phone": None}
    [order] = events(guest)
    assert [i["type"] for i in order["identifiers"]] == ["email"]
    assert mapped({**sample("orders_create"), "test": True}).items == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"line_items": []}, "line_items"),
        ({"currency": None}, "currency"),
        ({"email": None, "contact_email": None, "phone": None, "customer": None}, "customer"),
        ({"line_items": [{"id": 1, "sku": "X", "quantity": 1, "price": "abc"}]}, "line_items.0.price"),
        ({"admin_graphql_api_id": "gid://shopify/Customer/1"}, "admin_graphql_api_id"),
    ],
    ids=["no-lines", "no-currency", "nobody", "bad-price", "wrong-resource"],
)
def test_an_order_that_cannot_be_mapped_is_rejected_naming_the_field(change: dict[str, Any], field: str) -> None:
    result = mapped({**sample("orders_create"), **change})
    assert not result.items and result.rejected[0].errors[0].field == field


# ---- customers, refunds/create, other topics ----------------------------------------------------------------------


def test_a_customer_becomes_identify_keyed_by_its_update_time() -> None:
    [identify] = events(sample("customers_create"), "customers/create")
    assert identify["event_type"] == "identify"
    assert identify["event_id"] == "customer-7345678901235-2026-03-15T18:02:11+08:00"
    assert identify["properties"] == {"name": "Jun Wang", "city": "Beijing", "country": "CN"}
    assert {i["type"] for i in identify["identifiers"]} == {"email", "phone", "platform_buyer_id"}
    # an update later is a new event; the same update re-sent is the same event
    updated = {**sample("customers_create"), "updated_at": "2026-03-20T08:00:00+08:00"}
    assert events(updated, "customers/update")[0]["event_id"] != identify["event_id"]


def test_an_order_body_sent_as_a_customer_topic_is_rejected() -> None:
    # Given a captured order body re-posted with a forged (unsigned) topic header
    result = mapped(sample("orders_create"), "customers/create")
    # Then it is rejected: its id must not become a customer id
    assert not result.items and result.rejected[0].errors[0].field == "admin_graphql_api_id"


@pytest.mark.parametrize("topic", ["refunds/create", "products/update", "customers/redact"])
def test_topics_that_are_not_mapped_are_acknowledged_with_a_note(topic: str) -> None:
    # Given a topic we do not ingest (refunds/create names no buyer) / When mapped
    result = mapped(sample("refunds_create"), topic)
    # Then Shopify gets a 200 (so it neither retries nor drops the subscription) and nothing is ingested
    assert result.items == [] and result.reply is not None and result.reply.status == 200
    note = json.loads(result.reply.body)["note"]
    assert ("orders/updated" in note) if topic == "refunds/create" else (topic in note)


def test_malformed_json_or_a_missing_topic_is_a_400_naming_it() -> None:
    with pytest.raises(InvalidInputError) as bad_json:
        mapped(b'{"id": 1,')
    assert bad_json.value.location == "body"
    with pytest.raises(InvalidInputError) as no_topic:
        mapped(sample("orders_create"), "")
    assert no_topic.value.location == "x-shopify-topic"
