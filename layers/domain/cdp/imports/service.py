"""A file import as the state machine runs it: plan -> one task per chunk (Map) -> finish; fail marks the record.

plan    reads the dropped file once: checks its columns (a missing required one fails the file before anything is
        ingested), counts rows and cuts them into chunks of at most MAX_CHUNK_ROWS rows or ~MAX_CHUNK_BYTES (never
        inside an order), writes plan.json and the progress record.
chunk   reads its byte range of exactly the planned version, validates and maps every row
        (`cdp.connectors.files`), ingests the good ones through `cdp.ingest.service.accept` (validation, dedupe on
        (source, event id), publish), writes its chunk report (counts + rejected rows) and adds its counts to the
        progress record once.
finish  sums the chunk reports, checks that every row is accounted for (rows = accepted + duplicates + rejected),
        writes rejects.csv and the report, and marks the import succeeded.

The dropped file is never moved or copied: it is the raw record (the dedupe ledger names it as every event's raw
key). A chunk retried after a failed publish publishes its events again (their claims were never confirmed) and
counts them as accepted; every consumer applies an event id once.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from cdp.connectors.files import (
    SOURCE,
    BadFileError,
    FileFormat,
    FileKind,
    FileTarget,
    ImportContext,
    MappedRows,
    Record,
    Reject,
    Row,
    check_columns,
    header_of,
    map_rows,
    parse_key,
    read_records,
    row_key,
    split_lines,
    to_row,
)
from cdp.errors import CdpError
from cdp.imports import keys
from cdp.imports.models import (
    ChunkCommand,
    ChunkReport,
    ChunkSpec,
    FailCommand,
    FinishCommand,
    ImportCommand,
    ImportPlan,
    ImportProgress,
    ImportReport,
    ObjectInfo,
    PlanCommand,
    RejectedRow,
    RowCounts,
)
from cdp.imports.ports import ImportFiles, ProgressStore
from cdp.ingest.ports import DedupeLedger, DedupeStatus
from cdp.ingest.service import IngestResult, RegionOf, WriteScope, accept
from cdp.observability import logger
from cdp.org import ScopeRef, load_org
from cdp.shared.csv_safe import SafeWriter
from cdp.shared.ports import EventPublisher

MAX_CHUNK_ROWS = 500
MAX_CHUNK_BYTES = 1_000_000
JSON = "application/json"


class ImportIncompleteError(CdpError):
    """The chunk reports do not add up to the planned rows: the import is failed rather than reported short."""


@dataclass(frozen=True)
class ImportPorts:
    files: ImportFiles
    progress: ProgressStore
    ledger: DedupeLedger
    publisher: EventPublisher
    region_of: RegionOf
    bucket: str  # the data bucket: the only one imports read


def phone_regions(default: str) -> RegionOf:
    """Each brand's phone region from the org directory; brands not listed use the deployment default."""

    def region(brand_id: str | None) -> str:
        org = load_org()
        return org.brands[brand_id].phone_region if brand_id and brand_id in org.brands else default

    return region


def run_command(command: ImportCommand, ports: ImportPorts, now: datetime) -> dict[str, Any]:
    if isinstance(command, PlanCommand):
        return plan_import(command, ports, now)
    if isinstance(command, ChunkCommand):
        return process_chunk(command, ports, now)
    if isinstance(command, FinishCommand):
        return finish_import(command, ports, now)
    return fail_import(command, ports, now)


# ---- plan --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    header: list[str] | None
    ignored_columns: list[str]
    rows_total: int
    chunks: list[ChunkSpec]


def plan_chunks(
    lines: Iterable[bytes], target: FileTarget, max_rows: int = MAX_CHUNK_ROWS, max_bytes: int = MAX_CHUNK_BYTES
) -> Planned:
    """One pass over the file: the header check, the row count and the chunks' byte ranges. An order's lines must be
    on consecutive rows, so that a chunk boundary never splits an order (checked: BadFileError names both rows)."""
    records = read_records(lines, target.format)
    header: list[str] | None = None
    ignored: list[str] = []
    if target.format is FileFormat.CSV:
        first = next(records, None)
        if first is None:
            raise BadFileError("the file is empty: a CSV file starts with its header row", "header")
        header = header_of(first)
        ignored = check_columns(target.kind, header)  # before reading on: a file without a column fails at once
    keys_seen: dict[str, None] = {}  # JSONL: every key any row has, in order of appearance
    chunker = _Chunker(max_rows, max_bytes)
    orders = _OrderRuns()
    for record in records:
        may_cut = True
        if target.format is FileFormat.JSONL or target.kind is FileKind.ORDERS:
            row = to_row(record, target.format, header)
            keys_seen.update(dict.fromkeys(row.values))
            if target.kind is FileKind.ORDERS:
                may_cut = orders.starts_run(row_key(row, "order_id"), record.line)
        chunker.add(record, may_cut)
    rows_total, chunks = chunker.done()
    if target.format is FileFormat.JSONL and rows_total:
        ignored = check_columns(target.kind, keys_seen)  # a key no row has is a missing column
    return Planned(header, ignored, rows_total, chunks)


class _Chunker:
    """Cuts rows into chunks of at most max_rows rows or about max_bytes, only where a cut is allowed."""

    def __init__(self, max_rows: int, max_bytes: int) -> None:
        self.max_rows, self.max_bytes = max_rows, max_bytes
        self.chunks: list[ChunkSpec] = []
        self.open: ChunkSpec | None = None
        self.rows = 0

    def add(self, record: Record, may_cut: bool) -> None:
        self.rows += 1
        full = self.open is not None and (
            self.open.rows >= self.max_rows or self.open.end - self.open.start >= self.max_bytes
        )
        if self.open is not None and full and may_cut:
            self.chunks.append(self.open)
            self.open = None
        if self.open is None:
            self.open = ChunkSpec(
                index=len(self.chunks), start=record.start, end=record.end, first_line=record.line, rows=1
            )
        else:
            self.open = self.open.model_copy(update={"end": record.end, "rows": self.open.rows + 1})

    def done(self) -> tuple[int, list[ChunkSpec]]:
        return self.rows, [*self.chunks, *([self.open] if self.open else [])]


class _OrderRuns:
    """Whether a row starts a new order (a chunk may be cut before it); an order seen before is scattered."""

    def __init__(self) -> None:
        self.started: dict[str, int] = {}
        self.previous: str | None = None

    def starts_run(self, order_id: str | None, line: int) -> bool:
        if order_id is None or order_id == self.previous:  # a row without an id (rejected later) stays in the run
            return False
        if order_id in self.started:
            raise BadFileError(
                f"line {line}: order {order_id} continues after other orders (it starts at line "
                f"{self.started[order_id]}); the lines of one order must be on consecutive rows: sort the file by "
                "order_id",
                "order_id",
            )
        self.started[order_id] = line
        self.previous = order_id
        return True


def locate_file(files: ImportFiles, bucket: str, command_bucket: str | None, key: str) -> tuple[str, ObjectInfo]:
    """The dropped object named by the S3 event (its key URL-encoded) or by a caller (plain): key and version."""
    if command_bucket and command_bucket != bucket:
        raise BadFileError(f"imports read the data bucket only, not {command_bucket}", "bucket")
    found, info = key, files.head(key)
    if info is None and unquote_plus(key) != key:  # S3 event keys come URL-encoded
        found = unquote_plus(key)
        info = files.head(found)
    if info is None:
        raise BadFileError(f"s3://{bucket}/{key} does not exist", "key")
    return found, info


def plan_import(command: PlanCommand, ports: ImportPorts, now: datetime) -> dict[str, Any]:
    key, info = locate_file(ports.files, ports.bucket, command.bucket, command.key)
    target = parse_key(key, keys.INCOMING_PREFIX)
    logger.append_keys(brand_id=target.brand_id, kind=target.kind.value)
    progress = ImportProgress(
        import_id=command.import_id,
        status="planning",
        key=key,
        brand_id=target.brand_id,
        kind=target.kind.value,
        started_at=now,
        updated_at=now,
    )
    ports.progress.start(progress)
    planned = plan_chunks(split_lines(ports.files.stream(key, info)), target, MAX_CHUNK_ROWS, MAX_CHUNK_BYTES)
    plan = ImportPlan(
        import_id=command.import_id,
        key=key,
        brand_id=target.brand_id,
        kind=target.kind,
        format=target.format,
        object=info,
        header=planned.header,
        ignored_columns=planned.ignored_columns,
        rows_total=planned.rows_total,
        chunks=planned.chunks,
        planned_at=now,
    )
    ports.files.write(keys.plan_key(plan.import_id), plan.model_dump_json().encode(), JSON)
    ports.progress.start(
        progress.model_copy(
            update={"status": "running", "rows_total": plan.rows_total, "chunks_total": len(plan.chunks)}
        )
    )
    logger.info("import planned", rows=plan.rows_total, chunks=len(plan.chunks), ignored=plan.ignored_columns)
    return {
        "import_id": plan.import_id,
        "rows_total": plan.rows_total,
        "chunk_count": len(plan.chunks),
        "chunks": list(range(len(plan.chunks))),
    }


def _plan(files: ImportFiles, import_id: str) -> ImportPlan:
    body = files.read(keys.plan_key(import_id))
    if body is None:
        raise ImportIncompleteError(f"import {import_id} has no plan ({keys.plan_key(import_id)})")
    return ImportPlan.model_validate_json(body)


# ---- chunk -------------------------------------------------------------------------------------------------------


class RecordingLedger(DedupeLedger):
    """The dedupe ledger, remembering what it answered per event: which of a chunk's events were duplicates."""

    def __init__(self, inner: DedupeLedger) -> None:
        self._inner = inner
        self.statuses: dict[str, DedupeStatus] = {}

    def claim(self, dedupe_key: str, raw_key: str, received_at: datetime) -> DedupeStatus:
        status = self._inner.claim(dedupe_key, raw_key, received_at)
        self.statuses[dedupe_key] = status
        return status

    def confirm(self, dedupe_keys: list[str], raw_key: str, received_at: datetime) -> None:
        self._inner.confirm(dedupe_keys, raw_key, received_at)

    def claim_many(self, dedupe_keys: list[str], raw_key: str, received_at: datetime) -> dict[str, DedupeStatus]:
        statuses = self._inner.claim_many(dedupe_keys, raw_key, received_at)
        self.statuses.update(statuses)
        return statuses


def process_chunk(command: ChunkCommand, ports: ImportPorts, now: datetime) -> dict[str, Any]:
    plan = _plan(ports.files, command.import_id)
    if command.index >= len(plan.chunks):
        raise ImportIncompleteError(f"import {plan.import_id} has {len(plan.chunks)} chunks, not {command.index + 1}")
    spec = plan.chunks[command.index]
    data = ports.files.read_range(plan.key, plan.object, spec.start, spec.end)
    records = read_records(split_lines([data]), plan.format, first_line=spec.first_line, offset=spec.start)
    rows = [to_row(record, plan.format, plan.header) for record in records]
    if len(rows) != spec.rows:
        raise ImportIncompleteError(f"chunk {spec.index} holds {len(rows)} rows, the plan counted {spec.rows}")
    ctx = ImportContext(plan.brand_id, ports.region_of(plan.brand_id), now=plan.planned_at)
    mapped = map_rows(plan.kind, rows, ctx)
    recorder = RecordingLedger(ports.ledger)
    result = accept(
        mapped.items,
        request_id=plan.import_id,
        received_at=now,
        raw_key=plan.key,
        ledger=recorder,
        publisher=ports.publisher,
        region_of=ports.region_of,
        write_scope=WriteScope(load_org(), (ScopeRef(brand_id=plan.brand_id),)),  # the brand of the file's key
    )
    report = chunk_report(plan.import_id, spec.index, rows, mapped, result, recorder.statuses)
    ports.files.write(keys.chunk_key(plan.import_id, spec.index), report.model_dump_json().encode(), JSON)
    ports.progress.chunk_done(plan.import_id, spec.index, report.counts, now)
    return {"index": spec.index, **report.counts.model_dump()}


def chunk_report(
    import_id: str,
    index: int,
    rows: list[Row],
    mapped: MappedRows,
    result: IngestResult,
    statuses: dict[str, DedupeStatus],
) -> ChunkReport:
    """Every row as exactly one of accepted, duplicate or rejected (ImportIncompleteError if the sums disagree)."""
    rejects = list(mapped.rejects)
    invalid = set()
    for rejected in result.rejected:  # events the canonical model refused (the row checks should catch these first)
        invalid.add(rejected.index)
        error = rejected.errors[0]
        for row in mapped.item_rows[rejected.index]:
            rejects.append(Reject(row.number, _column(error.field), error.message, row.raw))
    accepted_rows = duplicate_rows = 0
    for position, (item, item_rows) in enumerate(zip(mapped.items, mapped.item_rows, strict=True)):
        if position in invalid:
            continue
        if statuses.get(f"{item['brand_id']}#{SOURCE}#{item['event_id']}") is DedupeStatus.DUPLICATE:
            duplicate_rows += len(item_rows)
        else:
            accepted_rows += len(item_rows)
    counts = RowCounts(
        rows=len(rows),
        accepted=accepted_rows,
        duplicates=duplicate_rows + len(mapped.duplicate_rows),
        rejected=len(rejects),
        events_accepted=result.accepted,
        events_duplicates=result.duplicates + mapped.duplicate_events,
    )
    if not counts.balanced:
        raise ImportIncompleteError(f"chunk {index}: {counts} does not account for every row")
    ordered = sorted(rejects, key=lambda r: r.row)
    return ChunkReport(
        import_id=import_id,
        index=index,
        counts=counts,
        rejects=[RejectedRow(row=r.row, field=r.field, reason=r.reason, raw=r.raw) for r in ordered],
    )


_CANONICAL_TO_COLUMN = {"unit_price_minor": "unit_price", "total_minor": "total", "member_level": "level"}


def _column(path: str) -> str:
    """A canonical field path (properties.lines.0.unit_price_minor) as the file's column name."""
    names = [p for p in path.split(".") if not p.isdigit()]
    last = names[-1] if names else path
    if last in ("value", "type", "scope"):
        return "identifiers"
    return _CANONICAL_TO_COLUMN.get(last, last)


# ---- finish and fail ---------------------------------------------------------------------------------------------


def finish_import(command: FinishCommand, ports: ImportPorts, now: datetime) -> dict[str, Any]:
    plan = _plan(ports.files, command.import_id)
    reports: list[ChunkReport] = []
    for spec in plan.chunks:
        body = ports.files.read(keys.chunk_key(plan.import_id, spec.index))
        if body is None:
            raise ImportIncompleteError(f"chunk {spec.index} of import {plan.import_id} has no report")
        reports.append(ChunkReport.model_validate_json(body))
    counts = sum((r.counts for r in reports), RowCounts())
    if counts.rows != plan.rows_total or not counts.balanced:
        raise ImportIncompleteError(f"import {plan.import_id}: {counts} does not add up to {plan.rows_total} rows")
    rejects = [row for report in reports for row in report.rejects]
    ports.files.write(keys.rejects_key(plan.import_id), rejects_csv(rejects), "text/csv; charset=utf-8")
    report = ImportReport(
        import_id=plan.import_id,
        key=plan.key,
        brand_id=plan.brand_id,
        kind=plan.kind,
        format=plan.format,
        rows_total=plan.rows_total,
        counts=counts,
        reject_reasons=dict(Counter(r.field for r in rejects).most_common()),
        ignored_columns=plan.ignored_columns,
        chunks=len(plan.chunks),
        rejects_key=keys.rejects_key(plan.import_id),
        report_key=keys.report_key(plan.import_id),
        started_at=plan.planned_at,
        finished_at=now,
    )
    ports.files.write(report.report_key, report.model_dump_json(indent=2).encode(), JSON)
    ports.progress.finish(report)
    logger.info("import finished", **counts.model_dump())
    return report.model_dump(mode="json")


REJECTS_COLUMNS = ("row", "field", "reason", "raw")


def rejects_csv(rejects: list[RejectedRow]) -> bytes:
    """UTF-8 with a BOM, so that Excel shows the Chinese in the raw rows as written; cells that a spreadsheet would
    run as formulas are neutralized (the raw rows are whatever the store's file held)."""
    out = io.StringIO()
    writer = SafeWriter(out, lineterminator="\n")
    writer.writerow(REJECTS_COLUMNS)
    writer.writerows((r.row, r.field, r.reason, r.raw) for r in rejects)
    return out.getvalue().encode("utf-8-sig")


def fail_import(command: FailCommand, ports: ImportPorts, now: datetime) -> dict[str, Any]:
    error = describe_error(command.error)
    ports.progress.fail(command.import_id, error, now)
    logger.warning("import failed", error=error)
    return {"import_id": command.import_id, "status": "failed", "error": error}


def describe_error(error: dict[str, Any]) -> str:
    """The Catch result {Error, Cause}; a Lambda task's Cause is its error payload as JSON."""
    name = str(error.get("Error") or "Error")
    cause = error.get("Cause")
    try:
        payload = json.loads(cause) if isinstance(cause, str) else cause
    except json.JSONDecodeError:
        payload = cause
    message = payload.get("errorMessage") if isinstance(payload, dict) else payload
    return f"{name}: {message}" if message else name
