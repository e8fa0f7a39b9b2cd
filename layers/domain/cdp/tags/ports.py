"""Ports of the tag engine: the tag writer with its history, the due-person source, and the dynamic audiences.

The DynamoDB adapter of the first three is `cdp.tags.dynamodb.DynamoTagStore` (tags live on the profile item,
history items in the person's partition); the audiences come from `cdp.audiences.store` behind a short TTL cache.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cdp.profile.models import ModelScore, TagValue
from cdp.profile.ports import ProfileReader
from cdp.shared.time import parse_iso
from cdp.tags.audience_rules import AudienceDefinition

TagScalar = str | int | float | bool


@dataclass(frozen=True)
class TagHistoryEntry:
    """One value change of one tag: set (old None), change, or removal (new None), at the instant it took effect.

    `cause` names what produced it (the bus event id of the trigger, or `sweep:<time>`): a redelivered trigger finds
    the changes it already wrote and announces them again, so a publish that failed after the write is not lost.
    """

    tag: str
    old: TagScalar | None
    new: TagScalar | None
    at: datetime
    cause: str

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> TagHistoryEntry:
        """From its stored fields (a history item, or an entry a tags item carries)."""
        at = fields["at"]
        return cls(
            tag=fields["tag"],
            old=fields.get("old"),
            new=fields.get("new"),
            at=at if isinstance(at, datetime) else parse_iso(at),
            cause=fields.get("cause", ""),
        )


class TagWriter(ABC):
    @abstractmethod
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
        """Replace the person's tags, next expiry and scores (`scores`: the whole map, the scorer's new score with
        the tags that read it included) and append the history entries, all or nothing, only if the person's tags
        are still at `expected_version` (`Profile.tags_version`; ConflictError otherwise: re-read and recompute).
        A profile change since the read needs no check here: identity announces it, and the evaluation it
        triggers reads the new profile and the tags this write leaves. `pending`: the changes the replaced
        version carries, not filed as history yet (`Profile.tags_pending`): kept or filed by this write."""


class TagHistory(ABC):
    @abstractmethod
    def tag_history(
        self, person_id: str, names: Sequence[str] | None = None, cause: str | None = None
    ) -> list[TagHistoryEntry]:
        """The person's recorded changes (of `names` only, of one `cause` only), oldest first."""

    @abstractmethod
    def tags_as_of(self, person_id: str, at: datetime, names: Sequence[str] | None = None) -> dict[str, TagValue]:
        """The tags the person had at `at` (each value's `since` is when it was set), from the history."""


class TagHistorySink(ABC):
    @abstractmethod
    def write_tag_history(self, history: Mapping[str, Sequence[TagHistoryEntry]]) -> int:
        """Append history entries per person id, as imported (idempotent puts: an entry's key is its tag and
        instant); returns how many were written."""


class DuePersons(ABC):
    @abstractmethod
    def due_for_tag_refresh(self, now: datetime, shard: int = 0, total_shards: int = 1) -> Iterator[str]:
        """Person ids whose next tag change time has passed (one segment of a parallel scan)."""


class TagStore(ProfileReader, TagWriter, TagHistory, DuePersons):
    """Everything tag_update and tag_sweep touch in the profiles table."""


# ---- dynamic audiences ----------------------------------------------------------------------------------------


class DynamicAudiences(ABC):
    @abstractmethod
    def definitions(self) -> Sequence[AudienceDefinition]:
        """Every dynamic audience whose membership tag_update keeps current."""


class StaticAudiences(DynamicAudiences):
    """A fixed list (tests, benchmarks, a deployment without audiences)."""

    def __init__(self, definitions: Sequence[AudienceDefinition] = ()) -> None:
        self._definitions = tuple(d for d in definitions if d.kind == "dynamic")

    def definitions(self) -> Sequence[AudienceDefinition]:
        return self._definitions


class CachedAudiences(DynamicAudiences):
    """Reads the definitions at most once per `ttl_seconds` per warm function: a new or edited audience takes
    effect within the TTL, and an event costs no S3 call. The same tuple is returned until the next load."""

    def __init__(
        self,
        load: Callable[[], Sequence[AudienceDefinition]],
        ttl_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl = ttl_seconds
        self._clock = clock
        self._loaded_at: float | None = None
        self._definitions: tuple[AudienceDefinition, ...] = ()

    def definitions(self) -> Sequence[AudienceDefinition]:
        now = self._clock()
        if self._loaded_at is None or now - self._loaded_at >= self._ttl:
            fresh = tuple(d for d in self._load() if d.kind == "dynamic")
            if fresh != self._definitions:
                self._definitions = fresh
            self._loaded_at = now
        return self._definitions
