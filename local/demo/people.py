"""True persons of the synthetic brand, the identifiers each channel knows them by, and event construction.

A `TruePerson` carries hidden attributes the platform never sees directly (responsiveness, true purchase rate);
it only sees their traces: canonical events with the identifiers each channel really knows.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from cdp.shared.time import iso
from cdp_local.demo.catalog import (
    BRAND_ID,
    CURRENCY,
    EVERYDAY_CATEGORIES,
    PRODUCTS_BY_CATEGORY,
    Product,
)

RawId = tuple[str, str, str | None]  # (type, value as typed, scope)
Gender = Literal["female", "male", "other", "unknown"]

# Sources on which a person can place an order (the official account is content only).
ORDER_SOURCES = ("app", "web", "mini_program", "tmall", "jd", "pos")
# How much of the hidden uplift each message channel delivers (SMS is the reference).
CHANNEL_UPLIFT_FACTOR: dict[str, float] = {"sms": 1.0, "email": 0.6, "push": 0.8, "wechat": 0.9, "webhook": 0.0}
MAX_UPLIFT = 0.5


@dataclass
class ConsentHistory:
    """Marketing consent changes for one channel, oldest first."""

    changes: list[tuple[datetime, bool]] = field(default_factory=list)

    def granted_at(self, moment: datetime) -> bool:
        state = False
        for changed_at, granted in self.changes:
            if changed_at <= moment:
                state = granted
        return state


@dataclass
class TruePerson:
    person_id: str
    name: str
    gender: Gender
    birthday: date
    city: str
    country: str
    timezone: str
    member_level: str | None
    channels: tuple[str, ...]
    home_store: str | None
    affinity: dict[str, float]
    first_seen: datetime
    # hidden behaviour
    order_rate: float  # everyday orders per year; birthday cakes and air conditioners come on top
    responsiveness: float  # 0..1, how much a marketing touch moves this person
    cake_buyer: bool
    ac_buyer: bool
    # identifiers (values as the person types them; keys are normalized elsewhere)
    phone: str
    email: str | None = None
    app_device: str | None = None
    web_device: str | None = None
    unionid: str | None = None
    openid_mini: str | None = None
    openid_oa: str | None = None
    tmall_id: str | None = None
    jd_id: str | None = None
    member_card: str | None = None
    phone_bound: frozenset[str] = frozenset()  # platforms where the member bound their phone
    dealer_level: str | None = None
    household_id: str | None = None
    seed_scenario: bool = False
    sms_consent: ConsentHistory = field(default_factory=ConsentHistory)
    email_consent: ConsentHistory = field(default_factory=ConsentHistory)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def order_sources(self) -> tuple[str, ...]:
        return tuple(c for c in self.channels if c in ORDER_SOURCES)

    def baseline_probability(self, days: int) -> float:
        """Chance of at least one order in `days` without any marketing touch (Poisson process)."""
        return 1.0 - math.exp(-self.order_rate * days / 365.0)

    def uplift(self, channel: str) -> float:
        """Hidden extra chance of ordering within the response window because of one message on `channel`."""
        reachable = {
            "sms": True,
            "email": self.email is not None,
            "push": "app" in self.channels,
            "wechat": self.unionid is not None,
            "webhook": False,
        }.get(channel, False)
        return MAX_UPLIFT * self.responsiveness * CHANNEL_UPLIFT_FACTOR.get(channel, 0.0) if reachable else 0.0

    def identifiers(self, source: str, *, with_phone: bool | None = None) -> list[RawId]:
        """What `source` knows about this person on a logged-in interaction."""
        ids: list[RawId] = []
        if source == "app":
            ids = [("phone", self.phone, None), ("device_id", _req(self.app_device), None)]
        elif source == "web":
            ids = [("email", _req(self.email), None), ("device_id", _req(self.web_device), None)]
            if with_phone:
                ids.append(("phone", self.phone, None))
        elif source == "mini_program":
            if self.seed_scenario:  # scenario C: the mini-program knows the e-mail and the OpenID, nothing more
                ids = [("email", _req(self.email), None), ("wechat_openid", _req(self.openid_mini), "wx-mini-app")]
            else:
                ids = [
                    ("wechat_openid", _req(self.openid_mini), "wx-mini-app"),
                    ("wechat_unionid", _req(self.unionid), None),
                ]
                if "mini_program" in self.phone_bound:
                    ids.append(("phone", self.phone, None))
        elif source == "wechat_oa":
            ids = [("wechat_openid", _req(self.openid_oa), "wx-oa"), ("wechat_unionid", _req(self.unionid), None)]
        elif source in ("tmall", "jd"):
            buyer = self.tmall_id if source == "tmall" else self.jd_id
            ids = [("platform_buyer_id", _req(buyer), source)]
            if with_phone:
                ids.append(("phone", self.phone, None))
        elif source == "pos":
            # members show their card, sometimes with the phone; others give the phone at the counter
            ids = [("phone", self.phone, None)]
            if self.member_card:
                ids = [("member_card", self.member_card, None), *(ids if with_phone else [])]
        else:
            raise ValueError(f"no identifiers for source {source}")
        return ids


def _req(value: str | None) -> str:
    if value is None:
        raise ValueError("the person has no identifier for this channel")
    return value


_HOURS = tuple(range(9, 23))
_HOUR_WEIGHTS = (2, 3, 3, 4, 3, 3, 3, 3, 3, 4, 6, 7, 6, 3)  # evening peak


def local_moment(day: date, tz: ZoneInfo, rng: random.Random) -> datetime:
    """A plausible waking-hours moment on `day` in the person's own time zone, as UTC."""
    hour = rng.choices(_HOURS, weights=_HOUR_WEIGHTS)[0]
    local = datetime.combine(day, time(hour, rng.randrange(60), rng.randrange(60)), tzinfo=tz)
    return local.astimezone(UTC)


def display_phone(phone: str, rng: random.Random) -> str:
    """Channels write the same mobile number in different shapes; normalization makes them one key."""
    roll = rng.random()
    if roll < 0.7:
        return phone
    if roll < 0.85:
        return f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}"
    return f"+86{phone}"


class EventFactory:
    """Builds canonical event dicts (JSON-ready, schema version 1) with unique ids under one prefix."""

    def __init__(self, prefix: str, rng: random.Random) -> None:
        self.prefix = prefix
        self.rng = rng
        self._seq = 0

    def next_id(self, kind: str = "e") -> str:
        self._seq += 1
        return f"{self.prefix}{kind}{self._seq:08d}"

    def event(
        self,
        event_type: str,
        source: str,
        when: datetime,
        ids: list[RawId],
        properties: Mapping[str, Any] | None = None,
        store_id: str | None = None,
    ) -> dict[str, Any]:
        identifiers = []
        for kind, value, scope in ids:
            shown = display_phone(value, self.rng) if kind == "phone" else value
            identifier: dict[str, str] = {"type": kind, "value": shown}
            if scope:
                identifier["scope"] = scope
            identifiers.append(identifier)
        event: dict[str, Any] = {
            "schema_version": "1",
            "event_id": self.next_id(),
            "event_type": event_type,
            "source": source,
            "brand_id": BRAND_ID,
            "occurred_at": iso(when),
            "identifiers": identifiers,
            "properties": dict(properties or {}),
        }
        if store_id:
            event["store_id"] = store_id
        return event

    def order_lines(self, person: TruePerson, category: str | None = None) -> list[dict[str, Any]]:
        rng = self.rng
        if category is not None:
            products: list[Product] = [rng.choice(PRODUCTS_BY_CATEGORY[category])]
        else:
            weights = [person.affinity[c] for c in EVERYDAY_CATEGORIES]
            cats = rng.choices(EVERYDAY_CATEGORIES, weights=weights, k=rng.choices((1, 2, 3), weights=(6, 3, 1))[0])
            products = list({p.sku: p for p in (rng.choice(PRODUCTS_BY_CATEGORY[c]) for c in cats)}.values())
        return [
            {
                "sku": p.sku,
                "name": p.name,
                "category": p.category,
                "quantity": 1 if p.unit_price_minor > 100_000 else rng.choices((1, 2, 3), weights=(7, 2, 1))[0],
                "unit_price_minor": p.unit_price_minor,
            }
            for p in products
        ]

    def order(
        self,
        person: TruePerson,
        source: str,
        when: datetime,
        lines: list[dict[str, Any]],
        *,
        ids: list[RawId] | None = None,
        discount_minor: int = 0,
        coupon_id: str | None = None,
        campaign_id: str | None = None,
    ) -> dict[str, Any]:
        total = sum(line["quantity"] * line["unit_price_minor"] for line in lines) - discount_minor
        props: dict[str, Any] = {
            "order_id": self.next_id("o"),
            "lines": lines,
            "total_minor": total,
            "currency": CURRENCY,
            "fulfilment": "offline" if source == "pos" else "online",
        }
        if coupon_id:
            props["coupon_id"] = coupon_id
            props["coupon_code"] = coupon_id  # the channels send the code the order used (a till scans it)
        if campaign_id:
            props["campaign_id"] = campaign_id
        if ids is None:
            # web shops and counters often ask for a phone; marketplaces keep the buyer's phone to themselves
            with_phone = source in ("web", "pos") and not person.seed_scenario and self.rng.random() < 0.4
            ids = person.identifiers(source, with_phone=with_phone)
        store = person.home_store if source == "pos" else None
        return self.event("order_placed", source, when, ids, props, store_id=store)


def order_source(person: TruePerson, rng: random.Random) -> str:
    """The channel a person orders on; their first channel is the habitual one."""
    sources = person.order_sources
    return rng.choices(sources, weights=[3.0 if i == 0 else 1.0 for i in range(len(sources))])[0]


def next_day(moment: datetime, days: float) -> datetime:
    return moment + timedelta(days=days)
