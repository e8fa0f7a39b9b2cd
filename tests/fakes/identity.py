"""An in-memory identity store with the DynamoDB adapter's semantics (atomic commit, version checks, applied marker)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from cdp.errors import ConflictError
from cdp.identity.ports import IdentityStore
from cdp.identity.resolution import IdentifierRecord, LineageRecord, ResolutionPlan
from cdp.ingest.events import CanonicalEvent
from cdp.profile.models import Profile
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher


class InMemoryIdentityStore(IdentityStore):
    def __init__(self) -> None:
        self.index: dict[tuple[str, str], IdentifierRecord] = {}
        self.persons: dict[str, Profile] = {}
        self.applied: set[str] = set()
        self.filed: dict[tuple[str, str], list[CanonicalEvent]] = {}
        self.history: dict[str, list[LineageRecord]] = {}
        self.erased: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def lookup_identifiers(self, namespace: str, keys: Iterable[str]) -> dict[str, IdentifierRecord]:
        return {k: self.index[(namespace, k)] for k in keys if (namespace, k) in self.index}

    def suppressed(self, namespace: str, keys: Iterable[str]) -> set[str]:
        return {k for k in keys if (namespace, k) in self.erased}

    def load_persons(self, person_ids: Iterable[str]) -> dict[str, Profile]:
        return {p: self.persons[p] for p in person_ids if p in self.persons}

    def current_persons(self, person_ids: Iterable[str], annotations: bool = True) -> dict[str, Profile]:
        out: dict[str, Profile] = {}
        for pid in person_ids:
            profile = self.persons.get(pid)
            while profile is not None and profile.merged_into:
                profile = self.persons.get(profile.merged_into)
            if profile is not None and not profile.dissolved:
                out[profile.person_id] = profile
        return out

    def events_anchored(self, namespace: str, keys: Iterable[str]) -> list[tuple[str, CanonicalEvent]]:
        return [(k, e) for k in sorted(set(keys)) for e in self.filed.get((namespace, k), [])]

    def lineage(self, person_id: str) -> list[LineageRecord]:
        return list(self.history.get(person_id, []))

    def commit(self, plan: ResolutionPlan, event: CanonicalEvent | None) -> bool:
        with self._lock:
            if event is not None and event.dedupe_key in self.applied:
                return False
            self._check(plan)
            self._apply(plan, event)
            return True

    def put_person(self, profile: Profile, expected_version: int) -> None:
        with self._lock:
            current = self.persons.get(profile.person_id)
            if current is None or current.version != expected_version:
                raise ConflictError(f"person {profile.person_id} moved")
            self.persons[profile.person_id] = profile

    def _check(self, plan: ResolutionPlan) -> None:
        for write in plan.profiles:
            current = self.persons.get(write.profile.person_id)
            if write.expected_version is None and current is not None:
                raise ConflictError(f"person {write.profile.person_id} exists")
            if write.expected_version is not None and (current is None or current.version != write.expected_version):
                raise ConflictError(f"person {write.profile.person_id} moved")
        for record in plan.identifiers:
            current_record = self.index.get((plan.namespace, record.key))
            if (current_record.version if current_record else 0) != record.version:
                raise ConflictError(f"identifier {record.key} moved")

    def _apply(self, plan: ResolutionPlan, event: CanonicalEvent | None) -> None:
        if event is not None:
            self.applied.add(event.dedupe_key)
            if plan.anchor is not None:
                self.filed.setdefault((plan.namespace, plan.anchor), []).append(event)
        for write in plan.profiles:
            self.persons[write.profile.person_id] = write.profile
        for record in plan.identifiers:
            self.index[(plan.namespace, record.key)] = IdentifierRecord(
                key=record.key,
                person_id=record.person_id,
                up=record.up,
                disabled=record.disabled,
                shared=record.shared,
                version=record.version + 1,
            )
        for entry in plan.lineage:
            for pid in entry.person_ids:
                self.history.setdefault(pid, []).append(entry)

    def resolved(self) -> dict[str, str]:
        """identifier key -> surviving person id (shared identifiers left out)."""
        out: dict[str, str] = {}
        for (_, key), record in self.index.items():
            if record.person_id is None:
                continue
            found = self.current_persons([record.person_id])
            if found:
                out[key] = next(iter(found))
        return out

    def partition(self) -> set[frozenset[str]]:
        """The persons as identifier sets, from the profiles (what the API shows)."""
        return {
            frozenset(p.identifiers)
            for p in self.persons.values()
            if not p.merged_into and not p.dissolved and p.identifiers
        }

    def shared(self) -> set[str]:
        return {key for (_, key), r in self.index.items() if r.shared}


class NullPublisher(EventPublisher):
    def __init__(self) -> None:
        self.published: list[Publishable] = []

    def publish(self, events: Sequence[Publishable], correlation_id: str) -> list[str]:
        self.published.extend(events)
        return [str(i) for i in range(len(events))]
