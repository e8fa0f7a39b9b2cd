"""What identity resolution publishes on the bus."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, Field, field_serializer

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


class ResolvedOrder(BaseModel):
    """An order or a return as identity resolved it: the person it belongs to, the persons merged into them and
    the identifier their events are filed under (the loyalty engine earns and gives back points with these)."""

    person_id: str
    merged_from: list[str] = Field(default_factory=list)
    anchor: str | None = None
    event: dict[str, Any]


class LoyaltyActivity(Publishable):
    """The resolved orders and returns of a brand that keeps a points programme (`loyalty.activity`), packed like
    `ProfilesUpdated`; other brands' orders publish nothing."""

    event_name: ClassVar[str] = topology.LOYALTY_ACTIVITY
    event_source: ClassVar[str] = topology.SOURCE_IDENTITY

    brand_id: str
    orders: list[ResolvedOrder]


_UPDATE_BYTES = 160  # a packed update's JSON without keys, generously (person and event ids, type, version)


def packed_updates(batches: Sequence[tuple[Sequence[Publishable], str]]) -> list[tuple[Sequence[Publishable], str]]:
    """A batch's announcements with its `profile.updated` and `loyalty.activity` ones packed per brand (the rest as
    they were)."""
    updates: dict[str, list[ProfileUpdate]] = {}
    first: dict[str, str] = {}
    out: list[tuple[Sequence[Publishable], str]] = []
    orders: dict[str, list[ResolvedOrder]] = {}
    for events, correlation_id in batches:
        rest = [e for e in events if not isinstance(e, ProfileUpdated | LoyaltyActivity)]
        for e in events:
            if isinstance(e, ProfileUpdated):
                first.setdefault(e.brand_id, correlation_id)
                updates.setdefault(e.brand_id, []).append(ProfileUpdate(**e.model_dump(exclude={"brand_id"})))
            elif isinstance(e, LoyaltyActivity):
                first.setdefault(e.brand_id, correlation_id)
                orders.setdefault(e.brand_id, []).extend(e.orders)
        if rest:
            out.append((rest, correlation_id))
    out.extend((entry, first[entry[0].brand_id]) for entry in _packed_orders(orders))
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


def _packed_orders(orders: dict[str, list[ResolvedOrder]]) -> list[list[LoyaltyActivity]]:
    out: list[list[LoyaltyActivity]] = []
    for brand, resolved in orders.items():
        chunk: list[ResolvedOrder] = []
        used = 0
        for order in resolved:
            length = len(order.model_dump_json()) + 1
            if chunk and used + length > MAX_PACK_BYTES:
                out.append([LoyaltyActivity(brand_id=brand, orders=chunk)])
                chunk, used = [], 0
            chunk.append(order)
            used += length
        out.append([LoyaltyActivity(brand_id=brand, orders=chunk)])
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
