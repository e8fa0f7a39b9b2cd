"""Offers end to end over the local HTTP API with the real handlers: a budget pool and a coupon are defined, the
coupon is issued to a customer's wallet (a `coupon_issued` event reaches their timeline), an order at the till using
its code redeems it for the order's discount, and every route refuses bad input, wrong scopes and other brands with
a 4xx that names what is wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cdp.shared.time import utc_now
from cdp_local.runtime import LocalRuntime
from cdp_local.runtime.environment import STORE_API_KEY

BRAND = "demo-brand"
PHONE = "13766990001"


def _call(runtime: LocalRuntime, method: str, path: str, body: Any = None, key: str | None = None) -> tuple[int, Any]:
    headers = {"content-type": "application/json", "x-api-key": key or runtime.admin_key}
    raw = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
    response = runtime.http(method, path, raw, headers)
    return response.status, json.loads(response.body) if response.body else None


def _ok(runtime: LocalRuntime, method: str, path: str, body: Any = None) -> Any:
    status, answer = _call(runtime, method, path, body)
    assert 200 <= status < 300, (status, answer)
    return answer


def _events(runtime: LocalRuntime, *events: dict[str, Any]) -> None:
    headers = {"content-type": "application/json", "x-api-key": runtime.api_key}
    response = runtime.http("POST", "/v1/events", json.dumps({"batch": list(events)}).encode(), headers)
    assert response.status == 202, response.body
    assert runtime.drain().dead_lettered == 0


def _customer(runtime: LocalRuntime) -> str:
    _events(
        runtime,
        {
            "event_id": "offers-e2e-id",
            "event_type": "identify",
            "source": "app",
            "brand_id": BRAND,
            "occurred_at": "2026-11-01T10:00:00+08:00",
            "identifiers": [{"type": "phone", "value": PHONE}],
            "properties": {"name": "Offer Tester"},
        },
    )
    return str(_ok(runtime, "GET", f"/v1/profiles/by-identifier/phone/{PHONE}?brand_id={BRAND}")["person_id"])


COUPON = {
    "offer_id": "e2e-50-off-300",
    "name": "50 off 300",
    "currency": "CNY",
    "coupon": {"amount_off_minor": 5000, "threshold_minor": 30000, "code_prefix": "E2E"},
    "validity": {"days": 14},
    "budget_pools": ["e2e-xmas"],
}


def test_a_coupon_is_issued_to_a_wallet_and_redeemed_by_the_order_that_uses_its_code(runtime: LocalRuntime) -> None:
    person = _customer(runtime)
    pool = {"brand_id": BRAND, "pool_id": "e2e-xmas", "total_minor": 12000, "currency": "CNY", "form": "coupon"}
    assert _ok(runtime, "POST", "/v1/budgets", pool)["available_minor"] == 12000
    assert _ok(runtime, "POST", "/v1/offers", {**COUPON, "brand_id": BRAND})["issued"] == 0
    issued = _ok(runtime, "POST", f"/v1/offers/e2e-50-off-300/issue?brand_id={BRAND}", {"person_id": person})
    code = issued["entry"]["code"]
    assert issued["new"] and code.startswith("E2E")
    runtime.drain()
    timeline = _ok(runtime, "GET", f"/v1/profiles/{person}/timeline")
    assert any(e["event"]["event_type"] == "coupon_issued" for e in timeline["entries"])
    # When the till sends the order that used the code (368 of lines, 318 paid), twice
    order = {
        "event_id": "offers-e2e-order",
        "event_type": "order_placed",
        "source": "pos",
        "brand_id": BRAND,
        "store_id": "sh01",
        "occurred_at": utc_now().isoformat(),
        "identifiers": [{"type": "phone", "value": PHONE}],
        "properties": {
            "order_id": "E2E-ORDER-1",
            "lines": [{"sku": "CAKE", "quantity": 1, "unit_price_minor": 36800}],
            "total_minor": 31800,
            "currency": "CNY",
            "coupon_code": code,
        },
    }
    _events(runtime, order)
    _events(runtime, {**order, "event_id": "offers-e2e-order-again"})
    # Then the wallet shows it redeemed for that order, and the pool spent 50 once, the other hold still reserved
    wallet = _ok(runtime, "GET", f"/v1/wallets/{person}?brand_id={BRAND}")
    assert wallet["counts"] == {"redeemed": 1}
    view = _ok(runtime, "GET", f"/v1/profiles/{person}")  # the 360 view shows the wallet too
    assert [(e["offer_id"], e["state"]) for e in view["wallet"]] == [("e2e-50-off-300", "redeemed")]
    assert wallet["entries"][0]["order_id"] == "E2E-ORDER-1"
    [balance] = [
        p for p in _ok(runtime, "GET", f"/v1/budgets?brand_id={BRAND}")["pools"] if p["pool"]["pool_id"] == "e2e-xmas"
    ]
    assert (balance["available_minor"], balance["reserved_minor"], balance["committed_minor"]) == (7000, 0, 5000)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("POST", "/v1/offers", {**COUPON, "offer_id": "Bad Id", "brand_id": BRAND}, 422, "offer_id"),
        (
            "POST",
            "/v1/offers",
            {**COUPON, "offer_id": "x1", "brand_id": BRAND, "coupon": {"percent_off": 20}},
            422,
            "coupon",
        ),
        ("POST", "/v1/offers", {**COUPON, "offer_id": "x2", "brand_id": BRAND, "validity": {}}, 422, "validity"),
        (
            "POST",
            "/v1/offers",
            {**COUPON, "offer_id": "x3", "brand_id": BRAND, "budget_pools": ["nope"]},
            400,
            "budget_pools[0]",
        ),
        ("POST", "/v1/offers", b"[1]", 400, "body"),
        ("POST", "/v1/offers", b"{", 400, "body"),
        (
            "POST",
            "/v1/budgets",
            {"brand_id": BRAND, "pool_id": "p", "total_minor": -1, "currency": "CNY"},
            422,
            "total_minor",
        ),
        ("POST", f"/v1/offers/nope/issue?brand_id={BRAND}", {"person_id": "p-1"}, 404, None),
        ("POST", f"/v1/offers/nope/issue?brand_id={BRAND}", {"person_id": ""}, 422, "person_id"),
        ("POST", f"/v1/offers/nope/codes?brand_id={BRAND}", {"codes": ["has space"]}, 422, "codes[0]"),
        ("POST", f"/v1/budgets/nope/top-up?brand_id={BRAND}", {"amount_minor": 5, "op_id": "a"}, 404, None),
        ("GET", "/v1/offers?brand_id=x%20y", None, 400, "brand_id"),
        ("GET", "/v1/offers", None, 400, "brand_id"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(
    runtime: LocalRuntime, method: str, path: str, body: Any, status: int, field: str | None
) -> None:
    got, answer = _call(runtime, method, path, body)
    assert got == status, answer
    if field is not None:
        fields = [answer.get("field"), *(e["field"] for e in answer.get("errors", []))]
        assert any(f and f.startswith(field) for f in fields), answer


def test_scopes_and_brands_are_enforced(runtime: LocalRuntime) -> None:
    # the ingest key has no offers scope; a store's key may not run the brand's offers; a key sees only its brand
    assert _call(runtime, "GET", f"/v1/offers?brand_id={BRAND}", key=runtime.api_key)[0] == 403
    assert _call(runtime, "GET", f"/v1/offers?brand_id={BRAND}", key=STORE_API_KEY)[0] == 403
    assert _call(runtime, "GET", f"/v1/budgets?brand_id={BRAND}", key="e2e-outlet-marketer-key")[0] == 403
    assert _call(runtime, "GET", "/v1/offers", key="not-a-key")[0] == 401


def test_the_cli_defines_a_pool_and_the_sample_coupon_issues_it_by_phone_and_shows_the_wallet(
    runtime: LocalRuntime,
) -> None:
    from pathlib import Path

    from typer.testing import CliRunner

    from cdp_local.cli import app
    from cdp_local.http_server import LocalApiServer

    sample = Path(__file__).resolve().parents[2] / "events" / "offers" / "xmas_50_off_300.yaml"
    _customer(runtime)
    with LocalApiServer(runtime, port=0) as server:

        def cdp(*args: str) -> str:
            result = CliRunner().invoke(app, [*args, "--url", server.url], catch_exceptions=False)
            assert result.exit_code == 0, result.output
            return result.output

        assert "available of 1,000.00 CNY" in cdp("budget", "define", "xmas-coupons", "--total", "100000")
        assert "xmas-50-off-300" in cdp("offer", "define", str(sample))
        issued = json.loads(cdp("offer", "issue", "xmas-50-off-300", "--phone", PHONE, "--issue-id", "cli-1", "--json"))
        again = cdp("offer", "issue", "xmas-50-off-300", "--phone", PHONE, "--issue-id", "cli-1")
        assert "issued before under this issue id" in again
        person = issued["entry"]["person_id"]
        wallet = json.loads(cdp("offer", "wallet", person, "--json"))
        assert issued["entry"]["code"] in [e["code"] for e in wallet["entries"]]
        assert "wallet of" in cdp("offer", "wallet", person)
        assert "950.00 CNY available" in cdp("budget", "list")
        listed = cdp("offer", "list")
        assert "xmas-50-off-300" in listed and "5,000" in listed
        bad = CliRunner().invoke(app, ["offer", "issue", "xmas-50-off-300", "--person", "", "--url", server.url])
        assert bad.exit_code == 1 and "person_id" in bad.output


def test_promotions_are_defined_from_the_sample_catalog_and_a_sample_cart_is_evaluated_by_the_cli(
    runtime: LocalRuntime,
) -> None:
    from pathlib import Path

    from typer.testing import CliRunner

    from cdp_local.cli import app
    from cdp_local.http_server import LocalApiServer

    promotions = Path(__file__).resolve().parents[2] / "events" / "promotions"
    pool = {"brand_id": BRAND, "pool_id": "cashback-2026", "total_minor": 1000, "currency": "CNY"}
    _ok(runtime, "POST", "/v1/budgets", pool)
    with LocalApiServer(runtime, port=0) as server:

        def cdp(*args: str) -> str:
            result = CliRunner().invoke(app, [*args, "--url", server.url], catch_exceptions=False)
            assert result.exit_code == 0, result.output
            return result.output

        assert cdp("promotion", "define", str(promotions / "catalog.yaml")).count("defined ") == 10
        assert "cake-300-minus-50" in cdp("promotion", "list")
        answer = json.loads(
            cdp("promotion", "evaluate", str(promotions / "carts" / "member_day_doubles.json"), "--json")
        )
        # the whole catalog applies here: 满300减50 doubled on the member day, with the gift and the mug trade-up
        applied = {a["promotion_id"]: a for a in answer["applied"]}
        assert set(applied) == {"cake-300-minus-50", "candles-gift", "mug-trade-up"}, answer
        assert applied["cake-300-minus-50"]["doubled"] and answer["payable_minor"] == 26800
        # the cashback pool has 10.00 left: 5% of 368 (18.40) does not fit, and the answer says so
        text = cdp("promotion", "evaluate", str(promotions / "carts" / "budget_exhausted.json"))
        assert "budget pool cashback-2026 has 10.00 CNY left" in text
    # A till's key evaluates carts of its own store only; a bad cart is a 422 naming the field
    cart = {
        "brand_id": BRAND,
        "currency": "CNY",
        "store_id": "sh02",
        "lines": [{"sku": "A", "unit_price_minor": 1, "quantity": 1}],
    }
    till = "e2e-sh01-till-offers-key"
    assert _call(runtime, "POST", "/v1/promotions/evaluate", cart, key=till)[0] == 403
    assert _call(runtime, "POST", "/v1/promotions/evaluate", {**cart, "store_id": "sh01"}, key=till)[0] == 200
    assert _call(runtime, "GET", f"/v1/promotions?brand_id={BRAND}", key=till)[0] == 403  # the catalog is brand-wide
    status, bad = _call(runtime, "POST", "/v1/promotions/evaluate", {**cart, "lines": [{"sku": "A", "quantity": 0}]})
    assert status == 422 and bad["errors"][0]["field"].startswith("lines[0]"), bad


def test_a_pool_defined_twice_is_a_409(runtime: LocalRuntime) -> None:
    pool = {"brand_id": BRAND, "pool_id": "e2e-dup", "total_minor": 100, "currency": "CNY"}
    assert _call(runtime, "POST", "/v1/budgets", pool)[0] == 201
    status, answer = _call(runtime, "POST", "/v1/budgets", pool)
    assert (status, answer["error"]) == (409, "conflict") and "exists" in answer["message"]


def test_an_order_that_got_promotions_debits_their_pool_once_and_a_short_pool_parks_the_charge(
    runtime: LocalRuntime,
) -> None:
    # Given a gift promotion paid from a pool of 12.00 (a candle set costs the brand 8.00)
    pool = {"brand_id": BRAND, "pool_id": "e2e-gifts", "total_minor": 1_200, "currency": "CNY", "form": "gift"}
    _ok(runtime, "POST", "/v1/budgets", pool)
    gift = {
        "brand_id": BRAND,
        "promotion_id": "e2e-candles",
        "name": "a candle set over 200",
        "currency": "CNY",
        "when": {"min_amount_minor": 20_000},
        "benefit": {"gift": {"sku": "CANDLES", "name": "Candle set", "value_minor": 3_000, "cost_minor": 800}},
        "budget_pool": "e2e-gifts",
    }
    _ok(runtime, "POST", "/v1/promotions", gift)
    cart = {"brand_id": BRAND, "currency": "CNY", "lines": [{"sku": "CAKE", "unit_price_minor": 26_800, "quantity": 1}]}
    applied = _ok(runtime, "POST", "/v1/promotions/evaluate", cart)["applied"]
    assert ("e2e-candles", 800) in [(a["promotion_id"], a["brand_cost_minor"]) for a in applied]  # beside others

    def order(order_id: str) -> dict[str, Any]:
        return {
            "event_id": f"promo-{order_id}",
            "event_type": "order_placed",
            "source": "pos",
            "brand_id": BRAND,
            "store_id": "sh01",
            "occurred_at": "2026-12-06T12:00:00+08:00",
            "identifiers": [{"type": "phone", "value": "13766990002"}],
            "properties": {
                "order_id": order_id,
                "lines": [{"sku": "CAKE", "quantity": 1, "unit_price_minor": 26_800}],
                "total_minor": 26_800,
                "currency": "CNY",
                "promotions": [{"promotion_id": "e2e-candles", "cost_minor": 800}],
            },
        }

    # When the till's order that got it arrives (and is sent again): 8.00 is spent from the pool, once
    _events(runtime, order("PROMO-1"))
    _events(runtime, order("PROMO-1") | {"event_id": "promo-PROMO-1-resent"})
    pools = {p["pool"]["pool_id"]: p for p in _ok(runtime, "GET", f"/v1/budgets?brand_id={BRAND}")["pools"]}
    assert (pools["e2e-gifts"]["committed_minor"], pools["e2e-gifts"]["available_minor"]) == (800, 400)
    # When a second till's order arrives after the pool ran short: its charge is parked with the reason, never overspent
    headers = {"content-type": "application/json", "x-api-key": runtime.api_key}
    response = runtime.http("POST", "/v1/events", json.dumps({"batch": [order("PROMO-2")]}).encode(), headers)
    assert response.status == 202
    assert runtime.drain().dead_lettered == 1
    listed = _ok(runtime, "GET", "/v1/admin/dead-letters?queue=offer-events")["listed"]
    assert any("PROMO-2" in json.dumps(letter) and "cannot cover 800" in json.dumps(letter) for letter in listed), (
        listed
    )
    pools = {p["pool"]["pool_id"]: p for p in _ok(runtime, "GET", f"/v1/budgets?brand_id={BRAND}")["pools"]}
    assert pools["e2e-gifts"]["committed_minor"] == 800
    # When the pool is topped up and the parked charge redriven: it goes through, once
    _ok(runtime, "POST", f"/v1/budgets/e2e-gifts/top-up?brand_id={BRAND}", {"amount_minor": 1_000, "op_id": "e2e-more"})
    assert _ok(runtime, "POST", "/v1/admin/dead-letters/redrive", {"queue": "offer-events"})["redriven"] == 1
    assert runtime.drain().dead_lettered == 0
    pools = {p["pool"]["pool_id"]: p for p in _ok(runtime, "GET", f"/v1/budgets?brand_id={BRAND}")["pools"]}
    assert (pools["e2e-gifts"]["committed_minor"], pools["e2e-gifts"]["available_minor"]) == (1_600, 600)
