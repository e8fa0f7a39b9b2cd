"""A brand's history import as its state machine runs it: plan -> persons (Map) -> identifiers (Map) -> finish.

How a brand onboards its past: a JSONL file of canonical events (one per line, e.g. 18 months exported from the old
CRM, POS and shops) dropped under `imports/history/{brand_id}/` before live traffic for the brand starts.

plan         reads the file once, checks every line as every write path does (`cdp.ingest.service.validate_item`:
             storable, valid, the brand of the key, no source `cdp`, within size), drops repeated event ids, refuses
             a namespace that already holds identifiers, resolves identity in bulk (`cdp.identity.history`) and
             writes the work: persons with their filed events in chunks, identifier records in chunks.
persons      folds each person's events and replays their tags as tag_update would have evaluated them
             (`cdp.tags.backfill`), then writes the persons, their filed events (each marked applied, so a live
             redelivery is ignored) and their tag history. Deterministic: a retried chunk writes the same items.
identifiers  writes the events filed under shared identifiers only (as live, for no person), then identifier
             records and hub review entries last: until then no live event resolves to a person not fully written.
finish       adds the chunk reports up (every line is accepted, a duplicate or rejected), writes rejects.csv and
             the report, and marks the import succeeded (`cdp import status` reads the same progress record).

Nothing is published: past events are history, not triggers (no campaign reacts to an 18-month-old order).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cdp.connectors.files import BadFileError
from cdp.errors import CdpError, InvalidInputError
from cdp.identity.history import plan_history
from cdp.identity.ports import HistorySink
from cdp.identity.resolution import IdentifierRecord
from cdp.imports import keys
from cdp.imports.models import FailCommand, ImportId, ImportProgress, RejectedRow, RowCounts
from cdp.imports.ports import ImportFiles, ProgressStore
from cdp.imports.service import describe_error, locate_file, rejects_csv
from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.ingest.service import RegionOf, WriteScope, validate_item
from cdp.observability import logger
from cdp.org import ScopeRef, load_org
from cdp.profile.models import Profile
from cdp.shared.safe_json import loads as safe_loads
from cdp.tags.backfill import replay_tags
from cdp.tags.ports import TagHistorySink
from cdp.tags.selection import TagRules

JSON = "application/json"
KIND = "history"
PERSONS_PER_CHUNK = 400
IDENTIFIERS_PER_CHUNK = 5_000
MAX_FILE_BYTES = 1_000_000_000  # resolved in one pass in memory: a 10 GB function holds ~5 M events
MAX_LINE_BYTES = 256 * 1024
RAW_IN_REJECTS = 2_000  # characters of a rejected line kept in rejects.csv


class HistoryIncompleteError(CdpError):
    """The chunk reports do not add up to the planned events: the import is failed rather than reported short."""


# ---- commands, plan and reports --------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HistoryPlanCommand(_Model):
    action: Literal["plan"]
    import_id: ImportId
    key: str = Field(min_length=1, max_length=1024)
    bucket: str | None = None  # from the S3 event; must be the data bucket


class HistoryChunkCommand(_Model):
    action: Literal["persons", "identifiers"]
    import_id: ImportId
    index: int = Field(ge=0)


class HistoryFinishCommand(_Model):
    action: Literal["finish"]
    import_id: ImportId


HistoryCommand = Annotated[
    HistoryPlanCommand | HistoryChunkCommand | HistoryFinishCommand | FailCommand, Field(discriminator="action")
]


class HistoryPlan(_Model):
    import_id: ImportId
    key: str
    brand_id: str
    namespace: str
    planned_at: datetime  # the import's instant: tags are brought up to it, and a retry replays the same
    lines: int
    counts: RowCounts  # accepted here means valid and new; the chunks account for where each went
    rejects: list[RejectedRow]
    unanchored: int  # accepted events with no usable identifier to file them under (as live: applied to no one)
    person_chunks: int
    identifier_chunks: int
    persons: int
    identifiers: int
    hubs: int
    seconds: dict[str, float]


class HistoryChunkReport(_Model):
    import_id: ImportId
    action: Literal["persons", "identifiers"]
    index: int
    persons: int = 0
    events: int = 0
    identifiers: int = 0
    tag_changes: int = 0
    evaluations: int = 0
    seconds: float = 0.0


class HistoryReport(_Model):
    import_id: ImportId
    status: Literal["succeeded"] = "succeeded"
    kind: Literal["history"] = "history"
    key: str
    brand_id: str
    lines: int
    counts: RowCounts
    events_filed: int
    unanchored: int
    persons: int
    identifiers: int
    hubs: int
    tag_history_entries: int
    tag_evaluations: int
    reject_reasons: dict[str, int]
    rejects_key: str
    report_key: str
    seconds: dict[str, float]
    started_at: datetime
    finished_at: datetime


# ---- where the work lives ----------------------------------------------------------------------------------------


def work_key(import_id: str, action: str, index: int) -> str:
    return f"{keys.REPORTS_PREFIX}{import_id}/{action}/{index:05d}.jsonl"


def chunk_report_key(import_id: str, action: str, index: int) -> str:
    return f"{keys.REPORTS_PREFIX}{import_id}/{action}/{index:05d}.report.json"


def chunk_number(plan: HistoryPlan, action: str, index: int) -> int:
    """The chunk's index in the progress record: persons first, then identifiers."""
    return index if action == "persons" else plan.person_chunks + index


@dataclass(frozen=True)
class HistoryPorts:
    files: ImportFiles
    progress: ProgressStore
    persons: HistorySink
    tag_history: TagHistorySink
    tag_rules: Callable[[], TagRules]  # the catalog and the dynamic audiences, as tag_update reads them
    region_of: RegionOf
    bucket: str


def run_history_command(
    command: HistoryPlanCommand | HistoryChunkCommand | HistoryFinishCommand | FailCommand,
    ports: HistoryPorts,
    now: datetime,
) -> dict[str, Any]:
    if isinstance(command, HistoryPlanCommand):
        return plan_history_import(command, ports, now)
    if isinstance(command, HistoryChunkCommand):
        if command.action == "persons":
            return load_persons(command, ports)
        return load_identifiers(command, ports)
    if isinstance(command, HistoryFinishCommand):
        return finish_history_import(command, ports, now)
    error = describe_error(command.error)
    ports.progress.fail(command.import_id, error, now)
    logger.warning("history import failed", error=error)
    return {"import_id": command.import_id, "status": "failed", "error": error}


# ---- plan --------------------------------------------------------------------------------------------------------


def history_brand(key: str) -> str:
    """`imports/history/{brand_id}/{file}.jsonl` -> the brand every event of the file must belong to."""
    rest = key.removeprefix(keys.HISTORY_PREFIX)
    parts = rest.split("/")
    if rest == key or len(parts) != 2 or not parts[0] or not parts[1]:
        raise BadFileError(f"{key} is not {keys.HISTORY_PREFIX}{{brand_id}}/{{file}}.jsonl", "key")
    if not parts[1].endswith(".jsonl"):
        raise BadFileError(f"{parts[1]}: a history file is JSON Lines (one canonical event per line, .jsonl)", "key")
    return parts[0]


def _lines(chunks: Iterator[bytes]) -> Iterator[tuple[int, bytes]]:
    pending = b""
    number = 0
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            number += 1
            yield number, line
    if pending:
        yield number + 1, pending


def _reject(rejects: list[RejectedRow], line: int, field: str, reason: str, raw: bytes) -> None:
    text = raw.decode("utf-8", errors="replace")
    rejects.append(RejectedRow(row=line, field=field, reason=reason, raw=text[:RAW_IN_REJECTS]))


def read_events(
    chunks: Iterator[bytes], brand_id: str, region_of: RegionOf, received_at: datetime
) -> tuple[list[CanonicalEvent], int, int, list[RejectedRow]]:
    """(valid new events, lines, duplicates, rejects): every non-blank line is exactly one of the three."""
    scope = WriteScope(load_org(), (ScopeRef(brand_id=brand_id),))
    events: dict[str, CanonicalEvent] = {}
    rejects: list[RejectedRow] = []
    lines = duplicates = 0
    for number, raw in _lines(chunks):
        if not raw.strip():
            continue
        lines += 1
        if len(raw) > MAX_LINE_BYTES:
            _reject(rejects, number, "line", f"the line is {len(raw)} bytes; the limit is {MAX_LINE_BYTES}", raw)
            continue
        try:
            item = safe_loads(raw, field="line")
        except InvalidInputError as exc:
            _reject(rejects, number, "line", exc.message, raw)
            continue
        if not isinstance(item, dict):
            _reject(rejects, number, "line", f"a line holds one event (a JSON object), not {type(item).__name__}", raw)
            continue
        checked = validate_item(item, received_at, region_of, scope)
        if isinstance(checked, list):
            first = checked[0]
            _reject(rejects, number, first.field or "line", "; ".join(e.message for e in checked[:3]), raw)
        elif checked.dedupe_key in events:
            duplicates += 1
        else:
            events[checked.dedupe_key] = checked
    return list(events.values()), lines, duplicates, rejects


def plan_history_import(command: HistoryPlanCommand, ports: HistoryPorts, now: datetime) -> dict[str, Any]:
    started = time.perf_counter()
    key, info = locate_file(ports.files, ports.bucket, command.bucket, command.key)
    brand_id = history_brand(key)
    brand = load_org().brand(brand_id)
    if info.size > MAX_FILE_BYTES:
        raise BadFileError(f"the file is {info.size} bytes; a history import takes up to {MAX_FILE_BYTES}", "key")
    logger.append_keys(brand_id=brand_id, kind=KIND)
    progress = ImportProgress(
        import_id=command.import_id,
        status="planning",
        key=key,
        brand_id=brand_id,
        kind=KIND,
        started_at=now,
        updated_at=now,
    )
    ports.progress.start(progress)
    events, lines, duplicates, rejects = read_events(ports.files.stream(key, info), brand_id, ports.region_of, now)
    read_s = time.perf_counter() - started
    persons: list[tuple[Profile, list[tuple[str, CanonicalEvent]]]] = []
    records: list[IdentifierRecord] = []
    hubs: list[str] = []
    under_hubs: list[tuple[str, CanonicalEvent]] = []
    unanchored = 0
    seconds = {"read": round(read_s, 3)}
    if events:
        load = plan_history(events, brand, fold=False)
        seconds.update(load.seconds)
        # Every identifier of the file, not a sample: a known one would be overwritten with the import's person.
        if not ports.persons.namespace_is_empty(load.namespace, [r.key for r in load.records]):
            raise BadFileError(
                f"identity namespace {load.namespace} already holds identifiers of this file: a history import goes "
                "in before live traffic (send later events through the live routes or a file import)",
                "key",
            )
        owner = {k: p.person_id for p in load.profiles for k in p.identifiers}
        filed: dict[str, list[tuple[str, CanonicalEvent]]] = {p.person_id: [] for p in load.profiles}
        for anchor, event in load.filed:
            if anchor in owner:
                filed[owner[anchor]].append((anchor, event))
            else:  # anchored on a shared identifier: filed under it, as live, for no person
                under_hubs.append((anchor, event))
        unanchored = len(events) - len(load.filed)
        persons = [(p, filed[p.person_id]) for p in load.profiles]
        records, hubs = load.records, load.hubs
    person_chunks = _write_chunks(ports.files, command.import_id, "persons", persons, PERSONS_PER_CHUNK, _person_line)
    identifier_lines: list[dict[str, Any]] = [{"record": _record_json(r)} for r in records]
    identifier_lines += [{"hub": h} for h in hubs]
    identifier_lines += [{"filed": [anchor, event.model_dump(mode="json")]} for anchor, event in under_hubs]
    identifier_chunks = _write_chunks(
        ports.files, command.import_id, "identifiers", identifier_lines, IDENTIFIERS_PER_CHUNK, lambda x: x
    )
    seconds["plan"] = round(time.perf_counter() - started, 3)
    plan = HistoryPlan(
        import_id=command.import_id,
        key=key,
        brand_id=brand_id,
        namespace=brand.namespace,
        planned_at=now,
        lines=lines,
        counts=RowCounts(
            rows=lines,
            accepted=len(events),
            duplicates=duplicates,
            rejected=len(rejects),
            events_accepted=len(events),
            events_duplicates=duplicates,
        ),
        rejects=rejects,
        unanchored=unanchored,
        person_chunks=person_chunks,
        identifier_chunks=identifier_chunks,
        persons=len(persons),
        identifiers=len(records),
        hubs=len(hubs),
        seconds=seconds,
    )
    ports.files.write(keys.plan_key(plan.import_id), plan.model_dump_json().encode(), JSON)
    ports.progress.start(
        progress.model_copy(
            update={
                "status": "running",
                "rows_total": lines,
                "rows_done": duplicates + len(rejects) + unanchored,
                "accepted": unanchored,
                "duplicates": duplicates,
                "rejected": len(rejects),
                "chunks_total": person_chunks + identifier_chunks,
            }
        )
    )
    logger.info("history import planned", lines=lines, persons=len(persons), rejected=len(rejects), seconds=seconds)
    return {
        "import_id": plan.import_id,
        "lines": lines,
        "person_chunks": list(range(person_chunks)),
        "identifier_chunks": list(range(identifier_chunks)),
    }


def _person_line(person: tuple[Profile, list[tuple[str, CanonicalEvent]]]) -> dict[str, Any]:
    profile, filed = person
    return {
        "person": profile.model_dump(mode="json"),
        "filed": [[anchor, event.model_dump(mode="json")] for anchor, event in filed],
    }


def _record_json(record: IdentifierRecord) -> dict[str, Any]:
    return {
        "key": record.key,
        "person_id": record.person_id,
        "up": sorted(record.up),
        "shared": record.shared,
    }


def _write_chunks(
    files: ImportFiles,
    import_id: str,
    action: str,
    items: list[Any],
    size: int,
    to_json: Callable[[Any], dict[str, Any]],
) -> int:
    count = 0
    for start in range(0, len(items), size):
        body = "\n".join(json.dumps(to_json(i), ensure_ascii=False) for i in items[start : start + size])
        files.write(work_key(import_id, action, count), (body + "\n").encode(), "application/x-ndjson")
        count += 1
    return count


def _plan(files: ImportFiles, import_id: str) -> HistoryPlan:
    body = files.read(keys.plan_key(import_id))
    if body is None:
        raise HistoryIncompleteError(f"history import {import_id} has no plan ({keys.plan_key(import_id)})")
    return HistoryPlan.model_validate_json(body)


def _work(files: ImportFiles, plan: HistoryPlan, action: str, index: int) -> list[dict[str, Any]]:
    total = plan.person_chunks if action == "persons" else plan.identifier_chunks
    if index >= total:
        raise HistoryIncompleteError(f"history import {plan.import_id} has {total} {action} chunks, not {index + 1}")
    body = files.read(work_key(plan.import_id, action, index))
    if body is None:
        raise HistoryIncompleteError(f"{action} chunk {index} of {plan.import_id} is missing")
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def _chunk_done(ports: HistoryPorts, plan: HistoryPlan, report: HistoryChunkReport, events: int) -> None:
    key = chunk_report_key(plan.import_id, report.action, report.index)
    ports.files.write(key, report.model_dump_json().encode(), JSON)
    counts = RowCounts(rows=events, accepted=events, events_accepted=events)
    ports.progress.chunk_done(plan.import_id, chunk_number(plan, report.action, report.index), counts, plan.planned_at)


# ---- persons and identifiers -------------------------------------------------------------------------------------


def load_persons(command: HistoryChunkCommand, ports: HistoryPorts) -> dict[str, Any]:
    started = time.perf_counter()
    plan = _plan(ports.files, command.import_id)
    brand = load_org().brand(plan.brand_id)
    rules = ports.tag_rules()
    cause = f"history-import:{plan.import_id}"
    profiles: list[Profile] = []
    filed: list[tuple[str, CanonicalEvent]] = []
    history = {}
    evaluations = 0
    for line in _work(ports.files, plan, "persons", command.index):
        mine = [(anchor, parse_event(event)) for anchor, event in line["filed"]]
        replayed = replay_tags(
            rules, Profile.model_validate(line["person"]), [e for _, e in mine], brand, plan.planned_at, cause
        )
        profiles.append(replayed.profile)
        filed.extend(mine)
        history[replayed.profile.person_id] = replayed.history
        evaluations += replayed.evaluations
    ports.persons.write_history_persons(plan.namespace, profiles, filed)
    changes = ports.tag_history.write_tag_history(history)
    report = HistoryChunkReport(
        import_id=plan.import_id,
        action="persons",
        index=command.index,
        persons=len(profiles),
        events=len(filed),
        tag_changes=changes,
        evaluations=evaluations,
        seconds=round(time.perf_counter() - started, 3),
    )
    _chunk_done(ports, plan, report, len(filed))
    return {"index": command.index, "persons": len(profiles), "events": len(filed)}


def load_identifiers(command: HistoryChunkCommand, ports: HistoryPorts) -> dict[str, Any]:
    started = time.perf_counter()
    plan = _plan(ports.files, command.import_id)
    records: list[IdentifierRecord] = []
    hubs: list[str] = []
    filed: list[tuple[str, CanonicalEvent]] = []
    for line in _work(ports.files, plan, "identifiers", command.index):
        if "hub" in line:
            hubs.append(line["hub"])
        elif "filed" in line:
            anchor, event = line["filed"]
            filed.append((anchor, parse_event(event)))
        else:
            r = line["record"]
            records.append(
                IdentifierRecord(key=r["key"], person_id=r["person_id"], up=frozenset(r["up"]), shared=r["shared"])
            )
    ports.persons.write_history_persons(plan.namespace, [], filed)
    ports.persons.write_history_identifiers(plan.namespace, records, hubs)
    report = HistoryChunkReport(
        import_id=plan.import_id,
        action="identifiers",
        index=command.index,
        events=len(filed),
        identifiers=len(records),
        seconds=round(time.perf_counter() - started, 3),
    )
    _chunk_done(ports, plan, report, len(filed))
    return {"index": command.index, "identifiers": len(records)}


# ---- finish ------------------------------------------------------------------------------------------------------


def finish_history_import(command: HistoryFinishCommand, ports: HistoryPorts, now: datetime) -> dict[str, Any]:
    plan = _plan(ports.files, command.import_id)
    reports: list[HistoryChunkReport] = []
    for action, total in (("persons", plan.person_chunks), ("identifiers", plan.identifier_chunks)):
        for index in range(total):
            body = ports.files.read(chunk_report_key(plan.import_id, action, index))
            if body is None:
                raise HistoryIncompleteError(f"{action} chunk {index} of {plan.import_id} has no report")
            reports.append(HistoryChunkReport.model_validate_json(body))
    filed = sum(r.events for r in reports)
    if filed + plan.unanchored != plan.counts.accepted or not plan.counts.balanced:
        raise HistoryIncompleteError(
            f"history import {plan.import_id}: {filed} filed + {plan.unanchored} unanchored events do not add up "
            f"to the {plan.counts.accepted} accepted"
        )
    ports.files.write(keys.rejects_key(plan.import_id), rejects_csv(plan.rejects), "text/csv; charset=utf-8")
    persons_s = sum(r.seconds for r in reports if r.action == "persons")
    report = HistoryReport(
        import_id=plan.import_id,
        key=plan.key,
        brand_id=plan.brand_id,
        lines=plan.lines,
        counts=plan.counts,
        events_filed=filed,
        unanchored=plan.unanchored,
        persons=plan.persons,
        identifiers=plan.identifiers,
        hubs=plan.hubs,
        tag_history_entries=sum(r.tag_changes for r in reports),
        tag_evaluations=sum(r.evaluations for r in reports),
        reject_reasons=dict(Counter(r.field for r in plan.rejects).most_common()),
        rejects_key=keys.rejects_key(plan.import_id),
        report_key=keys.report_key(plan.import_id),
        seconds={
            **plan.seconds,
            "persons_tasks": round(persons_s, 3),
            "identifier_tasks": round(sum(r.seconds for r in reports if r.action == "identifiers"), 3),
        },
        started_at=plan.planned_at,
        finished_at=now,
    )
    ports.files.write(report.report_key, report.model_dump_json(indent=2).encode(), JSON)
    final = ImportProgress(
        import_id=plan.import_id,
        status="succeeded",
        key=plan.key,
        brand_id=plan.brand_id,
        kind=KIND,
        rows_total=plan.lines,
        rows_done=plan.lines,
        accepted=plan.counts.accepted,
        duplicates=plan.counts.duplicates,
        rejected=plan.counts.rejected,
        chunks_total=len(reports),
        chunks_done=len(reports),
        started_at=plan.planned_at,
        updated_at=now,
        finished_at=now,
        report_key=report.report_key,
        rejects_key=report.rejects_key,
    )
    ports.progress.start(final)  # the whole record, final (`start` writes it as given)
    logger.info("history import finished", persons=plan.persons, events=filed, tag_changes=report.tag_history_entries)
    return report.model_dump(mode="json")
