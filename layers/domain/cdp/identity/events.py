"""What identity resolution publishes on the bus."""

from __future__ import annotations

from typing import ClassVar

from cdp import topology
from cdp.shared.envelope import Publishable


class ProfileUpdated(Publishable):
    event_name: ClassVar[str] = topology.PROFILE_UPDATED
    event_source: ClassVar[str] = topology.SOURCE_IDENTITY

    person_id: str
    brand_id: str
    event_id: str
    event_type: str  # the canonical event type, or "identity_changed" after a split or a manual operation
    version: int


class ProfileMerged(Publishable):
    event_name: ClassVar[str] = topology.PROFILE_MERGED
    event_source: ClassVar[str] = topology.SOURCE_IDENTITY

    survivor_id: str
    merged_ids: list[str]
    bridging_identifiers: list[str]
    event_id: str
    rule: str


class PersonSplit(Publishable):
    event_name: ClassVar[str] = topology.PERSON_SPLIT
    event_source: ClassVar[str] = topology.SOURCE_IDENTITY

    person_ids: list[str]
    identifiers: list[str]
    rule: str
    actor: str | None = None
    event_id: str | None = None


class IdentifierQuarantined(Publishable):
    event_name: ClassVar[str] = topology.IDENTIFIER_QUARANTINED
    event_source: ClassVar[str] = topology.SOURCE_IDENTITY

    identifier: str
    namespace: str
    owner_id: str
    event_id: str | None = None
