"""What identity resolution publishes on the bus."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import ClassVar

from pydantic import BaseModel, field_serializer

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
    keys: dict[str, list[str]] | None = None  # the event's correlation values (cdp.ingest.events.correlation_keys)


class ProfileUpdate(BaseModel):
    """One person's change inside a packed `ProfilesUpdated` entry (the fields of `ProfileUpdated`)."""

    person_id: str
    event_id: str
    event_type: str
    version: int
    keys: dict[str, list[str]] | None = None


class ProfilesUpdated(Publishable):
    """The `profile.updated` announcements of a batch of events, packed: one entry per brand and up to
    `MAX_PACK_BYTES` (EventBridge bills per entry, so a batch of 100 events is one entry instead of 100)."""

    event_name: ClassVar[str] = topology.PROFILE_UPDATED
    event_source: ClassVar[str] = topology.SOURCE_IDENTITY

    brand_id: str
    updates: list[ProfileUpdate]

    @field_serializer("updates")
    def _lean(self, updates: list[ProfileUpdate]) -> list[dict[str, object]]:
        return [u.model_dump(mode="json", exclude_none=True) for u in updates]  # most events carry no keys


MAX_PACK_BYTES = 192 * 1024
_UPDATE_BYTES = 160  # a packed update's JSON without keys, generously (person and event ids, type, version)


def packed_updates(batches: Sequence[tuple[Sequence[Publishable], str]]) -> list[tuple[Sequence[Publishable], str]]:
    """A batch's announcements with its `profile.updated` ones packed per brand (the rest as they were)."""
    updates: dict[str, list[ProfileUpdate]] = {}
    first: dict[str, str] = {}
    out: list[tuple[Sequence[Publishable], str]] = []
    for events, correlation_id in batches:
        rest = [e for e in events if not isinstance(e, ProfileUpdated)]
        for e in events:
            if isinstance(e, ProfileUpdated):
                first.setdefault(e.brand_id, correlation_id)
                updates.setdefault(e.brand_id, []).append(ProfileUpdate(**e.model_dump(exclude={"brand_id"})))
        if rest:
            out.append((rest, correlation_id))
    for brand, members in updates.items():
        pack: list[ProfileUpdate] = []
        size = 0
        for member in members:
            length = _UPDATE_BYTES + (len(json.dumps(member.keys)) if member.keys else 0)
            if pack and size + length > MAX_PACK_BYTES:
                out.append(([ProfilesUpdated(brand_id=brand, updates=pack)], first[brand]))
                pack, size = [], 0
            pack.append(member)
            size += length
        if pack:
            out.append(([ProfilesUpdated(brand_id=brand, updates=pack)], first[brand]))
    return out


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
