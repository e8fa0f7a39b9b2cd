"""Ports of the warehouse export: where persons and events come from, where the files go, what writes Parquet."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from cdp.ingest.events import CanonicalEvent
from cdp.profile.models import Profile
from cdp.warehouse.rows import Row
from cdp.warehouse.schema import WarehouseTable


@dataclass(frozen=True)
class PersonItem:
    """A surviving person with the anchors their events are filed under (opaque to the domain)."""

    profile: Profile
    anchors: tuple[str, ...]


@dataclass(frozen=True)
class FiledEventItem:
    """An event filed under an anchor; whose it is follows from the persons' anchors (joined by the writer)."""

    anchor: str
    event: CanonicalEvent


SourceItem = PersonItem | FiledEventItem


class WarehouseSource(ABC):
    @abstractmethod
    def scan(self, since: date | None, brand_id: str | None) -> Iterator[SourceItem]:
        """Every surviving person (of the brand, when given) and every filed event (of the brand) that occurred on or
        after `since` (every event when None), in any order."""

    @property
    def read_units(self) -> float:
        """Read capacity the scans so far consumed (for the run's report); 0 when the store does not say."""
        return 0.0


class WarehouseObjects(ABC):
    """The bucket the warehouse lives in."""

    @abstractmethod
    def keys(self, prefix: str, start_after: str | None = None) -> list[str]:
        """Every key under the prefix (after `start_after`, when given), in key order."""

    @abstractmethod
    def read(self, key: str) -> bytes | None:
        """An object's bytes; None when it does not exist."""

    @abstractmethod
    def write(self, key: str, body: bytes, content_type: str = "application/json") -> None: ...

    @abstractmethod
    def upload(self, key: str, path: Path) -> int:
        """Put a local file; returns its size."""

    @abstractmethod
    def download(self, key: str, path: Path) -> None: ...

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> None: ...


@dataclass(frozen=True)
class Partition:
    """The rows of one file set: a table of one brand (snapshots), or one brand's day (events)."""

    table: WarehouseTable
    brand_id: str
    day: date | None = None


class TableWriter(ABC):
    """Stages rows, resolves whose each event is, and writes Parquet files (the DuckDB adapter:
    `cdp.warehouse.parquet`). Rows follow the column lists of `cdp.warehouse.schema`."""

    @abstractmethod
    def add_person(self, brand_id: str, profile_row: Row, tag_rows: list[Row], anchors: Iterable[str]) -> None: ...

    @abstractmethod
    def add_event(self, anchor: str, brand_id: str, day: date, dedupe_key: str, row: Row) -> None:
        """An event row without its person_id (the writer takes it from the person holding `anchor`)."""

    @abstractmethod
    def event_days(self) -> dict[str, set[date]]:
        """Brand -> the days with at least one event of a known person."""

    @abstractmethod
    def brands(self) -> set[str]:
        """Brands with at least one person staged."""

    @abstractmethod
    def write(self, partition: Partition, exclude: frozenset[str], out_dir: Path) -> tuple[list[Path], int]:
        """The partition's rows as Parquet files in `out_dir` (none when it has no rows), leaving out the rows of the
        persons whose id's SHA-256 is in `exclude`; returns the files and the row count."""

    @abstractmethod
    def rewrite(self, files: list[Path], exclude: frozenset[str], out_dir: Path) -> tuple[list[Path], int, int]:
        """Existing Parquet files of one partition without the rows of the persons whose id's SHA-256 is in
        `exclude`: (files, kept, removed)."""
