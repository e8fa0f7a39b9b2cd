"""Pure identity resolution: from the graph around a change, the plan that the identity store commits atomically.

Persons are the connected components of the live identifier links (see `cdp.identifiers.link_rules`). Every change (an
event's identifiers, a manual merge, an unmerge, an unbind, an erasure) is planned the same way: update the
identifier records, recompute the components of the persons it touches, and map components back to persons:

* one component holding several persons: a **merge** (survivor by the brand's policy; facts fold incrementally);
* one person spread over several components, or losing an identifier to a hub: a **split**; each part is
  recomputed from the events filed under its identifiers (events are filed under their anchor identifier, so they
  follow it to whichever person owns it), and a part that matches a person merged earlier gets that id back.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal, Protocol

from cdp.identifiers.link_rules import IdentityRules
from cdp.identity.graph import components
from cdp.ingest.events import CanonicalEvent
from cdp.org import BrandConfig
from cdp.profile.models import Profile, apply_event, merge_profiles

_PERSON_NAMESPACE = uuid.UUID("6f1c2a4e-5d7b-4c1e-9a3f-0b8d2e6c4f10")

ShareReason = Literal["hub", "manual"]


@dataclass(frozen=True)
class IdentifierRecord:
    """One identifier in a namespace: its owner, the higher-priority identifiers events linked it to, its state."""

    key: str
    person_id: str | None  # None: shared (hubs belong to nobody)
    up: frozenset[str] = frozenset()
    disabled: frozenset[str] = frozenset()  # higher neighbours whose link an unmerge or unbind cut
    shared: ShareReason | None = None
    version: int = 0  # 0: not stored yet


@dataclass(frozen=True)
class LineageRecord:
    """One entry of a person's merge history, with its evidence."""

    kind: Literal["merge", "split", "quarantine"]
    at: datetime
    person_ids: tuple[str, ...]  # every person the change touched (the record is filed under each)
    rule: str
    identifiers: tuple[str, ...]  # the bridging, quarantined or cut identifiers
    event_id: str | None = None
    actor: str | None = None
    survivor_id: str | None = None
    merged_ids: tuple[str, ...] = ()
    parts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # split: person id -> its identifiers


@dataclass(frozen=True)
class ProfileWrite:
    profile: Profile
    expected_version: int | None  # None: must not exist yet


@dataclass
class ResolutionPlan:
    """Everything one change writes; the store commits it in one transaction with version checks."""

    namespace: str
    profiles: list[ProfileWrite] = field(default_factory=list)
    identifiers: list[IdentifierRecord] = field(default_factory=list)  # new states; version = the expected one
    lineage: list[LineageRecord] = field(default_factory=list)
    newly_shared: list[str] = field(default_factory=list)
    event_person_id: str | None = None  # the person the event was folded into (None: filed under a hub only)
    anchor: str | None = None
    recomputed: tuple[str, ...] = ()  # persons rebuilt from their events (a split)

    @property
    def merged(self) -> list[Profile]:
        return [w.profile for w in self.profiles if w.profile.merged_into]

    def profile(self, person_id: str) -> Profile | None:
        return next((w.profile for w in self.profiles if w.profile.person_id == person_id), None)


class History(Protocol):
    """What a split needs beyond the touched persons: the events filed under identifiers, and earlier persons."""

    def events_anchored(self, namespace: str, keys: Iterable[str]) -> list[tuple[str, CanonicalEvent]]:
        """(anchor identifier, event) for every event filed under one of the keys."""
        ...

    def load_persons(self, person_ids: Iterable[str]) -> dict[str, Profile]: ...

    def lookup_identifiers(self, namespace: str, keys: Iterable[str]) -> dict[str, IdentifierRecord]: ...


@dataclass(frozen=True)
class Change:
    """The change to plan. An event brings identifiers and links; admin operations bring cuts, links or shares."""

    at: datetime
    event: CanonicalEvent | None = None
    keys: tuple[str, ...] = ()  # the event's usable identifier keys
    new_links: tuple[tuple[str, str], ...] = ()  # (low, high), from the event or a manual merge
    manual_links: bool = False
    cut: tuple[tuple[str, str], ...] = ()  # (low, high) links an unmerge or unbind disables
    share: tuple[str, ...] = ()  # identifiers quarantined by hand
    actor: str | None = None
    rule: str = "identifiers seen together on one event"


def person_id_for_component(namespace: str, keys: Iterable[str], salt: str = "") -> str:
    """The id of a person first seen as a whole component (bulk loads, split parts): stable across reruns.

    A split part salts it with the change's own new-person id: its identifiers were seen before, so the unsalted id
    may already name a person (the one it split from, or one merged away earlier)."""
    return uuid.uuid5(_PERSON_NAMESPACE, f"{namespace}#{min(keys)}" + (f"#{salt}" if salt else "")).hex


def plan_change(
    change: Change,
    namespace: str,
    records: Mapping[str, IdentifierRecord],
    persons: Mapping[str, Profile],
    rules: IdentityRules,
    brand: BrandConfig,
    history: History,
    new_person_id: str,
) -> ResolutionPlan:
    """Plan one change. `records` hold every identifier the change names (absent: unknown); `persons` every
    current person that owns one of them (and, for admin operations, the persons named)."""
    updated = _update_records(change, records, rules)
    newly_shared = sorted(k for k, r in updated.items() if r.shared and not (records.get(k) and records[k].shared))
    shared = {k for k, r in updated.items() if r.shared}
    cut = set(change.cut)

    nodes: set[str] = {k for k in change.keys if k not in shared}
    links: set[tuple[str, str]] = set()
    for person in persons.values():
        nodes |= set(person.identifiers) - shared
        links |= set(person.links)
    links = {(a, b) for a, b in links | set(change.new_links) if a in nodes and b in nodes and (a, b) not in cut}
    links = {(a, b) for a, b in links if b not in updated.get(a, _EMPTY).disabled}
    parts = components(nodes, links)
    part_of = {k: i for i, part in enumerate(parts) for k in part}

    homes: dict[int, list[Profile]] = {}
    losing = False
    for person in persons.values():
        mine = [k for k in person.identifiers if k in part_of]
        if not mine:
            losing = True  # every identifier became shared: the person dissolves
            continue
        home = part_of[min(mine, key=rules.order)]
        homes.setdefault(home, []).append(person)
        losing |= any(part_of.get(k) != home for k in person.identifiers)
    anchor = rules.anchor(change.keys) if change.event else None
    anchor_part = part_of.get(anchor) if anchor else None

    plan = ResolutionPlan(namespace=namespace, newly_shared=newly_shared, anchor=anchor)
    if losing:
        _plan_split(plan, change, parts, homes, persons, links, rules, brand, history, anchor_part, new_person_id)
        # Every identifier of the split persons changes hands or may: repoint them all (version-checked).
        rest = {k for p in persons.values() for k in p.identifiers} - set(updated)
        updated.update(history.lookup_identifiers(namespace, rest) if rest else {})
    else:
        _plan_merge(plan, change, parts, homes, links, rules, brand, new_person_id, anchor_part)

    for write in plan.profiles:
        write.profile.version = (write.expected_version or 0) + 1
    owner = {k: w.profile.person_id for w in plan.profiles if not w.profile.merged_into for k in w.profile.identifiers}
    for key, record in sorted(updated.items()):
        final = replace(record, person_id=None if record.shared else owner.get(key, record.person_id))
        if final != records.get(key):
            plan.identifiers.append(final)
    if newly_shared:
        touched = tuple(sorted({r.person_id for k in newly_shared if (r := records.get(k)) and r.person_id}))
        plan.lineage.append(
            LineageRecord(
                kind="quarantine",
                at=change.at,
                person_ids=touched,
                rule="manual quarantine" if change.share else "identifier links more persons than the limits allow",
                identifiers=tuple(newly_shared),
                event_id=change.event.event_id if change.event else None,
                actor=change.actor,
            )
        )
    return plan


_EMPTY = IdentifierRecord(key="", person_id=None)


def _update_records(
    change: Change, records: Mapping[str, IdentifierRecord], rules: IdentityRules
) -> dict[str, IdentifierRecord]:
    """New records for unknown keys, links and cuts recorded on their low end, hubs detected (monotone, except that
    a manual merge re-allows a link an unmerge cut: admin operations are ordered, events are not)."""
    out = dict(records)
    for key in change.keys:
        out.setdefault(key, IdentifierRecord(key=key, person_id=None))
    _link_records(change, out)
    for low, high in change.cut:
        rec = out.get(low)
        if rec is not None and high not in rec.disabled:
            out[low] = replace(rec, disabled=rec.disabled | {high})
    for key, rec in list(out.items()):
        if rec.shared:
            continue
        if key in change.share:
            out[key] = replace(rec, shared="manual")
        elif rec.up and rules.is_hub(key, rec.up):
            out[key] = replace(rec, shared="hub")
    return out


def _link_records(change: Change, out: dict[str, IdentifierRecord]) -> None:
    """An event's links are recorded on their low end (hub detection counts them); an administrator's merge is the
    latest word instead: a link an earlier unmerge cut is allowed again."""
    for low, high in change.new_links:
        rec = out.get(low)
        if rec is None:
            continue
        if not change.manual_links and not rec.shared and high not in rec.up:
            out[low] = replace(rec, up=rec.up | {high})
        elif change.manual_links and high in rec.disabled:
            out[low] = replace(rec, disabled=rec.disabled - {high})


def _choose_survivor(candidates: list[Profile], brand: BrandConfig) -> Profile:
    policy = brand.merge.survivor
    order = {level: i for i, level in enumerate(brand.loyalty.level_order)}

    def key(p: Profile) -> tuple[object, ...]:
        if policy == "most_events":
            return (-p.facts.event_count, p.created_at, p.person_id)
        if policy == "highest_level":
            return (-order.get(p.facts.member_level(brand.loyalty) or "", -1), p.created_at, p.person_id)
        return (p.created_at, p.person_id)

    return min(candidates, key=key)


def _finish(profile: Profile, part: frozenset[str], links: Iterable[tuple[str, str]], rules: IdentityRules) -> None:
    profile.identifiers = sorted(part)
    profile.links = sorted((a, b) for a, b in links if a in part and b in part)
    profile.over_limit = rules.over_limit(part)


def _plan_merge(
    plan: ResolutionPlan,
    change: Change,
    parts: list[frozenset[str]],
    homes: dict[int, list[Profile]],
    live_links: set[tuple[str, str]],
    rules: IdentityRules,
    brand: BrandConfig,
    new_person_id: str,
    anchor_part: int | None,
) -> None:
    """No person loses an identifier: fold the persons of each component into one, and the event into its part."""
    for i, part in enumerate(parts):
        members = homes.get(i, [])
        if not members and i != anchor_part and not (set(part) & set(change.keys)):
            continue
        if members:
            survivor = _choose_survivor(members, brand)
            target = survivor
            for loser in sorted(members, key=lambda p: p.person_id):
                if loser.person_id != survivor.person_id:
                    target = merge_profiles(target, loser, brand)
                    plan.profiles.append(
                        ProfileWrite(loser.model_copy(update={"merged_into": survivor.person_id}), loser.version)
                    )
            expected: int | None = survivor.version
        else:
            pid = new_person_id if i == anchor_part else person_id_for_component(plan.namespace, part)
            # A person exists since the evidence that first showed them, not since it was processed.
            first_seen = min(change.at, change.event.occurred_at) if change.event else change.at
            target = Profile(
                person_id=pid,
                brand_id=change.event.brand_id if change.event else brand.brand_id,
                created_at=first_seen,
                updated_at=change.at,
                anchors=[],
            )
            expected = None
        if i == anchor_part and change.event is not None and plan.anchor is not None:
            target = apply_event(target, change.event, brand)
            if target.anchors is not None and plan.anchor not in target.anchors:
                target.anchors = sorted({*target.anchors, plan.anchor})
            plan.event_person_id = target.person_id
        target = target.model_copy(deep=True)
        _finish(target, part, live_links, rules)
        target.updated_at = max(target.updated_at, change.at)
        plan.profiles.append(ProfileWrite(target, expected))
        if len(members) > 1:
            plan.lineage.append(_merge_record(change, part, members, target.person_id))


def _merge_record(change: Change, part: frozenset[str], members: list[Profile], survivor_id: str) -> LineageRecord:
    bridging = sorted({k for a, b in change.new_links for k in (a, b) if a in part})
    return LineageRecord(
        kind="merge",
        at=change.at,
        person_ids=tuple(sorted(m.person_id for m in members)),
        rule=change.rule,
        identifiers=tuple(bridging),
        event_id=change.event.event_id if change.event else None,
        actor=change.actor,
        survivor_id=survivor_id,
        merged_ids=tuple(sorted(m.person_id for m in members if m.person_id != survivor_id)),
    )


def _plan_split(
    plan: ResolutionPlan,
    change: Change,
    parts: list[frozenset[str]],
    homes: dict[int, list[Profile]],
    persons: Mapping[str, Profile],
    live_links: set[tuple[str, str]],
    rules: IdentityRules,
    brand: BrandConfig,
    history: History,
    anchor_part: int | None,
    new_person_id: str,
) -> None:
    """Some person loses identifiers: rebuild every touched part from the events filed under its identifiers."""
    touched_keys = {k for p in persons.values() for k in p.identifiers} | set(change.keys)
    events = {e.dedupe_key: (a, e) for a, e in history.events_anchored(plan.namespace, touched_keys)}
    if change.event is not None and plan.anchor is not None:
        events[change.event.dedupe_key] = (plan.anchor, change.event)
    earlier_ids = sorted({m for p in persons.values() for m in p.merged_from} - set(persons))
    earlier = history.load_persons(earlier_ids) if earlier_ids else {}
    homes = _own_homes(parts, homes, earlier, rules)

    taken: set[str] = set()
    by_part: dict[int, Profile] = {}
    for i, part in enumerate(parts):
        members = homes.get(i, [])
        if not members and not (set(part) & touched_keys):
            continue
        expected: int | None
        if members:
            survivor = _choose_survivor(members, brand)
            base, expected = survivor, survivor.version
        else:
            base, expected = _earlier_person(part, earlier, taken, plan.namespace, change, brand, new_person_id)
        taken.add(base.person_id)
        by_part[i] = _rebuilt(base, part, events.values(), brand, change.at)
        losers = [m for m in members if m.person_id != base.person_id]
        for loser in losers:
            plan.profiles.append(ProfileWrite(loser.model_copy(update={"merged_into": base.person_id}), loser.version))
        if losers:  # the change also merged persons: record it like any merge, so it can be undone
            merged = {m for loser in losers for m in (loser.person_id, *loser.merged_from)}
            by_part[i].merged_from = sorted(set(by_part[i].merged_from) | merged)
            plan.lineage.append(_merge_record(change, part, members, base.person_id))
        plan.profiles.append(ProfileWrite(by_part[i], expected))
        _finish(by_part[i], part, live_links, rules)
    homed = {p.person_id for ms in homes.values() for p in ms}
    for person in persons.values():
        if person.person_id not in homed:  # every identifier became shared: nothing of them is left
            gone = person.model_copy(update={"identifiers": [], "links": [], "dissolved": True})
            plan.profiles.append(ProfileWrite(gone, person.version))
    if anchor_part is not None and anchor_part in by_part:
        plan.event_person_id = by_part[anchor_part].person_id
    plan.recomputed = tuple(sorted(p.person_id for p in by_part.values()))
    # Each surviving part keeps the merged ids it did not hand back.
    for profile in by_part.values():
        profile.merged_from = sorted(set(profile.merged_from) - taken)
    if len(by_part) > 1 or any(p.person_id not in homed for p in persons.values()):
        plan.lineage.append(
            LineageRecord(
                kind="split",
                at=change.at,
                person_ids=tuple(sorted(set(persons) | {p.person_id for p in by_part.values()})),
                rule=change.rule,
                identifiers=tuple(sorted({k for link in change.cut for k in link} | set(plan.newly_shared))),
                event_id=change.event.event_id if change.event else None,
                actor=change.actor,
                parts={p.person_id: tuple(p.identifiers) for p in by_part.values()},
            )
        )


def _own_homes(
    parts: list[frozenset[str]],
    homes: dict[int, list[Profile]],
    earlier: Mapping[str, Profile],
    rules: IdentityRules,
) -> dict[int, list[Profile]]:
    """Re-home each person in the part of its own best identifier, not one it absorbed from a person merged into
    it: that part goes back to the merged person (an unmerge restores both ids, whichever of them survived)."""
    part_of = {k: i for i, part in enumerate(parts) for k in part}
    out: dict[int, list[Profile]] = {}
    for person in (p for members in homes.values() for p in members):
        mine = [k for k in person.identifiers if k in part_of]
        absorbed = {k for m in person.merged_from if m in earlier for k in earlier[m].identifiers}
        own = [k for k in mine if k not in absorbed] or mine
        out.setdefault(part_of[min(own, key=rules.order)], []).append(person)
    return out


def _earlier_person(
    part: frozenset[str],
    earlier: Mapping[str, Profile],
    taken: set[str],
    namespace: str,
    change: Change,
    brand: BrandConfig,
    salt: str,
) -> tuple[Profile, int | None]:
    """A split-off part gets back the id of the person it was before a merge (an unmerge restores them)."""
    best = sorted(
        (
            (len(part & set(p.identifiers)), p.created_at, pid)
            for pid, p in earlier.items()
            if pid not in taken and part & set(p.identifiers)
        ),
        key=lambda t: (-t[0], t[1], t[2]),
    )
    if best:
        old = earlier[best[0][2]]
        return old.model_copy(update={"merged_into": None, "dissolved": False}), old.version
    pid = person_id_for_component(namespace, part, salt)
    fresh = Profile(
        person_id=pid,
        brand_id=change.event.brand_id if change.event else brand.brand_id,
        created_at=change.at,
        updated_at=change.at,
    )
    return fresh, None


def refold(base: Profile, events: Iterable[tuple[str, CanonicalEvent]], brand: BrandConfig, at: datetime) -> Profile:
    """The person with everything their events decide (facts, traits, consent) recomputed from the events filed
    under their identifiers, and the rest (identifiers, links, merges) kept: the same person the incremental path
    builds, since folding is order-independent. None of `base`'s own version or annotations change here."""
    part = frozenset(base.identifiers)
    fresh = _rebuilt(base, part, events, brand, max(at, base.updated_at))
    fresh.identifiers, fresh.links, fresh.over_limit = list(base.identifiers), list(base.links), list(base.over_limit)
    fresh.created_at, fresh.version = base.created_at, base.version  # kept as the merges that made them left them
    return fresh


def _rebuilt(
    base: Profile,
    part: frozenset[str],
    events: Iterable[tuple[str, CanonicalEvent]],
    brand: BrandConfig,
    at: datetime,
) -> Profile:
    """The person recomputed from the events filed under the part's identifiers (points, orders, traits, consent)."""
    fresh = Profile(
        person_id=base.person_id,
        brand_id=base.brand_id,
        created_at=base.created_at,
        updated_at=at,
        merged_from=list(base.merged_from),
        tags=dict(base.tags),
        next_tag_expiry=base.next_tag_expiry,
        scores=dict(base.scores),
        tags_version=base.tags_version,
        annotations_inline=base.annotations_inline,
    )
    mine = [e for anchor, e in events if anchor in part]
    fresh.anchors = sorted({anchor for anchor, _ in events if anchor in part})
    for event in sorted(mine, key=lambda e: (e.occurred_at, e.event_id)):
        fresh = apply_event(fresh, event, brand)
    if mine:
        fresh.created_at = min(fresh.created_at, min(e.occurred_at for e in mine))
    return fresh


def identity_event_keys(event: CanonicalEvent, rules: IdentityRules, suppressed: Callable[[str], bool]) -> list[str]:
    """The event's identifier keys that take part in resolution (junk removed); none when any identifier is erased:
    such an event is the erased person's and must not create or change anyone (`cdp.identity.service`)."""
    keys = {i.key for i in event.identifiers if i.key not in rules.blocked_values}
    return [] if any(suppressed(k) for k in keys) else sorted(keys)
