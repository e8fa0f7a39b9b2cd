"""Shopify, cloud POS and ad platform webhooks through the local HTTP API: signed samples end in one profile with
its orders, refunds and acquisition source; bad signatures, replays, oversize and malformed bodies are refused."""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from cdp.ingest.security import hmac_base64, sign_cdp
from cdp_local.runtime import LocalRuntime

EVENTS = Path(__file__).resolve().parents[2] / "events"
BRAND = "demo-brand"
SHOP, SHOP_SECRET = "demo-brand.myshopify.com", "local-shopify-secret"
SIGNED = {"pos/demo-pos": "local-pos-secret", "ads/oceanengine": "local-oceanengine-secret"}
_n = itertools.count(1)


def sample(path: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / f"{path}.json").read_text())
    return data


def unique() -> int:
    return next(_n)


def phone(n: int) -> str:
    return f"+861357100{n:04d}"


def shopify(
    runtime: LocalRuntime, topic: str, body: dict[str, Any] | bytes, secret: str = SHOP_SECRET
) -> tuple[int, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {
        "content-type": "application/json",
        "x-shopify-topic": topic,
        "x-shopify-hmac-sha256": hmac_base64(secret, raw),
        "x-shopify-shop-domain": SHOP,
        "x-shopify-triggered-at": datetime.now(UTC).isoformat(),
        "x-shopify-webhook-id": f"wh-{unique()}",
    }
    status, _, payload = runtime.http("POST", f"/v1/webhooks/shopify/{SHOP}", raw, headers)
    return status, json.loads(payload)


def signed(runtime: LocalRuntime, route: str, body: Any, secret: str | None = None, age_s: int = 0) -> tuple[int, Any]:
    """POST to /v1/webhooks/{route} signed with our scheme (x-cdp-signature), `age_s` seconds ago."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    signature = sign_cdp(secret or SIGNED[route], raw, int(time.time()) - age_s)
    headers = {"content-type": "application/json", "x-cdp-signature": signature}
    status, _, payload = runtime.http("POST", f"/v1/webhooks/{route}", raw, headers)
    return status, json.loads(payload)


def person(runtime: LocalRuntime, kind: str, value: str, scope: str | None = None) -> dict[str, Any]:
    extra = f"&identifier_scope={scope}" if scope else ""
    path = f"/v1/profiles/by-identifier/{kind}/{quote(value)}?brand_id={BRAND}{extra}"
    status, _, payload = runtime.http("GET", path, b"", {"x-api-key": runtime.admin_key})
    assert status == 200, payload
    view: dict[str, Any] = json.loads(payload)
    return view


def shopify_order(n: int) -> dict[str, Any]:
    """The orders/create sample as another order of another customer."""
    order = sample("shopify/orders_create")
    order_id, customer_id, email = 5_900_000_000_000 + n, 7_900_000_000_000 + n, f"shopper.{n}@example.cn"
    order.update(id=order_id, admin_graphql_api_id=f"gid://shopify/Order/{order_id}", email=email, phone=phone(n))
    order.update(contact_email=email)
    order["customer"].update(id=customer_id, email=email, phone=phone(n))
    order["customer"]["admin_graphql_api_id"] = f"gid://shopify/Customer/{customer_id}"
    return order


def test_a_shopify_order_and_its_refund_end_in_one_profile(runtime: LocalRuntime) -> None:
    # Given a Shopify order (27.80 after the discount code, before shipping) of a new customer
    n = unique()
    order = shopify_order(n)
    # When Shopify delivers orders/create
    status, result = shopify(runtime, "orders/create", order)
    assert status == 202 and result["accepted"] == 1, result
    runtime.drain()
    # Then one person holds the e-mail, the phone and the Shopify customer id, with the order and its spend
    view = person(runtime, "email", f"shopper.{n}@example.cn")
    assert {i["key"] for i in view["identifiers"]} == {
        f"email:shopper.{n}@example.cn",
        f"phone:{phone(n)}",
        f"platform_buyer_id:shopify:{order['customer']['id']}",
    }
    assert view["activity"]["order_count"] == 1 and view["activity"]["spend_minor"] == 27_800
    assert view["activity"]["currency"] == "CNY" and view["orders"]["online"][0]["order_id"] == str(order["id"])
    # When the refund arrives: refunds/create names no buyer (acknowledged), orders/updated carries it
    refund_only = {**sample("shopify/refunds_create"), "id": 1_090_000_000_000 + n, "order_id": order["id"]}
    status, note = shopify(runtime, "refunds/create", refund_only)
    assert status == 200 and note["accepted"] == 0 and "orders/updated" in note["note"]
    updated = {**order, "refunds": [refund_only]}
    status, result = shopify(runtime, "orders/updated", updated)
    # Then the order is a duplicate and the refund is new
    assert status == 202 and (result["accepted"], result["duplicates"]) == (1, 1), result
    runtime.drain()
    view = person(runtime, "phone", phone(n))
    assert view["activity"]["return_count"] == 1 and view["activity"]["refund_minor"] == 4_664
    assert view["returns"][0]["order_id"] == str(order["id"])


def test_a_shopify_customer_becomes_traits_of_the_person(runtime: LocalRuntime) -> None:
    n = unique()
    customer = sample("shopify/customers_create")
    customer.update(id=7_800_000_000_000 + n, email=f"signup.{n}@example.cn", phone=phone(n))
    customer["admin_graphql_api_id"] = f"gid://shopify/Customer/{customer['id']}"
    status, result = shopify(runtime, "customers/create", customer)
    assert status == 202 and result["accepted"] == 1, result
    runtime.drain()
    view = person(runtime, "platform_buyer_id", str(customer["id"]), scope="shopify")
    assert view["traits"]["name"] == "Jun Wang" and view["traits"]["city"] == "Beijing"


def test_a_resent_webhook_is_accepted_once(runtime: LocalRuntime) -> None:
    # Given an order, a POS sale and an ad click, each delivered twice (the order once more as orders/paid)
    n = unique()
    order = shopify_order(n)
    sale = {**sample("pos/sale"), "receipt_no": f"SH01-RESEND-{n}"}
    click = {**sample("ads/click"), "click_id": f"resend.{n}"}
    first = [shopify(runtime, "orders/create", order), signed(runtime, "pos/demo-pos", sale)]
    first.append(signed(runtime, "ads/oceanengine", click))
    again = [shopify(runtime, "orders/paid", order), signed(runtime, "pos/demo-pos", sale)]
    again.append(signed(runtime, "ads/oceanengine", click))
    # Then the first delivery is accepted and each re-send is a duplicate
    assert [(s, r["accepted"], r["duplicates"]) for s, r in first] == [(202, 1, 0)] * 3
    assert [(s, r["accepted"], r["duplicates"]) for s, r in again] == [(202, 0, 1)] * 3
    runtime.drain()


def test_an_ad_click_a_lead_and_a_store_sale_are_one_person_acquired_by_the_ad(runtime: LocalRuntime) -> None:
    # Given an ad click on device D, the lead form of that click with phone P, then a store sale to member card K + P
    n = unique()
    click_id, device, card = f"B.story{n}", f"d3b1e0f4-0000-4000-8000-{n:012d}", f"MC-STORY-{n}"
    click = {**sample("ads/click"), "click_id": click_id, "device": {"oaid": device}}
    lead = {**sample("ads/lead"), "click_id": click_id, "lead_id": f"lead-{n}", "phone": phone(n)}
    sale = {**sample("pos/sale"), "receipt_no": f"SH01-STORY-{n}", "member": {"card_no": card, "phone": phone(n)}}
    # When each platform calls its webhook (signed, fresh)
    for route, body in (("ads/oceanengine", click), ("ads/oceanengine", lead), ("pos/demo-pos", sale)):
        status, result = signed(runtime, route, body)
        assert status == 202 and result["accepted"] == 1, result
    report = runtime.drain()
    assert report.dead_lettered == 0
    # Then the phone finds ONE person holding the device, the click id and the card
    view = person(runtime, "phone", phone(n))
    assert {i["key"] for i in view["identifiers"]} == {
        f"phone:{phone(n)}",
        f"device_id:{device}",
        f"ad_click_id:oceanengine:{click_id}",
        f"member_card:{card}",
    }
    # whose acquisition is the ad click (platform, campaign, click id) and who bought in store sh01
    acquisition = view["activity"]["acquisition"]
    assert acquisition["platform"] == "oceanengine" and acquisition["kind"] == "click"
    assert acquisition["campaign_id"] == "1795032514563074" and acquisition["click_id"] == click_id
    assert view["activity"]["order_count"] == 1 and view["activity"]["spend_minor"] == 29_400
    assert view["orders"]["offline"][0]["store_id"] == "sh01"
    assert person(runtime, "device_id", device)["person_id"] == view["person_id"]
    status, _, payload = runtime.http(
        "GET", f"/v1/profiles/{view['person_id']}/timeline", b"", {"x-api-key": runtime.admin_key}
    )
    types = {entry["event"]["event_type"] for entry in json.loads(payload)["entries"]}
    assert status == 200 and types == {"ad_clicked", "lead_submitted", "order_placed", "points_changed"}  # club


def test_a_bad_signature_is_401(runtime: LocalRuntime) -> None:
    assert shopify(runtime, "orders/create", shopify_order(unique()), secret="not-the-app-secret")[0] == 401
    assert signed(runtime, "pos/demo-pos", sample("pos/sale"), secret="not-the-secret")[0] == 401
    assert signed(runtime, "ads/oceanengine", sample("ads/click"), secret="local-tencent-ads-secret")[0] == 401


@pytest.mark.parametrize("route", ["pos/demo-pos", "ads/oceanengine"])
def test_an_old_signature_timestamp_is_401(runtime: LocalRuntime, route: str) -> None:
    body = sample("pos/sale" if route.startswith("pos") else "ads/click")
    status, error = signed(runtime, route, body, age_s=600)  # outside the 300 s replay window
    assert status == 401 and "replay window" in error["message"]


def test_an_oversize_body_is_413(runtime: LocalRuntime) -> None:
    huge = json.dumps({"padding": "x" * (1024 * 1024 + 1)}).encode()
    assert shopify(runtime, "orders/create", huge)[0] == 413
    assert signed(runtime, "pos/demo-pos", huge)[0] == 413
    assert signed(runtime, "ads/oceanengine", huge[: 300 * 1024])[0] == 413


def test_a_malformed_body_is_400_naming_the_field(runtime: LocalRuntime) -> None:
    # Given a truncated JSON body, a sale with its price in yuan, a lead without its id, an order without a topic
    status, error = signed(runtime, "pos/demo-pos", b'{"type": "sale",')
    assert status == 400 and error["field"] == "body"
    bad_sale = sample("pos/sale")
    bad_sale["items"][0]["unit_price"] = 268.0
    status, result = signed(runtime, "pos/demo-pos", {**bad_sale, "receipt_no": f"SH01-BAD-{unique()}"})
    assert status == 400 and result["rejected"][0]["errors"][0]["field"] == "items.0.unit_price"
    status, result = signed(runtime, "ads/oceanengine", {**sample("ads/lead"), "lead_id": None})
    assert status == 400 and result["rejected"][0]["errors"][0]["field"] == "lead_id"
    status, error = shopify(runtime, "", shopify_order(unique()))
    assert status == 400 and error["field"] == "x-shopify-topic"
