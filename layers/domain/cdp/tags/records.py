"""The flat shape both tag evaluators read: one person record and that person's event records.

The in-memory evaluator gets them from a profile and its timeline; the batch evaluator reads the same columns from
Parquet exports (`profiles` and `events` tables). Times are epoch seconds (UTC) so window arithmetic is plain integer
arithmetic in Python and in SQL alike; months and years are UTC calendar parts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from cdp.ingest.events import EVENT_TYPES as CANONICAL_EVENT_TYPES
from cdp.ingest.events import CanonicalEvent
from cdp.profile.models import Profile, flat_scores

ValueType = Literal["string", "number", "bool", "months"]
"""`months`: a set of calendar months (1-12), written "3,12"; only `contains` tests it."""

DAY = 86_400

# ---- event records --------------------------------------------------------------------------------------------

EVENT_FIELDS: dict[str, ValueType] = {
    "source": "string",
    "store_id": "string",
    "channel": "string",  # message channel (messages, consent), or the fulfilment of an order (online / offline)
    "category": "string",
    "product_id": "string",
    "name": "string",  # custom action name, ad platform
    "campaign_id": "string",
    "amount_minor": "number",  # order total, line total, refund, discount, cart value
    "quantity": "number",
    "rating": "number",
    "points": "number",
}
"""Fields a rule may aggregate or filter on (besides event_type and time)."""

ORDER_LINE = "order_line"
"""A derived event type: one record per order line (category, product, quantity, line amount)."""

EVENT_TYPES: frozenset[str] = frozenset({*CANONICAL_EVENT_TYPES, ORDER_LINE})

SOURCE_EVENT_TYPE = {ORDER_LINE: "order_placed"}
"""The canonical event type a derived record comes from (what wakes a real-time tag that reads it)."""


@dataclass(frozen=True, slots=True)
class EventRecord:
    event_id: str  # unique per record: source#event_id (order lines add '#<n>')
    event_type: str
    ts: int
    source: str | None = None
    store_id: str | None = None
    channel: str | None = None
    category: str | None = None
    product_id: str | None = None
    name: str | None = None
    campaign_id: str | None = None
    amount_minor: int | None = None
    quantity: int | None = None
    rating: int | None = None
    points: int | None = None

    @property
    def year(self) -> int:
        return datetime.fromtimestamp(self.ts, UTC).year

    @property
    def month(self) -> int:
        return datetime.fromtimestamp(self.ts, UTC).month

    def get(self, name: str) -> Any:
        return getattr(self, name)


def epoch(at: datetime) -> int:
    return int(at.timestamp())


def event_records(event: CanonicalEvent) -> list[EventRecord]:  # noqa: C901 - one branch per type
    """One record per event (order lines add one record each); fields the type has no use for stay None."""
    base: dict[str, Any] = {
        "event_id": event.dedupe_key,
        "event_type": event.event_type,
        "ts": epoch(event.occurred_at),
        "source": event.source.value,
        "store_id": event.store_id,
    }
    p: Any = event.properties
    match event.event_type:
        case "order_placed":
            head = EventRecord(
                **base,
                channel=p.fulfilment,
                campaign_id=p.campaign_id,
                amount_minor=p.total_minor,
                quantity=sum(line.quantity for line in p.lines),
            )
            lines = [
                EventRecord(
                    **{**base, "event_id": f"{event.event_id}#{i}", "event_type": ORDER_LINE},
                    channel=p.fulfilment,
                    category=line.category,
                    product_id=line.sku,
                    quantity=line.quantity,
                    amount_minor=line.quantity * line.unit_price_minor,
                )
                for i, line in enumerate(p.lines)
            ]
            return [head, *lines]
        case "add_to_cart":
            extra = {
                "category": p.category,
                "product_id": p.sku,
                "quantity": p.quantity,
                "amount_minor": p.quantity * p.unit_price_minor,
            }
        case "order_returned":
            extra = {"amount_minor": p.refund_minor}
        case "review_posted":
            extra = {"product_id": p.sku, "rating": p.rating}
        case "points_changed":
            extra = {"points": p.delta, "name": p.program}
        case "level_changed":
            extra = {"name": p.program}
        case "loyalty_expiring":
            extra = {"points": p.points, "name": p.program}
        case "coupon_claimed" | "coupon_redeemed" | "coupon_issued" | "coupon_expired":
            extra = _coupon_fields(event.event_type, p)
        case "message_delivered" | "message_clicked" | "message_opened":
            extra = {"channel": p.channel.value, "campaign_id": p.campaign_id}
        case "campaign_assigned":
            extra = {"channel": p.channel.value if p.channel else None, "campaign_id": p.campaign_id, "name": p.group}
        case "ad_clicked" | "lead_submitted":
            extra = {"name": p.platform, "campaign_id": p.campaign_id}
        case "custom":
            extra = {"name": p.name}
        case "consent_changed":
            extra = {"channel": str(p.channel)}
        case _:
            extra = {}
    return [EventRecord(**base, **extra)]


def _coupon_fields(event_type: str, p: Any) -> dict[str, Any]:
    """A coupon event's campaign and amount (the discount redeemed, the value issued); issues and expiries also
    name the offer (`name`), so a rule can count one offer's."""
    if event_type in ("coupon_claimed", "coupon_redeemed"):
        return {"campaign_id": p.campaign_id, "amount_minor": getattr(p, "discount_minor", None)}
    return {"campaign_id": p.campaign_id, "amount_minor": getattr(p, "value_minor", None), "name": p.coupon_id}


# ---- person records -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttributeSpec:
    type: ValueType
    changed_by: frozenset[str]  # canonical event types that can change it
    description: str


_ORDERS = frozenset({"order_placed"})
_ORDERS_AND_RETURNS = frozenset({"order_placed", "order_returned"})
_IDENTIFY = frozenset({"identify"})

ATTRIBUTES: dict[str, AttributeSpec] = {
    "brand_id": AttributeSpec("string", frozenset(), "the brand the person belongs to (it never changes)"),
    "gender": AttributeSpec("string", _IDENTIFY, "female, male, other, unknown"),
    "city": AttributeSpec("string", _IDENTIFY, "the resolved city"),
    "country": AttributeSpec("string", _IDENTIFY, "ISO 3166 alpha-2"),
    "member_level": AttributeSpec("string", _IDENTIFY, "the member level the loyalty policy resolves"),
    "age": AttributeSpec("number", _IDENTIFY, "full years at evaluation time (from the birthday)"),
    "birth_month": AttributeSpec("number", _IDENTIFY, "1-12"),
    "order_count": AttributeSpec("number", _ORDERS, "orders ever"),
    "return_count": AttributeSpec("number", frozenset({"order_returned"}), "returns ever"),
    "spend_minor": AttributeSpec("number", _ORDERS, "gross spend ever, minor units"),
    "net_spend_minor": AttributeSpec("number", _ORDERS_AND_RETURNS, "spend minus refunds, minor units"),
    "points": AttributeSpec("number", frozenset({"points_changed"}), "points balance over every program"),
    "page_views": AttributeSpec("number", frozenset({"page_view"}), "page views ever"),
    "cart_adds": AttributeSpec("number", frozenset({"add_to_cart"}), "cart additions ever"),
    "event_count": AttributeSpec("number", frozenset(EVENT_TYPES - {ORDER_LINE}), "events ever"),
    "acquisition_platform": AttributeSpec(
        "string", frozenset({"ad_clicked", "lead_submitted"}), "the ad platform of the first ad touch"
    ),
    "consent_sms": AttributeSpec("bool", frozenset({"consent_changed"}), "marketing opt-in on SMS"),
    "consent_email": AttributeSpec("bool", frozenset({"consent_changed"}), "marketing opt-in on e-mail"),
    "consent_push": AttributeSpec("bool", frozenset({"consent_changed"}), "marketing opt-in on push"),
    "consent_wechat": AttributeSpec("bool", frozenset({"consent_changed"}), "marketing opt-in on WeChat"),
}

PROFILE_COLUMNS: tuple[str, ...] = (
    *(name for name in ATTRIBUTES if name != "age"),
    "birth_year",
    "birth_day",
)
"""Columns of the exported `profiles` table besides person_id (age is derived at evaluation time)."""


@dataclass
class PersonRecord:
    person_id: str
    columns: dict[str, Any]  # PROFILE_COLUMNS; None when unknown
    tags: dict[str, Any] = field(default_factory=dict)  # stored tag values (predictive tags, audience memberships)
    scores: dict[str, float] = field(default_factory=dict)
    events: list[EventRecord] = field(default_factory=list)  # sorted by (ts, event_id)

    def attribute(self, name: str, asof: int) -> Any:
        if name == "age":
            return age_at(
                self.columns.get("birth_year"), self.columns.get("birth_month"), self.columns.get("birth_day"), asof
            )
        return self.columns.get(name)


def age_at(year: int | None, month: int | None, day: int | None, asof: int) -> int | None:
    if year is None or month is None or day is None:
        return None
    now = datetime.fromtimestamp(asof, UTC)
    return now.year - year - (1 if (month, day) > (now.month, now.day) else 0)


def next_birthday_ts(month: int, day: int, asof: int) -> int:
    """The first instant after `asof` at which the age goes up (29 February counts on 1 March in other years)."""
    now = datetime.fromtimestamp(asof, UTC)
    for year in (now.year, now.year + 1, now.year + 2):
        try:
            candidate = datetime(year, month, day, tzinfo=UTC)
        except ValueError:
            candidate = datetime(year, 3, 1, tzinfo=UTC)
        if epoch(candidate) > asof:
            return epoch(candidate)
    raise AssertionError("unreachable: a birthday recurs within two years")


def profile_columns(profile: Profile) -> dict[str, Any]:
    f, t = profile.facts, profile.traits
    birthday: date | None = t.birthday
    acquisition = f.acquisition
    return {
        "brand_id": profile.brand_id,
        "gender": t.gender,
        "city": t.city,
        "country": t.country,
        "member_level": t.member_level,
        "birth_year": birthday.year if birthday else None,
        "birth_month": birthday.month if birthday else None,
        "birth_day": birthday.day if birthday else None,
        "order_count": f.order_count,
        "return_count": f.return_count,
        "spend_minor": f.spend_minor,
        "net_spend_minor": f.net_spend_minor,
        "points": sum(f.points_by_program.values()),
        "page_views": f.page_views,
        "cart_adds": f.cart_adds,
        "event_count": f.event_count,
        "acquisition_platform": acquisition.platform if acquisition else None,
        "consent_sms": profile.has_consent("sms"),
        "consent_email": profile.has_consent("email"),
        "consent_push": profile.has_consent("push"),
        "consent_wechat": profile.has_consent("wechat"),
    }


def person_record(profile: Profile, events: Iterable[CanonicalEvent]) -> PersonRecord:
    records = sorted(_records(events), key=lambda r: (r.ts, r.event_id))
    return PersonRecord(
        person_id=profile.person_id,
        columns=profile_columns(profile),
        tags={name: tag.value for name, tag in profile.tags.items()},
        scores=flat_scores(profile.scores),
        events=records,
    )


def _records(events: Iterable[CanonicalEvent]) -> Iterator[EventRecord]:
    seen: set[str] = set()
    for event in events:
        if event.dedupe_key in seen:  # the same event filed under two anchors of one person counts once
            continue
        seen.add(event.dedupe_key)
        yield from event_records(event)
