"""In-memory fakes of the profile ports, with assertion helpers."""

from __future__ import annotations

from collections.abc import Iterator

from cdp.profile.models import ModelScore, Profile
from cdp.profile.ports import MessageRecord, ProfileAnnotator, ProfileReader, TimelineEntry


class InMemoryProfiles(ProfileReader, ProfileAnnotator):
    def __init__(self, profiles: list[Profile] | None = None) -> None:
        self.profiles: dict[str, Profile] = {p.person_id: p for p in profiles or []}
        self.timelines: dict[str, list[TimelineEntry]] = {}
        self.message_log: list[MessageRecord] = []

    # --- reader
    def get(self, person_id: str) -> Profile | None:
        p = self.profiles.get(person_id)
        while p is not None and p.merged_into:
            p = self.profiles.get(p.merged_into)
        return p

    def scan_shard(self, shard: int, total_shards: int) -> Iterator[Profile]:
        ordered = sorted(self.profiles.values(), key=lambda p: p.person_id)
        for i, p in enumerate(ordered):
            if i % total_shards == shard and p.merged_into is None:
                yield p

    def timeline(self, profile: Profile) -> list[TimelineEntry]:
        entries = [e for pid in (profile.person_id, *profile.merged_from) for e in self.timelines.get(pid, [])]
        return sorted(entries, key=lambda e: (e.event.occurred_at, e.event.event_id))

    def person_for_identifier(self, brand_id: str, identifier_key: str) -> str | None:
        """The surviving person of the brand holding the key (one namespace per brand here)."""
        for p in self.profiles.values():
            if p.merged_into is None and p.brand_id == brand_id and identifier_key in p.identifiers:
                return p.person_id
        return None

    # --- annotator
    def put_score(self, person_id: str, model_name: str, score: ModelScore) -> None:
        p = self.profiles[person_id]
        self.profiles[person_id] = p.model_copy(update={"scores": {**p.scores, model_name: score}})

    def record_message(self, record: MessageRecord) -> None:
        self.message_log.append(record)

    def messages(self, person_id: str) -> list[MessageRecord]:
        return [m for m in self.message_log if m.person_id == person_id]

    # --- helpers for tests
    def add_events(self, person_id: str, events: list) -> None:  # type: ignore[type-arg]
        self.timelines.setdefault(person_id, []).extend(TimelineEntry(person_id, e) for e in events)

    def __len__(self) -> int:
        return len(self.profiles)

    def __contains__(self, person_id: object) -> bool:
        return person_id in self.profiles
