"""A synthetic retail brand with known true identities: ~18 months of canonical events plus the ground truth.

Everything is drawn from one `random.Random(seed)` in a fixed order (no set iteration), so a seed always gives the
same brand. The hard cases identity resolution meets in real data are planted and counted:
(a) the A/B/C chain (phone+device, e-mail+same device, same e-mail+OpenID), (b) store sign-up tablets typed into by
hundreds of customers, (c) family iPads, (d) mistyped phones and e-mails, (e) returns, (f) seasonal buying
(birthday cakes in the birth month, air conditioners in summer, a rush before 11.11), plus a past SMS campaign whose
responses come from each person's hidden responsiveness.
"""

from __future__ import annotations

import math
import random
import uuid
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from itertools import accumulate
from typing import Any

from pydantic import BaseModel, ConfigDict

from cdp_local.demo.catalog import (
    AIR_CONDITIONER,
    APP_POINTS_PROGRAM,
    CAKE,
    CITIES,
    CURRENCY,
    DEALER_STORES,
    DEFAULT_RETURN_RATE,
    EMAIL_DOMAINS,
    EVERYDAY_CATEGORIES,
    GIVEN_NAMES,
    MEMBER_LEVELS,
    NEWSLETTERS,
    PHONE_PREFIXES,
    RETURN_RATE,
    SURNAMES,
    TABLET_STORES,
    City,
)
from cdp_local.demo.people import (
    ConsentHistory,
    EventFactory,
    Gender,
    RawId,
    TruePerson,
    local_moment,
    order_source,
)
from cdp_local.demo.truth import ResolutionScores, identifier_key, linkable_truth, score_resolution
from cdp_local.demo.world import RESPONSE_WINDOW_DAYS, World

DEFAULT_NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
HISTORY_DAYS = 548  # ~18 months
PAST_CAMPAIGN_ID = "cmp-2026-09-autumn"
PAST_CAMPAIGN_DAYS_BEFORE_NOW = 66  # with DEFAULT_NOW: 2026-09-15 02:00 UTC, 10:00 in Shanghai


def past_campaign_sent_at(now: datetime, days_before: int = PAST_CAMPAIGN_DAYS_BEFORE_NOW) -> datetime:
    """A past campaign went out `days_before` `now` (the autumn one: 66), at 10:00 Shanghai time (relative, so any
    run date works)."""
    day = (now - timedelta(days=days_before)).date()
    return datetime(day.year, day.month, day.day, 2, 0, tzinfo=UTC)


PAST_CAMPAIGN_SHARE = 0.9  # most consenting members got it, a random tenth was held out
SUMMER_CAMPAIGN_ID = "cmp-2026-07-summer"
SUMMER_CAMPAIGN_DAYS_BEFORE_NOW = 120
SUMMER_CAMPAIGN_SHARE = 0.5  # a randomized test: half got it, half were held out
# Each season's cake SMS was a randomized test too (half got it), days before now.
SEASONAL_TESTS: tuple[tuple[str, int], ...] = (("cmp-2026-08-qixi", 90), ("cmp-2026-05-spring", 180))
# The CRM recorded both groups of each (campaign_assigned): what pooled response and uplift models learn from.
RANDOMIZED_CAMPAIGN_IDS = ("cmp-2026-05-spring", SUMMER_CAMPAIGN_ID, "cmp-2026-08-qixi", PAST_CAMPAIGN_ID)  # oldest 1st

SEED_SCENARIO_SHARE = 0.04
TYPO_SHARE = 0.04
HOUSEHOLD_SHARE = 0.02  # share of persons who anchor a household with a shared iPad
KIOSK_SHARE = 0.8  # share of a tablet store's shoppers who sign up on the counter tablet
# Hidden segments that make response and uplift rankings disagree: deal seekers (a quarter) buy mostly with a coupon,
# so a message moves them and their everyday rate is low; regulars buy every few weeks whatever is sent (the "sure
# things" a response model ranks first and a message does not change).
DEAL_SEEKER_SHARE = 0.25
DEAL_SEEKER_RATE_FACTOR = 0.5
REGULAR_SHARE = 0.06  # of the others
REGULAR_RATE_FACTOR = 10.0
AD_SHARE = 0.08  # share of persons acquired through an ad: a click, then a lead form, before their first trace
# Ad platforms (the route key of the ads webhook) with the campaign / ad group / ad / placement / lead form they run
AD_PLATFORMS: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("oceanengine", "1790023456", "1790123456", "1790223456", "douyin_feed", "1790323456"),
    ("tencent-ads", "31337001", "31337101", "31337201", "wechat_moments", "31337301"),
)
# Push campaigns to app users (campaign id, day sent on DEFAULT_NOW's calendar): the provider reports receipt and open
PUSH_CAMPAIGNS: tuple[tuple[str, str], ...] = (("push-2026-05-618", "2026-05-30"), ("push-2026-10-1111", "2026-10-28"))
PUSH_SHARE = 0.25  # share of the app users a push reaches (the rest opted out of notifications or uninstalled)
WECHAT_UNFOLLOW_SHARE = 0.1
# In-app and on-site actions outside the e-commerce spec (Segment track calls with their own names)
CUSTOM_ACTIONS: tuple[str, ...] = ("Store Locator Used", "Coupon Viewed", "Recipe Shared", "Delivery Slot Chosen")
CUSTOM_RATE = 0.15  # custom actions per app or web channel of a person (Poisson mean)
_OPENID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


class HardCaseCounts(BaseModel):
    model_config = ConfigDict(frozen=True)

    seed_scenario_persons: int
    store_tablets: int
    store_tablet_customers: int
    max_customers_per_tablet: int
    family_devices: int
    family_members: int
    typo_identifiers: int
    typo_unlinkable: int
    member_level_conflicts: int
    orders: int
    returns: int
    cake_orders: int
    cake_orders_in_birth_month: int
    ac_orders: int
    ac_orders_in_summer: int
    orders_nov_1_to_11: int
    sms_consent_granted: int
    sms_consent_refused: int
    sms_consent_withdrawn: int
    email_consent_granted: int
    email_consent_refused: int
    email_consent_withdrawn: int
    ad_acquired: int = 0  # persons whose first trace is an ad click and a lead form


class BrandCounts(BaseModel):
    model_config = ConfigDict(frozen=True)

    persons: int
    events: int
    events_by_source: dict[str, int]
    events_by_type: dict[str, int]
    identifiers: int
    shared_identifiers: int
    hard_cases: HardCaseCounts


class PastCampaign(BaseModel):
    """The autumn SMS campaign in the history: who could get it, who got it, who bought within the window."""

    model_config = ConfigDict(frozen=True)

    campaign_id: str
    channel: str
    sent_at: datetime
    window_days: int
    eligible: list[str]  # true person ids with SMS consent on the day
    recipients: list[str]  # the random ~40% who were sent it
    delivered: list[str]
    buyers_treated: list[str]  # delivered recipients who ordered within the window
    buyers_untreated: list[str]  # eligible non-recipients who ordered within the window
    attributed_orders: int  # orders carrying the campaign id


@dataclass
class SyntheticBrand:
    seed: int
    now: datetime
    persons: list[TruePerson]
    events: list[dict[str, Any]]
    truth: dict[str, str]
    shared_identifiers: set[str]
    counts: BrandCounts
    world: World
    past_campaign: PastCampaign
    typo_identifiers: set[str] = field(default_factory=set)

    @cached_property
    def linkable_truth(self) -> dict[str, str]:
        return linkable_truth(self.truth, self.events, self.shared_identifiers)

    def score(self, resolved: dict[str, str]) -> ResolutionScores:
        """Pairwise scores of a resolution (identifier key -> platform person id), over all and linkable truth."""
        return score_resolution(self.truth, self.linkable_truth, resolved)


def generate_brand(customers: int = 2500, seed: int = 7, now: datetime = DEFAULT_NOW) -> SyntheticBrand:
    if customers < 10:
        raise ValueError("a brand needs at least 10 customers")
    return _BrandBuilder(customers, seed, now).build()


def _poisson(rng: random.Random, lam: float) -> int:
    limit, k, product = math.exp(-lam), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def _day_weight(day: date) -> float:
    weight = 1.0
    if day.month == 11 and day.day <= 11:  # the 11.11 rush
        weight += 3.0
    if day.month == 6 and day.day <= 18:  # 618
        weight += 1.0
    return weight


class _BrandBuilder:
    def __init__(self, customers: int, seed: int, now: datetime) -> None:
        self.customers = customers
        self.seed = seed
        self.now = now
        self.start = now - timedelta(days=HISTORY_DAYS)
        self.rng = random.Random(seed)
        self.loyalty_rng = random.Random(seed + 1_000_003)  # apart, so loyalty extras leave the rest unchanged
        self.factory = EventFactory("h", self.rng)
        self.events: list[tuple[datetime, dict[str, Any]]] = []
        self.owner: dict[RawId, str] = {}
        self.shared_raw: set[RawId] = set()
        self.used: set[str] = set()
        self.hc: Counter[str] = Counter()
        self.emitted: Counter[str] = Counter()
        self.balances: Counter[tuple[str, str]] = Counter()
        self.orders_by_person: dict[str, list[tuple[datetime, dict[str, Any]]]] = {}
        self.typo_raw: list[RawId] = []
        self.touches: dict[str, dict[str, datetime]] = {}
        self.tablet_customers: dict[str, set[str]] = {}
        self.day0 = self.start.date()
        self.last_day = now.date() - timedelta(days=1)  # a whole waking day still in the past
        self.cum_weights = list(accumulate(_day_weight(self.day0 + timedelta(days=i)) for i in range(HISTORY_DAYS + 1)))

    # ---- identifiers ------------------------------------------------------------------------------------------

    def _unique(self, make: Any) -> str:
        while True:
            value: str = make()
            if value not in self.used:
                self.used.add(value)
                return value

    def _phone(self) -> str:
        rng = self.rng
        return self._unique(lambda: rng.choice(PHONE_PREFIXES) + f"{rng.randrange(10**8):08d}")

    def _uuid(self) -> str:
        return self._unique(lambda: str(uuid.UUID(int=self.rng.getrandbits(128), version=4)).upper())

    def _openid(self) -> str:
        return self._unique(lambda: "o" + "".join(self.rng.choices(_OPENID_ALPHABET, k=27)))

    def _digits(self, prefix: str, n: int) -> str:
        return self._unique(lambda: prefix + f"{self.rng.randrange(10**n):0{n}d}")

    def _email(self, name: str) -> str:
        rng = self.rng
        local = name.lower().replace(" ", "")
        return self._unique(lambda: f"{local}{rng.randrange(1, 100_000)}@{rng.choice(EMAIL_DOMAINS)}")

    # ---- time -------------------------------------------------------------------------------------------------

    def _sample_day(self, lo: date, hi: date) -> date:
        """A day in [lo, hi] drawn with the seasonal weights."""
        i0 = max(0, (lo - self.day0).days)
        i1 = min(len(self.cum_weights) - 1, (hi - self.day0).days)
        low = self.cum_weights[i0 - 1] if i0 > 0 else 0.0
        index = bisect_left(self.cum_weights, self.rng.uniform(low, self.cum_weights[i1]))
        return self.day0 + timedelta(days=min(max(index, i0), i1))

    def _weighted_days(self, lo: date, hi: date) -> float:
        i0 = max(0, (lo - self.day0).days)
        i1 = min(len(self.cum_weights) - 1, (hi - self.day0).days)
        return self.cum_weights[i1] - (self.cum_weights[i0 - 1] if i0 > 0 else 0.0) if i1 >= i0 else 0.0

    # ---- emission ---------------------------------------------------------------------------------------------

    def _emit(self, person: TruePerson, event: dict[str, Any], when: datetime) -> bool:
        if not self.start <= when < self.now:
            return False
        for ident in event["identifiers"]:
            raw: RawId = (ident["type"], ident["value"], ident.get("scope"))
            if raw not in self.shared_raw:
                self.owner[raw] = person.person_id
        self.events.append((when, event))
        self.emitted[person.person_id] += 1
        return True

    def _event(
        self,
        person: TruePerson,
        event_type: str,
        source: str,
        when: datetime,
        ids: list[RawId],
        props: dict[str, Any] | None = None,
        store_id: str | None = None,
    ) -> bool:
        return self._emit(person, self.factory.event(event_type, source, when, ids, props, store_id), when)

    # ---- persons ----------------------------------------------------------------------------------------------

    def _person(self, index: int) -> TruePerson:
        rng = self.rng
        city: City = rng.choices(CITIES, weights=[c.weight for c in CITIES])[0]
        gender: Gender = rng.choices(("female", "male", "other", "unknown"), weights=(57, 40, 1, 2))[0]
        birthday = date(rng.randint(1968, 2005), rng.randint(1, 12), rng.randint(1, 28))
        age = self.now.year - birthday.year
        name = f"{rng.choice(SURNAMES)} {rng.choice(GIVEN_NAMES)}"
        primary = rng.choices(("app", "tmall", "pos", "mini_program", "jd", "web"), weights=(30, 20, 20, 15, 10, 5))[0]
        if primary == "pos" and not city.stores:
            primary = "app"
        channels = [primary]
        for channel, chance in (("app", 0.25), ("web", 0.2), ("mini_program", 0.25), ("tmall", 0.15), ("jd", 0.1)):
            if channel != primary and rng.random() < chance:
                channels.append(channel)
        if primary != "pos" and city.stores and rng.random() < 0.3:
            channels.append("pos")
        if rng.random() < (0.5 if "mini_program" in channels else 0.1):
            channels.append("wechat_oa")
        member = any(c in channels for c in ("app", "pos", "mini_program")) and rng.random() < 0.6
        level = rng.choices(MEMBER_LEVELS, weights=(15, 35, 50))[0] if member else None
        stores = city.stores
        home_store = rng.choices(stores, weights=(3, 2, 1)[: len(stores)])[0] if stores else None
        dealer_level = None
        if level and "pos" in channels and home_store in DEALER_STORES:
            dealer_level = rng.choice(MEMBER_LEVELS) if rng.random() < 0.6 else level
        # Deal seekers answer offers; the rest barely do. Level and age shift it, and deal seekers leave traces a model
        # can learn from (coupon use, newsletter clicks).
        deal_seeker = rng.random() < DEAL_SEEKER_SHARE
        responsiveness = rng.uniform(0.55, 0.95) if deal_seeker else rng.uniform(0.0, 0.15)
        responsiveness += {"gold": 0.15, "silver": 0.07}.get(level or "", 0.0)
        responsiveness += 0.1 if age < 30 else (-0.05 if age > 50 else 0.0)
        rate_boost = {"gold": 1.6, "silver": 1.25}.get(level or "", 1.0)
        if deal_seeker:
            rate_boost *= DEAL_SEEKER_RATE_FACTOR
        elif rng.random() < REGULAR_SHARE:
            rate_boost *= REGULAR_RATE_FACTOR
            responsiveness = 0.0
        span = (self.now - self.start).total_seconds() - 10 * 86_400
        unionid = self._openid() if ("mini_program" in channels or "wechat_oa" in channels) else None
        return TruePerson(
            person_id=f"tp-{index:06d}",
            name=name,
            gender=gender,
            birthday=birthday,
            city=city.name,
            country=city.country,
            timezone=city.timezone,
            member_level=level,
            channels=tuple(channels),
            home_store=home_store if "pos" in channels else None,
            affinity={c: rng.gammavariate(0.7, 1.0) + 0.01 for c in EVERYDAY_CATEGORIES},
            first_seen=self.start + timedelta(seconds=span * rng.random() ** 1.6),
            order_rate=rng.lognormvariate(math.log(1.2), 0.9) * rate_boost,
            responsiveness=min(1.0, max(0.0, responsiveness)),
            cake_buyer=rng.random() < 0.3,
            ac_buyer=rng.random() < 0.1,
            phone=self._phone(),
            email=self._email(name) if "web" in channels or rng.random() < 0.3 else None,
            app_device=self._uuid() if "app" in channels else None,
            web_device="web-" + self._digits("", 16) if "web" in channels else None,
            unionid=unionid,
            openid_mini=self._openid() if "mini_program" in channels else None,
            openid_oa=self._openid() if "wechat_oa" in channels else None,
            tmall_id=self._digits("tb", 10) if "tmall" in channels else None,
            jd_id=self._digits("jd_", 10) if "jd" in channels else None,
            member_card=self._digits("MC", 10) if level and "pos" in channels else None,
            phone_bound=frozenset(c for c in ("tmall", "jd", "mini_program") if c in channels and rng.random() < 0.5),
            dealer_level=dealer_level,
        )

    def _make_seed_scenario(self, person: TruePerson) -> None:
        """Scenario A/B/C: app (phone+device), web (e-mail+the same device), mini-program (e-mail+OpenID)."""
        person.seed_scenario = True
        person.channels = ("app", "web", "mini_program")
        person.app_device = person.app_device or self._uuid()
        person.web_device = person.app_device
        person.email = person.email or self._email(person.name)
        person.openid_mini = person.openid_mini or self._openid()
        person.unionid = None
        person.openid_oa = person.tmall_id = person.jd_id = person.member_card = None
        person.home_store = None
        person.dealer_level = None
        person.phone_bound = frozenset()

    # ---- history of one person --------------------------------------------------------------------------------

    def _identify_props(self, person: TruePerson, source: str) -> dict[str, Any]:
        props: dict[str, Any] = {"city": person.city, "country": person.country, "timezone": person.timezone}
        if source in ("app", "mini_program", "pos"):
            props.update(name=person.name, gender=person.gender)
            if self.rng.random() < 0.7:
                props["birthday"] = person.birthday.isoformat()
        level = person.dealer_level if source == "pos" and person.dealer_level else person.member_level
        if level and source in ("app", "pos", "mini_program", "tmall", "jd"):
            props["member_level"] = level
            if source == "pos" and person.dealer_level:
                props["program"] = f"dealer-{person.home_store}"
        return props

    def _touch_points(self, person: TruePerson) -> dict[str, datetime]:
        touches: dict[str, datetime] = {}
        for k, channel in enumerate(person.channels):
            first = person.first_seen if k == 0 else person.first_seen + timedelta(days=self.rng.randint(0, 120))
            touches[channel] = first if k == 0 else local_moment(first.date(), person.tz, self.rng)
        return touches

    def _identify(self, person: TruePerson, source: str, when: datetime) -> None:
        if source in ("tmall", "jd"):
            if source in person.phone_bound:  # member binding: the marketplace shares the phone once
                self._event(
                    person,
                    "identify",
                    source,
                    when,
                    person.identifiers(source, with_phone=True),
                    self._identify_props(person, source),
                )
            return
        if source == "pos":
            if person.member_card:
                ids = person.identifiers("pos", with_phone=True)
                self._event(
                    person, "identify", "pos", when, ids, self._identify_props(person, "pos"), person.home_store
                )
                if person.dealer_level and person.member_level and person.dealer_level != person.member_level:
                    self.hc["member_level_conflicts"] += 1
            if person.home_store in TABLET_STORES and self.rng.random() < KIOSK_SHARE:
                tablet = self.tablets[person.home_store]
                first_id = person.identifiers("pos", with_phone=False)[0]
                ids = [first_id if self.rng.random() < 0.5 else ("phone", person.phone, None), tablet]
                if self._event(person, "identify", "pos", when + timedelta(minutes=3), ids, {}, person.home_store):
                    self.tablet_customers[tablet[1]].add(person.person_id)
            return
        self._event(person, "identify", source, when, person.identifiers(source), self._identify_props(person, source))

    def _browse(self, person: TruePerson, source: str, since: datetime) -> None:
        rng = self.rng
        if source not in ("app", "web", "mini_program", "wechat_oa") or since >= self.now:
            return
        for _ in range(_poisson(rng, 0.7)):
            day = self._sample_day(since.date(), self.last_day)
            when = local_moment(day, person.tz, rng)
            lines = self.factory.order_lines(person)
            sku = lines[0]["sku"]
            ids = person.identifiers(source)
            anonymous = [i for i in ids if i[0] in ("device_id", "wechat_openid")][:1] or ids
            if source == "wechat_oa":
                props = {"url": f"https://mp.weixin.example/s/{sku.lower()}", "title": "New in this week"}
                self._event(person, "page_view", source, when, anonymous, props)
                continue
            props = {"url": f"https://shop.demo-brand.example/p/{sku}", "title": lines[0]["name"]}
            self._event(person, "page_view", source, when, anonymous, props)
            if rng.random() < 0.3:
                cart = {k: lines[0][k] for k in ("sku", "category", "quantity", "unit_price_minor")}
                cart["currency"] = CURRENCY
                self._event(person, "add_to_cart", source, when + timedelta(minutes=2), anonymous, cart)

    def _consent(self, person: TruePerson, touches: dict[str, datetime]) -> None:
        sms_sources = [s for s in ("app", "pos", "mini_program", "tmall", "jd") if s in touches]
        sms_sources = [s for s in sms_sources if s in ("app", "pos") or s in person.phone_bound]
        if sms_sources:
            source = min(sms_sources, key=lambda s: touches[s])
            self._consent_events(person, source, touches[source], "sms", person.sms_consent)
        if "web" in touches:
            self._consent_events(person, "web", touches["web"], "email", person.email_consent)

    def _consent_events(
        self, person: TruePerson, source: str, when: datetime, channel: str, history: ConsentHistory
    ) -> None:
        rng = self.rng
        roll = rng.random()
        if roll >= 0.92:
            return  # never asked
        granted = roll < 0.78
        at = when + timedelta(minutes=1)
        ids = person.identifiers(source, with_phone=True)
        props = {"channel": channel, "granted": granted, "purpose": "marketing"}
        store = person.home_store if source == "pos" else None
        if not self._event(person, "consent_changed", source, at, ids, props, store):
            return
        history.changes.append((at, granted))
        self.hc[f"{channel}_consent_{'granted' if granted else 'refused'}"] += 1
        if granted and rng.random() < 0.12:
            withdrawn = at + timedelta(days=rng.uniform(10, max(11.0, (self.now - at).days)))
            unsubscribe_ids: list[RawId] = (
                [("phone", person.phone, None)] if channel == "sms" else [("email", person.email or "", None)]
            )
            props = {"channel": channel, "granted": False, "purpose": "marketing"}
            if self._event(person, "consent_changed", channel, withdrawn, unsubscribe_ids, props):
                history.changes.append((withdrawn, False))
                self.hc[f"{channel}_consent_withdrawn"] += 1

    def _order(
        self,
        person: TruePerson,
        source: str,
        when: datetime,
        category: str | None = None,
        campaign_id: str | None = None,
    ) -> dict[str, Any] | None:
        rng = self.rng
        lines = self.factory.order_lines(person, category)
        with_phone = source in ("web", "pos") and not person.seed_scenario and rng.random() < 0.4
        ids = person.identifiers(source, with_phone=with_phone)
        store = person.home_store if source == "pos" else None
        gross = sum(line["quantity"] * line["unit_price_minor"] for line in lines)
        coupon_id, discount = None, 0
        if source in ("app", "mini_program") and rng.random() < 0.04 + 0.4 * person.responsiveness:
            coupon_id = self.factory.next_id("c")
            discount = min(3_000, gross // 5)
            claimed = max(when - timedelta(days=rng.uniform(0.5, 10)), person.first_seen)  # never before they came
            self._event(person, "coupon_claimed", source, claimed, ids, {"coupon_id": coupon_id})
        order = self.factory.order(
            person, source, when, lines, ids=ids, discount_minor=discount, coupon_id=coupon_id, campaign_id=campaign_id
        )
        if not self._emit(person, order, when):
            return None
        order_id = order["properties"]["order_id"]
        total = order["properties"]["total_minor"]
        self.orders_by_person.setdefault(person.person_id, []).append((when, order))
        if coupon_id:
            props = {"coupon_id": coupon_id, "order_id": order_id, "discount_minor": discount, "currency": CURRENCY}
            self._event(person, "coupon_redeemed", source, when + timedelta(seconds=5), ids, props)
        program, earned = self._earn_points(person, source, when, total, ids)
        returned = self._maybe_return(person, source, when, order, ids, program, earned)
        if rng.random() < 0.12:
            rating = (
                rng.choices((1, 2), weights=(2, 1))[0]
                if returned
                else rng.choices((5, 4, 3, 2, 1), (50, 30, 10, 5, 5))[0]
            )
            props = {"sku": lines[0]["sku"], "rating": rating, "order_id": order_id}
            self._event(person, "review_posted", source, when + timedelta(days=rng.uniform(2, 10)), ids, props, store)
        return order

    def _earn_points(
        self, person: TruePerson, source: str, when: datetime, total: int, ids: list[RawId]
    ) -> tuple[str | None, int]:
        if not person.member_level or source not in ("app", "mini_program", "web", "pos"):
            return None, 0
        dealer = source == "pos" and person.home_store in DEALER_STORES
        program = f"dealer-{person.home_store}" if dealer else APP_POINTS_PROGRAM
        earned = total // 100 * (10 if dealer else 1)  # dealers give 10 points per yuan, the app 1
        if earned <= 0:
            return None, 0
        store = person.home_store if source == "pos" else None
        key = (person.person_id, program)
        self.balances[key] += earned
        props = {"delta": earned, "program": program, "reason": "purchase", "balance_after": self.balances[key]}
        self._event(person, "points_changed", source, when + timedelta(seconds=30), ids, props, store)
        if self.balances[key] >= 2_000 and self.rng.random() < 0.15:
            self.balances[key] -= 1_000
            props = {"delta": -1_000, "program": program, "reason": "redemption", "balance_after": self.balances[key]}
            self._event(person, "points_changed", source, when + timedelta(minutes=1), ids, props, store)
        return program, earned

    def _maybe_return(
        self,
        person: TruePerson,
        source: str,
        when: datetime,
        order: dict[str, Any],
        ids: list[RawId],
        program: str | None,
        earned: int,
    ) -> bool:
        rng = self.rng
        lines = order["properties"]["lines"]
        rate = max(RETURN_RATE.get(line["category"], DEFAULT_RETURN_RATE) for line in lines)
        if rng.random() >= rate:
            return False
        returned_at = when + timedelta(days=rng.uniform(2, 20))
        whole = len(lines) == 1 or rng.random() < 0.5
        line = lines[rng.randrange(len(lines))]
        refund = (
            order["properties"]["total_minor"]
            if whole
            else min(order["properties"]["total_minor"], line["quantity"] * line["unit_price_minor"])
        )
        skus = [ln["sku"] for ln in lines] if whole else [line["sku"]]
        props = {
            "order_id": order["properties"]["order_id"],
            "refund_minor": refund,
            "currency": CURRENCY,
            "skus": skus,
            "reason": rng.choice(("size", "changed my mind", "damaged", "not as described")),
        }
        store = person.home_store if source == "pos" else None
        if not self._event(person, "order_returned", source, returned_at, ids, props, store):
            return False
        self.hc["returns"] += 1
        if program and earned:
            total = max(1, order["properties"]["total_minor"])
            clawback = earned * refund // total
            if clawback:
                key = (person.person_id, program)
                self.balances[key] -= clawback
                pts = {"delta": -clawback, "program": program, "reason": "return", "balance_after": self.balances[key]}
                self._event(person, "points_changed", source, returned_at + timedelta(seconds=30), ids, pts, store)
        return True

    def _benefits_and_cards(self, person: TruePerson) -> None:
        """Members hold benefits (unioned on merge) and some a gift or stored-value card (kept per card)."""
        if not person.member_level:
            return
        rng = self.loyalty_rng
        source = "pos" if "pos" in person.channels and person.member_card else "app"
        if source == "app" and "app" not in person.channels:
            return
        store = person.home_store if source == "pos" else None
        ids = person.identifiers(source, with_phone=True) if source == "pos" else person.identifiers(source)
        when = min(person.first_seen + timedelta(days=rng.randint(1, 30)), self.now - timedelta(days=1))
        benefit = {"gold": "free-delivery", "silver": "birthday-gift"}.get(person.member_level)
        if benefit:
            props = {"benefit_id": benefit, "granted": True, "program": APP_POINTS_PROGRAM}
            self._event(person, "benefit_changed", source, when, ids, props, store)
        if rng.random() < 0.2:
            kind = "gift_card" if source == "pos" else "stored_value"
            card = f"{'GC' if kind == 'gift_card' else 'SV'}-{rng.randrange(10**10):010d}"
            top_up = rng.choice((20_000, 50_000, 100_000))
            props = {"card_id": card, "kind": kind, "delta_minor": top_up, "currency": "CNY"}
            props["balance_after_minor"] = top_up
            self._event(person, "card_balance_changed", source, when, ids, props, store)
            spend = rng.randint(1, top_up // 100) * 100
            later = min(when + timedelta(days=rng.randint(1, 60)), self.now - timedelta(hours=1))
            props = {**props, "delta_minor": -spend, "balance_after_minor": top_up - spend}
            self._event(person, "card_balance_changed", source, later, ids, props, store)

    def _orders(self, person: TruePerson) -> None:
        rng = self.rng
        first_day = person.first_seen.date()
        last_day = self.last_day
        expected = person.order_rate * self._weighted_days(first_day, last_day) / 365.0
        for _ in range(_poisson(rng, expected)):
            day = self._sample_day(first_day, last_day)
            self._order(person, order_source(person, rng), max(person.first_seen, local_moment(day, person.tz, rng)))
        # cakes bought as gifts, whatever the month
        for _ in range(_poisson(rng, 0.05 * (self.now - person.first_seen).days / 365.0)):
            day = self._sample_day(first_day, last_day)
            self._order(person, order_source(person, rng), local_moment(day, person.tz, rng), CAKE)
        if person.cake_buyer:
            self._birthday_cakes(person)
        if person.ac_buyer:
            self._air_conditioner(person)
        self._promotions(person)

    def _promotions(self, person: TruePerson) -> None:
        """Monthly coupon drops in the app, mini-program and WeChat account: deal seekers claim them (the trace a
        response model can learn from); claims without an order stay claims."""
        rng = self.rng
        sources = [c for c in ("app", "mini_program", "wechat_oa") if c in person.channels]
        if not sources:
            return
        day = max(person.first_seen.date(), self.start.date()) + timedelta(days=rng.uniform(0, 30))
        while day < self.last_day:
            if rng.random() < 0.02 + 0.5 * person.responsiveness:
                source = rng.choice(sources)
                coupon_id = self.factory.next_id("drop")
                when = local_moment(day, person.tz, rng)
                ids = person.identifiers(source)
                self._event(person, "coupon_claimed", source, when, ids, {"coupon_id": coupon_id})
            day += timedelta(days=30)

    def _birthday_cakes(self, person: TruePerson) -> None:
        rng = self.rng
        for year in range(self.start.year, self.now.year + 1):
            birthday = person.birthday.replace(year=year)
            day = birthday - timedelta(days=rng.randint(0, min(birthday.day - 1, 6)))
            if rng.random() < 0.85 and person.first_seen.date() < day < self.now.date():
                sources = [s for s in person.order_sources if s != "jd"] or list(person.order_sources)
                self._order(person, rng.choice(sources), local_moment(day, person.tz, rng), CAKE)

    def _air_conditioner(self, person: TruePerson) -> None:
        rng = self.rng
        summers = [
            (date(y, 6, 1), date(y, 8, 31))
            for y in range(self.start.year, self.now.year + 1)
            if date(y, 8, 31) > person.first_seen.date() and date(y, 6, 1) < self.now.date()
        ]
        if not summers:
            return
        lo, hi = rng.choice(summers)
        lo = max(lo, person.first_seen.date() + timedelta(days=1))
        day = lo + timedelta(days=rng.randint(0, max(0, (hi - lo).days)))
        self._order(person, order_source(person, rng), local_moment(day, person.tz, rng), AIR_CONDITIONER)

    def _typo(self, person: TruePerson, touches: dict[str, datetime]) -> None:
        """One mistyped phone or e-mail: a different identifier of the same person, linked only if seen with another."""
        rng = self.rng
        email_typo = person.email is not None and "web" in touches and rng.random() < 0.5
        if email_typo:
            kind, value = "email", self._typo_email(person.email or "")
        else:
            kind, value = "phone", self._typo_phone(person.phone)
        typo: RawId = (kind, value, None)
        when = local_moment(self._sample_day(person.first_seen.date(), self.last_day), person.tz, rng)
        companions: list[RawId] = []
        if email_typo:
            companions = [("device_id", person.web_device or "", None)]
        elif "app" in touches:
            companions = [("device_id", person.app_device or "", None)]
        elif person.member_card:
            companions = [("member_card", person.member_card, None)]
        if companions and rng.random() < 0.5:
            source = "web" if email_typo else ("app" if "app" in touches else "pos")
            store = person.home_store if source == "pos" else None
            emitted = self._event(person, "identify", source, when, [typo, *companions], {}, store)
        else:  # a guest checkout with nothing but the mistyped value
            source = "pos" if not email_typo and person.home_store else "web"
            lines = self.factory.order_lines(person)
            order = self.factory.order(person, source, when, lines, ids=[typo])
            emitted = self._emit(person, order, when)
            if emitted:
                self.orders_by_person.setdefault(person.person_id, []).append((when, order))
                self.hc["typo_unlinkable"] += 1
        if emitted:
            self.hc["typo_identifiers"] += 1
            self.typo_raw.append(typo)

    def _typo_phone(self, phone: str) -> str:
        rng = self.rng

        def make() -> str:
            pos = rng.randrange(3, 11)
            digit = rng.choice([d for d in "0123456789" if d != phone[pos]])
            return phone[:pos] + digit + phone[pos + 1 :]

        return self._unique(make)

    def _typo_email(self, email: str) -> str:
        rng = self.rng
        local, domain = email.split("@")

        def make() -> str:
            roll = rng.random()
            if roll < 0.4:  # swapped neighbours
                i = rng.randrange(len(local) - 1)
                return local[:i] + local[i + 1] + local[i] + local[i + 2 :] + "@" + domain
            if roll < 0.7:  # a dropped letter
                i = rng.randrange(1, len(local))
                return local[:i] + local[i + 1 :] + "@" + domain
            return (
                local
                + "@"
                + {"qq.com": "qq.con", "163.com": "136.com", "gmail.com": "gmial.com"}.get(domain, "q" + domain)
            )

        return self._unique(make)

    # ---- shared devices ---------------------------------------------------------------------------------------

    def _households(self, persons: list[TruePerson]) -> None:
        """Family iPads: 2-3 members of a household, each with their own phone, sign in on one device."""
        rng = self.rng
        candidates = [p for p in persons if "app" in p.channels and not p.seed_scenario]
        by_city: dict[str, list[TruePerson]] = {}
        for p in candidates:
            by_city.setdefault(p.city, []).append(p)
        taken: set[str] = set()
        for anchor in candidates:
            if anchor.person_id in taken or rng.random() >= HOUSEHOLD_SHARE:
                continue
            pool = [p for p in by_city[anchor.city] if p.person_id not in taken and p is not anchor]
            if not pool:
                continue
            members = [anchor, *rng.sample(pool, min(len(pool), rng.choice((1, 1, 2))))]
            ipad: RawId = ("device_id", self._uuid(), None)
            self.shared_raw.add(ipad)
            household = f"hh-{anchor.person_id}"
            self.hc["family_devices"] += 1
            for member in members:
                taken.add(member.person_id)
                member.household_id = household
                self.hc["family_members"] += 1
                day = self._sample_day(member.first_seen.date(), self.last_day)
                when = local_moment(day, member.tz, rng)
                self._event(member, "identify", "app", when, [("phone", member.phone, None), ipad], {})
                sku = self.factory.order_lines(member)[0]["sku"]
                props = {"url": f"https://shop.demo-brand.example/p/{sku}"}
                self._event(member, "page_view", "app", when + timedelta(minutes=4), [ipad], props)

    # ---- marketing ----------------------------------------------------------------------------------------------

    def _newsletters(self, persons: list[TruePerson]) -> None:
        rng = self.rng
        for campaign_id, day in NEWSLETTERS:
            # the calendar is written for DEFAULT_NOW; shift it so a run on any date has the same history
            sent = datetime.fromisoformat(day).replace(hour=2, tzinfo=UTC) + (self.now - DEFAULT_NOW)
            for p in persons:
                if p.email is None or not p.email_consent.granted_at(sent) or rng.random() >= 0.6:
                    continue
                ids: list[RawId] = [("email", p.email, None)]
                message_id = f"msg-{campaign_id}-{p.person_id}"
                props = {"message_id": message_id, "channel": "email", "campaign_id": campaign_id}
                self._event(p, "message_delivered", "crm", sent, ids, props)
                if rng.random() < 0.03 + 0.45 * p.responsiveness:
                    clicked = sent + timedelta(hours=rng.uniform(0.2, 48))
                    url = f"https://shop.demo-brand.example/n/{campaign_id}"
                    props = {"message_id": message_id, "channel": "email", "url": url, "campaign_id": campaign_id}
                    self._event(p, "message_clicked", "email", clicked, ids, props)

    def _past_campaign(self, persons: list[TruePerson], campaign_id: str, sent: datetime, share: float) -> PastCampaign:
        rng = self.rng
        window = timedelta(days=RESPONSE_WINDOW_DAYS)
        eligible = [p for p in persons if p.first_seen < sent and p.sms_consent.granted_at(sent)]
        recipients = []
        for p in eligible:
            if rng.random() < share:
                recipients.append(p)  # the send log (message_delivered) records the treated
            else:  # and the CRM keeps the list of those held out
                props = {"campaign_id": campaign_id, "group": "holdout", "channel": "sms"}
                self._event(p, "campaign_assigned", "crm", sent, [("phone", p.phone, None)], props)
        delivered: list[TruePerson] = []
        for p in recipients:
            ids: list[RawId] = [("phone", p.phone, None)]
            message_id = f"msg-{campaign_id}-{p.person_id}"
            status = "delivered" if rng.random() < 0.97 else "failed"
            props = {"message_id": message_id, "channel": "sms", "campaign_id": campaign_id, "status": status}
            self._event(p, "message_delivered", "crm", sent, ids, props)
            if status != "delivered":
                continue
            delivered.append(p)
            if rng.random() < 0.03 + 0.35 * p.responsiveness:
                url = f"https://s.demo-brand.example/{campaign_id}"
                props = {"message_id": message_id, "channel": "sms", "url": url, "campaign_id": campaign_id}
                self._event(p, "message_clicked", "sms", sent + timedelta(hours=rng.uniform(0.1, 30)), ids, props)
            # would-have-bought-anyway orders already exist in the history; some still came through the link
            for when, order in self.orders_by_person.get(p.person_id, []):
                if sent < when <= sent + window and rng.random() < 0.2:
                    order["properties"]["campaign_id"] = campaign_id
            if rng.random() < p.uplift("sms"):  # the orders the message caused
                delay = timedelta(days=min(rng.expovariate(1 / 2.5), RESPONSE_WINDOW_DAYS - 0.1))
                tag = campaign_id if rng.random() < 0.85 else None
                self._order(p, order_source(p, rng), sent + max(delay, timedelta(minutes=10)), campaign_id=tag)

        def bought(p: TruePerson) -> bool:
            return any(sent < when <= sent + window for when, _ in self.orders_by_person.get(p.person_id, []))

        recipient_ids = {p.person_id for p in recipients}
        attributed = sum(
            1
            for orders in self.orders_by_person.values()
            for _, order in orders
            if order["properties"].get("campaign_id") == campaign_id
        )
        return PastCampaign(
            campaign_id=campaign_id,
            channel="sms",
            sent_at=sent,
            window_days=RESPONSE_WINDOW_DAYS,
            eligible=[p.person_id for p in eligible],
            recipients=[p.person_id for p in recipients],
            delivered=[p.person_id for p in delivered],
            buyers_treated=[p.person_id for p in delivered if bought(p)],
            buyers_untreated=[p.person_id for p in eligible if p.person_id not in recipient_ids and bought(p)],
            attributed_orders=attributed,
        )

    # ---- acquisition and engagement ---------------------------------------------------------------------------

    def _ad_acquisitions(self, persons: list[TruePerson]) -> None:
        """Some persons came from an ad: a click on their phone (its advertising id: the app's device when they have
        the app, else a fresh OAID), then a lead form with the same click id and their phone, before any trace."""
        rng = self.rng
        for p in persons:
            if p.seed_scenario or rng.random() >= AD_SHARE:
                continue
            platform, campaign, adgroup, ad, placement, form = rng.choice(AD_PLATFORMS)
            lead_at = (p.first_seen - timedelta(hours=rng.uniform(0.5, 72))).replace(microsecond=0)
            clicked_at = lead_at - timedelta(minutes=rng.uniform(1, 30))
            click_id = self._digits("ck", 16)
            device = p.app_device or self._uuid()
            ad_ids = {"campaign_id": campaign, "adgroup_id": adgroup, "ad_id": ad}
            click: RawId = ("ad_click_id", click_id, platform)
            props = {"platform": platform, "click_id": click_id, **ad_ids, "placement": placement}
            if not self._event(p, "ad_clicked", "ads", clicked_at, [click, ("device_id", device, None)], props):
                continue
            lead = {"platform": platform, "lead_id": self._digits("ld", 12), "click_id": click_id, **ad_ids}
            lead["form_id"] = form
            if self._event(p, "lead_submitted", "ads", lead_at, [click, ("phone", p.phone, None)], lead):
                self.hc["ad_acquired"] += 1

    def _wechat_follows(self, persons: list[TruePerson]) -> None:
        """Following the official account is its consent: a subscribe push (and for some, later an unsubscribe)."""
        rng = self.rng
        for p in persons:
            touched = self.touches.get(p.person_id, {}).get("wechat_oa")
            if touched is None:
                continue
            ids = p.identifiers("wechat_oa")
            followed = (touched - timedelta(minutes=1)).replace(microsecond=0)  # WeChat times are whole seconds
            props = {"channel": "wechat", "granted": True, "purpose": "marketing"}
            if not self._event(p, "consent_changed", "wechat_oa", followed, ids, props):
                continue
            if rng.random() < WECHAT_UNFOLLOW_SHARE:
                left = (followed + timedelta(days=rng.uniform(5, 300))).replace(microsecond=0)
                self._event(p, "consent_changed", "wechat_oa", left, ids, {**props, "granted": False})

    def _push_campaigns(self, persons: list[TruePerson]) -> None:
        """Pushes to app users: the provider reports each receipt and each open, by the app's device id."""
        rng = self.rng
        for campaign_id, day in PUSH_CAMPAIGNS:
            sent = datetime.fromisoformat(day).replace(hour=11, tzinfo=UTC) + (self.now - DEFAULT_NOW)
            for p in persons:
                if p.app_device is None or p.first_seen >= sent or rng.random() >= PUSH_SHARE:
                    continue
                ids: list[RawId] = [("device_id", p.app_device, None)]
                message = {
                    "message_id": f"msg-{campaign_id}-{p.person_id}",
                    "channel": "push",
                    "campaign_id": campaign_id,
                }
                received = sent + timedelta(seconds=rng.uniform(1, 600))
                if not self._event(p, "message_delivered", "push", received, ids, {**message, "status": "delivered"}):
                    continue
                if rng.random() < 0.05 + 0.4 * p.responsiveness:
                    self._event(
                        p, "message_opened", "push", received + timedelta(hours=rng.uniform(0.05, 20)), ids, message
                    )

    def _custom_actions(self, persons: list[TruePerson]) -> None:
        """Actions the app and the site track under their own names (custom events), by logged-in users."""
        rng = self.rng
        for p in persons:
            for source, since in self.touches.get(p.person_id, {}).items():
                if source not in ("app", "web") or since >= self.now:
                    continue
                for _ in range(_poisson(rng, CUSTOM_RATE)):
                    when = local_moment(self._sample_day(since.date(), self.last_day), p.tz, rng)
                    action = rng.choice(CUSTOM_ACTIONS)
                    props: dict[str, Any] = {"name": action, "screen": "home" if source == "app" else "/"}
                    if action == "Store Locator Used":
                        props["city"] = p.city
                    self._event(p, "custom", source, max(when, since), p.identifiers(source), props)

    # ---- assembly ---------------------------------------------------------------------------------------------

    def build(self) -> SyntheticBrand:
        rng = self.rng
        persons = [self._person(i) for i in range(1, self.customers + 1)]
        for p in persons:
            if rng.random() < SEED_SCENARIO_SHARE:
                self._make_seed_scenario(p)
        self.tablets: dict[str, RawId] = {}
        for store in TABLET_STORES:
            tablet: RawId = ("device_id", self._uuid(), None)
            self.tablets[store] = tablet
            self.shared_raw.add(tablet)
            self.tablet_customers[tablet[1]] = set()
        for p in persons:
            touches = self._touch_points(p)
            self.touches[p.person_id] = touches
            for source, when in touches.items():
                self._identify(p, source, when)
                self._browse(p, source, when)
            self._consent(p, touches)
            self._orders(p)
            self._benefits_and_cards(p)
            if rng.random() < TYPO_SHARE:
                self._typo(p, touches)
            if not self.emitted[p.person_id]:  # a customer is someone who left a trace: their first purchase
                self._order(p, p.order_sources[0], p.first_seen)
        self._households(persons)
        self._newsletters(persons)
        summer = past_campaign_sent_at(self.now, SUMMER_CAMPAIGN_DAYS_BEFORE_NOW)
        self._past_campaign(persons, SUMMER_CAMPAIGN_ID, summer, SUMMER_CAMPAIGN_SHARE)
        for campaign_id, days_before in SEASONAL_TESTS:
            self._past_campaign(persons, campaign_id, past_campaign_sent_at(self.now, days_before), 0.5)
        past = self._past_campaign(persons, PAST_CAMPAIGN_ID, past_campaign_sent_at(self.now), PAST_CAMPAIGN_SHARE)
        # drawn last, so the history above is the same with or without them
        self._ad_acquisitions(persons)
        self._wechat_follows(persons)
        self._push_campaigns(persons)
        self._custom_actions(persons)
        return self._assemble(persons, past)

    def _seasonal_counts(self, persons: list[TruePerson]) -> Counter[str]:
        """Cake and air-conditioner orders, judged by the month on the buyer's own calendar."""
        counts: Counter[str] = Counter()
        for p in persons:
            for when, order in self.orders_by_person.get(p.person_id, []):
                categories = {line["category"] for line in order["properties"]["lines"]}
                month = when.astimezone(p.tz).month
                if CAKE in categories:
                    counts["cake"] += 1
                    counts["cake_in_birth_month"] += month == p.birthday.month
                if AIR_CONDITIONER in categories:
                    counts["ac"] += 1
                    counts["ac_in_summer"] += month in (6, 7, 8)
        return counts

    def _assemble(self, persons: list[TruePerson], past: PastCampaign) -> SyntheticBrand:
        self.events.sort(key=lambda item: (item[0], item[1]["event_id"]))
        events = [event for _, event in self.events]
        shared = {identifier_key(*raw) for raw in self.shared_raw}
        truth: dict[str, str] = {}
        for raw, owner in self.owner.items():
            key = identifier_key(*raw)
            if truth.setdefault(key, owner) != owner:
                raise RuntimeError(f"generator bug: {key} belongs to two persons")
        orders = [e for e in events if e["event_type"] == "order_placed"]
        seasonal = self._seasonal_counts(persons)
        tablet_sizes = [len(c) for c in self.tablet_customers.values() if c]
        hard = HardCaseCounts(
            seed_scenario_persons=sum(1 for p in persons if p.seed_scenario),
            store_tablets=len(tablet_sizes),
            store_tablet_customers=sum(tablet_sizes),
            max_customers_per_tablet=max(tablet_sizes, default=0),
            family_devices=self.hc["family_devices"],
            family_members=self.hc["family_members"],
            typo_identifiers=self.hc["typo_identifiers"],
            typo_unlinkable=self.hc["typo_unlinkable"],
            member_level_conflicts=self.hc["member_level_conflicts"],
            orders=len(orders),
            returns=self.hc["returns"],
            cake_orders=seasonal["cake"],
            cake_orders_in_birth_month=seasonal["cake_in_birth_month"],
            ac_orders=seasonal["ac"],
            ac_orders_in_summer=seasonal["ac_in_summer"],
            orders_nov_1_to_11=sum(
                1 for e in orders if e["occurred_at"][5:7] == "11" and e["occurred_at"][8:10] <= "11"
            ),
            sms_consent_granted=self.hc["sms_consent_granted"],
            sms_consent_refused=self.hc["sms_consent_refused"],
            sms_consent_withdrawn=self.hc["sms_consent_withdrawn"],
            email_consent_granted=self.hc["email_consent_granted"],
            email_consent_refused=self.hc["email_consent_refused"],
            email_consent_withdrawn=self.hc["email_consent_withdrawn"],
            ad_acquired=self.hc["ad_acquired"],
        )
        counts = BrandCounts(
            persons=len(persons),
            events=len(events),
            events_by_source=dict(sorted(Counter(e["source"] for e in events).items())),
            events_by_type=dict(sorted(Counter(e["event_type"] for e in events).items())),
            identifiers=len(truth),
            shared_identifiers=len(shared),
            hard_cases=hard,
        )
        return SyntheticBrand(
            seed=self.seed,
            now=self.now,
            persons=persons,
            events=events,
            truth=truth,
            shared_identifiers=shared,
            counts=counts,
            world=World(persons, truth, self.seed),
            past_campaign=past,
            typo_identifiers={identifier_key(*raw) for raw in self.typo_raw},
        )
