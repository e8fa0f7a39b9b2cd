"""In-memory fakes of the tag engine's ports (`cdp.tags.ports`): profiles with tag writes under the version check,
history with as-of reads, the persons due for a refresh; and a publisher that records what it publishes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from cdp.errors import ConflictError, PublishError
from cdp.profile.models import ModelScore, Profile, TagValue
from cdp.profile.ports import TimelineEntry
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher
from cdp.tags.history import as_of
from cdp.tags.ports import DuePersons, TagHistory, TagHistoryEntry, TagWriter
from tests.fakes.profiles import InMemoryProfiles


class InMemoryTagStore(InMemoryProfiles, TagWriter, TagHistory, DuePersons):
    """Profiles, timelines, tag writes with the version check, history; counts every read."""

    def __init__(self, profiles: list[Profile] | None = None) -> None:
        super().__init__(profiles)
        self.history: dict[str, list[TagHistoryEntry]] = {}
        self.reads = 0
        self.timeline_reads = 0
        self.writes = 0
        self.interfere = 0  # bump the version this many times right before a write (a concurrent writer)

    def get(self, person_id: str) -> Profile | None:
        self.reads += 1
        return super().get(person_id)

    def timeline(self, profile: Profile) -> list[TimelineEntry]:
        self.timeline_reads += 1
        return super().timeline(profile)

    def write_tags(
        self,
        person_id: str,
        expected_version: int,
        tags: Mapping[str, TagValue],
        next_expiry: datetime | None,
        history: Sequence[TagHistoryEntry],
        scores: Mapping[str, ModelScore] | None = None,
        pending: Sequence[TagHistoryEntry] = (),
    ) -> None:
        current = self.profiles[person_id]
        if self.interfere:
            self.interfere -= 1
            current = current.model_copy(update={"tags_version": current.tags_version + 1})
            self.profiles[person_id] = current
        if current.tags_version != expected_version:
            raise ConflictError(f"{person_id}'s tags moved to version {current.tags_version}")
        self.writes += 1
        self.profiles[person_id] = current.model_copy(
            update={
                "tags": dict(tags),
                "next_tag_expiry": next_expiry,
                "tags_version": current.tags_version + 1,
                "scores": dict(scores or {}),
            }
        )
        self.history.setdefault(person_id, []).extend(history)

    def tag_history(
        self, person_id: str, names: Sequence[str] | None = None, cause: str | None = None
    ) -> list[TagHistoryEntry]:
        return [
            e
            for e in self.history.get(person_id, [])
            if (names is None or e.tag in names) and (cause is None or e.cause == cause)
        ]

    def tags_as_of(self, person_id: str, at: datetime, names: Sequence[str] | None = None) -> dict[str, TagValue]:
        return as_of(self.history.get(person_id, []), at, names)

    def due_for_tag_refresh(self, now: datetime, shard: int = 0, total_shards: int = 1) -> Iterator[str]:
        for p in sorted(self.profiles.values(), key=lambda p: p.person_id):
            if p.merged_into is None and p.next_tag_expiry is not None and p.next_tag_expiry <= now:
                yield p.person_id


class RecordingPublisher(EventPublisher):
    def __init__(self, fail: int = 0) -> None:
        self.published: list[Publishable] = []
        self.fail = fail

    def publish(self, events: Sequence[Publishable], correlation_id: str) -> list[str]:
        if self.fail:
            self.fail -= 1
            raise PublishError("bus unavailable")
        self.published.extend(events)
        return [str(i) for i in range(len(events))]

    def of(self, kind: type[Publishable]) -> list[Any]:
        return [e for e in self.published if isinstance(e, kind)]

    def names(self) -> list[str]:
        return [e.event_name for e in self.published]
