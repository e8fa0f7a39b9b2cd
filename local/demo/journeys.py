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
APP_PROMPT_SHARE = 0.1  # app users (besides the shoppers) who open the app's new version this week
APP_OPT_IN_SHARE = 0.7  # of those the app asks, who allow notifications
INBOX_READ_SHARE = 0.6  # buyers who read the tips in the app's inbox
BIRTHDAY_WECHAT_TEMPLATE = "TM-birthday-cake-7d"  # chosen in the official account's console (the fake knows them)
COLD_SNAP_WECHAT_TEMPLATE = "TM-weather-offer"
WECHAT_TEMPLATES = {
    BIRTHDAY_WECHAT_TEMPLATE: ("thing1", "thing2", "character_string3"),
    COLD_SNAP_WECHAT_TEMPLATE: ("thing1", "thing2"),
}
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
                    "channel": "wechat",  # a template message to followers of the official account, else an SMS
                    "or_channels": ["sms"],
                    "template": {
                        "body": "{{ traits.name or 'Hi' }}, your birthday is coming: order a cake with "
                        "{{ offer.code }} for a free candle set. Reply TD to opt out",
                        "wechat": {
                            "template_id": BIRTHDAY_WECHAT_TEMPLATE,
                            "fields": {
                                "thing1": "{{ traits.name or '会员' }}",
                                "thing2": "生日蛋糕 · 赠蜡烛套装",
                                "character_string3": "{{ offer.code }}",
                            },
                            "url": "https://shop.example.cn/birthday",
                        },
                    },
                    "offer": {"coupon_id": "bday-candles", "code": "BDAY"},
                }
            },
            {
                "send": {
                    "channel": "webhook",  # the store's clienteling app: staff call to reserve the cake
                    "purpose": "service",
                    "template": {"body": "Birthday in a week: offer to reserve a cake for {{ traits.name or 'them' }}"},
                }
            },
        ],
        "reentry_after_days": 300,
        "budget": {**budget, "cost_per_message_minor": {"sms": 5, "wechat": 1, "webhook": 0}},
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
                    "channel": "push",  # to app users who allow notifications, else WeChat, else an SMS
                    "or_channels": ["wechat", "sms"],
                    "template": {
                        "subject": "Hot chocolate 2 for 1",
                        "body": "Freezing out there: hot chocolate 2 for 1 today. Reply TD to opt out",
                        "wechat": {
                            "template_id": COLD_SNAP_WECHAT_TEMPLATE,
                            "fields": {"thing1": "热巧克力 买一送一", "thing2": "今日北京降温 暖一暖"},
                        },
                    },
                }
            }
        ],
        "budget": {**budget, "cost_per_message_minor": {"sms": 5, "push": 1, "wechat": 1}},
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
    customers = _customers(rt, brand_id)
    shoppers = _shoppers(customers, seed)
    # The app's new version asks for notifications (push and the in-app inbox) as people open it: the shoppers now,
    # some of its other users this week; most allow
    opted_in = _app_opt_ins(rt, customers, brand_id, now, seed, set(shoppers))
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

    # Buyers open the app: most read the tips in their inbox (each read is the message's receipt)
    inbox_reads = _read_inboxes(rt, brand_id, buyers, seed)

    results = {
        cid: call_api(rt, "GET", f"/v1/campaigns/{cid}/journey?brand_id={brand_id}")
        for cid in (CART, BIRTHDAY, COLD_SNAP)
    }
    return {
        "sweeps": swept,
        "cart_shoppers": len(shoppers),
        "cart_buyers": len(buyers),
        "app_opt_ins": opted_in,
        "inbox_reads": inbox_reads,
        "journeys": {
            cid: {
                "entered": r["entered"],
                "by_status": r["by_status"],
                "converted": r["converted"],
                "messages": r["messages"],
                "spent_minor": r["spent_minor"],
                "verdict": (r.get("lift") or {}).get("verdict"),
                "steps": r.get("steps", []),  # the funnel per step: the same answer, no stage of its own
            }
            for cid, r in results.items()
        },
    }


def _customers(rt: LocalRuntime, brand_id: str) -> list[Profile]:
    """The brand's persons as they are now (one scan for every scene)."""
    store = DynamoProfileStore(topology.PROFILES_TABLE.local_name, client=rt.client("dynamodb"))
    return [
        profile
        for shard in range(4)
        for profile in store.scan_shard(shard, 4)
        if profile.brand_id == brand_id and not profile.merged_into
    ]


def _shoppers(customers: list[Profile], seed: int) -> list[str]:
    """Phones of customers who opted in to marketing SMS (a stable sample)."""
    phones = sorted(phone for profile in customers if profile.has_consent("sms") and (phone := _phone(profile)))
    return random.Random(seed).sample(phones, min(CART_SHOPPERS, len(phones)))


def _app_opt_ins(
    rt: LocalRuntime, customers: list[Profile], brand_id: str, now: datetime, seed: int, shoppers: set[str]
) -> int:
    """App users answer the app's notification prompt: every shopper with the app (they are in it now) and
    `APP_PROMPT_SHARE` of its other users see it, `APP_OPT_IN_SHARE` allow it: push and in-app consent, by the device
    the app runs on. Returns how many allowed."""
    users = sorted((device, _phone(profile) in shoppers) for profile in customers if (device := _device(profile)))
    rng = random.Random(seed)
    prompted = [device for device, shopping in users if shopping or rng.random() < APP_PROMPT_SHARE]
    allowed = [d for d in prompted if rng.random() < APP_OPT_IN_SHARE]
    at = (now - timedelta(minutes=5)).isoformat()
    events = [
        {
            "event_id": f"demo-app-opt-in-{channel}-{device}",
            "event_type": "consent_changed",
            "source": "app",
            "brand_id": brand_id,
            "occurred_at": at,
            "identifiers": [{"type": "device_id", "value": device}],
            "properties": {"channel": channel, "granted": True, "purpose": "marketing"},
        }
        for device in allowed
        for channel in ("push", "inapp")
    ]
    _post(rt, events)
    return len(allowed)


def _device(profile: Profile) -> str | None:
    return next(
        (k.removeprefix("device_id:") for k in reversed(profile.identifiers) if k.startswith("device_id:")), None
    )


def _read_inboxes(rt: LocalRuntime, brand_id: str, phones: list[str], seed: int) -> dict[str, int]:
    """The brand's app, for each buyer who opens it: a token from the brand's backend, the inbox listed, the newest
    message read by most (`INBOX_READ_SHARE`)."""
    rng = random.Random(seed + 7)
    listed = read = 0
    for phone in phones:
        body = {"brand_id": brand_id, "identifier": {"type": "phone", "value": phone}, "valid_hours": 1}
        token = call_api(rt, "POST", "/v1/inbox/tokens", body)["token"]
        bearer = {"authorization": f"Bearer {token}"}
        inbox = rt.http("GET", "/v1/inbox", b"", bearer)
        if inbox.status != 200:
            raise DemoFailed(f"GET /v1/inbox answered {inbox.status}: {inbox.body[:300]!r}")
        messages = json.loads(inbox.body)["messages"]
        listed += len(messages)
        if messages and rng.random() < INBOX_READ_SHARE:
            answer = rt.http("POST", f"/v1/inbox/{messages[0]['message_id']}/read", b"", bearer)
            if answer.status != 200:
                raise DemoFailed(f"reading an in-app message answered {answer.status}: {answer.body[:300]!r}")
            read += 1
    rt.drain()
    return {"messages_listed": listed, "read": read}


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
