"""The 360-degree profile of one person, and the pure function that folds an event into it."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from cdp.ingest.events import CanonicalEvent
from cdp.shared.time import iso


class Traits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    gender: str | None = None
    birthday: date | None = None
    city: str | None = None
    country: str | None = None
    timezone: str | None = None
    member_level: str | None = None


class ConsentState(BaseModel):
    granted: bool
    changed_at: datetime
    source: str


class ProfileFacts(BaseModel):
    """Aggregates kept current by identity_merge. Money in minor units of `currency`."""

    event_count: int = 0
    page_views: int = 0
    cart_adds: int = 0
    order_count: int = 0
    return_count: int = 0
    spend_minor: int = 0
    refund_minor: int = 0
    currency: str | None = None
    first_seen_at: datetime | None = None
    last_seen_at: datetime | None = None
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    points_by_program: dict[str, int] = Field(default_factory=dict)
    review_count: int = 0
    rating_sum: int = 0
    coupons_claimed: int = 0
    coupons_redeemed: int = 0
    messages_delivered: int = 0
    messages_clicked: int = 0
    category_counts: dict[str, int] = Field(default_factory=dict)
    store_counts: dict[str, int] = Field(default_factory=dict)
    source_counts: dict[str, int] = Field(default_factory=dict)
    order_months: dict[str, int] = Field(default_factory=dict, description="orders per calendar month '01'..'12'")

    @property
    def points_balance(self) -> int:
        return sum(self.points_by_program.values())

    @property
    def net_spend_minor(self) -> int:
        return self.spend_minor - self.refund_minor


class TagValue(BaseModel):
    value: str | int | bool
    since: datetime
    expires_at: datetime | None = None


class ModelScore(BaseModel):
    score: float = Field(ge=0.0, le=1.0)
    model_version: str
    scored_at: datetime


class Profile(BaseModel):
    person_id: str
    brand_id: str
    created_at: datetime
    updated_at: datetime
    version: int = 0
    identifiers: list[str] = Field(default_factory=list, description="identifier keys, e.g. phone:+8613800138000")
    traits: Traits = Field(default_factory=Traits)
    consent: dict[str, ConsentState] = Field(default_factory=dict)
    facts: ProfileFacts = Field(default_factory=ProfileFacts)
    merged_from: list[str] = Field(default_factory=list)
    merged_into: str | None = None
    tags: dict[str, TagValue] = Field(default_factory=dict)
    next_tag_expiry: datetime | None = Field(default=None, description="when a tag changes next with no new event")
    scores: dict[str, ModelScore] = Field(default_factory=dict)

    @field_serializer("next_tag_expiry")
    def _sortable_expiry(self, value: datetime | None) -> str | None:
        return iso(value) if value else None  # the same sortable form the tag writer stores

    def has_consent(self, channel: str, at: datetime | None = None) -> bool:
        """Marketing consent is opt-in: a channel-specific decision wins over the 'all' decision."""
        state = self.consent.get(channel) or self.consent.get("all")
        return bool(state and state.granted)


def _bump(counter: dict[str, int], key: str | None, by: int = 1) -> None:
    if key:
        counter[key] = counter.get(key, 0) + by


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return min(x for x in (a, b) if x is not None) if (a or b) else None


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max(x for x in (a, b) if x is not None) if (a or b) else None


def apply_event(profile: Profile, event: CanonicalEvent) -> Profile:
    """Fold one event into a copy of the profile (pure; the caller guarantees each event is applied once)."""
    p = profile.model_copy(deep=True)
    f = p.facts
    at = event.occurred_at
    f.event_count += 1
    f.first_seen_at = _earliest(f.first_seen_at, at)
    f.last_seen_at = _latest(f.last_seen_at, at)
    _bump(f.source_counts, event.source.value)
    _bump(f.store_counts, event.store_id)
    for ident in event.identifiers:
        if ident.key not in p.identifiers:
            p.identifiers.append(ident.key)
    _apply_typed(p, event)
    p.updated_at = max(p.updated_at, at)
    return p


def _apply_typed(p: Profile, event: CanonicalEvent) -> None:  # noqa: C901 - one branch per event type
    f = p.facts
    at = event.occurred_at
    match event.event_type:
        case "identify":
            newer = event.properties.model_dump(exclude_none=True, include=set(Traits.model_fields))
            p.traits = p.traits.model_copy(update=newer)
        case "page_view":
            f.page_views += 1
        case "add_to_cart":
            f.cart_adds += 1
        case "order_placed":
            props = event.properties
            f.order_count += 1
            f.spend_minor += props.total_minor
            f.currency = f.currency or props.currency
            f.first_order_at = _earliest(f.first_order_at, at)
            f.last_order_at = _latest(f.last_order_at, at)
            _bump(f.order_months, f"{at.month:02d}")
            for line in props.lines:
                _bump(f.category_counts, line.category, line.quantity)
        case "order_returned":
            f.return_count += 1
            f.refund_minor += event.properties.refund_minor
        case "review_posted":
            f.review_count += 1
            f.rating_sum += event.properties.rating
        case "points_changed":
            _bump(f.points_by_program, event.properties.program, event.properties.delta)
        case "coupon_claimed":
            f.coupons_claimed += 1
        case "coupon_redeemed":
            f.coupons_redeemed += 1
        case "message_delivered":
            f.messages_delivered += 1 if event.properties.status == "delivered" else 0
        case "message_clicked":
            f.messages_clicked += 1
        case "consent_changed":
            change = event.properties
            current = p.consent.get(change.channel)
            if change.purpose == "marketing" and (current is None or current.changed_at <= at):
                p.consent[change.channel] = ConsentState(granted=change.granted, changed_at=at, source=event.source)


def merge_facts(a: ProfileFacts, b: ProfileFacts) -> ProfileFacts:
    """Combine two persons' aggregates (commutative and associative, so merge order never matters)."""
    out: dict[str, Any] = {}
    for name, field in ProfileFacts.model_fields.items():
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, dict):
            merged = dict(x)
            for k, v in y.items():
                merged[k] = merged.get(k, 0) + v
            out[name] = merged
        elif isinstance(x, int) and not isinstance(x, bool):
            out[name] = x + y
        elif name.startswith("first_"):
            out[name] = _earliest(x, y)
        elif name.startswith("last_"):
            out[name] = _latest(x, y)
        elif name == "currency":
            out[name] = x or y
        else:  # pragma: no cover - a new field must choose its merge rule
            raise TypeError(f"no merge rule for ProfileFacts.{name} ({field.annotation})")
    return ProfileFacts(**out)
