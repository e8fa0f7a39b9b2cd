"""An in-memory identity store with the DynamoDB adapter's semantics (atomic commit, version checks, applied marker)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cdp.errors import ConflictError
from cdp.identity.ports import IdentityStore
from cdp.identity.resolution import IdentifierRecord, ResolutionPlan
from cdp.ingest.events import CanonicalEvent
from cdp.profile.models import Profile
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher


class InMemoryIdentityStore(IdentityStore):
    def __init__(self) -> None:
        self.index: dict[str, IdentifierRecord] = {}
        self.persons: dict[str, Profile] = {}
        self.applied: set[str] = set()
        self.timeline: dict[str, list[str]] = {}

    def lookup_identifiers(self, keys: Iterable[str]) -> dict[str, IdentifierRecord]:
        return {k: self.index[k] for k in keys if k in self.index}

    def load_persons(self, person_ids: Iterable[str]) -> dict[str, Profile]:
        return {p: self.persons[p] for p in person_ids if p in self.persons}

    def is_applied(self, dedupe_key: str) -> bool:
        return dedupe_key in self.applied

    def commit(self, plan: ResolutionPlan, event: CanonicalEvent) -> bool:
        if event.dedupe_key in self.applied:
            return False
        self._check(plan)
        self._apply(plan, event)
        return True

    def _check(self, plan: ResolutionPlan) -> None:
        current = self.persons.get(plan.target.person_id)
        if plan.target_expected_version is None and current is not None:
            raise ConflictError("person exists")
        if plan.target_expected_version is not None and (
            current is None or current.version != plan.target_expected_version
        ):
            raise ConflictError("version moved")
        for loser in plan.merged:
            if self.persons[loser.person_id].version != loser.version:
                raise ConflictError("merged person moved")
        for key, previous in plan.repointed_from.items():
            if key in self.index and self.index[key].person_id != previous:
                raise ConflictError("identifier moved")
        if any(k in self.index for k in plan.new_identifiers):
            raise ConflictError("identifier taken")

    def _apply(self, plan: ResolutionPlan, event: CanonicalEvent) -> None:
        self.applied.add(event.dedupe_key)
        self.persons[plan.target.person_id] = plan.target
        for loser in plan.merged:
            self.persons[loser.person_id] = loser.model_copy(
                update={"merged_into": plan.target.person_id, "version": loser.version + 1}
            )
        for key in plan.repointed_from:
            if key in self.index:
                self.index[key] = IdentifierRecord(key, plan.target.person_id, self.index[key].shared)
        for key in plan.new_identifiers:
            self.index[key] = IdentifierRecord(key, plan.target.person_id)
        for q in plan.quarantined:
            if q.key not in plan.repointed_from:
                self.index[q.key] = IdentifierRecord(q.key, self.index[q.key].person_id, shared=True)
        self.timeline.setdefault(plan.target.person_id, []).append(event.event_id)

    def resolved(self) -> dict[str, str]:
        """identifier key -> surviving person id."""
        return {k: r.person_id for k, r in self.index.items()}


class NullPublisher(EventPublisher):
    def __init__(self) -> None:
        self.published: list[Publishable] = []

    def publish(self, events: Sequence[Publishable], correlation_id: str) -> list[str]:
        self.published.extend(events)
        return [str(i) for i in range(len(events))]
