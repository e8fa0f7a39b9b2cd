"""Pure builders of the 360-degree profile views: what a caller at one place in the org hierarchy sees of a person.

Facts are kept per `(brand, store)` scope on the profile (`Profile.scoped_facts`); a view rolls up every scope the
caller's `ScopeRef` contains (group -> brand -> dealer -> store) with `merge_facts`, and keeps only the timeline
events recorded within it. Who the person is (identifiers, traits, consent, tags, scores, merge history, edits) is
person-level and shown to any caller that sees the person at all; a person with nothing in the caller's scope is
reported exactly like an unknown person, so a key never learns that someone exists elsewhere.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import reduce
from typing import Literal

from pydantic import BaseModel, Field

from cdp.channels.ports import LoggedMessage
from cdp.errors import ForbiddenError, InvalidInputError
from cdp.identifiers.model import Identifier
from cdp.identity.resolution import LineageRecord
from cdp.ingest.events import (
    CanonicalEvent,
    OrderLine,
    OrderPlacedEvent,
    OrderReturnedEvent,
    ReviewPostedEvent,
)
from cdp.offers.wallet import WalletEntry
from cdp.org import BrandConfig, OrgDirectory, ScopeRef
from cdp.profile import keys
from cdp.profile.edits import EditRecord
from cdp.profile.models import (
    AcquisitionTouch,
    BenefitState,
    ConsentState,
    FamilyMember,
    LevelState,
    ModelScore,
    Profile,
    ProfileFacts,
    TagValue,
    Traits,
    all_trait_values,
    merge_facts,
    split_scope_key,
)
from cdp.profile.ports import MessageRecord, TimelineEntry, TimelinePage

RECENT_LIMIT = 50
"""Orders, returns, reviews and messages listed on the profile, newest first (counts cover everything)."""
MAX_SCAN_PAGES = 20
"""A scoped timeline page reads at most this many store pages looking for events in scope, then hands a cursor."""

_SCOPE_FIELDS = {"group": "group_id", "brand": "brand_id", "dealer": "dealer_id", "store": "store_id"}

# ---- scope arithmetic -------------------------------------------------------------------------------------------


def parse_scope(text: str | None) -> ScopeRef | None:
    """`brand:X`, `store:Y`, `brand:X,store:Y`, ... -> a ScopeRef; None or empty: no narrowing."""
    if not text or not text.strip():
        return None
    values: dict[str, str] = {}
    for part in text.split(","):
        level, sep, value = part.strip().partition(":")
        if not sep or level not in _SCOPE_FIELDS or not value.strip():
            raise InvalidInputError(
                f"scope must be level:id pairs joined by commas, levels {', '.join(_SCOPE_FIELDS)}; got {part!r}",
                "scope",
            )
        if _SCOPE_FIELDS[level] in values:
            raise InvalidInputError(f"scope names {level} twice", "scope")
        values[_SCOPE_FIELDS[level]] = value.strip()
    return ScopeRef.model_validate(values)


def narrow(granted: ScopeRef, requested: ScopeRef | None) -> ScopeRef:
    """The caller's view: the key's scope narrowed by the request; asking for a place outside the key is a 403."""
    if requested is None:
        return granted
    merged: dict[str, str | None] = {}
    for name in _SCOPE_FIELDS.values():
        mine, asked = getattr(granted, name), getattr(requested, name)
        if mine and asked and mine != asked:
            raise ForbiddenError(f"scope {requested.label} is outside this key's scope {granted.label}")
        merged[name] = asked or mine
    return ScopeRef.model_validate(merged)


def is_unrestricted(scope: ScopeRef) -> bool:
    return scope == ScopeRef()


def covers_brand(scope: ScopeRef, org: OrgDirectory, brand_id: str) -> bool:
    """Whether any part of the brand lies within the scope (a store-scoped key covers its store's brand)."""
    return scope.covers_brand(org, brand_id)


def covers_whole_brand(scope: ScopeRef, org: OrgDirectory, brand_id: str) -> bool:
    """Whether the scope holds the whole brand (namespace-wide work: review queue, quarantine)."""
    return scope.holds_brand(org, brand_id)


def visible_scopes(profile: Profile, org: OrgDirectory, scope: ScopeRef) -> list[str]:
    """The profile's fact scopes (`brand/store`) the view contains."""
    return sorted(k for k in profile.scoped_facts if scope.contains(org, *split_scope_key(k)))


def facts_in_scope(profile: Profile, org: OrgDirectory, scope: ScopeRef) -> ProfileFacts | None:
    """The facts rolled up over the scopes the view contains; None when nothing of the person is in scope."""
    if is_unrestricted(scope):
        return profile.facts
    visible = visible_scopes(profile, org, scope)
    if not visible:
        return None
    return reduce(merge_facts, (profile.scoped_facts[k] for k in visible))


def event_in_scope(event: CanonicalEvent, org: OrgDirectory, scope: ScopeRef) -> bool:
    return is_unrestricted(scope) or scope.contains(org, event.brand_id, event.store_id)


# ---- view models ------------------------------------------------------------------------------------------------


class IdentifierView(BaseModel):
    key: str
    type: str
    value: str
    scope: str | None = Field(default=None, description="the WeChat app or platform of a scoped identifier")

    @classmethod
    def of(cls, key: str) -> IdentifierView:
        ident = Identifier.from_key(key)
        return cls(key=key, type=ident.type.value, value=ident.value, scope=ident.scope)


class ProgramPoints(BaseModel):
    program: str
    points: int
    points_per_brand_point: int = Field(description="the program's conversion rate (e.g. 10 dealer points : 1)")
    brand_points: int


class BenefitView(BaseModel):
    benefit_id: str
    granted: bool
    at: datetime
    program: str | None = None


class CardView(BaseModel):
    """One stored-value or gift card with its own balance: cards are listed together, never summed."""

    card_id: str
    kind: Literal["stored_value", "gift_card"]
    currency: str
    balance_minor: int
    last_change_at: datetime | None = None


class LoyaltyView(BaseModel):
    member_level: str | None = Field(description="by the brand's loyalty policy (default: the highest level)")
    level_rule: str
    levels_by_program: dict[str, LevelState]
    points: list[ProgramPoints]
    brand_points: int = Field(description="every program's points converted at its rate and summed")
    active_benefits: list[str]
    benefits: list[BenefitView]
    cards: list[CardView]


class ActivitySummary(BaseModel):
    """Counts and totals over everything in the view's scope (money in minor units of `currency`)."""

    event_count: int
    page_views: int
    cart_adds: int
    order_count: int
    return_count: int
    spend_minor: int
    refund_minor: int
    net_spend_minor: int
    currency: str | None
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    first_order_at: datetime | None
    last_order_at: datetime | None
    review_count: int
    average_rating: float | None
    coupons_claimed: int
    coupons_redeemed: int
    messages_delivered: int
    messages_clicked: int
    messages_opened: int
    acquisition: AcquisitionTouch | None = Field(description="the first ad click or lead form: the acquisition source")
    custom_counts: dict[str, int]
    category_counts: dict[str, int]
    store_counts: dict[str, int]
    source_counts: dict[str, int]


class PersonSummary(BaseModel):
    """A person as a caller at `view_scope` sees them, without the timeline-derived lists."""

    person_id: str
    brand_id: str
    view_scope: str = Field(description="the org scope the facts were rolled up over ('all': no limit)")
    visible_scopes: list[str] = Field(description="the person's brand/store fact scopes inside the view")
    created_at: datetime
    updated_at: datetime
    version: int
    identifiers: list[IdentifierView]
    traits: Traits = Field(description="each trait resolved by the brand's merge policy")
    trait_values: dict[str, list[str]] = Field(description="every distinct value each trait had, newest first")
    family: list[FamilyMember] = Field(description="family members told within the view's scope, by relation")
    loyalty: LoyaltyView
    activity: ActivitySummary
    merged_from: list[str]
    over_limit: list[str] = Field(description="identifier types held beyond the rule limits (flagged for review)")


class OrderView(BaseModel):
    event_id: str
    order_id: str
    occurred_at: datetime
    source: str
    brand_id: str
    store_id: str | None
    fulfilment: Literal["online", "offline"]
    total_minor: int
    currency: str
    lines: list[OrderLine]
    coupon_id: str | None = None
    campaign_id: str | None = None


class OrdersView(BaseModel):
    online: list[OrderView]
    offline: list[OrderView]


class ReturnView(BaseModel):
    event_id: str
    order_id: str
    occurred_at: datetime
    source: str
    store_id: str | None
    refund_minor: int
    currency: str
    skus: list[str]
    reason: str | None = None


class ReviewView(BaseModel):
    event_id: str
    sku: str
    rating: int
    occurred_at: datetime
    source: str
    store_id: str | None
    order_id: str | None = None
    text: str | None = None


class MessageView(BaseModel):
    message_id: str
    campaign_id: str
    step: str
    channel: str
    sent_at: datetime
    status: str = Field(
        description="sent, delivered, opened, clicked, failed, bounced, unsubscribed, complained (as the receipts "
        "left it), or why it was not sent (suppressed_...)"
    )
    provider_id: str | None = None
    provider: str | None = None
    error_code: str | None = Field(default=None, description="the provider's code of a failure")
    status_times: dict[str, datetime] = Field(default_factory=dict, description="the first time of each status")


def with_lifecycle(view: MessageView, logged: LoggedMessage | None) -> MessageView:
    """The message's current status from the message log (receipts move it there), when the log has it."""
    if logged is None:
        return view
    return view.model_copy(
        update={
            "status": logged.status,
            "provider": logged.provider,
            "provider_id": logged.provider_id or view.provider_id,
            "error_code": logged.code,
            "status_times": dict(logged.times or {}),
        }
    )


class LineageView(BaseModel):
    """One merge, split or quarantine with its evidence (rule, identifiers, event, actor, time)."""

    kind: Literal["merge", "split", "quarantine"]
    at: datetime
    rule: str
    actor: str | None
    identifiers: list[str]
    event_id: str | None
    person_ids: list[str]
    survivor_id: str | None
    merged_ids: list[str]
    parts: dict[str, list[str]]

    @classmethod
    def of(cls, record: LineageRecord) -> LineageView:
        return cls(
            kind=record.kind,
            at=record.at,
            rule=record.rule,
            actor=record.actor,
            identifiers=list(record.identifiers),
            event_id=record.event_id,
            person_ids=list(record.person_ids),
            survivor_id=record.survivor_id,
            merged_ids=list(record.merged_ids),
            parts={k: list(v) for k, v in record.parts.items()},
        )


class ProfileView(PersonSummary):
    """`GET /v1/profiles/{person_id}`: the 360-degree profile."""

    requested_id: str
    merged_away: bool = Field(description="the requested id was merged into `person_id`, which answers for it")
    orders: OrdersView
    returns: list[ReturnView]
    reviews: list[ReviewView]
    messages: list[MessageView]
    tags: dict[str, TagValue]
    scores: dict[str, ModelScore]
    consent: dict[str, ConsentState]
    merge_history: list[LineageView]
    edits: list[EditRecord]
    wallet: list[WalletEntry] = Field(
        default_factory=list, description="offers issued to the person (and to persons merged into them), newest first"
    )
    list_limit: int = Field(description="orders, returns, reviews and messages list at most this many, newest first")


class TimelineItem(BaseModel):
    anchor: str = Field(description="the identifier the event is filed under")
    event: CanonicalEvent


class TimelineView(BaseModel):
    person_id: str
    requested_id: str
    view_scope: str
    entries: list[TimelineItem] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as ?cursor= for the next (older) page; null: no more")


# ---- builders ---------------------------------------------------------------------------------------------------


def loyalty_view(facts: ProfileFacts, brand: BrandConfig) -> LoyaltyView:
    policy = brand.loyalty
    return LoyaltyView(
        member_level=facts.member_level(policy),
        level_rule=policy.level_rule,
        levels_by_program=dict(sorted(facts.member_levels.items())),
        points=[
            ProgramPoints(
                program=program,
                points=points,
                points_per_brand_point=policy.rate(program),
                brand_points=points // policy.rate(program),
            )
            for program, points in sorted(facts.points_by_program.items())
        ],
        brand_points=facts.brand_points(policy),
        active_benefits=facts.active_benefits(),
        benefits=[_benefit(b, s) for b, s in sorted(facts.benefits.items())],
        cards=[
            CardView(
                card_id=card_id,
                kind=card.kind,
                currency=card.currency,
                balance_minor=card.balance_minor,
                last_change_at=card.last_change_at,
            )
            for card_id, card in sorted(facts.cards.items())
        ],
    )


def _benefit(benefit_id: str, state: BenefitState) -> BenefitView:
    return BenefitView(benefit_id=benefit_id, granted=state.granted, at=state.at, program=state.program)


def activity(facts: ProfileFacts) -> ActivitySummary:
    return ActivitySummary(
        event_count=facts.event_count,
        page_views=facts.page_views,
        cart_adds=facts.cart_adds,
        order_count=facts.order_count,
        return_count=facts.return_count,
        spend_minor=facts.spend_minor,
        refund_minor=facts.refund_minor,
        net_spend_minor=facts.net_spend_minor,
        currency=facts.currency,
        first_seen_at=facts.first_seen_at,
        last_seen_at=facts.last_seen_at,
        first_order_at=facts.first_order_at,
        last_order_at=facts.last_order_at,
        review_count=facts.review_count,
        average_rating=round(facts.rating_sum / facts.review_count, 2) if facts.review_count else None,
        coupons_claimed=facts.coupons_claimed,
        coupons_redeemed=facts.coupons_redeemed,
        messages_delivered=facts.messages_delivered,
        messages_clicked=facts.messages_clicked,
        messages_opened=facts.messages_opened,
        acquisition=facts.acquisition,
        custom_counts=dict(sorted(facts.custom_counts.items())),
        category_counts=dict(sorted(facts.category_counts.items())),
        store_counts=dict(sorted(facts.store_counts.items())),
        source_counts=dict(sorted(facts.source_counts.items())),
    )


def person_summary(profile: Profile, org: OrgDirectory, brand: BrandConfig, scope: ScopeRef) -> PersonSummary | None:
    """The person at `scope`; None when nothing of them lies in it (the caller answers as for an unknown person)."""
    facts = facts_in_scope(profile, org, scope)
    if facts is None or profile.dissolved:
        return None
    return PersonSummary(
        person_id=profile.person_id,
        brand_id=profile.brand_id,
        view_scope=scope.label,
        visible_scopes=visible_scopes(profile, org, scope),
        created_at=profile.created_at,
        updated_at=profile.updated_at,
        version=profile.version,
        identifiers=[IdentifierView.of(k) for k in profile.identifiers],
        traits=profile.traits,
        trait_values=all_trait_values(profile),
        family=sorted(facts.family.values(), key=lambda m: (m.relation, m.birthday, m.name or "")),
        loyalty=loyalty_view(facts, brand),
        activity=activity(facts),
        merged_from=list(profile.merged_from),
        over_limit=list(profile.over_limit),
    )


def profile_view(
    profile: Profile,
    org: OrgDirectory,
    brand: BrandConfig,
    scope: ScopeRef,
    *,
    requested_id: str,
    timeline: Iterable[CanonicalEvent],
    messages: Iterable[MessageRecord],
    lineage: Iterable[LineageRecord],
    edits: Iterable[EditRecord],
    limit: int = RECENT_LIMIT,
) -> ProfileView | None:
    """The 360-degree view; `timeline` is every event of the person (filtered to the scope here)."""
    summary = person_summary(profile, org, brand, scope)
    if summary is None:
        return None
    newest = sorted(
        (e for e in timeline if event_in_scope(e, org, scope)), key=lambda e: (e.occurred_at, e.event_id), reverse=True
    )
    orders = [_order(e) for e in newest if isinstance(e, OrderPlacedEvent)]
    return ProfileView(
        **summary.model_dump(),
        requested_id=requested_id,
        merged_away=requested_id != profile.person_id,
        orders=OrdersView(
            online=[o for o in orders if o.fulfilment == "online"][:limit],
            offline=[o for o in orders if o.fulfilment == "offline"][:limit],
        ),
        returns=[_return(e) for e in newest if isinstance(e, OrderReturnedEvent)][:limit],
        reviews=[_review(e) for e in newest if isinstance(e, ReviewPostedEvent)][:limit],
        messages=[_message(m) for m in sorted(messages, key=lambda m: (m.sent_at, m.message_id), reverse=True)][:limit],
        tags=dict(sorted(profile.tags.items())),
        scores=dict(sorted(profile.scores.items())),
        consent=dict(sorted(profile.consent.items())),
        merge_history=[LineageView.of(r) for r in unique_lineage(lineage)],
        edits=sorted(edits, key=lambda e: (e.at, e.edit_id)),
        list_limit=limit,
    )


def unique_lineage(records: Iterable[LineageRecord]) -> list[LineageRecord]:
    """One entry per change, oldest first (a change is filed under every person it touched)."""
    seen: dict[tuple[object, ...], LineageRecord] = {}
    for r in records:
        seen.setdefault((r.kind, r.at, r.rule, r.identifiers, r.event_id, r.survivor_id), r)
    return sorted(seen.values(), key=lambda r: (r.at, r.kind, r.rule))


def _order(e: OrderPlacedEvent) -> OrderView:
    p = e.properties
    return OrderView(
        event_id=e.event_id,
        order_id=p.order_id,
        occurred_at=e.occurred_at,
        source=e.source.value,
        brand_id=e.brand_id,
        store_id=e.store_id,
        fulfilment=p.fulfilment,
        total_minor=p.total_minor,
        currency=p.currency,
        lines=list(p.lines),
        coupon_id=p.coupon_id,
        campaign_id=p.campaign_id,
    )


def _return(e: OrderReturnedEvent) -> ReturnView:
    p = e.properties
    return ReturnView(
        event_id=e.event_id,
        order_id=p.order_id,
        occurred_at=e.occurred_at,
        source=e.source.value,
        store_id=e.store_id,
        refund_minor=p.refund_minor,
        currency=p.currency,
        skus=list(p.skus),
        reason=p.reason,
    )


def _review(e: ReviewPostedEvent) -> ReviewView:
    p = e.properties
    return ReviewView(
        event_id=e.event_id,
        sku=p.sku,
        rating=p.rating,
        occurred_at=e.occurred_at,
        source=e.source.value,
        store_id=e.store_id,
        order_id=p.order_id,
        text=p.text,
    )


def _message(m: MessageRecord) -> MessageView:
    return MessageView(
        message_id=m.message_id,
        campaign_id=m.campaign_id,
        step=m.step,
        channel=m.channel,
        sent_at=m.sent_at,
        status=m.status,
        provider_id=m.provider_id,
    )


# ---- the timeline, paginated and scoped --------------------------------------------------------------------------


def encode_cursor(sort_key: str) -> str:
    """An opaque, URL-safe cursor for a timeline sort key."""
    return base64.urlsafe_b64encode(sort_key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        sort_key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInputError("cursor is not one this API handed out", "cursor") from exc
    if not sort_key.startswith(keys.TIMELINE_PREFIX):
        raise InvalidInputError("cursor is not one this API handed out", "cursor")
    return sort_key


def entry_sort_key(entry: TimelineEntry) -> str:
    return keys.timeline_sk(entry.event.occurred_at, entry.event.event_id)


def scoped_page(
    fetch: Callable[[str | None, int], TimelinePage],
    keep: Callable[[CanonicalEvent], bool],
    before: str | None,
    limit: int,
    max_pages: int = MAX_SCAN_PAGES,
) -> tuple[list[TimelineEntry], str | None]:
    """Up to `limit` kept entries older than `before`, newest first, and the cursor (sort key) after the last one.

    Reads store pages of `limit` until the page is full or the timeline ends; after `max_pages` it returns what it
    has with a cursor to go on from (a scoped key over a long history outside its scope still gets bounded work).
    A full store page without a cursor is read on from its last entry: a cursor may then lead to an empty page,
    but no event is ever skipped (see `_next_before`).
    """
    out: list[TimelineEntry] = []
    for _ in range(max_pages):
        page = fetch(before, limit)
        following = _next_before(page, limit)
        for i, entry in enumerate(page.entries):
            if not keep(entry.event):
                continue
            out.append(entry)
            if len(out) == limit:
                more = i < len(page.entries) - 1 or following is not None
                return out, entry_sort_key(entry) if more else None
        if following is None:
            return out, None
        before = following
    return out, before


def _next_before(page: TimelinePage, asked: int) -> str | None:
    """Where the next store page starts. `DynamoProfileStore.timeline_page` reads `limit + 1` items per identifier
    with an inclusive BETWEEN, so after the first page the cursor's own event takes one of them and the identifier
    that holds it can never signal "more": a full page without a cursor is therefore always followed up."""
    if page.next_cursor is not None:
        return page.next_cursor
    return entry_sort_key(page.entries[-1]) if page.entries and len(page.entries) >= asked else None


def timeline_view(
    profile: Profile, requested_id: str, scope: ScopeRef, entries: Sequence[TimelineEntry], next_key: str | None
) -> TimelineView:
    return TimelineView(
        person_id=profile.person_id,
        requested_id=requested_id,
        view_scope=scope.label,
        entries=[TimelineItem(anchor=e.anchor, event=e.event) for e in entries],
        next_cursor=encode_cursor(next_key) if next_key else None,
    )
