"""A triggered journey end to end on the local runtime: events posted to the API enter persons (identity ->
profile.updated -> the journey queue), the schedule's tick moves them on when their wait is up, sends go over the bus
and the send queue to the send function (the outbox locally), and an order takes a person out as converted."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from cdp import topology
from cdp.shared.time import utc_now
from cdp_local.runtime import LocalRuntime
from tests.e2e.conftest import PostEvents

SAMPLE = Path(__file__).resolve().parents[2] / "events" / "campaigns" / "abandoned_cart.yaml"
CAMPAIGN = "e2e_cart_journey"
BRAND = "demo-brand"


def _api(runtime: LocalRuntime, method: str, path: str, body: Any = None) -> Any:
    headers = {"content-type": "application/json", "x-api-key": runtime.admin_key}
    response = runtime.http(method, path, json.dumps(body).encode() if body is not None else b"", headers)
    assert 200 <= response.status < 300, (response.status, response.body)
    return json.loads(response.body)


def _event(kind: str, phone: str, n: str, **properties: Any) -> dict[str, Any]:
    return {
        "event_id": f"journey-e2e-{kind}-{phone}-{n}",
        "event_type": kind,
        "source": "app",
        "brand_id": BRAND,
        "occurred_at": utc_now().isoformat(),
        "identifiers": [{"type": "phone", "value": phone}],
        "properties": properties,
    }


def _outbox(runtime: LocalRuntime) -> list[dict[str, Any]]:
    s3 = runtime.client("s3")
    listed = s3.list_objects_v2(Bucket=topology.DATA_BUCKET_LOCAL_NAME, Prefix=f"{topology.OUTBOX_PREFIX}")
    out = []
    for obj in listed.get("Contents", []):
        if f"/{CAMPAIGN}-v1-journey/" in obj["Key"]:
            body = s3.get_object(Bucket=topology.DATA_BUCKET_LOCAL_NAME, Key=obj["Key"])["Body"].read()
            out.append(json.loads(body))
    return out


def test_cart_events_enter_a_journey_that_reminds_after_an_hour_and_an_order_ends_it(
    runtime: LocalRuntime, post_events: PostEvents
) -> None:
    # Given the sample journey (no holdout here, so both persons are messaged) made live
    raw = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))
    raw.update({"campaign_id": CAMPAIGN, "holdout": 0.0})
    raw["steps"][3]["send"]["channel"] = "sms"  # the sample's push needs a device token these customers do not have
    assert _api(runtime, "POST", "/v1/campaigns", raw)["state"]["status"] == "draft"
    live = _api(runtime, "POST", f"/v1/campaigns/{CAMPAIGN}/activate?brand_id={BRAND}")
    assert live["state"]["status"] == "live"
    # and two customers who opted in to SMS
    phones = ["13766500001", "13766500002"]
    consents = [_event("consent_changed", p, "c", channel="all", granted=True, purpose="marketing") for p in phones]
    response, report = post_events(consents)
    assert response.status == 202 and report.dead_lettered == 0

    # When both add to their carts
    cart = [
        _event("add_to_cart", p, "1", sku="CAKE-1", quantity=1, unit_price_minor=8800, currency="CNY") for p in phones
    ]
    started = utc_now()
    response, report = post_events(cart)
    assert response.status == 202 and report.dead_lettered == 0
    # Then they are in it, waiting, and nothing was sent yet
    results = _api(runtime, "GET", f"/v1/campaigns/{CAMPAIGN}/journey?brand_id={BRAND}")
    assert results["entered"] == {"treatment": 2, "holdout": 0}
    assert results["by_status"]["treatment"] == {"active": 2} and _outbox(runtime) == []

    # When the local clock moves an hour on: the tick moves both to the SMS, which the send function delivers
    fired = runtime.fire_schedule(topology.CAMPAIGN_TICK.local_name, started + timedelta(hours=1, minutes=1))
    assert fired.result["journey_steps"] == 2
    runtime.drain()
    sms = _outbox(runtime)
    assert len(sms) == 2 and {m["message"]["channel"] for m in sms} == {"sms"}
    # When the first one orders: she leaves as converted; the other gets the push a day later
    order = _event(
        "order_placed",
        phones[0],
        "2",
        order_id="J-E2E-1",
        lines=[{"sku": "CAKE-1", "quantity": 1, "unit_price_minor": 8800}],
        total_minor=8800,
        currency="CNY",
    )
    response, report = post_events([order])
    assert response.status == 202 and report.dead_lettered == 0
    runtime.fire_schedule(topology.CAMPAIGN_TICK.local_name, started + timedelta(days=1, hours=2))
    runtime.drain()
    messages = _outbox(runtime)
    assert len(messages) == 3 and sum("CART10" in m["message"]["body"] for m in messages) == 1  # the coupon step
    results = _api(runtime, "GET", f"/v1/campaigns/{CAMPAIGN}/journey?brand_id={BRAND}")
    assert results["by_status"]["treatment"] == {"converted": 1, "completed": 1}
    assert results["spent_minor"] == 3 * 5
    assert results["messages"] == {"sent": 3}  # tallied by the send function as it delivered them


def test_a_lifecycle_change_announced_by_the_tag_engine_enters_a_win_back_journey(
    runtime: LocalRuntime, post_events: PostEvents
) -> None:
    from cdp.tags.announcements import TagTransition

    # Given a live win-back journey (an SMS at once) for persons turning dormant, and a customer who opted in
    definition = {
        "campaign_id": "e2e_win_back",
        "brand_id": BRAND,
        "name": "Win back",
        "trigger": {"lifecycle": {"to": "dormant"}},
        "steps": [{"send": {"channel": "sms", "template": {"body": "We miss you"}}}],
        "budget": {"amount_minor": 100, "currency": "CNY", "cost_per_message_minor": {"sms": 5}},
        "holdout": 0.0,
    }
    _api(runtime, "POST", "/v1/campaigns", definition)
    _api(runtime, "POST", f"/v1/campaigns/e2e_win_back/activate?brand_id={BRAND}")
    phone = "13766500009"
    consent = _event("consent_changed", phone, "c", channel="all", granted=True, purpose="marketing")
    response, report = post_events([consent])
    assert response.status == 202 and report.dead_lettered == 0
    person = _api(runtime, "GET", f"/v1/profiles/by-identifier/phone/{phone}?brand_id={BRAND}")["person_id"]
    # When the tag engine announces that the person turned dormant (as tag_update publishes it)
    change = TagTransition(
        person_id=person, brand_id=BRAND, tag="lifecycle", from_="mature", to="dormant", at=utc_now()
    )
    runtime.client("events").put_events(
        Entries=[
            {
                "Source": change.event_source,
                "DetailType": change.event_name,
                "Detail": json.dumps(change.envelope("e2e")),
                "EventBusName": topology.EVENT_BUS_LOCAL_NAME,
            }
        ]
    )
    report = runtime.drain()
    # Then the journey took them in and the SMS left
    assert report.dead_lettered == 0
    results = _api(runtime, "GET", f"/v1/campaigns/e2e_win_back/journey?brand_id={BRAND}")
    assert results["entered"]["treatment"] == 1 and results["spent_minor"] == 5


def test_a_journey_entry_reserves_its_coupon_at_entry_and_gives_the_rest_back_when_it_leaves(
    runtime: LocalRuntime, post_events: PostEvents
) -> None:
    # Given a pool of 25.00 and a 10.00 cart coupon paid from it, and a journey: SMS with the coupon, a day, the end
    pool = {"brand_id": BRAND, "pool_id": "e2e-journey-coupons", "total_minor": 2_500, "currency": "CNY"}
    _api(runtime, "POST", "/v1/budgets", pool)
    coupon = {
        "brand_id": BRAND,
        "offer_id": "e2e-cart-10",
        "name": "10 off your cart",
        "currency": "CNY",
        "coupon": {"amount_off_minor": 1_000},
        "validity": {"days": 7},
        "budget_pools": ["e2e-journey-coupons"],
    }
    _api(runtime, "POST", "/v1/offers", coupon)
    journey = {
        "campaign_id": "e2e_coupon_journey",
        "brand_id": BRAND,
        "name": "Cart coupon",
        "trigger": {"event": "add_to_cart"},
        "exit_on": ["order_placed"],
        "steps": [
            {"wait": {"hours": 1}},
            {
                "send": {
                    "channel": "sms",
                    "template": {"body": "{{ offer.code }}"},
                    "offer": {"offer_id": "e2e-cart-10"},
                }
            },
            {"wait": {"days": 1}},
        ],
        "budget": {"amount_minor": 1_000, "currency": "CNY", "cost_per_message_minor": {"sms": 5}},
        "holdout": 0.0,
    }
    _api(runtime, "POST", "/v1/campaigns", journey)
    _api(runtime, "POST", f"/v1/campaigns/e2e_coupon_journey/activate?brand_id={BRAND}")
    phones = ["13766500021", "13766500022", "13766500023"]
    consents = [_event("consent_changed", p, "c", channel="all", granted=True, purpose="marketing") for p in phones]
    post_events(consents)

    def balance() -> tuple[int, int, int]:
        pools = _api(runtime, "GET", f"/v1/budgets?brand_id={BRAND}")["pools"]
        found = next(p for p in pools if p["pool"]["pool_id"] == "e2e-journey-coupons")
        return found["available_minor"], found["reserved_minor"], found["committed_minor"]

    # When three shoppers add to their carts: two entries' coupons fit the pool, the third cannot enter
    started = utc_now()
    cart = [
        _event("add_to_cart", p, "cj", sku="CAKE-2", quantity=1, unit_price_minor=8800, currency="CNY") for p in phones
    ]
    response, report = post_events(cart)
    assert response.status == 202 and report.dead_lettered == 0
    assert balance() == (500, 2_000, 0)
    results = _api(runtime, "GET", f"/v1/campaigns/e2e_coupon_journey/journey?brand_id={BRAND}")
    assert results["by_status"]["treatment"] == {"active": 2, "out_of_budget": 1}
    # When the first shopper orders before the SMS: she leaves, and her entry's plan goes back to the pool
    lines = [{"sku": "CAKE-2", "quantity": 1, "unit_price_minor": 8800}]
    order = _event("order_placed", phones[0], "cj", order_id="CJ-1", lines=lines, total_minor=8800, currency="CNY")
    post_events([order])
    assert balance() == (1_500, 1_000, 0)
    # When the SMS goes out an hour later: the other's coupon is carved from her plan, the pool does not move
    runtime.fire_schedule(topology.CAMPAIGN_TICK.local_name, started + timedelta(hours=1, minutes=1))
    runtime.drain()
    assert balance() == (1_500, 1_000, 0)
    assert len(_outbox_of(runtime, "e2e_coupon_journey")) == 1
    # When she leaves a day later: her plan was all carved (the coupon keeps its own hold), nothing else goes back
    runtime.fire_schedule(topology.CAMPAIGN_TICK.local_name, started + timedelta(days=1, hours=2))
    runtime.drain()
    results = _api(runtime, "GET", f"/v1/campaigns/e2e_coupon_journey/journey?brand_id={BRAND}")
    assert results["by_status"]["treatment"] == {"converted": 1, "completed": 1, "out_of_budget": 1}
    assert balance() == (1_500, 1_000, 0)


def test_a_journey_paying_its_messages_from_a_pool_reserves_each_entrys_sms_and_spends_what_leaves(
    runtime: LocalRuntime, post_events: PostEvents
) -> None:
    # Given a message pool of 0.12 and a journey whose one SMS (5 fen) is paid from it
    pool = {"brand_id": BRAND, "pool_id": "e2e-journey-sms", "total_minor": 12, "currency": "CNY", "form": "message"}
    _api(runtime, "POST", "/v1/budgets", pool)
    journey = {
        "campaign_id": "e2e_paid_journey",
        "brand_id": BRAND,
        "name": "Paid reminder",
        "trigger": {"event": "add_to_cart"},
        "exit_on": ["order_placed"],
        "steps": [{"wait": {"hours": 1}}, {"send": {"channel": "sms", "template": {"body": "Your cart is waiting"}}}],
        "budget": {
            "amount_minor": 1_000,
            "currency": "CNY",
            "cost_per_message_minor": {"sms": 5},
            "pool_id": "e2e-journey-sms",
        },
        "holdout": 0.0,
    }
    _api(runtime, "POST", "/v1/campaigns", journey)
    _api(runtime, "POST", f"/v1/campaigns/e2e_paid_journey/activate?brand_id={BRAND}")
    phones = ["13766500031", "13766500032", "13766500033"]
    post_events([_event("consent_changed", p, "pj", channel="all", granted=True, purpose="marketing") for p in phones])

    def balance() -> tuple[int, int, int]:
        pools = _api(runtime, "GET", f"/v1/budgets?brand_id={BRAND}")["pools"]
        found = next(p for p in pools if p["pool"]["pool_id"] == "e2e-journey-sms")
        return found["available_minor"], found["reserved_minor"], found["committed_minor"]

    # When three shoppers add to their carts: two entries' SMS fit the pool, the third cannot enter
    started = utc_now()
    cart = [
        _event("add_to_cart", p, "pj", sku="CAKE-3", quantity=1, unit_price_minor=8800, currency="CNY") for p in phones
    ]
    post_events(cart)
    assert balance() == (2, 10, 0)
    results = _api(runtime, "GET", f"/v1/campaigns/e2e_paid_journey/journey?brand_id={BRAND}")
    assert results["by_status"]["treatment"] == {"active": 2, "out_of_budget": 1}
    # When the first orders before the SMS: her entry's 5 go back; the other's SMS leaves and is paid from her plan
    lines = [{"sku": "CAKE-3", "quantity": 1, "unit_price_minor": 8800}]
    post_events(
        [_event("order_placed", phones[0], "pj", order_id="PJ-1", lines=lines, total_minor=8800, currency="CNY")]
    )
    assert balance() == (7, 5, 0)
    runtime.fire_schedule(topology.CAMPAIGN_TICK.local_name, started + timedelta(hours=1, minutes=1))
    runtime.drain()
    assert len(_outbox_of(runtime, "e2e_paid_journey")) == 1
    assert balance() == (7, 0, 5)


def _outbox_of(runtime: LocalRuntime, campaign: str) -> list[dict[str, Any]]:
    s3 = runtime.client("s3")
    listed = s3.list_objects_v2(Bucket=topology.DATA_BUCKET_LOCAL_NAME, Prefix=f"{topology.OUTBOX_PREFIX}")
    out = []
    for obj in listed.get("Contents", []):
        if f"/{campaign}-v1-journey/" in obj["Key"]:
            body = s3.get_object(Bucket=topology.DATA_BUCKET_LOCAL_NAME, Key=obj["Key"])["Body"].read()
            out.append(json.loads(body))
    return out
