"""History import: resolve a brand's past events offline in bulk and load the result as the online path would leave it.

The persons come from `cdp.identity.bulk` (the same rules, hubs and components as the online path); this module
turns them into what the identity store holds: identifier records with their links, profiles folded from the
events filed under their identifiers, the events filed under their anchors, applied markers (so a live redelivery
of an imported event is ignored) and review entries for the hubs. Live events resolve on top of it unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from cdp.errors import InvalidInputError
from cdp.identifiers.link_rules import IdentityRules
from cdp.identity.bulk import resolve_events
from cdp.identity.ports import HistoryLoad, HistorySink
from cdp.identity.resolution import IdentifierRecord
from cdp.ingest.events import CanonicalEvent
from cdp.org import BrandConfig
from cdp.profile.models import Profile, fold_event


def plan_history(events: Sequence[CanonicalEvent], brand: BrandConfig, fold: bool = True) -> HistoryLoad:
    """Resolve `events` (one brand's identity namespace) in bulk and fold each person's events into a profile
    (`fold=False`: persons with their identifiers only, for a caller that folds them itself, e.g. with their tags)."""
    rules, namespace = brand.rules, brand.namespace
    started = time.perf_counter()
    usable = [[i.key for i in e.identifiers if i.key not in rules.blocked_values] for e in events]
    result = resolve_events(usable, namespace=namespace, rules=rules)
    if result.problems:
        first = result.problems[0]
        raise InvalidInputError(f"history event {first.line}: {first.message}", first.field)
    load = HistoryLoad(namespace=namespace, seconds={"resolve": round(time.perf_counter() - started, 3)})
    owner = {key: pid for key, pid, hub in result.rows() if not hub and pid is not None}
    hubs = {key for key, _, hub in result.rows() if hub}
    links = _records(load, usable, owner, hubs, rules)
    folded = time.perf_counter()
    _profiles(load, events, usable, owner, links, brand, fold)
    load.seconds["fold"] = round(time.perf_counter() - folded, 3)
    return load


def _records(
    load: HistoryLoad,
    usable: list[list[str]],
    owner: dict[str, str],
    hubs: set[str],
    rules: IdentityRules,
) -> dict[str, set[tuple[str, str]]]:
    """Identifier records with the links events made; returns each person's live links."""
    up: dict[str, set[str]] = {}
    links: dict[str, set[tuple[str, str]]] = {}
    for keys in usable:
        for low, high in rules.event_edges(keys):
            up.setdefault(low, set()).add(high)
            if low not in hubs and high not in hubs and owner.get(low) == owner.get(high) is not None:
                links.setdefault(owner[low], set()).add((low, high))
    cap = rules.hub_max_links + 1  # a hub's links stop mattering once it is a hub (hubs are monotone)
    load.records = [
        IdentifierRecord(
            key=key,
            person_id=None if key in hubs else owner[key],
            up=frozenset(sorted(up.get(key, ()))[:cap]),
            shared="hub" if key in hubs else None,
        )
        for key in sorted(set(owner) | hubs)
    ]
    load.hubs = sorted(hubs)
    return links


def _profiles(
    load: HistoryLoad,
    events: Sequence[CanonicalEvent],
    usable: list[list[str]],
    owner: dict[str, str],
    links: dict[str, set[tuple[str, str]]],
    brand: BrandConfig,
    fold: bool,
) -> None:
    """File every event under its anchor and fold each person's events, as the online path would have."""
    members: dict[str, list[str]] = {}
    for key, person_id in owner.items():
        members.setdefault(person_id, []).append(key)
    by_person: dict[str, list[CanonicalEvent]] = {}
    anchors: dict[str, set[str]] = {}
    for event, keys in zip(events, usable, strict=True):
        anchor = brand.rules.anchor(keys)
        if anchor is None:
            continue
        load.filed.append((anchor, event))
        if anchor in owner:
            by_person.setdefault(owner[anchor], []).append(event)
            anchors.setdefault(owner[anchor], set()).add(anchor)
    earliest = min(e.occurred_at for e in events)
    for person_id, keys in sorted(members.items()):
        mine = sorted(by_person.get(person_id, []), key=lambda e: (e.occurred_at, e.event_id))
        since = mine[0].occurred_at if mine else earliest
        profile = Profile(person_id=person_id, brand_id=brand.brand_id, created_at=since, updated_at=since)
        for event in mine if fold else ():
            fold_event(profile, event, brand)
        profile.identifiers = sorted(keys)
        profile.anchors = sorted(anchors.get(person_id, ()))
        profile.links = sorted(links.get(person_id, ()))
        profile.over_limit = brand.rules.over_limit(keys)
        profile.version = 1
        load.profiles.append(profile)


def import_history(events: Iterable[CanonicalEvent], brand: BrandConfig, sink: HistorySink) -> HistoryLoad:
    """Plan and write an import into a namespace that has no live data yet (refused otherwise)."""
    batch = list(events)
    if not batch:
        raise InvalidInputError("the history file holds no events", None)
    strangers = sorted({e.brand_id for e in batch} - {brand.brand_id})
    if strangers:
        raise InvalidInputError(f"events of other brands in a {brand.brand_id} import: {strangers[:5]}", "brand_id")
    load = plan_history(batch, brand)
    sample = [r.key for r in load.records[:100]]
    if not sink.namespace_is_empty(load.namespace, sample):
        raise InvalidInputError(
            f"identity namespace {load.namespace} already holds identifiers: import history before live traffic",
            None,
        )
    written = time.perf_counter()
    sink.load_history(load)
    load.seconds["write"] = round(time.perf_counter() - written, 3)
    return load
