"""Pure identity resolution: from an event, the identifier index and the persons involved, a plan to commit."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cdp.identity.rules import IdentityRules
from cdp.ingest.events import CanonicalEvent
from cdp.ingest.identifiers import Identifier
from cdp.profile.models import Profile, apply_event, merge_facts


@dataclass(frozen=True)
class IdentifierRecord:
    key: str
    person_id: str
    shared: bool = False


@dataclass(frozen=True)
class MergeEvidence:
    survivor_id: str
    merged_ids: tuple[str, ...]
    bridging_identifiers: tuple[str, ...]
    event_id: str
    rule: str = "identifiers seen together on one event"


@dataclass
class ResolutionPlan:
    """Everything one event changes, committed atomically by the identity store."""

    target: Profile  # the new state of the person the event belongs to
    target_expected_version: int | None  # None: a new person
    merged: list[Profile] = field(default_factory=list)  # persons folded into target (their current state)
    new_identifiers: list[str] = field(default_factory=list)  # keys seen for the first time, now owned by target
    repointed_from: dict[str, str] = field(default_factory=dict)  # key -> merged person that owned it until now
    quarantined: list[IdentifierRecord] = field(default_factory=list)  # shared identifiers to mark
    evidence: MergeEvidence | None = None
    linked_keys: list[str] = field(default_factory=list)


def plan_resolution(
    event: CanonicalEvent,
    index: dict[str, IdentifierRecord],
    persons: dict[str, Profile],
    rules: IdentityRules,
    new_person_id: str,
    now: datetime,
) -> ResolutionPlan:
    """Greedy, priority-ordered linking that respects per-type limits (see IdentityRules).

    `index` holds the records of the event's identifiers that are already known; `persons` every person they point to.
    """
    idents = sorted({i.key: i for i in event.identifiers}.values(), key=lambda i: (rules.rank(i), i.key))
    cluster_keys: set[str] = set()
    cluster_persons: list[str] = []
    quarantined: list[IdentifierRecord] = []
    for ident in idents:
        key = ident.key
        record = index.get(key)
        if key in rules.blocked_values or (record is not None and record.shared):
            continue
        owner = record.person_id if record else None
        candidate = set(cluster_keys) | {key}
        if owner and owner not in cluster_persons:
            candidate |= set(persons[owner].identifiers) - _shared_keys(index)
        if rules.within_limits(candidate):
            cluster_keys = candidate
            if owner and owner not in cluster_persons:
                cluster_persons.append(owner)
        elif record is not None:
            # This identifier would bridge persons that cannot be one: it is shared (a tablet, a family iPad).
            quarantined.append(IdentifierRecord(key=key, person_id=record.person_id, shared=True))

    members = sorted((persons[pid] for pid in cluster_persons), key=lambda p: (p.created_at, p.person_id))
    if members:
        survivor, losers = members[0], members[1:]
        base = survivor
        for loser in losers:
            base = _fold(base, loser)
        expected: int | None = survivor.version
    else:
        losers = []
        base = Profile(person_id=new_person_id, brand_id=event.brand_id, created_at=now, updated_at=now)
        expected = None

    target = apply_event(base, event)
    # Identifiers refused by a limit, blocked or quarantined stay off the person: they must not link it later.
    target.identifiers = [k for k in target.identifiers if k in base.identifiers or k in cluster_keys]
    target.version = (expected or 0) + 1
    target.updated_at = max(target.updated_at, now)

    repointed = {k: loser.person_id for loser in losers for k in loser.identifiers}
    created = sorted(i.key for i in idents if i.key in cluster_keys and i.key not in index)
    evidence = (
        MergeEvidence(
            survivor_id=base.person_id,
            merged_ids=tuple(p.person_id for p in losers),
            bridging_identifiers=tuple(sorted(i.key for i in idents if i.key in cluster_keys)),
            event_id=event.event_id,
        )
        if losers
        else None
    )
    return ResolutionPlan(
        target=target,
        target_expected_version=expected,
        merged=list(losers),
        new_identifiers=created,
        repointed_from=repointed,
        quarantined=quarantined,
        evidence=evidence,
        linked_keys=sorted(cluster_keys),
    )


def _shared_keys(index: dict[str, IdentifierRecord]) -> set[str]:
    return {k for k, r in index.items() if r.shared}


def _fold(survivor: Profile, loser: Profile) -> Profile:
    """Fold a merged person into the survivor: facts add up, identifiers and consent union, newest traits win gaps."""
    out = survivor.model_copy(deep=True)
    out.identifiers = out.identifiers + [k for k in loser.identifiers if k not in out.identifiers]
    out.facts = merge_facts(out.facts, loser.facts)
    filled = {k: v for k, v in loser.traits.model_dump().items() if v is not None and getattr(out.traits, k) is None}
    out.traits = out.traits.model_copy(update=filled)
    for channel, state in loser.consent.items():
        mine = out.consent.get(channel)
        if mine is None or mine.changed_at < state.changed_at:
            out.consent[channel] = state
    out.merged_from = [*out.merged_from, loser.person_id, *loser.merged_from]
    out.updated_at = max(out.updated_at, loser.updated_at)
    return out


def identifiers_of(event: CanonicalEvent) -> list[Identifier]:
    return list({i.key: i for i in event.identifiers}.values())
