"""The future of the synthetic brand: who buys after a campaign, drawn from each person's hidden response.

The platform knows persons only by its own ids and their identifier keys, so every entry point accepts identifier
keys (e.g. `phone:+8613812345678`) as well as true person ids.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from cdp_local.demo.people import EventFactory, RawId, TruePerson, order_source
from cdp_local.demo.truth import identifier_key

RESPONSE_WINDOW_DAYS = 14
CAUSED_ORDER_MEAN_DAYS = 2.5  # orders a message causes come soon after it
CAMPAIGN_TAG_CAUSED = 0.85  # share of caused orders placed through the message's link
CAMPAIGN_TAG_NATURAL = 0.2  # share of would-have-bought-anyway orders that still use the link
COUPON_USE_CAUSED = 0.8  # share of caused orders that use the coupon the message carried
COUPON_USE_NATURAL = 0.4  # share of would-have-bought-anyway orders that use it too
COUPON_SOURCES = ("pos", "mini_program", "app", "web")  # where a member can show a brand coupon (not marketplaces)


class World:
    def __init__(self, persons: Sequence[TruePerson], truth: Mapping[str, str], seed: int) -> None:
        self._persons = {p.person_id: p for p in persons}
        self._by_key = dict(truth)
        self._seed = seed
        self._known_sources: dict[str, tuple[str, ...]] = {}

    def _habitual_source(self, person: TruePerson, rng: random.Random) -> str:
        """An order channel the person has already used, so the platform can recognise the buyer."""
        known = self._known_sources.get(person.person_id)
        if known is None:
            known = tuple(
                s
                for s in person.order_sources
                if any(identifier_key(*raw) in self._by_key for raw in person.identifiers(s, with_phone=False))
            )
            self._known_sources[person.person_id] = known
        if not known:
            return order_source(person, rng)
        return known[0] if len(known) == 1 else rng.choices(known, weights=[3.0] + [1.0] * (len(known) - 1))[0]

    def _any_known_identifier(self, person: TruePerson) -> list[RawId] | None:
        """One identifier of the person that the platform has seen (None: the platform never saw them)."""
        for source in ("pos", "app", "web", "mini_program", "wechat_oa", "tmall", "jd"):
            try:
                raws = person.identifiers(source, with_phone=True)
            except ValueError:  # no identifier on that channel
                continue
            for raw in raws:
                if self._by_key.get(identifier_key(*raw)) == person.person_id:
                    return [raw]
        return None

    def person_for_identifier(self, key: str) -> str | None:
        """The true person who owns this normalized identifier key; None for unknown or shared identifiers."""
        return self._by_key.get(key)

    def person(self, ref: str) -> TruePerson:
        person_id = ref if ref in self._persons else self._by_key.get(ref)
        if person_id is None:
            raise KeyError(f"no true person for {ref!r}")
        return self._persons[person_id]

    def resolve(self, refs: Iterable[str]) -> set[str]:
        """True person ids for identifier keys or true ids; unknown and shared identifiers are left out."""
        found: set[str] = set()
        for ref in refs:
            person_id = ref if ref in self._persons else self._by_key.get(ref)
            if person_id is not None:
                found.add(person_id)
        return found

    def conversion_probability(
        self, ref: str, channel: str, *, treated: bool, window_days: int = RESPONSE_WINDOW_DAYS
    ) -> float:
        """The true chance that this person orders within the window (what a perfect uplift model would know)."""
        person = self.person(ref)
        base = person.baseline_probability(window_days)
        return min(1.0, base + person.uplift(channel)) if treated else base

    def respond(
        self,
        person_ids_treated: Iterable[str],
        person_ids_holdout: Iterable[str],
        channel: str,
        campaign_id: str,
        sent_at: datetime,
        rng_seed: int = 0,
        window_days: int = RESPONSE_WINDOW_DAYS,
        coupons: Mapping[str, tuple[str, int, int]] | None = None,
    ) -> list[dict[str, Any]]:
        """order_placed events in (sent_at, sent_at + window] for the persons who buy.

        Holdout persons buy at their baseline rate; treated persons at baseline + their hidden uplift on `channel`.
        Accepts identifier keys or true ids; a person named in both groups counts as treated. `coupons`: identifier
        key -> (code, amount off, threshold) of the coupon a treated person was sent; some of their orders above the
        threshold use it (at a till or in the mini-program, which say which code).
        """
        codes = {self._by_key.get(key, key): coupon for key, coupon in (coupons or {}).items()}
        treated = self.resolve(person_ids_treated)
        holdout = self.resolve(person_ids_holdout) - treated
        rng = random.Random(f"{self._seed}:{rng_seed}:{campaign_id}:{channel}:{sent_at.isoformat()}")
        factory = EventFactory(f"w-{campaign_id}-{rng_seed}-", rng)
        window = timedelta(days=window_days)
        events: list[tuple[datetime, dict[str, Any]]] = []
        for person_id in sorted(treated | holdout):
            person = self._persons[person_id]
            base = person.baseline_probability(window_days)
            uplift = person.uplift(channel) if person_id in treated else 0.0
            roll = rng.random()
            if roll < base:
                when = sent_at + window * rng.uniform(0.01, 1.0)
                tagged = person_id in treated and rng.random() < CAMPAIGN_TAG_NATURAL
            elif roll < base + uplift:
                delay = timedelta(days=rng.expovariate(1 / CAUSED_ORDER_MEAN_DAYS))
                when = sent_at + min(max(delay, timedelta(minutes=10)), window)
                tagged = rng.random() < CAMPAIGN_TAG_CAUSED
            else:
                continue
            source = self._habitual_source(person, rng)
            ids = None if source in self._known_sources.get(person_id, ()) else self._any_known_identifier(person)
            if ids is not None:
                source = "pos"  # a buyer the platform only knows by, say, a phone gives it at the till
            lines = factory.order_lines(person)
            code, off = None, 0
            coupon = codes.get(person_id)
            if coupon is not None and source in COUPON_SOURCES:
                value = sum(line["quantity"] * line["unit_price_minor"] for line in lines)
                caused = roll >= base
                if value >= coupon[2] and rng.random() < (COUPON_USE_CAUSED if caused else COUPON_USE_NATURAL):
                    code, off = coupon[0], coupon[1]
            event = factory.order(
                person,
                source,
                when,
                lines,
                ids=ids,
                campaign_id=campaign_id if tagged else None,
                coupon_id=code,
                discount_minor=off,
            )
            events.append((when, event))
        events.sort(key=lambda item: (item[0], item[1]["event_id"]))
        return [event for _, event in events]
