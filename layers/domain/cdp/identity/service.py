"""Resolve one canonical event to a person: look up, plan, commit atomically, publish."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cdp.errors import ConflictError
from cdp.identity.events import IdentifierQuarantined, ProfileMerged, ProfileUpdated
from cdp.identity.ports import IdentityStore
from cdp.identity.resolution import ResolutionPlan, plan_resolution
from cdp.identity.rules import DEFAULT_RULES, IdentityRules
from cdp.ingest.events import CanonicalEvent
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher
from cdp.shared.time import utc_now

MAX_ATTEMPTS = 5
_PERSON_NAMESPACE = uuid.UUID("6f1c2a4e-5d7b-4c1e-9a3f-0b8d2e6c4f10")


def person_id_for(event: CanonicalEvent) -> str:
    """A new person's id comes from the event that first saw them: reruns and replays give the same ids."""
    return uuid.uuid5(_PERSON_NAMESPACE, f"{event.brand_id}#{event.dedupe_key}").hex


@dataclass(frozen=True)
class ResolutionOutcome:
    person_id: str
    applied: bool  # False: a redelivered event that had been applied already
    merged_ids: tuple[str, ...] = ()
    quarantined: tuple[str, ...] = ()


def resolve_event(
    event: CanonicalEvent,
    store: IdentityStore,
    publisher: EventPublisher,
    rules: IdentityRules = DEFAULT_RULES,
    now: Callable[[], datetime] = utc_now,
    new_id: Callable[[CanonicalEvent], str] | None = None,
) -> ResolutionOutcome:
    """Exactly-once application per (source, event id); optimistic concurrency with re-planning on conflict."""
    person_id = (new_id or person_id_for)(event)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        plan = _plan(event, store, rules, now(), person_id)
        try:
            applied = store.commit(plan, event)
        except ConflictError:
            if attempt == MAX_ATTEMPTS:
                raise
            continue
        # Publish also for a redelivered event: the first attempt may have committed and then failed to publish.
        publisher.publish(_announcements(plan, event, applied), correlation_id=event.event_id)
        return ResolutionOutcome(
            person_id=plan.target.person_id,
            applied=applied,
            merged_ids=tuple(p.person_id for p in plan.merged),
            quarantined=tuple(q.key for q in plan.quarantined),
        )
    raise AssertionError("unreachable")  # pragma: no cover


def _plan(event: CanonicalEvent, store: IdentityStore, rules: IdentityRules, at: datetime, pid: str) -> ResolutionPlan:
    index = store.lookup_identifiers(i.key for i in event.identifiers)
    owners = {r.person_id for r in index.values()}
    persons = store.load_persons(owners)
    return plan_resolution(event, index, persons, rules, new_person_id=pid, now=at)


def _announcements(plan: ResolutionPlan, event: CanonicalEvent, applied: bool) -> list[Publishable]:
    out: list[Publishable] = [
        ProfileUpdated(
            person_id=plan.target.person_id,
            brand_id=plan.target.brand_id,
            event_id=event.event_id,
            event_type=event.event_type,
            version=plan.target.version,
        )
    ]
    if not applied:
        return out
    if plan.evidence:
        out.append(
            ProfileMerged(
                survivor_id=plan.evidence.survivor_id,
                merged_ids=list(plan.evidence.merged_ids),
                bridging_identifiers=list(plan.evidence.bridging_identifiers),
                event_id=plan.evidence.event_id,
                rule=plan.evidence.rule,
            )
        )
    out.extend(
        IdentifierQuarantined(identifier=q.key, owner_id=q.person_id, event_id=event.event_id) for q in plan.quarantined
    )
    return out
