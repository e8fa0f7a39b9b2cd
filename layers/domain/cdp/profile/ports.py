"""Ports of the profile store (persons, identifier index, timelines). The DynamoDB adapter is `cdp.profile.dynamodb`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from cdp.ingest.events import CanonicalEvent
from cdp.profile.models import ModelScore, Profile


@dataclass(frozen=True)
class TimelineEntry:
    anchor: str  # the identifier the event is filed under (it follows that identifier through merges and splits)
    event: CanonicalEvent


@dataclass(frozen=True)
class TimelinePage:
    entries: list[TimelineEntry]  # newest first
    next_cursor: str | None  # pass as `before` for the next page; None: no more


@dataclass(frozen=True)
class ScanPage:
    profiles: list[Profile]  # the page's surviving profiles
    next_cursor: str | None  # pass as `cursor` for the shard's next page; None: the shard is done


@dataclass(frozen=True)
class MessageRecord:
    person_id: str
    message_id: str
    campaign_id: str
    step: str
    channel: str
    sent_at: datetime
    provider_id: str | None
    status: str  # sent | suppressed_no_consent | failed


class ProfileReader(ABC):
    @abstractmethod
    def get(self, person_id: str) -> Profile | None:
        """The profile, following `merged_into` to the surviving person; None when unknown."""

    @abstractmethod
    def scan_shard(self, shard: int, total_shards: int) -> Iterator[Profile]:
        """Every surviving (not merged-away) profile in one shard of a parallel scan."""

    def scan_page(self, shard: int, total_shards: int, cursor: str | None = None) -> ScanPage:
        """One page of `scan_shard` from `cursor` (an opaque string from the previous page; None: the shard's start),
        for a reader that keeps its place between runs (the journey sweeps). This default returns the whole shard as
        one page; an adapter pages it."""
        return ScanPage(list(self.scan_shard(shard, total_shards)), None)

    @abstractmethod
    def timeline(self, profile: Profile) -> list[TimelineEntry]:
        """Every event of the person and of the persons merged into them, oldest first."""

    @abstractmethod
    def person_for_identifier(self, brand_id: str, identifier_key: str) -> str | None:
        """The surviving person id that owns an identifier key in the brand's identity namespace, if any."""

    def get_many(self, person_ids: Iterable[str]) -> dict[str, Profile]:
        """`get` of several persons: requested id -> its profile (merged_into followed); unknown ids are left out.
        This default reads them one by one; an adapter may batch the reads."""
        found = {person_id: self.get(person_id) for person_id in dict.fromkeys(person_ids)}
        return {person_id: profile for person_id, profile in found.items() if profile is not None}

    def scan_with_timelines(self, shard: int, total_shards: int) -> Iterator[tuple[Profile, list[TimelineEntry]]]:
        """Every surviving profile of one shard with its timeline (batch jobs: training, scoring, the nightly
        refresh, exports). This default reads each timeline on its own; an adapter may read them in bulk."""
        for profile in self.scan_shard(shard, total_shards):
            yield profile, self.timeline(profile)


class ProfileAnnotator(ABC):
    """Writers that own one attribute each, so they never overwrite each other's work."""

    @abstractmethod
    def put_score(self, person_id: str, model_name: str, score: ModelScore) -> None:
        """Set one model's score on the person (scoring owns scores.<model>)."""

    def put_model_scores(self, person_id: str, scores: Mapping[str, ModelScore]) -> None:
        """Several models' scores on one person (default: `put_score` each; an adapter writes them at once)."""
        for model_name, score in scores.items():
            self.put_score(person_id, model_name, score)

    def put_scores(self, scored: Sequence[tuple[Profile, Mapping[str, ModelScore]]]) -> None:
        """A batch of persons' scores (model -> score), with the profiles as the scorer read them."""
        for profile, scores in scored:
            self.put_model_scores(profile.person_id, scores)

    @abstractmethod
    def record_message(self, record: MessageRecord) -> None:
        """Append a sent (or suppressed) message to the person's timeline of messages."""

    @abstractmethod
    def messages(self, person_id: str) -> list[MessageRecord]:
        """The messages recorded for a person, oldest first."""
