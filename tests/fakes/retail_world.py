"""A seeded synthetic bakery brand with a hidden truth, for tests of every model kind end to end.

Each person has hidden traits, and only their consequences reach the timeline (`PersonHistory`):

- purchase timing (BG/NBD-like): a customer buys as a Poisson process of rate `purchase_rate` from the day they join
  and, after each purchase, silently drops out with probability `dropout`. Two segments: regulars (one order every
  ~45 days, drop out after ~7 orders) and high-value customers (~12%: one order every ~12 days, loyal, three times
  the spend per order). About 14% of the regulars never order (newsletter sign-ups who only browse).
- spend per order: Gamma around the person's `spend_level`.
- categories with co-purchase structure: bread is in almost half of all baskets; each person has a favourite that
  they buy again and again (coffee lovers most of all); a basket after a cake basket usually holds candles.
- responsiveness: ~30% of persons (customers only) are persuadable: a campaign message they were treated with adds
  an order within 12 days with probability `responsiveness` (0.25..0.65), even after they stopped buying on their
  own (an offer wins them back); nobody else reacts to messages. Its visible traces: persuadable persons click
  newsletters and campaign texts (`message_clicked`) and redeem coupons on their orders (`coupon_redeemed`) far
  more often (a few curious non-persuadable persons click too). Frequent buyers gain least: they buy anyway.
- the value tier: at the last quarterly review (`REVIEW`, 100 days before the horizon) the top 8% of persons by
  spend per day over the preceding year (or since joining) were tagged `value_tier = high`. A third of the
  high-value segment joined after that review: they behave like the top spenders but are not tagged yet (the hidden
  look-alikes).

Campaigns: `xmas_cakes` (118 days before the horizon) and `valentine_cakes` (61 days before) were randomized: every
person who joined at least a week before got `campaign_assigned` (treatment or holdout, 50/50, channel sms) and the
treated got `message_delivered` an hour later (3% failed). `spring_launch` (25 days before) went to everyone,
without a holdout. Monthly newsletters (email) go to everyone who has joined.

The truth (`PersonTruth`) also holds what no model may see: whether the person is still alive at the horizon, the
uplift a message sent at the horizon would have, and the purchases they will make in the 90 days after it.
"""

from __future__ import annotations

import gc
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.models.labels import PersonHistory
from cdp.profile.models import Profile, TagValue

BRAND = "bakery"
HORIZON = datetime(2026, 4, 12, 12, 0, tzinfo=UTC)
START = HORIZON - timedelta(days=730)
REVIEW = HORIZON - timedelta(days=100)  # the last value-tier review
FUTURE_DAYS = 90  # the truth's purchases after the horizon
RESPONSE_WINDOW_DAYS = 14
VALUE_TIER = "value_tier"

HIGH_VALUE_SHARE = 0.12
RECENT_HIGH_VALUE_SHARE = 0.33  # of the high-value segment: joined after the review, so untagged
PROSPECT_SHARE = 0.14  # of the regulars: never order
PERSUADABLE_SHARE = 0.34  # of the customers (~30% of all persons)
TAGGED_SHARE = 0.08

CATEGORIES = ("bread", "cakes", "candles", "coffee", "tea", "cookies", "chocolate", "pastries")
FAVORITES = ("coffee", "cakes", "tea", "cookies", "chocolate", "pastries")

Segment = Literal["regular", "high_value"]


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    sent_at: datetime
    holdout_share: float  # 0: everyone is treated (no randomized holdout)
    category: str  # what a persuaded person buys


XMAS = Campaign("xmas_cakes", HORIZON - timedelta(days=118), 0.5, "cakes")
VALENTINE = Campaign("valentine_cakes", HORIZON - timedelta(days=61), 0.5, "cakes")
SPRING = Campaign("spring_launch", HORIZON - timedelta(days=25), 0.0, "pastries")
CAMPAIGNS = (XMAS, VALENTINE, SPRING)
NEWSLETTERS = tuple(datetime(2025 + (m > 12), (m - 1) % 12 + 1, 3, 9, 0, tzinfo=UTC) for m in range(5, 17))


@dataclass(frozen=True)
class PersonTruth:
    """What generated the person's timeline; the models see only the timeline and the profile's tags."""

    person_id: str
    segment: Segment
    joined: datetime
    customer: bool  # ordered at least once before the horizon
    purchase_rate: float  # purchases per day while a customer
    dropout: float  # chance of dropping out after each purchase
    died_at: datetime | None  # the purchase after which they dropped out (None: still a customer at the end)
    alive: bool  # a customer still buying at the horizon
    spend_level: float  # mean spend per order, minor units
    favorite: str
    persuadable: bool
    responsiveness: float  # chance a campaign message adds an order (while a customer), 0 unless persuadable
    uplift: float  # P(order within 14 days | messaged at the horizon) - P(order | not messaged)
    tagged: bool  # value_tier = high on the profile
    lookalike: bool  # high-value segment but joined after the review: untagged
    future_purchases: int  # purchase days in (horizon, horizon + FUTURE_DAYS]
    treated: dict[str, bool] = field(default_factory=dict)  # campaign -> treated (randomized campaigns they were in)


@dataclass(frozen=True)
class RetailWorld:
    histories: list[PersonHistory]
    truth: dict[str, PersonTruth]
    horizon: datetime = HORIZON

    def persons(self, where: Callable[[PersonTruth], bool]) -> list[str]:
        return [pid for pid, t in self.truth.items() if where(t)]

    def until(self, at: datetime) -> list[PersonHistory]:
        """The timelines as the brand had them at `at` (the events up to then; profiles as they are now)."""
        return [PersonHistory(h.profile, [e for e in h.events if e.occurred_at <= at]) for h in self.histories]


class _Timeline:
    """Builds one person's events through `parse_event` (so every event is a valid canonical event)."""

    def __init__(self, person_id: str) -> None:
        self.person_id = person_id
        self.events: list[CanonicalEvent] = []

    def add(self, event_type: str, at: datetime, source: str, **properties: Any) -> None:
        self.events.append(
            parse_event(
                {
                    "event_id": f"{self.person_id}-{len(self.events)}",
                    "event_type": event_type,
                    "source": source,
                    "brand_id": BRAND,
                    "occurred_at": at.isoformat(),
                    "identifiers": [{"type": "device_id", "value": f"dev-{self.person_id}"}],
                    "properties": properties,
                }
            )
        )

    def order(self, at: datetime, total: int, categories: Sequence[str], campaign_id: str | None = None) -> str:
        order_id = f"o-{self.person_id}-{len(self.events)}"
        unit = total // len(categories)
        prices = [unit] * (len(categories) - 1) + [total - unit * (len(categories) - 1)]
        lines = [
            {"sku": f"sku-{c}", "category": c, "quantity": 1, "unit_price_minor": price}
            for c, price in zip(categories, prices, strict=True)
        ]
        self.add(
            "order_placed",
            at,
            "pos",
            order_id=order_id,
            lines=lines,
            total_minor=total,
            currency="CNY",
            campaign_id=campaign_id,
        )
        return order_id


def _uniform_time(rng: random.Random, low: datetime, high: datetime) -> datetime:
    return low + (high - low) * rng.random()


def _purchase_times(
    rng: random.Random, joined: datetime, rate: float, dropout: float
) -> tuple[list[datetime], datetime | None]:
    """BG/NBD: a purchase at joining, then Poisson(rate) purchases; after each one, dropout with P = dropout."""
    end = HORIZON + timedelta(days=FUTURE_DAYS)
    times: list[datetime] = []
    at = joined
    while at <= end:
        times.append(at)
        if rng.random() < dropout:
            return times, at
        at += timedelta(days=rng.expovariate(rate))
    return times, None


def _basket(rng: random.Random, favorite: str, previous: frozenset[str], forced: str | None) -> list[str]:
    chosen: set[str] = set()
    if forced:
        chosen.add(forced)
    if rng.random() < 0.45:
        chosen.add("bread")
    if rng.random() < (0.85 if favorite == "coffee" else 0.6):
        chosen.add(favorite)
    if "cakes" in previous and rng.random() < 0.7:
        chosen.add("candles")
    if rng.random() < 0.06:
        chosen.add("cakes")  # a birthday
    if rng.random() < 0.15:
        chosen.add(rng.choice(CATEGORIES))
    return sorted(chosen or {"bread"})


@dataclass(frozen=True)
class _Traits:
    """One person's hidden draws."""

    person_id: str
    high: bool
    joined: datetime
    customer: bool
    rate: float
    dropout: float
    spend_level: float
    favorite: str
    responsiveness: float
    click_rate: float
    coupon_rate: float


def _traits(rng: random.Random, index: int) -> _Traits:
    high = rng.random() < HIGH_VALUE_SHARE
    if high and rng.random() < RECENT_HIGH_VALUE_SHARE:
        joined = _uniform_time(rng, REVIEW + timedelta(days=1), HORIZON - timedelta(days=20))
    elif high:
        joined = _uniform_time(rng, START, REVIEW - timedelta(days=30))
    else:
        joined = _uniform_time(rng, START, HORIZON - timedelta(days=20))
    customer = high or rng.random() >= PROSPECT_SHARE
    rate = rng.gammavariate(4.0, 1 / 12 / 4) if high else rng.gammavariate(2.0, 1 / 45 / 2)
    dropout = rng.betavariate(1.0, 60.0) if high else rng.betavariate(2.0, 14.0)
    spend_level = rng.gammavariate(6.0, 25_000 / 6) if high else rng.gammavariate(6.0, 9_000 / 6)
    favorite = rng.choices(FAVORITES, weights=(3, 3, 2, 2, 2, 2))[0]
    persuadable = customer and rng.random() < PERSUADABLE_SHARE
    responsiveness = rng.uniform(0.25, 0.65) if persuadable else 0.0
    curious = not persuadable and rng.random() < 0.1
    return _Traits(
        person_id=f"p{index:05d}",
        high=high,
        joined=joined,
        customer=customer,
        rate=rate,
        dropout=dropout,
        spend_level=spend_level,
        favorite=favorite,
        responsiveness=responsiveness,
        click_rate=0.05 + 0.7 * responsiveness if persuadable else (0.3 if curious else 0.03),
        coupon_rate=0.4 if persuadable else 0.06,
    )


def _campaigns(
    rng: random.Random, timeline: _Timeline, person: _Traits
) -> tuple[list[tuple[datetime, str, str]], dict[str, bool]]:
    """Assignment, delivery to the treated, clicks; the orders the messages add: (when, category, campaign)."""
    extra: list[tuple[datetime, str, str]] = []
    treated: dict[str, bool] = {}
    for campaign in CAMPAIGNS:
        if person.joined > campaign.sent_at - timedelta(days=7):
            continue
        in_treatment = campaign.holdout_share == 0 or rng.random() >= campaign.holdout_share
        if campaign.holdout_share > 0:
            treated[campaign.campaign_id] = in_treatment
        group = "treatment" if in_treatment else "holdout"
        assigned_at = campaign.sent_at - timedelta(hours=1)
        timeline.add(
            "campaign_assigned", assigned_at, "cdp", campaign_id=campaign.campaign_id, group=group, channel="sms"
        )
        if not in_treatment:
            continue
        delivered = rng.random() >= 0.03
        message_id = f"{campaign.campaign_id}-{person.person_id}"
        timeline.add(
            "message_delivered",
            campaign.sent_at,
            "cdp",
            message_id=message_id,
            channel="sms",
            campaign_id=campaign.campaign_id,
            status="delivered" if delivered else "failed",
        )
        if not delivered:
            continue
        if rng.random() < person.click_rate:
            clicked_at = campaign.sent_at + timedelta(hours=rng.uniform(0.1, 24))
            url = "https://bakery.example/offer"
            timeline.add(
                "message_clicked",
                clicked_at,
                "cdp",
                message_id=message_id,
                channel="sms",
                url=url,
                campaign_id=campaign.campaign_id,
            )
        if person.responsiveness > 0 and rng.random() < person.responsiveness:
            bought_at = campaign.sent_at + timedelta(days=rng.uniform(0.5, 12))
            extra.append((bought_at, campaign.category, campaign.campaign_id))
    return extra, treated


def _newsletters(rng: random.Random, timeline: _Timeline, person: _Traits) -> None:
    for sent in NEWSLETTERS:
        if sent < person.joined or sent > HORIZON:
            continue
        message_id = f"news-{sent:%Y%m}-{person.person_id}"
        campaign_id = f"newsletter_{sent:%Y_%m}"
        timeline.add("message_delivered", sent, "cdp", message_id=message_id, channel="email", campaign_id=campaign_id)
        if rng.random() < person.click_rate:
            clicked_at = sent + timedelta(hours=rng.uniform(0.1, 48))
            url = "https://bakery.example/news"
            timeline.add(
                "message_clicked",
                clicked_at,
                "cdp",
                message_id=message_id,
                channel="email",
                url=url,
                campaign_id=campaign_id,
            )


def _orders(rng: random.Random, timeline: _Timeline, person: _Traits, orders: list[tuple[datetime, str, str]]) -> None:
    """Orders (when, forced category, campaign) in time order, so candles can follow cakes; some with a coupon."""
    previous: frozenset[str] = frozenset()
    for at, forced, campaign_id in orders:
        total = max(500, round(rng.gammavariate(8.0, person.spend_level / 8)))
        categories = _basket(rng, person.favorite, previous, forced or None)
        order_id = timeline.order(at, total, categories, campaign_id or None)
        if rng.random() < person.coupon_rate:
            timeline.add(
                "coupon_redeemed",
                at,
                "pos",
                coupon_id="member10",
                order_id=order_id,
                discount_minor=total // 10,
                currency="CNY",
            )
        previous = frozenset(categories)


def _person(rng: random.Random, index: int) -> tuple[str, list[CanonicalEvent], PersonTruth, datetime]:
    person = _traits(rng, index)
    pid, joined, rate, customer = person.person_id, person.joined, person.rate, person.customer
    times, died_at = _purchase_times(rng, joined, rate, person.dropout) if customer else ([], None)
    timeline = _Timeline(pid)
    timeline.add("identify", joined, "crm", city=rng.choice(("Shanghai", "Beijing", "Hangzhou")))
    extra, treated = _campaigns(rng, timeline, person)
    _newsletters(rng, timeline, person)
    orders = sorted(
        [(at, "", "") for at in times if at <= HORIZON] + [(at, c, cid) for at, c, cid in extra if at <= HORIZON]
    )
    _orders(rng, timeline, person, orders)
    # browsing in the last 120 days, while a customer (prospects browse now and then)
    browse_rate = 1.5 * rate if customer else 1 / 20
    browse_end = min(HORIZON, died_at) if died_at is not None else HORIZON
    at = max(joined, HORIZON - timedelta(days=120))
    while (at := at + timedelta(days=rng.expovariate(browse_rate))) < browse_end:
        timeline.add("page_view", at, "mini_program", url="https://bakery.example/menu")

    alive = customer and (died_at is None or died_at >= HORIZON)
    future_days = {t.date() for t in times if HORIZON < t <= HORIZON + timedelta(days=FUTURE_DAYS)}
    truth = PersonTruth(
        person_id=pid,
        segment="high_value" if person.high else "regular",
        joined=joined,
        customer=bool(orders),
        purchase_rate=rate if customer else 0.0,
        dropout=person.dropout if customer else 0.0,
        died_at=died_at,
        alive=alive,
        spend_level=person.spend_level,
        favorite=person.favorite,
        persuadable=person.responsiveness > 0,
        responsiveness=person.responsiveness,
        uplift=person.responsiveness * math.exp(-(rate if alive else 0.0) * RESPONSE_WINDOW_DAYS),
        tagged=False,  # set once everyone's spend is known
        lookalike=person.high and joined > REVIEW,
        future_purchases=len(future_days),
        treated=treated,
    )
    return pid, timeline.events, truth, joined


def _spend_rate_before_review(events: Sequence[CanonicalEvent], joined: datetime) -> float:
    """The review's measure: spend per day over the year before it (or since joining, at least 30 days)."""
    since = max(REVIEW - timedelta(days=365), joined)
    if since >= REVIEW:
        return 0.0
    spend = sum(
        e.properties.total_minor for e in events if e.event_type == "order_placed" and since <= e.occurred_at <= REVIEW
    )
    return spend / max(30.0, (REVIEW - since).total_seconds() / 86_400)


def retail_world(n_persons: int = 1500, seed: int = 2026) -> RetailWorld:
    """The brand's persons as of HORIZON, with their hidden truth (deterministic for a seed)."""
    collecting = gc.isenabled()
    gc.disable()  # ~40k small models and no cycles: the cyclic collector's passes would double the build time
    try:
        return _build(n_persons, random.Random(seed))
    finally:
        if collecting:
            gc.enable()


def _build(n_persons: int, rng: random.Random) -> RetailWorld:
    people = [_person(rng, i) for i in range(n_persons)]
    spend = {pid: _spend_rate_before_review(events, joined) for pid, events, _, joined in people}
    ranked = sorted((s for s in spend.values() if s > 0), reverse=True)
    threshold = ranked[max(0, round(TAGGED_SHARE * n_persons) - 1)] if ranked else 1
    histories: list[PersonHistory] = []
    truth: dict[str, PersonTruth] = {}
    for pid, events, person_truth, joined in people:
        tagged = spend[pid] >= max(threshold, 1)
        tags = {VALUE_TIER: TagValue(value="high", since=REVIEW)} if tagged else {}
        profile = Profile(person_id=pid, brand_id=BRAND, created_at=joined, updated_at=HORIZON, tags=tags)
        histories.append(PersonHistory(profile, sorted(events, key=lambda e: (e.occurred_at, e.event_id))))
        truth[pid] = _with_tag(person_truth, tagged)
    return RetailWorld(histories, truth)


def _with_tag(truth: PersonTruth, tagged: bool) -> PersonTruth:
    return replace(truth, tagged=tagged, lookalike=truth.lookalike and not tagged)


def shuffle_campaign_outcomes(
    histories: Sequence[PersonHistory], campaign_id: str, window_days: int, seed: int
) -> list[PersonHistory]:
    """The same persons with one campaign's outcomes shuffled: the orders each delivered person placed in the window
    after the delivery go to another delivered person (a random permutation). Campaign response labels of that
    campaign are permuted; everything before the delivery is untouched."""
    window = timedelta(days=window_days)
    delivered: dict[str, datetime] = {}
    for h in histories:
        for e in h.events:
            if (
                e.event_type == "message_delivered"
                and e.properties.campaign_id == campaign_id
                and e.properties.status == "delivered"
            ):
                delivered[h.profile.person_id] = e.occurred_at

    def in_window(h: PersonHistory, e: CanonicalEvent) -> bool:
        start = delivered.get(h.profile.person_id)
        return start is not None and e.event_type == "order_placed" and start <= e.occurred_at <= start + window

    receivers = [h.profile.person_id for h in histories if h.profile.person_id in delivered]
    givers = receivers[:]
    random.Random(seed).shuffle(givers)
    by_id = {h.profile.person_id: h for h in histories}
    moved = {
        receiver: [e for e in by_id[giver].events if in_window(by_id[giver], e)]
        for receiver, giver in zip(receivers, givers, strict=True)
    }
    out = []
    for h in histories:
        kept = [e for e in h.events if not in_window(h, e)]
        events = sorted(kept + moved.get(h.profile.person_id, []), key=lambda e: (e.occurred_at, e.event_id))
        out.append(PersonHistory(h.profile, events))
    return out
