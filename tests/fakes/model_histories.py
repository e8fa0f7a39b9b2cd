"""Synthetic persons with a known, hidden response model, for training/scoring tests.

Each person has a latent engagement `e` in [0, 1]. Engagement drives past behaviour (orders, page views, cart adds)
and, when `signal` is on, the chance of ordering after the campaign delivery: P = sigmoid(-2 + 5 * (e - 0.5) * 2).
With `signal` off the response is a coin with the same base rate, unrelated to anything observable.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cdp import topology
from cdp.identifiers.link_rules import DEFAULT_RULES
from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.models.labels import PersonHistory
from cdp.org import load_org
from cdp.profile import keys
from cdp.profile.models import Profile, apply_event
from cdp.shared.dynamo import to_item
from cdp.shared.time import iso

HORIZON = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
CAMPAIGN_ID = "summer-sale"
DELIVERED_AT = HORIZON - timedelta(days=30)
BRAND = "acme"


@dataclass(frozen=True)
class Synthetic:
    histories: list[PersonHistory]
    engagement: dict[str, float]
    responded: dict[str, bool]


def _event(person: str, n: int, event_type: str, at: datetime, **properties: object) -> CanonicalEvent:
    return parse_event(
        {
            "event_id": f"{person}-{n}",
            "event_type": event_type,
            "source": "app",
            "brand_id": BRAND,
            "occurred_at": at.isoformat(),
            "identifiers": [{"type": "device_id", "value": f"dev-{person}"}],
            "properties": properties,
        }
    )


def _order(person: str, n: int, at: datetime, total_minor: int, category: str = "cakes") -> CanonicalEvent:
    line = {"sku": f"sku-{category}", "category": category, "quantity": 1, "unit_price_minor": total_minor}
    return _event(
        person, n, "order_placed", at, order_id=f"o-{person}-{n}", lines=[line], total_minor=total_minor, currency="CNY"
    )


def synthetic_histories(n_persons: int, seed: int = 7, *, signal: bool = True) -> Synthetic:
    rng = random.Random(seed)
    histories: list[PersonHistory] = []
    engagement: dict[str, float] = {}
    responded: dict[str, bool] = {}
    for i in range(n_persons):
        pid = f"p{i:05d}"
        e = rng.random()
        engagement[pid] = e
        first_seen = DELIVERED_AT - timedelta(days=200 + rng.randint(0, 150))
        events: list[CanonicalEvent] = [
            _event(pid, 0, "identify", first_seen, member_level="gold" if e > 0.7 else None)
        ]
        n = 1
        span = (DELIVERED_AT - first_seen).total_seconds()
        for _ in range(int(e * 6 + rng.random() * 1.5)):  # past orders grow with engagement
            at = first_seen + timedelta(seconds=rng.uniform(0.1, 0.98) * span)
            events.append(_order(pid, n, at, rng.randint(2_000, 40_000)))
            n += 1
        for _ in range(int(e * 8 + rng.random() * 2)):  # recent browsing grows with engagement
            at = DELIVERED_AT - timedelta(hours=rng.uniform(1, 29 * 24))
            events.append(_event(pid, n, "page_view", at, url="https://shop.example/cakes"))
            n += 1
        events.append(
            _event(
                pid, n, "message_delivered", DELIVERED_AT, message_id=f"m-{pid}", channel="sms", campaign_id=CAMPAIGN_ID
            )
        )
        n += 1
        p = 1 / (1 + math.exp(-(-2.0 + 10.0 * (e - 0.5)))) if signal else 0.3
        responded[pid] = rng.random() < p
        if responded[pid]:
            events.append(_order(pid, n, DELIVERED_AT + timedelta(hours=rng.uniform(1, 10 * 24)), 9_900))
            n += 1
        # activity after the window's start must never reach a feature row as of the delivery
        events.append(_event(pid, n, "page_view", DELIVERED_AT + timedelta(days=20), url="https://shop.example/late"))
        profile = Profile(person_id=pid, brand_id=BRAND, created_at=first_seen, updated_at=HORIZON)
        histories.append(PersonHistory(profile, sorted(events, key=lambda ev: ev.occurred_at)))
    return Synthetic(histories, engagement, responded)


def seed_profiles_table(db: Any, histories: Sequence[PersonHistory]) -> int:
    """Write persons and their timelines into the local profiles table in the profile store's layout, with
    BatchWriteItem (resolving each event through identity is ~10x slower under moto); returns the events written.
    Identifier index items are not written: these persons are found by id."""
    pk, sk = topology.PROFILES_TABLE.partition_key, topology.PROFILES_TABLE.sort_key
    items: list[dict[str, Any]] = []
    events = 0
    for history in histories:
        profile = history.profile
        namespace = load_org().brand(profile.brand_id).namespace
        for event in history.events:
            profile = apply_event(profile, event)
            anchor = DEFAULT_RULES.anchor(i.key for i in event.identifiers)
            assert anchor is not None
            profile.identifiers = sorted({*profile.identifiers, *(i.key for i in event.identifiers)})
            items.append(
                {
                    pk: keys.anchor_pk(namespace, anchor),
                    sk: keys.timeline_sk(event.occurred_at, event.event_id),
                    "event_type": event.event_type,
                    "occurred_at": iso(event.occurred_at),
                    "event": event.model_dump_json(),
                }
            )
            events += 1
        items.append(
            {
                pk: keys.person_pk(profile.person_id),
                sk: keys.PROFILE_SK,
                **profile.model_dump(mode="json", exclude={"merged_into", "dissolved", "next_tag_expiry"}),
            }
        )
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": to_item(item)}} for item in items[start : start + 25]]
        db.batch_write_item(RequestItems={topology.PROFILES_TABLE.local_name: batch})
    return events
