"""The demo's triggered journeys, run as a marketer and the brand's systems would: three journeys defined and made live
through the campaign API, carts added and orders placed through the events API, a cold snap posted to the signals
API, and the schedule's tick driving the clock (a day of journey in seconds). The brand's contact policy (2 SMS and
4 messages per 7 days) meets the winter-cake campaign's SMS that went out just before, so some messages are
suppressed by the caps; the summary counts them."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from cdp import topology
from cdp.profile.dynamodb import DynamoProfileStore
from cdp.profile.models import Profile
from cdp.shared.time import utc_now
from cdp_local.demo.api import DemoFailed, call_api
from cdp_local.runtime import LocalRuntime

CAMPAIGNS = Path(__file__).resolve().parents[2] / "events" / "campaigns"
CART = "cart_recovery"
BIRTHDAY = "demo_birthday_cake"
COLD_SNAP = "demo_cold_snap"
COLD_CITY = "Beijing"
CART_SKU = "CAKE-CHESTNUT-6IN"
CART_SHOPPERS = 60
BUYERS_SHARE = 0.35


def definitions(brand_id: str) -> list[dict[str, Any]]:
    """The three journeys: cart recovery (the sample), a birthday cake 7 days ahead, and hot drinks on a cold snap."""
    cart = yaml.safe_load((CAMPAIGNS / "cart_recovery.yaml").read_text(encoding="utf-8"))
    budget = {"amount_minor": 20_000, "currency": "CNY", "cost_per_message_minor": {"sms": 5}}
    birthday = {
        "campaign_id": BIRTHDAY,
        "brand_id": brand_id,
        "name": "Birthday cake, a week ahead",
        "trigger": {"date": {"of": "birthday", "days_before": 7, "at": "00:00"}},
        "steps": [
            {
                "send": {
                    "channel": "sms",
                    "template": {
                        "body": "{{ traits.name or 'Hi' }}, your birthday is coming: order a cake with "
                        "{{ offer.code }} for a free candle set. Reply TD to opt out"
                    },
                    "offer": {"coupon_id": "bday-candles", "code": "BDAY"},
                }
            }
        ],
        "reentry_after_days": 300,
        "budget": budget,
        "holdout": 0.1,
    }
    cold = {
        "campaign_id": COLD_SNAP,
        "brand_id": brand_id,
        "name": "Cold snap: hot drinks",
        "trigger": {"weather": {"city": COLD_CITY, "below_c": 0}},
        "steps": [
            {
                "send": {
                    "channel": "sms",
                    "template": {"body": "Freezing out there: hot chocolate 2 for 1 today. Reply TD to opt out"},
                }
            }
        ],
        "budget": budget,
        "holdout": 0.1,
    }
    return [{**cart, "brand_id": brand_id}, birthday, cold]


def run_journey_scenes(
    rt: LocalRuntime,
    brand_id: str,
    now: datetime,
    seed: int,
    with_templates: Callable[[dict[str, Any]], dict[str, Any]] = lambda definition: definition,
) -> dict[str, Any]:
    """Define and run the scenes (`with_templates`: each definition as the brand's providers need it, e.g. its SMS
    templates registered); returns each journey's results (entered, where they are, messages by outcome)."""
    for definition in definitions(brand_id):
        call_api(rt, "POST", "/v1/campaigns", with_templates(definition))
        call_api(rt, "POST", f"/v1/campaigns/{definition['campaign_id']}/activate?brand_id={brand_id}")
    tick = topology.CAMPAIGN_TICK.local_name

    # Carts: shoppers add a cake; about a third order that cake within the hour, the rest get the journey's reminders
    shoppers = _shoppers(rt, brand_id, seed)
    carts = [
        _event(
            "add_to_cart",
            p,
            now,
            brand_id,
            sku=CART_SKU,
            category="birthday_cake",
            quantity=1,
            unit_price_minor=16800,
            currency="CNY",
        )
        for p in shoppers
    ]
    _post(rt, carts)
    rng = random.Random(seed)
    buyers = [p for p in shoppers if rng.random() < BUYERS_SHARE]
    orders = [
        _event(
            "order_placed",
            p,
            now + timedelta(minutes=20),
            brand_id,
            order_id=f"demo-cart-{p[-6:]}",
            lines=[{"sku": CART_SKU, "category": "birthday_cake", "quantity": 1, "unit_price_minor": 16800}],
            total_minor=16800,
            currency="CNY",
        )
        for p in buyers
    ]
    _post(rt, orders)
    for later in (timedelta(minutes=61), timedelta(days=1, minutes=2), timedelta(days=2, minutes=30)):
        rt.fire_schedule(tick, now + later)
        rt.drain()

    # A cold snap in Beijing: 3 C, then -4 C an hour later (the crossing; the feed's readings carry its own clock);
    # the tick two days on runs its sweep and the birthday week's. Customers who got the winter-cake SMS and a cart
    # reminder this week have had their 2 SMS
    late = now + timedelta(days=2, hours=1)
    for celsius, minutes in ((3.0, -60), (-4.0, 0)):  # the feed posts when it observes: a signal is never ahead
        at = (min(late, utc_now()) + timedelta(minutes=minutes)).isoformat()
        reading = {"kind": "weather", "city": COLD_CITY, "temperature_c": celsius, "observed_at": at}
        call_api(rt, "POST", f"/v1/signals?brand_id={brand_id}", reading)
    rt.drain()
    swept = rt.fire_schedule(tick, late).result["sweeps"]
    rt.drain()

    results = {
        cid: call_api(rt, "GET", f"/v1/campaigns/{cid}/journey?brand_id={brand_id}")
        for cid in (CART, BIRTHDAY, COLD_SNAP)
    }
    return {
        "sweeps": swept,
        "cart_shoppers": len(shoppers),
        "cart_buyers": len(buyers),
        "journeys": {
            cid: {
                "entered": r["entered"],
                "by_status": r["by_status"],
                "converted": r["converted"],
                "messages": r["messages"],
                "spent_minor": r["spent_minor"],
                "verdict": (r.get("lift") or {}).get("verdict"),
            }
            for cid, r in results.items()
        },
    }


def _shoppers(rt: LocalRuntime, brand_id: str, seed: int) -> list[str]:
    """Phones of customers who opted in to marketing SMS (a stable sample)."""
    store = DynamoProfileStore(topology.PROFILES_TABLE.local_name, client=rt.client("dynamodb"))
    phones = sorted(
        phone
        for shard in range(4)
        for profile in store.scan_shard(shard, 4)
        if profile.brand_id == brand_id and profile.has_consent("sms") and (phone := _phone(profile))
    )
    return random.Random(seed).sample(phones, min(CART_SHOPPERS, len(phones)))


def _phone(profile: Profile) -> str | None:
    return next((k.removeprefix("phone:") for k in reversed(profile.identifiers) if k.startswith("phone:")), None)


def _event(kind: str, phone: str, at: datetime, brand_id: str, **properties: Any) -> dict[str, Any]:
    return {
        "event_id": f"demo-journey-{kind}-{phone}",
        "event_type": kind,
        "source": "app",
        "brand_id": brand_id,
        "occurred_at": at.isoformat(),
        "identifiers": [{"type": "phone", "value": phone}],
        "properties": properties,
    }


def _post(rt: LocalRuntime, events: list[dict[str, Any]]) -> None:
    headers = {"content-type": "application/json", "x-api-key": rt.api_key}
    for start in range(0, len(events), 100):
        body = json.dumps({"batch": events[start : start + 100]}).encode()
        response = rt.http("POST", "/v1/events", body, headers)
        if response.status != 202:
            raise DemoFailed(f"POST /v1/events answered {response.status}: {response.body[:300]!r}")
    rt.drain()
