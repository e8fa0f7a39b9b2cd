"""One warehouse export run: profiles, tags and events of one brand (or all) as Parquet under `warehouse/`.

1. Plan: each brand's first day to write is its watermark (the last day exported, kept in `warehouse/_state.json`)
   minus `late_days`, so events that arrive a few days late still land in their day; `since` overrides it (a
   history import, a re-export); a brand never exported gets its whole history.
2. Scan the profile store once for the persons and the events filed since the earliest of those days (DynamoDB
   bills a scan for every item it passes, so the profiles and the events come for the price of one pass).
3. Write, per brand: the profile and tag snapshots (every run replaces them: erased or merged-away persons are gone
   from the next one), and each day from the brand's first day on, whole: a re-run replaces a day's partition, and
   a day that has no events any more loses its files. Files are uploaded before stale ones are deleted.
4. Apply the erasure requests (`cdp.warehouse.erasure`): the persons are left out of everything written in this
   run, and the partitions of their days that were not rewritten are rewritten without them.
5. Move each brand's watermark to today (UTC).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cdp.ingest.events import Token
from cdp.observability import logger
from cdp.org import BrandConfig, OrgDirectory
from cdp.warehouse.erasure import ErasureRequest
from cdp.warehouse.ports import FiledEventItem, Partition, PersonItem, TableWriter, WarehouseObjects, WarehouseSource
from cdp.warehouse.rows import event_row, profile_row, tag_rows
from cdp.warehouse.schema import (
    ERASURES_PREFIX,
    EVENTS,
    PROFILES,
    STATE_KEY,
    TAGS,
    brand_prefix,
    day_of_key,
    day_prefix,
)

DEFAULT_LATE_DAYS = 3


class ExportRequest(BaseModel):
    """A run's input: the schedule sends `{}` (every brand, from each one's watermark)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    brand_id: Token | None = Field(default=None, description="one brand only (default: every brand)")
    since: date | None = Field(default=None, description="rewrite every day from this one on (default: watermark)")
    late_days: int = Field(
        default=DEFAULT_LATE_DAYS, ge=0, le=90, description="days before the watermark rewritten for late events"
    )


class BrandState(BaseModel):
    exported_through: date = Field(description="the last UTC day written (it may have been partial then)")
    last_run_at: datetime
    runs: int = 0


class ExportState(BaseModel):
    state_version: Literal[1] = 1
    brands: dict[str, BrandState] = Field(default_factory=dict)


@dataclass(frozen=True)
class ExportPlan:
    today: date
    scan_from: date | None  # the earliest day read; None: every event
    starts: dict[str, date | None]  # first day written, per brand in scope with a known watermark
    default_start: date | None  # for a brand first seen in this run

    def start(self, brand_id: str) -> date | None:
        return self.starts.get(brand_id, self.default_start)


def plan_export(state: ExportState, request: ExportRequest, today: date) -> ExportPlan:
    """Which days each brand gets rewritten (pure; see the module docstring)."""
    known = {b: s for b, s in state.brands.items() if request.brand_id in (None, b)}
    if request.since is not None:
        starts: dict[str, date | None] = dict.fromkeys(known, request.since)
        return ExportPlan(today, request.since, starts, request.since)
    starts = {b: s.exported_through - timedelta(days=request.late_days) for b, s in known.items()}
    if request.brand_id is not None:
        start = starts.get(request.brand_id)
        return ExportPlan(today, start, starts, start)
    if not starts:  # the first run: every brand's whole history
        return ExportPlan(today, None, {}, None)
    # a brand first seen now (its first events came after the last run) starts with the others' window
    earliest = min(d for d in starts.values() if d is not None)
    return ExportPlan(today, earliest, starts, earliest)


class TableReport(BaseModel):
    rows: int = 0
    files: int = 0
    bytes: int = 0


class BrandReport(BaseModel):
    first_day: date | None = Field(description="the first day rewritten (None: every day)")
    profiles: int = 0
    tags: int = 0
    events: int = 0
    days_written: int = 0
    days_emptied: int = 0


class ExportReport(BaseModel):
    brand_id: str | None
    scan_from: date | None
    through: date
    persons_scanned: int
    events_scanned: int
    brands: dict[str, BrandReport]
    tables: dict[str, TableReport]
    objects_deleted: int
    erasures_applied: int
    erasure_partitions_rewritten: int
    erased_rows_removed: int
    read_units: float = Field(description="DynamoDB read capacity units the scan consumed")
    s3_requests: dict[str, int] = Field(default_factory=dict, description="S3 calls by kind")
    seconds: float


@dataclass
class _Run:
    request: ExportRequest
    plan: ExportPlan
    objects: WarehouseObjects
    writer: TableWriter
    work_dir: Path
    exclude: frozenset[str] = frozenset()
    tables: dict[str, TableReport] = field(
        default_factory=lambda: {t.name: TableReport() for t in (PROFILES, TAGS, EVENTS)}
    )
    brands: dict[str, BrandReport] = field(default_factory=dict)
    written_days: dict[str, set[date]] = field(default_factory=dict)
    deleted: int = 0

    def replace(self, partition: Partition, prefix: str, stale: Iterable[str]) -> int:
        """Write the partition's files under `prefix`, then delete the stale keys not overwritten; its row count."""
        files, rows = self.writer.write(partition, self.exclude, self.work_dir)
        kept = self._upload(partition.table.name, prefix, files)
        self._delete([k for k in stale if k not in kept])
        self.tables[partition.table.name].rows += rows
        return rows

    def _upload(self, table: str, prefix: str, files: list[Path]) -> set[str]:
        keys = set()
        for path in files:
            key = f"{prefix}{path.name}"
            self.tables[table].bytes += self.objects.upload(key, path)
            self.tables[table].files += 1
            keys.add(key)
            path.unlink()
        return keys

    def _delete(self, keys: list[str]) -> None:
        if keys:
            self.objects.delete(keys)
            self.deleted += len(keys)


def export_warehouse(
    request: ExportRequest,
    source: WarehouseSource,
    objects: WarehouseObjects,
    writer: TableWriter,
    org: OrgDirectory,
    now: datetime,
    work_dir: Path,
) -> ExportReport:
    started = time.perf_counter()
    state = read_state(objects)
    plan = plan_export(state, request, now.date())
    persons, events = _stage(request, plan, source, writer, org, now)
    requests = pending_erasures(objects)
    erased = frozenset(h for r in requests for h in r.person_hashes)
    run = _Run(request, plan, objects, writer, work_dir, exclude=erased)
    scope = {request.brand_id} if request.brand_id else writer.brands() | set(state.brands) | set(writer.event_days())
    for brand_id in sorted(scope):
        _export_brand(run, brand_id)
    applied, rewritten, removed = _apply_erasures(
        run, [r for r in requests if r.brands <= scope or not request.brand_id]
    )
    for brand_id in scope:
        held = state.brands.get(brand_id)
        state.brands[brand_id] = BrandState(
            exported_through=plan.today, last_run_at=now, runs=(held.runs if held else 0) + 1
        )
    objects.write(STATE_KEY, state.model_dump_json(indent=1).encode())
    report = ExportReport(
        brand_id=request.brand_id,
        scan_from=plan.scan_from,
        through=plan.today,
        persons_scanned=persons,
        events_scanned=events,
        brands=run.brands,
        tables=run.tables,
        objects_deleted=run.deleted,
        erasures_applied=applied,
        erasure_partitions_rewritten=rewritten,
        erased_rows_removed=removed,
        read_units=source.read_units,
        s3_requests=dict(getattr(objects, "requests", {})),
        seconds=round(time.perf_counter() - started, 3),
    )
    logger.info("warehouse exported", brand_id=request.brand_id, tables=report.model_dump(mode="json")["tables"])
    return report


def _stage(
    request: ExportRequest,
    plan: ExportPlan,
    source: WarehouseSource,
    writer: TableWriter,
    org: OrgDirectory,
    now: datetime,
) -> tuple[int, int]:
    persons = events = 0
    brands: dict[str, BrandConfig] = {}
    for item in source.scan(plan.scan_from, request.brand_id):
        if isinstance(item, PersonItem):
            profile = item.profile
            if request.brand_id not in (None, profile.brand_id):
                continue
            if profile.brand_id not in brands:
                brands[profile.brand_id] = org.brand(profile.brand_id)
            brand = brands[profile.brand_id]
            row = profile_row(profile, brand.loyalty, now, control_share=brand.contact.global_control_share)
            writer.add_person(profile.brand_id, row, tag_rows(profile, now), item.anchors)
            persons += 1
        elif isinstance(item, FiledEventItem):
            event = item.event
            day = event.occurred_at.date()
            if request.brand_id not in (None, event.brand_id) or (plan.scan_from and day < plan.scan_from):
                continue
            writer.add_event(item.anchor, event.brand_id, day, event.dedupe_key, event_row(event, None))
            events += 1
    return persons, events


def _export_brand(run: _Run, brand_id: str) -> None:
    start = run.plan.start(brand_id)
    report = run.brands.setdefault(brand_id, BrandReport(first_day=start))
    for table in (PROFILES, TAGS):
        prefix = brand_prefix(table, brand_id)
        rows = run.replace(Partition(table, brand_id), prefix, run.objects.keys(prefix))
        if table is PROFILES:
            report.profiles = rows
        else:
            report.tags = rows
    prefix = brand_prefix(EVENTS, brand_id)
    after = f"{prefix}dt={start.isoformat()}" if start else None
    existing: dict[date, list[str]] = {}
    for key in run.objects.keys(prefix, start_after=after):
        day = day_of_key(key)
        if day is not None and (start is None or day >= start):
            existing.setdefault(day, []).append(key)
    days = {d for d in run.writer.event_days().get(brand_id, set()) if start is None or d >= start}
    for day in sorted(days | set(existing)):
        rows = run.replace(Partition(EVENTS, brand_id, day), day_prefix(brand_id, day), existing.get(day, []))
        report.events += rows
        report.days_written += 1 if rows else 0
        report.days_emptied += 0 if rows else 1
    run.written_days[brand_id] = days | set(existing)


def read_state(objects: WarehouseObjects) -> ExportState:
    """The watermarks (listed first: the function reads only keys it has listed, see `infra.components.access`)."""
    body = objects.read(STATE_KEY) if STATE_KEY in objects.keys(STATE_KEY) else None
    return ExportState() if body is None else ExportState.model_validate_json(body)


def pending_erasures(objects: WarehouseObjects) -> list[ErasureRequest]:
    requests = []
    for key in objects.keys(ERASURES_PREFIX):
        body = objects.read(key)
        if body is None:
            continue
        try:
            requests.append(ErasureRequest.model_validate_json(body))
        except ValidationError as exc:  # ours, so never expected: kept for a person to look at, never dropped
            logger.error("unreadable warehouse erasure request kept", key=key, error=str(exc))
    return requests


def _apply_erasures(run: _Run, requests: list[ErasureRequest]) -> tuple[int, int, int]:
    """Rewrite the partitions the requests name that this run did not write, then drop the requests:
    (requests applied, partitions rewritten, rows removed)."""
    todo = sorted(
        {
            (brand, day)
            for r in requests
            for brand, days in r.days.items()
            for day in days
            if day not in run.written_days.get(brand, set())
        }
    )
    rewritten = removed = 0
    for brand, day in todo:
        prefix = day_prefix(brand, day)
        keys = run.objects.keys(prefix)
        if not keys:
            continue
        local = []
        for n, key in enumerate(keys):
            path = run.work_dir / f"erase-{n}-{key.rsplit('/', 1)[-1]}"
            run.objects.download(key, path)
            local.append(path)
        files, _kept, dropped = run.writer.rewrite(local, run.exclude, run.work_dir)
        for path in local:
            path.unlink(missing_ok=True)
        if not dropped:
            for path in files:
                path.unlink(missing_ok=True)
            continue
        written = run._upload(EVENTS.name, prefix, files)
        run._delete([k for k in keys if k not in written])
        rewritten += 1
        removed += dropped
    for r in requests:
        run._delete([r.key])
    return len(requests), rewritten, removed
