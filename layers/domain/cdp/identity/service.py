"""Resolve events and run identity operations: look up the graph around a change, plan, commit atomically, publish.

Every operation retries on a concurrent change (optimistic concurrency) by re-planning on fresh state.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from cdp.errors import ConflictError, InvalidInputError, NotFoundError
from cdp.identity.events import (
    IdentifierQuarantined,
    LoyaltyActivity,
    PersonSplit,
    ProfileMerged,
    ProfileUpdated,
    ResolvedOrder,
)
from cdp.identity.ports import EventAlreadyFiled, IdentityStore, NeedsSettling
from cdp.identity.resolution import Change, IdentifierRecord, ResolutionPlan, plan_change, refold
from cdp.ingest.events import CanonicalEvent, correlation_keys
from cdp.org import BrandConfig, OrgDirectory, load_org
from cdp.profile.models import Profile
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher
from cdp.shared.time import utc_now

MAX_ATTEMPTS = 12  # 8 workers contending for one person on emulated DynamoDB met up to 6 conflicts for one event
BACKOFF_BASE_S = 0.01
BACKOFF_CAP_S = 0.5
_PERSON_NAMESPACE = uuid.UUID("6f1c2a4e-5d7b-4c1e-9a3f-0b8d2e6c4f10")


def backoff(attempt: int, sleep: Callable[[float], None] = time.sleep) -> None:
    """Wait before re-planning after a conflict: exponential with full jitter, so writers contending for one hot
    person spread out instead of colliding again in lockstep."""
    sleep(random.uniform(0.0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)))


def person_id_for(event: CanonicalEvent) -> str:
    """A new person's id comes from the event that first saw them: reruns and replays give the same ids."""
    return uuid.uuid5(_PERSON_NAMESPACE, f"{event.brand_id}#{event.legacy_dedupe_key}").hex


@dataclass(frozen=True)
class ResolutionOutcome:
    person_id: str | None  # None: the event is filed under a shared identifier only, or was suppressed
    applied: bool  # False: a redelivered event that had been applied already (or a suppressed one)
    merged_ids: tuple[str, ...] = ()
    quarantined: tuple[str, ...] = ()
    split: tuple[str, ...] = ()
    suppressed: bool = False  # the event carried an erased identifier (or none usable): dropped, nothing stored


def resolve_event(
    event: CanonicalEvent,
    store: IdentityStore,
    publisher: EventPublisher,
    org: OrgDirectory | None = None,
    now: Callable[[], datetime] = utc_now,
    new_id: Callable[[CanonicalEvent], str] | None = None,
) -> ResolutionOutcome:
    """Exactly-once application per (source, event id); optimistic concurrency with re-planning on conflict."""
    directory = org or load_org()
    brand = directory.brand(event.brand_id)
    rules, namespace = brand.rules, brand.namespace
    person_id = (new_id or person_id_for)(event)
    candidates = {i.key for i in event.identifiers} - rules.blocked_values
    for attempt in range(1, MAX_ATTEMPTS + 1):
        found, erased = store.lookup_with_suppression(namespace, candidates)
        if erased:
            # Any erased identifier makes the event the erased person's: resolving the rest (a new device id)
            # would bring them back as a new person. Dropped whole; the caller logs the flag, never the keys.
            return ResolutionOutcome(person_id=None, applied=False, suppressed=True)
        keys = tuple(sorted(candidates))
        if not keys:
            return ResolutionOutcome(person_id=None, applied=False, suppressed=True)
        records = {k: r for k, r in found.items() if k not in erased}
        persons = store.current_persons({r.person_id for r in records.values() if r.person_id}, annotations=False)
        change = Change(at=now(), event=event, keys=keys, new_links=tuple(sorted(rules.event_edges(keys))))
        plan = plan_change(change, namespace, records, persons, rules, brand, store, person_id)
        try:
            applied = store.commit(plan, event)
        except NeedsSettling as waiting:
            settle(store, directory, waiting.person_ids, now)
            continue
        except ConflictError:
            if attempt == MAX_ATTEMPTS:
                raise
            backoff(attempt)
            continue
        except EventAlreadyFiled as filed:
            person = refold_person(store, brand, namespace, plan.anchor, now)
            if person is not None:
                update = ProfileUpdated(
                    person_id=person.person_id,
                    brand_id=person.brand_id,
                    event_id=event.event_id,
                    event_type=event.event_type,
                    version=person.version,
                    keys=correlation_keys(event) or None,
                )
                publisher.publish([update, *_loyalty(brand, event, person)], correlation_id=event.event_id)
            return ResolutionOutcome(person_id=person.person_id if person else None, applied=filed.by_this_attempt)
        # Publish also for a redelivered event: the first attempt may have committed and then failed to publish.
        person = plan.profile(plan.event_person_id) if plan.event_person_id else None
        announcements = _announcements(plan, event, applied) + _loyalty(brand, event, person)
        publisher.publish(announcements, correlation_id=event.event_id)
        return _outcome(plan, applied)
    raise AssertionError("unreachable")  # pragma: no cover


def refold_person(
    store: IdentityStore,
    brand: BrandConfig,
    namespace: str,
    anchor: str | None,
    now: Callable[[], datetime] = utc_now,
) -> Profile | None:
    """Bring the person holding `anchor` in line with every event filed under their identifiers (after an event
    was found filed that they may not include yet); their version is checked, and a concurrent change re-reads.
    Returns the person as stored (None: the identifier names nobody now, e.g. it became shared)."""
    if anchor is None:
        return None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        record = store.lookup_identifiers(namespace, [anchor]).get(anchor)
        found = store.current_persons([record.person_id], annotations=False) if record and record.person_id else {}
        person = next(iter(found.values()), None)
        if person is None:
            return None
        folded = refold(person, store.events_anchored(namespace, person.identifiers), brand, now())
        if _same_person(folded, person):
            return person  # it included the event already (a redelivery of an applied event)
        folded.version = person.version + 1
        try:
            store.put_person(folded, person.version)
            return folded
        except NeedsSettling as waiting:  # the batch's own writes of them go first; folded again if they lost
            for lost in store.flush_deferred(waiting.person_ids):
                for other in lost.anchors:
                    refold_person(store, brand, namespace, other, now)
        except ConflictError:
            if attempt == MAX_ATTEMPTS:
                raise
            backoff(attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def settle(
    store: IdentityStore,
    org: OrgDirectory | None = None,
    person_ids: Iterable[str] | None = None,
    now: Callable[[], datetime] = utc_now,
) -> None:
    """Write what the batch deferred (every person's, or these persons'), and fold again each person whose write
    lost to a concurrent change: their events are filed, so the fold includes them exactly once."""
    directory = org or load_org()
    for lost in store.flush_deferred(person_ids):
        brand = directory.brand(lost.brand_id)
        for anchor in lost.anchors:  # a concurrent split may have handed them to different persons
            refold_person(store, brand, brand.namespace, anchor, now)


def _same_person(a: Profile, b: Profile) -> bool:
    ignored = {"version", "updated_at"}
    return a.model_dump(exclude=ignored) == b.model_dump(exclude=ignored)


def resolve_batch_reads(
    events: Iterable[CanonicalEvent], store: IdentityStore, org: OrgDirectory | None = None
) -> None:
    """The reads `resolve_event` starts with, for a whole batch at once (the store keeps them while the batch is
    processed: `batch_reads`): every event's usable identifiers with their suppressions, then their persons, then
    whether each event is filed already (in this order: a person read before their event's filing was checked is
    never newer than that check)."""
    directory = org or load_org()
    by_namespace: dict[str, set[str]] = {}
    anchored: dict[str, list[tuple[str, CanonicalEvent]]] = {}
    for event in events:
        brand = directory.brand(event.brand_id)
        usable = {i.key for i in event.identifiers} - brand.rules.blocked_values
        by_namespace.setdefault(brand.namespace, set()).update(usable)
        anchor = brand.rules.anchor(usable)
        if anchor is not None:
            anchored.setdefault(brand.namespace, []).append((anchor, event))
    for namespace, keys in by_namespace.items():
        found, _ = store.lookup_with_suppression(namespace, keys)
        store.current_persons({r.person_id for r in found.values() if r.person_id}, annotations=False)
    for namespace, events_ in anchored.items():
        store.read_filed(namespace, events_)


def _outcome(plan: ResolutionPlan, applied: bool) -> ResolutionOutcome:
    return ResolutionOutcome(
        person_id=plan.event_person_id,
        applied=applied,
        merged_ids=tuple(sorted(p.person_id for p in plan.merged)),
        quarantined=tuple(plan.newly_shared),
        split=plan.recomputed if len(plan.recomputed) > 1 else (),
    )


def _announcements(plan: ResolutionPlan, event: CanonicalEvent | None, applied: bool) -> list[Publishable]:
    out: list[Publishable] = []
    changed = [w.profile for w in plan.profiles if not w.profile.merged_into and not w.profile.dissolved]
    for profile in changed:
        if event is not None and profile.person_id != plan.event_person_id and not plan.recomputed:
            continue  # a person that only gained an identifier-only neighbour needs no tag refresh
        out.append(
            ProfileUpdated(
                person_id=profile.person_id,
                brand_id=profile.brand_id,
                event_id=event.event_id if event else f"identity-op-{profile.version}",
                # A split or a manual operation may change any fact: announce it like a merge.
                event_type=event.event_type if event and not plan.recomputed else "identity_changed",
                version=profile.version,
                keys=(correlation_keys(event) or None) if event and not plan.recomputed else None,
            )
        )
    if not applied:
        return out
    for record in plan.lineage:
        if record.kind == "merge" and record.survivor_id:
            out.append(
                ProfileMerged(
                    survivor_id=record.survivor_id,
                    merged_ids=list(record.merged_ids),
                    bridging_identifiers=list(record.identifiers),
                    event_id=record.event_id or "",
                    rule=record.rule,
                )
            )
        elif record.kind == "split":
            out.append(
                PersonSplit(
                    person_ids=sorted(record.parts),
                    identifiers=list(record.identifiers),
                    rule=record.rule,
                    actor=record.actor,
                    event_id=record.event_id,
                )
            )
    owners = {r.key: r.person_id for r in plan.identifiers}
    out.extend(
        IdentifierQuarantined(
            identifier=key,
            namespace=plan.namespace,
            owner_id=owners.get(key) or "",
            event_id=event.event_id if event else None,
        )
        for key in plan.newly_shared
    )
    return out


LOYALTY_EVENTS = frozenset({"order_placed", "order_returned"})


def _loyalty(brand: BrandConfig, event: CanonicalEvent, person: Profile | None) -> list[Publishable]:
    """An order or return of a brand that keeps a points programme, with the person it resolved to, for the loyalty
    engine (sent again with a redelivery: the engine applies each order once)."""
    if person is None or event.event_type not in LOYALTY_EVENTS:
        return []
    if not any(p.system_of_record == "platform" for p in brand.loyalty.programs.values()):
        return []
    resolved = ResolvedOrder(
        person_id=person.person_id,
        merged_from=list(person.merged_from),
        anchor=brand.rules.anchor(person.identifiers),
        event=event.model_dump(mode="json"),
    )
    return [LoyaltyActivity(brand_id=event.brand_id, orders=[resolved])]


# ---- operations (API and CLI) ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperationResult:
    plan: ResolutionPlan
    committed: bool

    @property
    def persons(self) -> list[Profile]:
        return [w.profile for w in self.plan.profiles if not w.profile.merged_into and not w.profile.dissolved]


class IdentityOperations:
    """Manual merge (with a dry-run preview), unmerge, unbind and quarantine, all recorded with their actor."""

    def __init__(
        self,
        store: IdentityStore,
        publisher: EventPublisher,
        org: OrgDirectory | None = None,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._org = org or load_org()
        self._now = now

    def _person(self, person_id: str) -> Profile:
        found = self._store.current_persons([person_id])
        if not found:
            raise NotFoundError(f"no person {person_id}")
        return next(iter(found.values()))

    def _brand(self, person: Profile) -> BrandConfig:
        return self._org.brand(person.brand_id)

    def merge(self, person_ids: list[str], actor: str, reason: str, dry_run: bool = False) -> OperationResult:
        if len(set(person_ids)) < 2:
            raise InvalidInputError("a merge needs at least two different person ids", "person_ids")

        def change() -> tuple[Change, list[Profile], BrandConfig]:
            persons = [self._person(pid) for pid in person_ids]
            survivors = {p.person_id for p in persons}
            if len(survivors) < 2:
                raise InvalidInputError("these persons are already one person", "person_ids")
            brand = self._brand(persons[0])
            if len({self._brand(p).namespace for p in persons}) > 1:
                raise InvalidInputError("persons of different identity namespaces cannot merge", "person_ids")
            if not all(p.identifiers for p in persons):
                raise InvalidInputError("a person without identifiers cannot be merged", "person_ids")
            records = self._store.lookup_identifiers(brand.namespace, {k for p in persons for k in p.identifiers})
            links = tuple(_open_link(persons[0], p, records, brand) for p in persons[1:])
            rule = f"manual merge: {reason}"
            return Change(at=self._now(), new_links=links, manual_links=True, actor=actor, rule=rule), persons, brand

        return self._run(change, dry_run)

    def unmerge(
        self, person_id: str, merged_person_id: str, actor: str, reason: str, dry_run: bool = False
    ) -> OperationResult:
        def change() -> tuple[Change, list[Profile], BrandConfig]:
            person = self._person(person_id)
            earlier = self._store.load_persons([merged_person_id]).get(merged_person_id)
            if earlier is None or earlier.merged_into is None:
                raise NotFoundError(f"{merged_person_id} is not a person merged into {person_id}")
            if merged_person_id not in person.merged_from:
                raise InvalidInputError(f"{merged_person_id} was not merged into {person_id}", "merged_person_id")
            side = set(earlier.identifiers) & set(person.identifiers)
            if not side:
                raise InvalidInputError(f"none of {merged_person_id}'s identifiers are left on {person_id}", "")
            cut = tuple(sorted((a, b) for a, b in person.links if (a in side) != (b in side)))
            if not cut:
                raise InvalidInputError(f"{merged_person_id} shares every identifier with {person_id}", "")
            rule = f"unmerge of {merged_person_id}: {reason}"
            return Change(at=self._now(), cut=cut, actor=actor, rule=rule), [person], self._brand(person)

        return self._run(change, dry_run)

    def unbind(self, person_id: str, identifier_key: str, actor: str, reason: str) -> OperationResult:
        def change() -> tuple[Change, list[Profile], BrandConfig]:
            person = self._person(person_id)
            if identifier_key not in person.identifiers:
                raise NotFoundError(f"{identifier_key} is not bound to {person_id}")
            if len(person.identifiers) == 1:
                raise InvalidInputError(f"{identifier_key} is {person_id}'s only identifier", "identifier")
            cut = tuple(sorted((a, b) for a, b in person.links if identifier_key in (a, b)))
            rule = f"unbind {identifier_key}: {reason}"
            return Change(at=self._now(), cut=cut, actor=actor, rule=rule), [person], self._brand(person)

        return self._run(change, dry_run=False)

    def quarantine(self, brand_id: str, identifier_key: str, actor: str, reason: str) -> OperationResult:
        brand = self._org.brand(brand_id)

        def change() -> tuple[Change, list[Profile], BrandConfig]:
            record = self._store.lookup_identifiers(brand.namespace, [identifier_key]).get(identifier_key)
            if record is None:
                raise NotFoundError(f"identifier {identifier_key} is unknown")
            if record.shared:
                raise InvalidInputError(f"{identifier_key} is already quarantined", "identifier")
            owners = list(self._store.current_persons([record.person_id] if record.person_id else []).values())
            change = Change(at=self._now(), share=(identifier_key,), actor=actor, rule=f"quarantine: {reason}")
            return change, owners, brand

        return self._run(change, dry_run=False)

    def _run(self, build: Callable[[], tuple[Change, list[Profile], BrandConfig]], dry_run: bool) -> OperationResult:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            change, persons, brand = build()
            named = {k for p in persons for k in p.identifiers} | {k for link in change.cut for k in link}
            named |= set(change.share)
            records = self._store.lookup_identifiers(brand.namespace, named)
            plan = plan_change(
                change,
                brand.namespace,
                records,
                {p.person_id: p for p in persons},
                brand.rules,
                brand,
                self._store,
                new_person_id=uuid.uuid4().hex,
            )
            if dry_run:
                return OperationResult(plan, committed=False)
            try:
                self._store.commit(plan, None)
            except ConflictError:
                if attempt == MAX_ATTEMPTS:
                    raise
                backoff(attempt)
                continue
            self._publisher.publish(_announcements(plan, None, True), correlation_id=f"identity-op:{change.actor}")
            return OperationResult(plan, committed=True)
        raise AssertionError("unreachable")  # pragma: no cover


def _open_link(
    first: Profile, other: Profile, records: Mapping[str, IdentifierRecord], brand: BrandConfig
) -> tuple[str, str]:
    """The link a manual merge adds between two persons: between their highest-priority identifiers that are not
    quarantined (a link to a shared identifier is never made), preferring a pair no earlier unmerge cut (a cut pair
    is allowed again by the merge, when it is the only one)."""
    order = brand.rules.order

    def usable(key: str) -> bool:
        record = records.get(key)
        return record is None or not record.shared

    pairs = [
        brand.rules.orient(a, b)
        for a in sorted(filter(usable, first.identifiers), key=order)
        for b in sorted(filter(usable, other.identifiers), key=order)
    ]
    if not pairs:
        raise InvalidInputError(
            f"{first.person_id} and {other.person_id} have no identifiers that may link (quarantined)", "person_ids"
        )
    for low, high in pairs:
        record = records.get(low)
        if record is None or high not in record.disabled:
            return low, high
    return pairs[0]


def keys_of(persons: Iterable[Profile]) -> set[str]:
    return {k for p in persons for k in p.identifiers}
