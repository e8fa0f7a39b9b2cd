"""The 360-degree profile of one person, and the pure function that folds an event into it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from cdp.ingest.events import CanonicalEvent
from cdp.org import BrandConfig, LoyaltyPolicy, MergePolicy
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


TRAIT_NAMES: tuple[str, ...] = tuple(Traits.model_fields)
SERVICE_PREFIX = "service:"  # consent keys of service (transactional) messages, apart from marketing opt-ins


class TraitObservation(BaseModel):
    """The latest value one source gave for a trait (kept per source so merges and splits lose nothing)."""

    value: str
    at: datetime


class ConsentState(BaseModel):
    granted: bool
    changed_at: datetime
    source: str


class LevelState(BaseModel):
    level: str
    at: datetime


class BenefitState(BaseModel):
    granted: bool
    at: datetime
    program: str | None = None


class FamilyMember(BaseModel):
    """A family member the person told the brand about; the latest telling of each member wins."""

    relation: str
    name: str | None = None
    birthday: date
    at: datetime


class CardBalance(BaseModel):
    """A stored-value or gift card: balances are per card and never summed across cards."""

    kind: Literal["stored_value", "gift_card"]
    currency: str
    balance_minor: int = 0
    last_change_at: datetime | None = None


class AcquisitionTouch(BaseModel):
    """The first ad a person is known to have responded to (a click or a lead form): their acquisition source."""

    platform: str
    kind: Literal["click", "lead"]
    at: datetime
    click_id: str | None = None
    campaign_id: str | None = None
    adgroup_id: str | None = None
    ad_id: str | None = None

    def sort_key(self) -> tuple[datetime, str, str]:
        return (self.at, self.kind, self.click_id or "")


def _first_touch(a: AcquisitionTouch | None, b: AcquisitionTouch | None) -> AcquisitionTouch | None:
    if a is None or b is None:
        return a or b
    return min(a, b, key=AcquisitionTouch.sort_key)


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
    messages_opened: int = 0
    acquisition: AcquisitionTouch | None = Field(default=None, description="the earliest ad click or lead form")
    custom_counts: dict[str, int] = Field(default_factory=dict, description="custom actions by name")
    category_counts: dict[str, int] = Field(default_factory=dict)
    store_counts: dict[str, int] = Field(default_factory=dict)
    source_counts: dict[str, int] = Field(default_factory=dict)
    order_months: dict[str, int] = Field(default_factory=dict, description="orders per calendar month '01'..'12'")
    member_levels: dict[str, LevelState] = Field(default_factory=dict, description="program -> its latest level")
    benefits: dict[str, BenefitState] = Field(default_factory=dict)
    cards: dict[str, CardBalance] = Field(default_factory=dict, description="card id -> its own balance")
    family: dict[str, FamilyMember] = Field(
        default_factory=dict, description="member key (member id, else relation:name) -> the latest telling"
    )

    @property
    def points_balance(self) -> int:
        return sum(self.points_by_program.values())

    @property
    def net_spend_minor(self) -> int:
        return self.spend_minor - self.refund_minor

    def brand_points(self, policy: LoyaltyPolicy) -> int:
        """Points of every program converted at its rate and summed (e.g. 1,000 dealer points at 10:1 + 300 = 400)."""
        return sum(points // policy.rate(program) for program, points in self.points_by_program.items())

    def member_level(self, policy: LoyaltyPolicy) -> str | None:
        if not self.member_levels:
            return None
        if policy.level_rule == "most_recent":
            return max(self.member_levels.values(), key=lambda s: (s.at, s.level)).level
        order = {level: i for i, level in enumerate(policy.level_order)}
        return max(self.member_levels.values(), key=lambda s: (order.get(s.level, -1), s.at, s.level)).level

    def active_benefits(self) -> list[str]:
        return sorted(b for b, state in self.benefits.items() if state.granted)


class TagValue(BaseModel):
    value: str | int | float | bool  # float: a tag copying a model score
    since: datetime
    expires_at: datetime | None = None


class ModelScore(BaseModel):
    """One model's output for the person. `score` is the model's main number: a probability for classifiers and
    look-alikes, an uplift (-1..1) for uplift models, money (minor units) for lifetime value. Further numbers sit in
    `outputs` and read as `<model>.<output>` in rules (`{score: clv.p_alive, gte: 0.5}`); `items` ranks things
    (the next best product's categories) for templates."""

    score: float = Field(allow_inf_nan=False)
    model_version: str
    scored_at: datetime
    outputs: dict[str, float] = Field(default_factory=dict)
    items: list[str] = Field(default_factory=list, max_length=10)

    def flat(self, model_name: str) -> dict[str, float]:
        """The numbers rules read: `<model>` and `<model>.<output>`."""
        return {model_name: self.score, **{f"{model_name}.{k}": v for k, v in self.outputs.items()}}


def flat_scores(scores: Mapping[str, ModelScore]) -> dict[str, float]:
    """Every model's numbers under the names rules read them by (`ModelScore.flat`)."""
    out: dict[str, float] = {}
    for name, score in scores.items():
        out |= score.flat(name)
    return out


class Profile(BaseModel):
    person_id: str
    brand_id: str
    created_at: datetime
    updated_at: datetime
    version: int = 0
    identifiers: list[str] = Field(default_factory=list, description="identifier keys, e.g. phone:+8613800138000")
    traits: Traits = Field(default_factory=Traits, description="resolved from trait_sources by the merge policy")
    trait_sources: dict[str, dict[str, TraitObservation]] = Field(
        default_factory=dict, description="trait -> source -> latest observation"
    )
    scoped_facts: dict[str, ProfileFacts] = Field(
        default_factory=dict, description="'{brand_id}/{store_id or -}' -> the facts of that scope (views roll up)"
    )
    consent: dict[str, ConsentState] = Field(default_factory=dict)
    facts: ProfileFacts = Field(default_factory=ProfileFacts)
    anchors: list[str] | None = Field(
        default=None,
        description="the identifiers this person's events are filed under (None: not known, every identifier is read)",
    )
    links: list[tuple[str, str]] = Field(default_factory=list, description="(low, high) identifier edges that bind")
    merged_from: list[str] = Field(default_factory=list)
    merged_into: str | None = None
    over_limit: list[str] = Field(default_factory=list, description="identifier types held beyond the rule limits")
    dissolved: bool = Field(default=False, description="every identifier turned out shared; nothing is left")
    tags: dict[str, TagValue] = Field(default_factory=dict)
    next_tag_expiry: datetime | None = Field(default=None, description="when a tag changes next with no new event")
    scores: dict[str, ModelScore] = Field(default_factory=dict)
    # The version of the item holding tags, scores and next expiry (0: none yet); the tag engine's writes check it.
    tags_version: int = Field(default=0, exclude=True)
    # The changes the tags item carries, not filed as a history chunk yet (`cdp.tags.dynamodb.write_tags`).
    tags_pending: list[dict[str, Any]] = Field(default_factory=list, exclude=True)
    # Read from an item of the layout that kept tags and scores on the person item, with no tags item yet: the next
    # write of the person moves them to their own item (`cdp.profile.dynamodb`).
    annotations_inline: bool = Field(default=False, exclude=True)

    @field_serializer("facts")
    def _compact_facts(self, value: ProfileFacts) -> dict[str, Any]:
        return value.model_dump(mode="json", exclude_defaults=True)  # zero counters cost item size and parse time

    @field_serializer("scoped_facts")
    def _compact_scoped(self, value: dict[str, ProfileFacts]) -> dict[str, Any]:
        return {scope: facts.model_dump(mode="json", exclude_defaults=True) for scope, facts in value.items()}

    @field_serializer("next_tag_expiry")
    def _sortable_expiry(self, value: datetime | None) -> str | None:
        return iso(value) if value else None  # the same sortable form the tag writer stores

    def has_consent(self, channel: str, at: datetime | None = None, purpose: str = "marketing") -> bool:
        """Marketing consent is opt-in; service messages are allowed unless refused (kept as `service:<channel>`).
        A channel-specific decision wins over the 'all' decision."""
        if purpose == "service":
            refused = self.consent.get(f"{SERVICE_PREFIX}{channel}") or self.consent.get(f"{SERVICE_PREFIX}all")
            return refused is None or refused.granted
        state = self.consent.get(channel) or self.consent.get("all")
        return bool(state and state.granted)


def _bump(counter: dict[str, int], key: str | None, by: int = 1) -> None:
    if key:
        counter[key] = counter.get(key, 0) + by


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return min(x for x in (a, b) if x is not None) if (a or b) else None


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max(x for x in (a, b) if x is not None) if (a or b) else None


def scope_key(brand_id: str, store_id: str | None) -> str:
    return f"{brand_id}/{store_id or '-'}"


def split_scope_key(key: str) -> tuple[str, str | None]:
    brand, _, store = key.partition("/")
    return brand, (None if store == "-" else store)


def apply_event(profile: Profile, event: CanonicalEvent, brand: BrandConfig | None = None) -> Profile:
    """Fold one event into a copy of the profile (pure; the caller guarantees each event is applied once).

    Order-independent: folding the same events in any order gives the same profile (ties break on value), which
    is what lets a split recompute a person from their events and agree with the incremental path.
    """
    p = profile.model_copy(deep=True)
    fold_event(p, event, brand)
    return p


def fold_event(p: Profile, event: CanonicalEvent, brand: BrandConfig | None = None) -> None:
    """`apply_event` in place: for a caller that owns the profile (a bulk fold copies once per person, not per
    event)."""
    _fold_facts(p.facts, event)
    _fold_facts(p.scoped_facts.setdefault(scope_key(event.brand_id, event.store_id), ProfileFacts()), event)
    if event.event_type == "identify":
        observed = event.properties.model_dump(exclude_none=True, include=set(TRAIT_NAMES), mode="json")
        source = _trait_source(event)
        for name, value in observed.items():
            _observe(
                p.trait_sources.setdefault(name, {}), source, TraitObservation(value=str(value), at=event.occurred_at)
            )
    elif event.event_type == "consent_changed":
        change = event.properties
        state = ConsentState(granted=change.granted, changed_at=event.occurred_at, source=event.source.value)
        key = change.channel if change.purpose == "marketing" else f"{SERVICE_PREFIX}{change.channel}"
        p.consent[key] = _newer_consent(p.consent.get(key), state)
    p.traits = resolve_traits(p, brand)
    p.updated_at = max(p.updated_at, event.occurred_at)


def _trait_source(event: CanonicalEvent) -> str:
    return f"{event.source.value}@{event.store_id}" if event.store_id else event.source.value


def _observe(by_source: dict[str, TraitObservation], source: str, obs: TraitObservation) -> None:
    current = by_source.get(source)
    if current is None or (obs.at, obs.value) > (current.at, current.value):
        by_source[source] = obs


def _newer_consent(current: ConsentState | None, state: ConsentState) -> ConsentState:
    if current is None:
        return state
    # Latest decision wins; at the same instant a refusal wins (the privacy-safe reading).
    return max(current, state, key=lambda c: (c.changed_at, not c.granted, c.source))


def _apply_facts(facts: ProfileFacts, event: CanonicalEvent) -> ProfileFacts:
    f = facts.model_copy(deep=True)
    _fold_facts(f, event)
    return f


def _fold_facts(f: ProfileFacts, event: CanonicalEvent) -> None:  # noqa: C901 - one branch per type
    at = event.occurred_at
    f.event_count += 1
    f.first_seen_at = _earliest(f.first_seen_at, at)
    f.last_seen_at = _latest(f.last_seen_at, at)
    _bump(f.source_counts, event.source.value)
    _bump(f.store_counts, event.store_id)
    match event.event_type:
        case "identify":
            level = event.properties.member_level
            if level:
                program = event.properties.program or _trait_source(event)
                new = LevelState(level=level, at=at)
                old = f.member_levels.get(program)
                if old is None or (new.at, new.level) > (old.at, old.level):
                    f.member_levels[program] = new
            for member in event.properties.family or ():
                told = FamilyMember(relation=member.relation, name=member.name, birthday=member.birthday, at=at)
                known = f.family.get(member.key)
                if known is None or _family_order(told) > _family_order(known):
                    f.family[member.key] = told
        case "page_view":
            f.page_views += 1
        case "add_to_cart":
            f.cart_adds += 1
        case "order_placed":
            props = event.properties
            f.order_count += 1
            f.spend_minor += props.total_minor
            # The same rule as merge_facts (the smallest code), so arrival order never picks the currency.
            f.currency = min(f.currency, props.currency) if f.currency else props.currency
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
        case "level_changed":
            new_level = LevelState(level=event.properties.level, at=at)
            held = f.member_levels.get(event.properties.program)
            if held is None or (new_level.at, new_level.level) > (held.at, held.level):
                f.member_levels[event.properties.program] = new_level
        case "benefit_changed":
            b = event.properties
            state = BenefitState(granted=b.granted, at=at, program=b.program)
            f.benefits[b.benefit_id] = _newer_benefit(f.benefits.get(b.benefit_id), state)
        case "card_balance_changed":
            c = event.properties
            card = f.cards.get(c.card_id) or CardBalance(kind=c.kind, currency=c.currency)
            f.cards[c.card_id] = card.model_copy(
                update={
                    "balance_minor": card.balance_minor + c.delta_minor,
                    "last_change_at": _latest(card.last_change_at, at),
                }
            )
        case "coupon_claimed":
            f.coupons_claimed += 1
        case "coupon_redeemed":
            f.coupons_redeemed += 1
        case "message_delivered":
            f.messages_delivered += 1 if event.properties.status == "delivered" else 0
        case "message_clicked":
            f.messages_clicked += 1
        case "message_opened":
            f.messages_opened += 1
        case "ad_clicked" | "lead_submitted":
            ad = event.properties
            touch = AcquisitionTouch(
                platform=ad.platform,
                kind="click" if event.event_type == "ad_clicked" else "lead",
                at=at,
                click_id=ad.click_id,
                campaign_id=ad.campaign_id,
                adgroup_id=ad.adgroup_id,
                ad_id=ad.ad_id,
            )
            f.acquisition = _first_touch(f.acquisition, touch)
        case "custom":
            _bump(f.custom_counts, event.properties.name)


def _newer_benefit(current: BenefitState | None, state: BenefitState) -> BenefitState:
    if current is None:
        return state
    return max(current, state, key=lambda b: (b.at, not b.granted, b.program or ""))


def resolve_traits(profile: Profile, brand: BrandConfig | None = None) -> Traits:
    """Each trait by its conflict rule: most recent, source priority, or keep all (shown joined, newest first).

    The member level follows the loyalty policy over every program's level (default: the highest).
    """
    merge, loyalty = (brand.merge, brand.loyalty) if brand else (MergePolicy(), LoyaltyPolicy())
    values: dict[str, Any] = {}
    for name in TRAIT_NAMES:
        by_source = profile.trait_sources.get(name) or {}
        if name == "member_level" and profile.facts.member_levels:
            values[name] = profile.facts.member_level(loyalty)
            continue
        if not by_source:
            continue
        rule = merge.trait(name)
        newest = sorted(by_source.items(), key=lambda kv: (kv[1].at, kv[1].value, kv[0]), reverse=True)
        if rule.rule == "source_priority":
            ranked = [kv for s in rule.source_priority for kv in newest if kv[0].partition("@")[0] == s]
            values[name] = (ranked or newest)[0][1].value
        elif rule.rule == "keep_all" and name not in _SINGLE_VALUED:
            values[name] = " | ".join(dict.fromkeys(obs.value for _, obs in newest))
        else:
            values[name] = newest[0][1].value
    return Traits.model_validate(values)


_SINGLE_VALUED = frozenset({"birthday", "gender", "country", "timezone"})


def all_trait_values(profile: Profile) -> dict[str, list[str]]:
    """Every distinct value each trait has had across sources, newest first (shown by the profile API)."""
    return {
        name: list(dict.fromkeys(o.value for o in sorted(obs.values(), key=lambda o: (o.at, o.value), reverse=True)))
        for name, obs in sorted(profile.trait_sources.items())
    }


def merge_facts(a: ProfileFacts, b: ProfileFacts) -> ProfileFacts:
    """Combine two persons' aggregates (commutative and associative, so merge order never matters)."""
    out: dict[str, Any] = {}
    for name, field in ProfileFacts.model_fields.items():
        x, y = getattr(a, name), getattr(b, name)
        special = _MERGE_RULES.get(name)
        if special is not None:
            out[name] = special(x, y)
        elif isinstance(x, dict):
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
            out[name] = min((c for c in (x, y) if c), default=None)
        else:  # pragma: no cover - a new field must choose its merge rule
            raise TypeError(f"no merge rule for ProfileFacts.{name} ({field.annotation})")
    return ProfileFacts(**out)


def _merge_benefits(x: dict[str, BenefitState], y: dict[str, BenefitState]) -> dict[str, BenefitState]:
    return {k: _newer_benefit(x.get(k), v) for k, v in y.items()} | {k: v for k, v in x.items() if k not in y}


def _family_order(member: FamilyMember) -> tuple[datetime, str, str, str]:
    """The latest telling wins; ties break on value, so the fold and the merge never depend on arrival order."""
    return (member.at, member.birthday.isoformat(), member.relation, member.name or "")


def _union_latest(x: dict[str, Any], y: dict[str, Any], key: Any) -> dict[str, Any]:
    out = dict(x)
    for k, v in y.items():
        out[k] = max(out[k], v, key=key) if k in out else v
    return out


_MERGE_RULES: dict[str, Callable[[Any, Any], Any]] = {
    "member_levels": lambda x, y: _union_latest(x, y, lambda s: (s.at, s.level)),
    "family": lambda x, y: _union_latest(x, y, _family_order),
    "benefits": _merge_benefits,
    "cards": lambda x, y: _merge_cards(x, y),
    "acquisition": _first_touch,
}
"""Fields of ProfileFacts that do not simply add up (counters) or take the earliest/latest time."""


def _merge_cards(x: dict[str, CardBalance], y: dict[str, CardBalance]) -> dict[str, CardBalance]:
    out = dict(x)
    for card_id, card in y.items():
        mine = out.get(card_id)
        out[card_id] = (
            card
            if mine is None
            else mine.model_copy(
                update={
                    "balance_minor": mine.balance_minor + card.balance_minor,
                    "last_change_at": _latest(mine.last_change_at, card.last_change_at),
                }
            )
        )
    return out


def merge_profiles(survivor: Profile, loser: Profile, brand: BrandConfig | None = None) -> Profile:
    """Fold a merged person into the survivor: facts add up per scope, identifiers, links, traits and consent union."""
    out = survivor.model_copy(deep=True)
    out.identifiers = sorted(set(out.identifiers) | set(loser.identifiers))
    out.anchors = None if out.anchors is None or loser.anchors is None else sorted({*out.anchors, *loser.anchors})
    out.links = sorted(set(out.links) | set(loser.links))
    out.facts = merge_facts(out.facts, loser.facts)
    for scope, facts in loser.scoped_facts.items():
        mine = out.scoped_facts.get(scope)
        out.scoped_facts[scope] = merge_facts(mine, facts) if mine else facts
    for name, by_source in loser.trait_sources.items():
        target = out.trait_sources.setdefault(name, {})
        for source, obs in by_source.items():
            _observe(target, source, obs)
    for channel, state in loser.consent.items():
        out.consent[channel] = _newer_consent(out.consent.get(channel), state)
    out.traits = resolve_traits(out, brand)
    out.merged_from = sorted({*out.merged_from, loser.person_id, *loser.merged_from})
    out.created_at = min(out.created_at, loser.created_at)
    out.updated_at = max(out.updated_at, loser.updated_at)
    return out
