"""Port of the identity store: identifier records per namespace, persons, filed events, atomic plan commits."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cdp.identity.resolution import IdentifierRecord, LineageRecord, ResolutionPlan
from cdp.ingest.events import CanonicalEvent
from cdp.profile.models import Profile


class EventAlreadyFiled(Exception):
    """The event's filed item exists, and the person may not include it yet: this is a redelivery, or this attempt
    filed it and the person moved before it could be written. Filing and the person's write are two conditional
    writes on the common path (no transaction), so the caller folds the person again from their filed events
    (`cdp.identity.service.refold_person`), which is exact whatever happened in between."""

    def __init__(self, by_this_attempt: bool) -> None:
        super().__init__("filed by this attempt" if by_this_attempt else "filed before")
        self.by_this_attempt = by_this_attempt


class NeedsSettling(Exception):
    """A change touches persons whose writes this batch deferred (`IdentityStore.flush_deferred`): settle them
    first (`cdp.identity.service.settle`), then plan the change again on what they became."""

    def __init__(self, person_ids: Iterable[str]) -> None:
        self.person_ids = sorted(set(person_ids))
        super().__init__(f"deferred writes of {', '.join(self.person_ids)} come first")


@dataclass(frozen=True)
class LostWrite:
    """A deferred person write that lost to a concurrent change: the events it carried are filed under `anchors`,
    so whoever holds those identifiers now is folded again (`cdp.identity.service.settle`)."""

    brand_id: str
    anchors: tuple[str, ...]


class IdentityStore(ABC):
    @abstractmethod
    def lookup_identifiers(self, namespace: str, keys: Iterable[str]) -> dict[str, IdentifierRecord]:
        """Records of the keys that are known in the namespace (unknown keys are absent)."""

    @abstractmethod
    def suppressed(self, namespace: str, keys: Iterable[str]) -> set[str]:
        """The keys that belong to an erased person and must never be stored again."""

    def lookup_with_suppression(
        self, namespace: str, keys: Iterable[str]
    ) -> tuple[dict[str, IdentifierRecord], set[str]]:
        """Records and suppressed keys at once (adapters override this to read both in one round trip)."""
        wanted = list(keys)
        return self.lookup_identifiers(namespace, wanted), self.suppressed(namespace, wanted)

    @abstractmethod
    def load_persons(self, person_ids: Iterable[str]) -> dict[str, Profile]:
        """Profiles by id as stored (merged-away ones included, without following merges)."""

    @abstractmethod
    def current_persons(self, person_ids: Iterable[str], annotations: bool = True) -> dict[str, Profile]:
        """The surviving person of each id (following merges), keyed by the survivor's id; dissolved ones left out.
        `annotations=False`: tags and scores may be left unread (resolution never reads them, never writes them)."""

    @abstractmethod
    def events_anchored(self, namespace: str, keys: Iterable[str]) -> list[tuple[str, CanonicalEvent]]:
        """(anchor, event) for every event filed under one of the keys."""

    @abstractmethod
    def commit(self, plan: ResolutionPlan, event: CanonicalEvent | None) -> bool:
        """Apply the plan. Returns False when the event had already been applied.

        Raises ConflictError when a concurrent writer changed a person or identifier first (re-plan and retry),
        EventAlreadyFiled when the event is filed but the person may not include it (fold the person again), and
        NeedsSettling when the change touches a person whose write the batch deferred (settle, then re-plan).
        """

    def read_filed(self, namespace: str, anchored: Iterable[tuple[str, CanonicalEvent]]) -> None:  # noqa: B027
        """Read ahead whether these (anchor, event)s are filed (an adapter that keeps a batch's reads uses it)."""

    def flush_deferred(self, person_ids: Iterable[str] | None = None) -> list[LostWrite]:
        """Write what the batch deferred (every person's, or these persons'): their events first, then each person
        once. Returns the writes that lost to a concurrent change (their events are filed: fold whoever holds
        them again). A store that defers nothing has nothing to write."""
        return []

    @abstractmethod
    def put_person(self, profile: Profile, expected_version: int) -> None:
        """One person, whole, if still at `expected_version` (ConflictError otherwise)."""

    @abstractmethod
    def lineage(self, person_id: str) -> list[LineageRecord]:
        """The merge history filed under a person, oldest first."""


@dataclass
class HistoryLoad:
    """Everything an import writes, for one identity namespace."""

    namespace: str
    profiles: list[Profile] = field(default_factory=list)
    records: list[IdentifierRecord] = field(default_factory=list)
    filed: list[tuple[str, CanonicalEvent]] = field(default_factory=list)  # (anchor, event)
    hubs: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


class HistorySink(ABC):
    @abstractmethod
    def namespace_is_empty(self, namespace: str, sample_keys: Sequence[str]) -> bool:
        """Whether none of these identifiers is known yet (an import goes into a namespace before live traffic)."""

    def load_history(self, load: HistoryLoad) -> dict[str, int]:
        """Write the import (idempotent puts): persons first, then the identifiers naming them; counts per kind."""
        persons = self.write_history_persons(load.namespace, load.profiles, load.filed)
        return {**persons, **self.write_history_identifiers(load.namespace, load.records, load.hubs)}

    @abstractmethod
    def write_history_persons(
        self, namespace: str, profiles: Sequence[Profile], filed: Sequence[tuple[str, CanonicalEvent]]
    ) -> dict[str, int]:
        """Write persons and the events filed under their anchors, each marked applied (idempotent puts)."""

    @abstractmethod
    def write_history_identifiers(
        self, namespace: str, records: Sequence[IdentifierRecord], hubs: Sequence[str]
    ) -> dict[str, int]:
        """Write identifier records and the hubs' review entries (after the persons they name)."""
