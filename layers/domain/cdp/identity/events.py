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
    event_type: str
    version: int


class ProfileMerged(Publishable):
    event_name: ClassVar[str] = topology.PROFILE_MERGED
    event_source: ClassVar[str] = topology.SOURCE_IDENTITY

    survivor_id: str
    merged_ids: list[str]
    bridging_identifiers: list[str]
    event_id: str
    rule: str


class IdentifierQuarantined(Publishable):
    event_name: ClassVar[str] = "identifier.quarantined"
    event_source: ClassVar[str] = topology.SOURCE_IDENTITY

    identifier: str
    owner_id: str
    event_id: str
