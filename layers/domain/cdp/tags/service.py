"""Recompute a person's tags, store them with their next refresh time, and announce what changed."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from datetime import datetime
from typing import ClassVar

from cdp import topology
from cdp.profile.ports import ProfileAnnotator, ProfileReader
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher
from cdp.tags.builtin import BUILTIN_TAGS, DEFAULT_TAG_CONFIG, TagChange, TagConfig, compute_tags, merge_with_previous


class TagStore(ProfileReader, ProfileAnnotator):
    @abstractmethod
    def due_for_tag_refresh(self, now: datetime) -> Iterator[str]:
        """Person ids whose next tag change time has passed."""


class TagsChanged(Publishable):
    event_name: ClassVar[str] = topology.TAGS_CHANGED
    event_source: ClassVar[str] = topology.SOURCE_TAGS

    person_id: str
    changes: list[TagChange]
    at: datetime


def refresh_tags(
    person_id: str,
    store: ProfileReader | TagStore,
    annotator: ProfileAnnotator,
    publisher: EventPublisher,
    now: datetime,
    config: TagConfig = DEFAULT_TAG_CONFIG,
) -> list[TagChange]:
    profile = store.get(person_id)
    if profile is None:
        return []
    computed = compute_tags(profile, now, config)
    tags, changes = merge_with_previous(profile.tags, computed, now, BUILTIN_TAGS)
    # Always written: the next refresh time moves with every order even when no tag value changes.
    annotator.put_tags(profile.person_id, tags, computed.next_change_at)
    if changes:
        publisher.publish([TagsChanged(person_id=profile.person_id, changes=changes, at=now)], profile.person_id)
    return changes
