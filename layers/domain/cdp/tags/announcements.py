"""What the tag engine publishes: `tags.changed`, a tag's own `emits` event per change, and audience entries/exits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from cdp import topology
from cdp.shared.envelope import Publishable
from cdp.tags.catalog import TagCatalog
from cdp.tags.ports import TagHistoryEntry, TagScalar
from cdp.tags.selection import AUDIENCE_PREFIX

# ---- events -------------------------------------------------------------------------------------------------------


class TagChange(BaseModel):
    tag: str
    old: TagScalar | None
    new: TagScalar | None
    at: datetime | None = Field(default=None, description="when the value changed (a window edge may be earlier)")


class TagsChanged(Publishable):
    event_name: ClassVar[str] = topology.TAGS_CHANGED
    event_source: ClassVar[str] = topology.SOURCE_TAGS

    person_id: str
    changes: list[TagChange]
    at: datetime


class TagTransition(Publishable):
    """Published on every value change of a tag whose definition names an `emits` event (`lifecycle.changed`)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, serialize_by_alias=True)
    event_name: ClassVar[str] = topology.LIFECYCLE_CHANGED
    event_source: ClassVar[str] = topology.SOURCE_TAGS

    person_id: str
    brand_id: str | None = Field(default=None, description="the person's brand (None in entries from before)")
    tag: str
    from_: TagScalar | None = Field(alias="from", description="the previous value (null: the tag was not set)")
    to: TagScalar | None = Field(description="the new value (null: the tag was removed)")
    at: datetime


@cache
def transition_event(event_name: str) -> type[TagTransition]:
    """The TagTransition class published under a definition's `emits` name."""
    if event_name == topology.LIFECYCLE_CHANGED:
        return TagTransition
    return type(f"TagTransition_{event_name.replace('.', '_')}", (TagTransition,), {"event_name": event_name})


class AudienceEntered(Publishable):
    event_name: ClassVar[str] = topology.AUDIENCE_ENTERED
    event_source: ClassVar[str] = topology.SOURCE_TAGS

    audience_id: str
    person_id: str
    at: datetime
    brand_id: str | None = Field(default=None, description="the person's brand (None in entries from before)")


class AudienceExited(Publishable):
    event_name: ClassVar[str] = topology.AUDIENCE_EXITED
    event_source: ClassVar[str] = topology.SOURCE_TAGS

    audience_id: str
    person_id: str
    at: datetime
    brand_id: str | None = Field(default=None, description="the person's brand (None in entries from before)")


def announcements(
    person_id: str,
    changes: Sequence[TagHistoryEntry],
    catalog: TagCatalog,
    now: datetime,
    brand_id: str | None = None,
) -> list[Publishable]:
    """What a set of recorded changes announces on the bus."""
    if not changes:
        return []
    out: list[Publishable] = [
        TagsChanged(
            person_id=person_id,
            changes=[TagChange(tag=c.tag, old=c.old, new=c.new, at=c.at) for c in changes],
            at=now,
        )
    ]
    for c in changes:
        if c.tag.startswith(AUDIENCE_PREFIX):
            audience_id = c.tag.removeprefix(AUDIENCE_PREFIX)
            if c.old is None and c.new is not None:
                out.append(AudienceEntered(audience_id=audience_id, person_id=person_id, at=c.at, brand_id=brand_id))
            elif c.new is None and c.old is not None:
                out.append(AudienceExited(audience_id=audience_id, person_id=person_id, at=c.at, brand_id=brand_id))
            continue
        definition = catalog.definitions.get(c.tag)
        if definition is not None and definition.emits:
            out.append(
                transition_event(definition.emits)(
                    person_id=person_id, brand_id=brand_id, tag=c.tag, from_=c.old, to=c.new, at=c.at
                )
            )
    return out
