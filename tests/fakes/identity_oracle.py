"""The reference an identity store must converge to, whatever the order, concurrency or redelivery of events.

* persons: `graph.partition` of the events' usable identifiers (components of the allowed links minus hubs);
* each person's facts: a from-scratch fold (`apply_event` in time order) of the events filed under its identifiers
  (an event is filed under its anchor, its highest-priority usable identifier);
* conservation: every point, order, spend and card balance of the events is on exactly one person, or on no one
  because the event's anchor is a shared identifier (a hub), never twice and never lost.

Shared by the hypothesis properties (in-memory store) and the concurrency test (DynamoDB on moto).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime

from cdp.identity import graph
from cdp.ingest.events import (
    CanonicalEvent,
    CardBalanceChangedProperties,
    OrderPlacedProperties,
    PointsChangedProperties,
)
from cdp.org import BrandConfig
from cdp.profile.models import Profile, ProfileFacts, apply_event

Ledger = Counter[tuple[str, ...]]


def usable_keys(event: CanonicalEvent, brand: BrandConfig) -> list[str]:
    return sorted({i.key for i in event.identifiers} - brand.rules.blocked_values)


def expected_partition(
    events: Iterable[CanonicalEvent],
    brand: BrandConfig,
    quarantined: Iterable[str] = (),
    disabled: Iterable[tuple[str, str]] = (),
) -> tuple[set[frozenset[str]], set[str]]:
    """(persons as identifier sets, shared identifiers) by the pure reference."""
    persons, hubs = graph.partition(
        (usable_keys(e, brand) for e in events), brand.rules, quarantined=quarantined, disabled=disabled
    )
    return set(persons), hubs


def event_ledger(event: CanonicalEvent) -> Ledger:
    """What one event adds, read from its properties (not through the code under test)."""
    out: Ledger = Counter({("events",): 1})
    props = event.properties
    if isinstance(props, PointsChangedProperties):
        out["points", props.program] += props.delta
    elif isinstance(props, OrderPlacedProperties):
        out["orders",] += 1
        out["spend",] += props.total_minor
    elif isinstance(props, CardBalanceChangedProperties):
        out["card", props.card_id] += props.delta_minor
    return out


def facts_ledger(facts: ProfileFacts) -> Ledger:
    out: Ledger = Counter({("events",): facts.event_count, ("orders",): facts.order_count})
    for program, points in facts.points_by_program.items():
        out["points", program] += points
    out["spend",] += facts.spend_minor
    for card_id, card in facts.cards.items():
        out["card", card_id] += card.balance_minor
    return out


def _nonzero(ledger: Ledger) -> dict[tuple[str, ...], int]:
    return {k: v for k, v in ledger.items() if v}


def assert_conserved(persons: Sequence[Profile], events: Iterable[CanonicalEvent], brand: BrandConfig) -> None:
    """Sum over surviving persons + events anchored at a shared identifier == the sum over all events."""
    kept = [p for p in persons if not p.merged_into and not p.dissolved]
    owned = {k for p in kept for k in p.identifiers}
    total: Ledger = Counter()
    unowned: Ledger = Counter()
    for event in events:
        anchor = brand.rules.anchor(usable_keys(event, brand))
        if anchor is None:
            continue  # only junk identifiers: nobody to attribute it to (reported as suppressed)
        total.update(event_ledger(event))
        if anchor not in owned:
            unowned.update(event_ledger(event))
    held: Ledger = Counter()
    for person in kept:
        held.update(facts_ledger(person.facts))
    combined = Counter(held)
    combined.update(unowned)  # update(), not +: a Counter sum drops negative balances
    assert _nonzero(combined) == _nonzero(total), (
        f"persons {_nonzero(held)} + under shared identifiers {_nonzero(unowned)} != events {_nonzero(total)}"
    )


def recomputed(person: Profile, events: Iterable[CanonicalEvent], brand: BrandConfig) -> Profile:
    """The person folded from scratch from the events filed under its identifiers, in time order."""
    mine = [e for e in events if brand.rules.anchor(usable_keys(e, brand)) in set(person.identifiers)]
    fresh = Profile(person_id=person.person_id, brand_id=person.brand_id, created_at=_EPOCH, updated_at=_EPOCH)
    fresh.anchors = sorted({brand.rules.anchor(usable_keys(e, brand)) or "" for e in mine})
    for event in sorted(mine, key=lambda e: (e.occurred_at, e.event_id)):
        fresh = apply_event(fresh, event, brand)
    return fresh


def comparable(profile: Profile) -> dict[str, object]:
    """What an incremental fold and a recompute must agree on (ids, versions and timestamps of writes excluded),
    with the identifiers its events are filed under (what its timeline reads)."""
    fields = {"facts", "scoped_facts", "traits", "trait_sources", "consent", "anchors"}
    return profile.model_dump(mode="json", include=fields)


def assert_recompute_agrees(persons: Iterable[Profile], events: Sequence[CanonicalEvent], brand: BrandConfig) -> None:
    for person in persons:
        if person.merged_into or person.dissolved:
            continue
        assert comparable(person) == comparable(recomputed(person, events, brand)), (
            f"{person.person_id} {sorted(person.identifiers)} differs from the fold of its filed events"
        )


def assert_converged(
    persons: Sequence[Profile],
    shared: set[str],
    events: Sequence[CanonicalEvent],
    brand: BrandConfig,
    quarantined: Iterable[str] = (),
    disabled: Iterable[tuple[str, str]] = (),
) -> None:
    """The whole reference: partition and hubs, conservation, and incremental == recompute for every person."""
    alive = [p for p in persons if not p.merged_into and not p.dissolved and p.identifiers]
    want_persons, want_hubs = expected_partition(events, brand, quarantined, disabled)
    got = [frozenset(p.identifiers) for p in alive]
    assert len(got) == len(set(got)), f"two persons hold the same identifiers: {got}"
    assert set(got) == want_persons, f"persons {sorted(map(sorted, got))} != {sorted(map(sorted, want_persons))}"
    assert shared == want_hubs
    assert_conserved(alive, events, brand)
    assert_recompute_agrees(alive, events, brand)


_EPOCH = datetime.fromisoformat("2000-01-01T00:00:00+00:00")
