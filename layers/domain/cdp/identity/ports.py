"""Port of the identity store: the identifier index and atomic commits of resolution plans."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

from cdp.identity.resolution import IdentifierRecord, ResolutionPlan
from cdp.ingest.events import CanonicalEvent
from cdp.profile.models import Profile


class IdentityStore(ABC):
    @abstractmethod
    def lookup_identifiers(self, keys: Iterable[str]) -> dict[str, IdentifierRecord]:
        """Records of the keys that are known (unknown keys are absent)."""

    @abstractmethod
    def load_persons(self, person_ids: Iterable[str]) -> dict[str, Profile]:
        """Current profiles by id (as stored, without following merges)."""

    @abstractmethod
    def is_applied(self, dedupe_key: str) -> bool:
        """Whether an event was already applied (the marker written with it)."""

    @abstractmethod
    def commit(self, plan: ResolutionPlan, event: CanonicalEvent) -> bool:
        """Apply the plan atomically. Returns False when the event had already been applied.

        Raises ConflictError when a concurrent writer changed a person or identifier first (re-plan and retry).
        """
