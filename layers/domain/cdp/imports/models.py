"""A file import's plan, chunk reports, final report, progress record and the state machine's task commands."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cdp.connectors.files import FileFormat, FileKind

ImportId = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_\-]+$")]  # an execution name


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ObjectInfo(_Model):
    """The dropped object as planned: chunks read exactly this version (or fail if the file was replaced)."""

    size: int
    etag: str
    version_id: str | None = None


class ChunkSpec(_Model):
    index: int
    start: int  # byte offset of the chunk's first row
    end: int  # byte offset after its last row
    first_line: int
    rows: int


class ImportPlan(_Model):
    import_id: ImportId
    key: str
    brand_id: str
    kind: FileKind
    format: FileFormat
    object: ObjectInfo
    header: list[str] | None  # CSV: the normalized column names
    ignored_columns: list[str]
    rows_total: int
    chunks: list[ChunkSpec]
    planned_at: datetime


class RowCounts(_Model):
    """Rows by outcome (rows = accepted + duplicates + rejected) and the events they made (an order's lines make one
    event)."""

    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    events_accepted: int = 0
    events_duplicates: int = 0

    def __add__(self, other: RowCounts) -> RowCounts:
        return RowCounts(**{name: getattr(self, name) + getattr(other, name) for name in RowCounts.model_fields})

    @property
    def balanced(self) -> bool:
        return self.rows == self.accepted + self.duplicates + self.rejected


class RejectedRow(_Model):
    row: int  # the line where the row starts (the header is row 1)
    field: str
    reason: str
    raw: str


class ChunkReport(_Model):
    import_id: ImportId
    index: int
    counts: RowCounts
    rejects: list[RejectedRow]


class ImportReport(_Model):
    import_id: ImportId
    status: Literal["succeeded"] = "succeeded"
    key: str  # the dropped file: the raw record of every event of this import
    brand_id: str
    kind: FileKind
    format: FileFormat
    rows_total: int
    counts: RowCounts
    reject_reasons: dict[str, int]  # field -> rejected rows
    ignored_columns: list[str]
    chunks: int
    rejects_key: str
    report_key: str
    started_at: datetime
    finished_at: datetime


ImportStatus = Literal["planning", "running", "succeeded", "failed"]


class ImportProgress(BaseModel):
    """The ledger record `IMPORT#{import_id}`: updated by every chunk, read by `cdp import status`."""

    model_config = ConfigDict(extra="ignore")

    import_id: str
    status: ImportStatus
    key: str = ""
    brand_id: str = ""
    kind: str = ""
    rows_total: int = 0
    rows_done: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    chunks_total: int = 0
    chunks_done: int = 0
    started_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    report_key: str | None = None
    rejects_key: str | None = None
    error: str | None = None


# ---- task commands of the state machine (one Lambda function, dispatched on `action`) --------------------------------


class PlanCommand(_Model):
    action: Literal["plan"]
    import_id: ImportId
    key: str = Field(min_length=1, max_length=1024)
    bucket: str | None = None  # from the S3 event; must be the data bucket


class ChunkCommand(_Model):
    action: Literal["chunk"]
    import_id: ImportId
    index: int = Field(ge=0)


class FinishCommand(_Model):
    action: Literal["finish"]
    import_id: ImportId


class FailCommand(_Model):
    action: Literal["fail"]
    import_id: ImportId
    error: dict[str, Any] = Field(default_factory=dict, description="the Catch result: {Error, Cause}")


ImportCommand = Annotated[PlanCommand | ChunkCommand | FinishCommand | FailCommand, Field(discriminator="action")]
