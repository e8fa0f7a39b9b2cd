"""Ports of the file import: the bucket it reads and writes, and the progress record."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import datetime

from cdp.imports.models import ImportProgress, ImportReport, ObjectInfo, RowCounts


class ImportFiles(ABC):
    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """The object's size and version, or None when there is no such key."""

    @abstractmethod
    def stream(self, key: str, info: ObjectInfo) -> Iterator[bytes]:
        """The object's bytes in pieces (the plan pass reads the whole file without holding it)."""

    @abstractmethod
    def read_range(self, key: str, info: ObjectInfo, start: int, end: int) -> bytes:
        """Bytes [start, end) of exactly the planned version; BadFileError when the file changed since."""

    @abstractmethod
    def read(self, key: str) -> bytes | None:
        """A small object we wrote (plan, chunk report), or None."""

    @abstractmethod
    def write(self, key: str, body: bytes, content_type: str) -> None: ...


class ProgressStore(ABC):
    @abstractmethod
    def start(self, progress: ImportProgress) -> None:
        """Write the record (again): planning, then running with the totals."""

    @abstractmethod
    def chunk_done(self, import_id: str, index: int, counts: RowCounts, at: datetime) -> bool:
        """Add one chunk's counts, once per chunk index (a retried chunk is not counted twice); False if it was."""

    @abstractmethod
    def finish(self, report: ImportReport) -> None:
        """Mark the import succeeded with the final totals."""

    @abstractmethod
    def fail(self, import_id: str, error: str, at: datetime) -> None: ...

    @abstractmethod
    def get(self, import_id: str) -> ImportProgress | None: ...
