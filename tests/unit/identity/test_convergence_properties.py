"""Convergence of online identity resolution (issue 4, item 7), as hypothesis properties on the in-memory store.

The generated worlds are a few persons with a phone, an e-mail, a device, two scoped WeChat OpenIDs and a member
card; a family iPad and a store tablet that several persons' identifiers meet on; blocked junk values; typos that
put one person's identifier on another's event; and loyalty-relevant events (points, orders, card balances,
benefits, traits, consent) with clashing timestamps, under the demo brand's rules or stricter ones. Whatever the
order, and with every event delivered twice:

(a) the persons and the shared identifiers equal `graph.partition` of the same events;
(b) redelivery changes nothing;
(c) points, orders, spend and card balances are conserved (on one person, or under a shared anchor);
(d) each person's facts equal a from-scratch fold of the events filed under its identifiers;
(e) a manual merge followed by the unmerge of the same persons restores persons, ids and points;
(f) with a manual quarantine or unbind in the middle of the stream, (a), (c) and (d) hold against the reference
    given the same quarantined identifiers and cut links.

`CDP_PROPERTY_SCALE=50` multiplies the example counts for a long search.
"""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdp.identifiers.link_rules import IdentityRules
from cdp.identifiers.model import IdentifierType
from cdp.identity.service import IdentityOperations, resolve_event
from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.org import BrandConfig, LoyaltyPolicy, MergePolicy, OrgDirectory, load_org
from cdp.profile.models import Profile
from tests.fakes.identity import InMemoryIdentityStore, NullPublisher
from tests.fakes.identity_oracle import assert_converged, comparable, expected_partition

SCALE = int(os.environ.get("CDP_PROPERTY_SCALE", "1"))
T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 6, 1, tzinfo=UTC)

DEMO = load_org().brand("demo-brand")
# Stricter rules: only these type pairs link, at most 2 devices per person, and an identifier with more than 2
# more-trusted neighbours is a hub; the survivor is the busiest person and the level the most recent one.
STRICT = BrandConfig(
    brand_id="strict-brand",
    group_id="strict-group",
    dealers={"dealer-sh01": ("sh01",)},
    loyalty=LoyaltyPolicy(level_rule="most_recent", points_per_brand_point={"dealer-sh01": 10}),
    merge=MergePolicy(survivor="most_events"),
    rules=IdentityRules(
        links=[
            ("phone", "device_id"),
            ("email", "device_id"),
            ("email", "wechat_openid"),
            ("member_card", "phone"),
            ("phone", "email"),
        ],
        limits={**IdentityRules().limits, IdentifierType.DEVICE_ID: 2},
        hub_max_links=2,
    ),
)
ORG = OrgDirectory.model_validate(
    {"brands": {b.brand_id: b.model_dump() for b in [*load_org().brands.values(), STRICT]}}
)

SHARED = [{"type": "device_id", "value": "family-ipad"}, {"type": "device_id", "value": "store-tablet-sh01"}]
JUNK = [
    {"type": "device_id", "value": "00000000-0000-0000-0000-000000000000"},
    {"type": "phone", "value": "13800000000"},
    {"type": "email", "value": "test@example.com"},
]


def identifiers_of(person: int) -> list[dict[str, str]]:
    return [
        {"type": "phone", "value": f"1390000{1000 + person}"},
        {"type": "email", "value": f"p{person}@shop.cn"},
        {"type": "device_id", "value": f"phone-dev-{person}"},
        {"type": "wechat_openid", "value": f"oA{person}", "scope": "wx-oa"},
        {"type": "wechat_openid", "value": f"oM{person}", "scope": "wx-mini"},
        {"type": "member_card", "value": f"MC{person:04d}"},
    ]


def _properties(draw: st.DrawFn, event_type: str, person: int, n: int) -> dict[str, Any]:
    if event_type == "points_changed":
        return {
            "delta": draw(st.integers(-200, 800)),
            "program": draw(st.sampled_from(["app", "dealer-sh01"])),
            "reason": draw(st.sampled_from(["purchase", "redemption", "bonus"])),
        }
    if event_type == "order_placed":
        quantity, price = draw(st.integers(1, 3)), draw(st.sampled_from([990, 19900, 259900]))
        return {
            "order_id": f"o{n}",
            "lines": [{"sku": "cake", "category": "cake", "quantity": quantity, "unit_price_minor": price}],
            "total_minor": quantity * price,
            "currency": draw(st.sampled_from(["CNY", "CNY", "HKD"])),
        }
    if event_type == "card_balance_changed":
        card = draw(st.sampled_from([f"SV-{person}", "GC-gift-1"]))  # a gift card passed between persons
        return {
            "card_id": card,
            "kind": "gift_card" if card.startswith("GC") else "stored_value",
            "delta_minor": draw(st.integers(-5000, 20000)),
            "currency": "CNY",
        }
    if event_type == "benefit_changed":
        return {
            "benefit_id": draw(st.sampled_from(["free-delivery", "birthday-gift"])),
            "granted": draw(st.booleans()),
            "program": draw(st.sampled_from([None, "app", "dealer-sh01"])),
        }
    if event_type == "identify":
        props = {"name": draw(st.sampled_from(["Ann", "Anne", "Bo"])), "city": draw(st.sampled_from(["SH", "BJ"]))}
        level = draw(st.sampled_from([None, "silver", "gold"]))
        return props | ({"member_level": level} if level else {})
    return {"channel": draw(st.sampled_from(["sms", "all"])), "granted": draw(st.booleans())}  # consent_changed


EVENT_TYPES = [
    "points_changed",
    "order_placed",
    "card_balance_changed",
    "benefit_changed",
    "identify",
    "consent_changed",
]


@st.composite
def worlds(draw: st.DrawFn, max_events: int = 12) -> list[CanonicalEvent]:
    """Events of 2-4 persons of one brand; some carry a shared device, a junk value or another person's identifier."""
    brand = draw(st.sampled_from([DEMO, STRICT]))
    persons = draw(st.integers(2, 4))
    events: list[CanonicalEvent] = []
    for n in range(draw(st.integers(1, max_events))):
        person = draw(st.integers(0, persons - 1))
        own = identifiers_of(person)
        picks = [own[i] for i in draw(st.lists(st.integers(0, len(own) - 1), min_size=1, max_size=3, unique=True))]
        extra = draw(
            st.one_of(
                st.none(),
                st.sampled_from(SHARED),
                st.sampled_from(JUNK),
                st.builds(lambda p, i: identifiers_of(p)[i], st.integers(0, persons - 1), st.integers(0, 5)),
            )
        )
        if extra is not None and extra not in picks:
            picks.append(extra)
        event_type = draw(st.sampled_from(EVENT_TYPES))
        events.append(
            parse_event(
                {
                    "event_id": f"e{n}",
                    "event_type": event_type,
                    "source": draw(st.sampled_from(["app", "pos", "crm", "mini_program"])),
                    "brand_id": brand.brand_id,
                    "store_id": draw(st.sampled_from([None, "sh01", "bj02"])),
                    "occurred_at": (T0 + timedelta(minutes=draw(st.integers(0, 6)))).isoformat(),  # ties on purpose
                    "identifiers": picks,
                    "properties": _properties(draw, event_type, person, n),
                }
            )
        )
    return events


def _brand(events: list[CanonicalEvent]) -> BrandConfig:
    return ORG.brand(events[0].brand_id)


def _resolve_all(events: list[CanonicalEvent], store: InMemoryIdentityStore | None = None) -> InMemoryIdentityStore:
    store = store or InMemoryIdentityStore()
    for event in events:
        resolve_event(event, store, NullPublisher(), org=ORG, now=lambda: NOW)
    return store


def _alive(store: InMemoryIdentityStore) -> list[Profile]:
    return sorted(
        (p for p in store.persons.values() if not p.merged_into and not p.dissolved and p.identifiers),
        key=lambda p: min(p.identifiers),
    )


def _snapshot(store: InMemoryIdentityStore) -> tuple[dict[frozenset[str], Any], set[str]]:
    """Persons by their identifiers with everything a fold decides, and the shared identifiers."""
    return {frozenset(p.identifiers): comparable(p) for p in _alive(store)}, store.shared()


def _ids(store: InMemoryIdentityStore) -> dict[frozenset[str], str]:
    return {frozenset(p.identifiers): p.person_id for p in _alive(store)}


def _converged(store: InMemoryIdentityStore, events: list[CanonicalEvent], brand: BrandConfig, *cuts: Any) -> None:
    """The oracle's checks, and the identifier index (followed through merges) agrees with the profiles."""
    assert_converged(list(store.persons.values()), store.shared(), events, brand, *cuts)
    assert store.resolved() == {k: p.person_id for p in _alive(store) for k in p.identifiers}


@settings(max_examples=120 * SCALE, deadline=None)
@given(events=worlds(), seed=st.integers(0, 2**32 - 1))
def test_any_arrival_order_converges_to_the_reference_partition(events: list[CanonicalEvent], seed: int) -> None:
    # Given a world of events in a random arrival order
    shuffled = list(events)
    random.Random(seed).shuffle(shuffled)
    # When the events are resolved one by one in that order
    store = _resolve_all(shuffled)
    # Then (a) persons and hubs are the reference partition, (c) nothing is lost or counted twice,
    # and (d) every person equals the fold of the events filed under its identifiers
    want_persons, want_hubs = expected_partition(events, _brand(events))
    assert store.partition() == want_persons and store.shared() == want_hubs
    _converged(store, events, _brand(events))


@settings(max_examples=60 * SCALE, deadline=None)
@given(events=worlds(), seed=st.integers(0, 2**32 - 1))
def test_redelivery_interleaved_with_first_deliveries_changes_nothing(events: list[CanonicalEvent], seed: int) -> None:
    # Given the world resolved once, in time order
    brand = _brand(events)
    once = _resolve_all(sorted(events, key=lambda e: (e.occurred_at, e.event_id)))
    # When every event is delivered twice, the copies interleaved at random with the other events
    twice = list(events) * 2
    random.Random(seed).shuffle(twice)
    store = InMemoryIdentityStore()
    outcomes = [resolve_event(e, store, NullPublisher(), org=ORG, now=lambda: NOW) for e in twice]
    # Then each event (with a usable identifier) is applied exactly once, and the result is the single delivery's
    applied = sorted(e.event_id for e, o in zip(twice, outcomes, strict=True) if o.applied)
    usable = [e for e in events if brand.rules.anchor(i.key for i in e.identifiers)]
    assert applied == sorted(e.event_id for e in usable)
    assert _snapshot(store) == _snapshot(once)
    _converged(store, events, brand)


@settings(max_examples=60 * SCALE, deadline=None)
@given(events=worlds(), pick=st.tuples(st.integers(0, 99), st.integers(0, 99)))
def test_manual_merge_then_unmerge_restores_persons_ids_and_points(
    events: list[CanonicalEvent], pick: tuple[int, int]
) -> None:
    # Given a resolved world with at least two persons
    store = _resolve_all(events)
    alive = _alive(store)
    if len(alive) < 2:
        return
    first = alive[pick[0] % len(alive)]
    second = [p for p in alive if p.person_id != first.person_id][pick[1] % (len(alive) - 1)]
    before, ids_before = _snapshot(store), _ids(store)
    ops = IdentityOperations(store, NullPublisher(), org=ORG, now=lambda: NOW)
    # When an operator merges the two persons
    merged = ops.merge([first.person_id, second.person_id], actor="ops@brand", reason="same customer")
    (survivor,) = merged.persons
    loser = second.person_id if survivor.person_id == first.person_id else first.person_id
    # Then they are one person holding both persons' identifiers and points
    assert set(survivor.identifiers) == set(first.identifiers) | set(second.identifiers)
    programs = set(first.facts.points_by_program) | set(second.facts.points_by_program)
    assert {p: survivor.facts.points_by_program.get(p, 0) for p in programs} == {
        p: first.facts.points_by_program.get(p, 0) + second.facts.points_by_program.get(p, 0) for p in programs
    }
    # When the operator unmerges them again
    ops.unmerge(survivor.person_id, loser, actor="ops@brand", reason="not the same customer")
    # Then persons, their ids, points and every other fact are what they were before the merge
    assert _snapshot(store) == before
    assert _ids(store) == ids_before
    _converged(store, events, _brand(events))


@settings(max_examples=60 * SCALE, deadline=None)
@given(
    events=worlds(max_events=14),
    cut_at=st.integers(0, 14),
    op=st.sampled_from(["quarantine", "unbind"]),
    pick=st.integers(0, 999),
    seed=st.integers(0, 2**32 - 1),
)
def test_events_after_a_quarantine_or_unbind_converge_to_the_reference_with_those_cuts(
    events: list[CanonicalEvent], cut_at: int, op: str, pick: int, seed: int
) -> None:
    # Given part of the world resolved
    brand = _brand(events)
    head, tail = events[:cut_at], events[cut_at:]
    store = _resolve_all(head)
    ops = IdentityOperations(store, NullPublisher(), org=ORG, now=lambda: NOW)
    quarantined: list[str] = []
    disabled: list[tuple[str, str]] = []
    # When an operator quarantines an identifier, or unbinds one from its person (if there is one to act on)
    owned = [(p, k) for p in _alive(store) for k in p.identifiers if op == "quarantine" or len(p.identifiers) > 1]
    if owned:
        person, key = owned[pick % len(owned)]
        if op == "quarantine":
            ops.quarantine(brand.brand_id, key, actor="ops@brand", reason="shared counter phone")
            quarantined.append(key)
        else:
            disabled.extend((a, b) for a, b in person.links if key in (a, b))
            ops.unbind(person.person_id, key, actor="ops@brand", reason="belongs to someone else")
    # And the rest of the events arrive in any order (some of them carrying the cut links again)
    shuffled = list(tail)
    random.Random(seed).shuffle(shuffled)
    _resolve_all(shuffled, store)
    # Then the persons are the reference partition with the same quarantined identifiers and cut links,
    # nothing is lost or counted twice, and each person is the fold of the events filed under it
    want_persons, want_hubs = expected_partition(events, brand, quarantined=quarantined, disabled=disabled)
    assert store.partition() == want_persons and store.shared() == want_hubs
    _converged(store, events, brand, quarantined, disabled)


# ---- counterexamples the properties found, kept as plain regression tests --------------------------------------


def _event(n: int, *identifiers: dict[str, str], event_type: str = "identify", **props: Any) -> CanonicalEvent:
    return parse_event(
        {
            "event_id": f"x{n}",
            "event_type": event_type,
            "source": "app",
            "brand_id": DEMO.brand_id,
            "occurred_at": T0.isoformat(),
            "identifiers": list(identifiers),
            "properties": props,
        }
    )


PHONE_0, PHONE_1, PHONE_2 = (identifiers_of(i)[0] for i in range(3))
DEVICE_1, CARD_1 = identifiers_of(1)[2], identifiers_of(1)[5]
PHONE_1_KEY, EMAIL_2_KEY = "phone:+8613900001001", "email:p2@shop.cn"


@pytest.mark.parametrize(
    "events",
    [
        # An order's buyer and recipient phones (no link: the recipient's phone becomes a person of its own, whose
        # id derives from that phone), the same device with the recipient's phone and then a member card, then the
        # device with a third phone: the device is a hub and the recipient's phone splits off with no person to
        # return to; its derived id was the id of the person it split from -> ConflictError on every attempt.
        [
            _event(1, PHONE_0, PHONE_1),
            _event(2, PHONE_1, DEVICE_1),
            _event(3, DEVICE_1, CARD_1),
            _event(4, DEVICE_1, PHONE_2),
        ],
        # Two orders at the same instant in CNY and HKD: the incremental fold kept the first currency it saw.
        [
            _event(
                n,
                PHONE_0,
                event_type="order_placed",
                order_id=f"o{n}",
                currency=c,
                total_minor=990,
                lines=[{"sku": "cake", "quantity": 1, "unit_price_minor": 990}],
            )
            for n, c in ((5, "HKD"), (6, "CNY"))
        ],
    ],
    ids=["split-part-reuses-an-existing-person-id", "currency-depends-on-arrival-order"],
)
def test_counterexample_converges_in_every_order(events: list[CanonicalEvent]) -> None:
    # Given a counterexample the properties found; When it is resolved in its order and in reverse
    for order in (events, events[::-1]):
        store = _resolve_all(order)
        # Then both orders converge to the reference
        _converged(store, events, DEMO)


def test_unmerge_gives_the_merged_person_back_its_own_id_when_it_held_the_best_identifier() -> None:
    # Given a person known by a phone and another known by an e-mail, merged by hand (the e-mail person survives,
    # its id being the smaller), so the survivor's best identifier is the phone it absorbed
    store = _resolve_all([_event(6, PHONE_0), _event(7, identifiers_of(0)[1])])
    ids = _ids(store)
    ops = IdentityOperations(store, NullPublisher(), org=ORG, now=lambda: NOW)
    (survivor,) = ops.merge(sorted(ids.values()), actor="ops@brand", reason="same customer").persons
    assert survivor.person_id == ids[frozenset({"email:p0@shop.cn"})]
    (merged,) = set(ids.values()) - {survivor.person_id}
    # When the operator unmerges them
    ops.unmerge(survivor.person_id, merged, actor="ops@brand", reason="two customers")
    # Then each person is back under its own id (the phone no longer drags the survivor's id along)
    assert _ids(store) == ids


def test_a_merge_made_by_the_event_that_also_splits_a_person_is_recorded_and_can_be_undone() -> None:
    # Given a store tablet known with one customer's phone, and two more customers known by a phone and an e-mail
    tablet = SHARED[1]
    email_2 = identifiers_of(2)[1]
    store = _resolve_all([_event(8, PHONE_0, tablet), _event(9, PHONE_1), _event(10, email_2)])
    ids = _ids(store)
    # When one event carries the second customer's phone, the third one's e-mail and the tablet: the tablet
    # becomes a hub (the first customer loses it: a split) and the other two merge, in one change
    events = [_event(8, PHONE_0, tablet), _event(9, PHONE_1), _event(10, email_2), _event(11, PHONE_1, email_2, tablet)]
    _resolve_all(events[-1:], store)
    # Then the merge is in the survivor's lineage and merged_from like any merge
    (survivor,) = (p for p in _alive(store) if len(p.identifiers) == 2)
    (loser,) = {ids[frozenset({PHONE_1_KEY})], ids[frozenset({EMAIL_2_KEY})]} - {survivor.person_id}
    assert loser in survivor.merged_from
    assert [r.merged_ids for r in store.lineage(survivor.person_id) if r.kind == "merge"] == [(loser,)]
    # And an operator can undo it: both customers are back under their own ids
    ops = IdentityOperations(store, NullPublisher(), org=ORG, now=lambda: NOW)
    ops.unmerge(survivor.person_id, loser, actor="ops@brand", reason="two customers")
    after = _ids(store)
    assert all(after[k] == ids[k] for k in (frozenset({PHONE_1_KEY}), frozenset({EMAIL_2_KEY})))
    _converged(store, events, DEMO, (), [DEMO.rules.orient(PHONE_1_KEY, EMAIL_2_KEY)])
