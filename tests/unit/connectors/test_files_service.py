"""The file import run (plan -> chunks -> finish) on in-memory ports: chunking, accounting, rejects, re-runs."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cdp.connectors.files import BadFileError, FileKind, parse_key, split_lines
from cdp.errors import PublishError
from cdp.imports import keys
from cdp.imports.models import (
    ChunkCommand,
    FailCommand,
    FinishCommand,
    ImportPlan,
    ImportProgress,
    ImportReport,
    ObjectInfo,
    PlanCommand,
    RowCounts,
)
from cdp.imports.ports import ImportFiles, ProgressStore
from cdp.imports.service import (
    ImportIncompleteError,
    ImportPorts,
    describe_error,
    fail_import,
    finish_import,
    plan_chunks,
    plan_import,
    process_chunk,
)
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher
from tests.fakes.ledger import MemoryLedger

SAMPLES = Path(__file__).resolve().parents[3] / "events" / "files"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
BUCKET = "cdp-data"


class MemoryFiles(ImportFiles):
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def head(self, key: str) -> ObjectInfo | None:
        body = self.objects.get(key)
        return None if body is None else ObjectInfo(size=len(body), etag=f'"{hash(body)}"')

    def stream(self, key: str, info: ObjectInfo) -> Iterator[bytes]:
        body = self.objects[key]
        yield from (body[i : i + 7] for i in range(0, len(body), 7))  # small pieces: lines cross them

    def read_range(self, key: str, info: ObjectInfo, start: int, end: int) -> bytes:
        return self.objects[key][start:end]

    def read(self, key: str) -> bytes | None:
        return self.objects.get(key)

    def write(self, key: str, body: bytes, content_type: str) -> None:
        self.objects[key] = body


class MemoryProgress(ProgressStore):
    def __init__(self) -> None:
        self.records: dict[str, ImportProgress] = {}
        self.counted: set[tuple[str, int]] = set()

    def start(self, progress: ImportProgress) -> None:
        self.records[progress.import_id] = progress

    def chunk_done(self, import_id: str, index: int, counts: RowCounts, at: datetime) -> bool:
        if (import_id, index) in self.counted:
            return False
        self.counted.add((import_id, index))
        p = self.records[import_id]
        self.records[import_id] = p.model_copy(
            update={
                "rows_done": p.rows_done + counts.rows,
                "accepted": p.accepted + counts.accepted,
                "duplicates": p.duplicates + counts.duplicates,
                "rejected": p.rejected + counts.rejected,
                "chunks_done": p.chunks_done + 1,
            }
        )
        return True

    def finish(self, report: ImportReport) -> None:
        self.records[report.import_id] = self.records[report.import_id].model_copy(update={"status": "succeeded"})

    def fail(self, import_id: str, error: str, at: datetime) -> None:
        old = self.records.get(import_id) or ImportProgress(import_id=import_id, status="failed")
        self.records[import_id] = old.model_copy(update={"status": "failed", "error": error})

    def get(self, import_id: str) -> ImportProgress | None:
        return self.records.get(import_id)


class MemoryPublisher(EventPublisher):
    def __init__(self) -> None:
        self.published: list[object] = []
        self.fail_next = False

    def publish(self, events: Sequence[Publishable], correlation_id: str) -> list[str]:
        if self.fail_next:
            self.fail_next = False
            raise PublishError("bus unavailable")
        self.published.extend(ev for e in events for ev in getattr(e, "events", [e]))  # the events, unpacked
        return [str(i) for i in range(len(events))]


@pytest.fixture
def ports() -> ImportPorts:
    return ImportPorts(MemoryFiles(), MemoryProgress(), MemoryLedger(), MemoryPublisher(), lambda _: "CN", BUCKET)


def drop(ports: ImportPorts, name: str, kind: str, body: bytes | None = None) -> str:
    key = keys.incoming_key("demo-brand", kind, name)
    assert isinstance(ports.files, MemoryFiles)
    ports.files.objects[key] = (SAMPLES / name).read_bytes() if body is None else body
    return key


def run(ports: ImportPorts, key: str, import_id: str) -> ImportReport:
    planned = plan_import(PlanCommand(action="plan", import_id=import_id, key=key, bucket=BUCKET), ports, NOW)
    for index in planned["chunks"]:
        process_chunk(ChunkCommand(action="chunk", import_id=import_id, index=index), ports, NOW)
    return ImportReport.model_validate(finish_import(FinishCommand(action="finish", import_id=import_id), ports, NOW))


def rejects_of(ports: ImportPorts, report: ImportReport) -> list[dict[str, str]]:
    body = ports.files.read(report.rejects_key)
    assert body is not None and body.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 only with a BOM
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


# ---- planning ----------------------------------------------------------------------------------------------------


def test_chunks_cover_every_row_once_and_never_split_an_order() -> None:
    # Given 7 orders of 1-3 lines and a 4-row chunk limit
    header = "order_id,member_card,occurred_at,sku,quantity,unit_price\n"
    sizes = [3, 1, 2, 3, 1, 1, 2]
    lines = [f"SO{n},M1,2024-05-01,S{i},1,1.00\n" for n, size in enumerate(sizes) for i in range(size)]
    data = (header + "".join(lines)).encode()
    target = parse_key(keys.incoming_key("demo-brand", "orders", "o.csv"), keys.INCOMING_PREFIX)
    planned = plan_chunks(split_lines([data]), target, max_rows=4)
    # Then the chunks are contiguous byte ranges holding every row, cut only between orders
    assert planned.rows_total == 13 == sum(c.rows for c in planned.chunks)
    assert planned.chunks[0].start == len(header) and planned.chunks[-1].end == len(data)
    assert all(a.end == b.start for a, b in zip(planned.chunks, planned.chunks[1:], strict=False))
    for chunk in planned.chunks:
        first_line = data[chunk.start : chunk.end].decode().splitlines()[0]
        line_before = data[: chunk.start].decode().splitlines()[-1]
        assert first_line.split(",")[0] != line_before.split(",")[0] or chunk.index == 0
    assert [c.rows for c in planned.chunks] == [4, 5, 4]


def test_members_are_cut_by_rows_and_by_bytes() -> None:
    header = "member_card,joined_at\n"
    data = (header + "".join(f"M{i},2024-01-01\n" for i in range(10))).encode()
    target = parse_key(keys.incoming_key("demo-brand", "members", "m.csv"), keys.INCOMING_PREFIX)
    assert [c.rows for c in plan_chunks(split_lines([data]), target, max_rows=4).chunks] == [4, 4, 2]
    assert [c.rows for c in plan_chunks(split_lines([data]), target, max_bytes=30).chunks] == [3, 3, 3, 1]


def test_scattered_order_lines_fail_the_file_naming_both_rows() -> None:
    data = b"order_id,phone,occurred_at,sku,quantity,unit_price\nA,1,x,s,1,1\nB,1,x,s,1,1\nA,1,x,s,1,1\n"
    target = parse_key(keys.incoming_key("demo-brand", "orders", "o.csv"), keys.INCOMING_PREFIX)
    with pytest.raises(BadFileError, match=r"line 4: order A continues after other orders .*line 2"):
        plan_chunks(split_lines([data]), target)


def test_jsonl_fails_when_no_row_has_a_required_key() -> None:
    data = b'{"member_card": "M1", "join_date": "2024-01-01"}\n'
    target = parse_key(keys.incoming_key("demo-brand", "members", "m.jsonl"), keys.INCOMING_PREFIX)
    with pytest.raises(BadFileError, match="joined_at"):
        plan_chunks(split_lines([data]), target)


def test_an_empty_csv_fails_and_a_header_only_csv_has_no_rows() -> None:
    target = parse_key(keys.incoming_key("demo-brand", "members", "m.csv"), keys.INCOMING_PREFIX)
    with pytest.raises(BadFileError, match="empty"):
        plan_chunks(split_lines([b""]), target)
    planned = plan_chunks(split_lines([b"member_card,joined_at\r\n"]), target)
    assert (planned.rows_total, planned.chunks) == (0, [])


# ---- a run -------------------------------------------------------------------------------------------------------


def test_a_run_accounts_for_every_row_and_writes_the_rejects(ports: ImportPorts) -> None:
    # Given the orders sample dropped under imports/incoming/
    key = drop(ports, "orders.csv", "orders")
    # When it is planned, its chunks processed and the import finished
    report = run(ports, key, "imp-1")
    # Then every row is accepted, a duplicate or rejected, and the progress record agrees
    counts = report.counts
    assert (counts.rows, counts.accepted, counts.duplicates, counts.rejected) == (12, 6, 0, 6)
    assert counts.events_accepted == 4 == len(ports.publisher.published)  # type: ignore[attr-defined]
    progress = ports.progress.get("imp-1")
    assert progress is not None and progress.status == "succeeded"
    assert (progress.rows_done, progress.accepted, progress.rejected) == (12, 6, 6)
    # And the rejects file has one line per bad row with the row number, the field, the reason and the raw row
    rejects = rejects_of(ports, report)
    assert [r["row"] for r in rejects] == ["5", "6", "7", "8", "9", "12"]
    assert rejects[1]["field"] == "unit_price" and "-28.00" in rejects[1]["raw"]
    assert report.reject_reasons["order_id"] == 2
    assert report.key == key  # the dropped file is the raw record
    plan = ImportPlan.model_validate_json(ports.files.read(keys.plan_key("imp-1")) or b"")
    assert plan.kind is FileKind.ORDERS and plan.object.size == len((SAMPLES / "orders.csv").read_bytes())


def test_running_the_same_file_again_gives_duplicates_not_double_counts(ports: ImportPorts) -> None:
    key = drop(ports, "members.csv", "members")
    first = run(ports, key, "imp-a")
    second = run(ports, key, "imp-b")
    assert (first.counts.accepted, first.counts.duplicates) == (6, 0)
    assert (second.counts.accepted, second.counts.duplicates, second.counts.rejected) == (0, 6, 4)
    assert second.counts.events_duplicates == 6
    assert len(ports.publisher.published) == 6  # type: ignore[attr-defined]


def test_a_retried_chunk_is_counted_once_in_the_progress_record(ports: ImportPorts) -> None:
    key = drop(ports, "members.jsonl", "members")
    plan_import(PlanCommand(action="plan", import_id="imp-r", key=key), ports, NOW)
    command = ChunkCommand(action="chunk", import_id="imp-r", index=0)
    process_chunk(command, ports, NOW)
    process_chunk(command, ports, NOW)  # Step Functions retried it after the counts had landed
    progress = ports.progress.get("imp-r")
    assert progress is not None and progress.rows_done == 7 and progress.chunks_done == 1


def test_a_failed_publish_raises_for_a_retry_and_nothing_is_counted(ports: ImportPorts) -> None:
    key = drop(ports, "members.csv", "members")
    plan_import(PlanCommand(action="plan", import_id="imp-p", key=key), ports, NOW)
    ports.publisher.fail_next = True  # type: ignore[attr-defined]
    with pytest.raises(PublishError):
        process_chunk(ChunkCommand(action="chunk", import_id="imp-p", index=0), ports, NOW)
    progress = ports.progress.get("imp-p")
    assert progress is not None and progress.rows_done == 0


def test_finish_refuses_an_import_with_a_missing_chunk_report(ports: ImportPorts) -> None:
    key = drop(ports, "members.csv", "members")
    plan_import(PlanCommand(action="plan", import_id="imp-m", key=key), ports, NOW)
    with pytest.raises(ImportIncompleteError, match=r"chunk 0 .* has no report"):
        finish_import(FinishCommand(action="finish", import_id="imp-m"), ports, NOW)


def test_a_file_missing_a_column_fails_at_plan_and_fail_marks_the_record(ports: ImportPorts) -> None:
    key = drop(ports, "members.csv", "members", b"member_card,name\nM1,Li\n")
    with pytest.raises(BadFileError, match="joined_at") as raised:
        plan_import(PlanCommand(action="plan", import_id="imp-f", key=key), ports, NOW)
    cause = json.dumps({"errorType": "BadFileError", "errorMessage": raised.value.message})
    error = {"Error": "BadFileError", "Cause": cause}
    fail_import(FailCommand(action="fail", import_id="imp-f", error=error), ports, NOW)
    progress = ports.progress.get("imp-f")
    assert progress is not None and progress.status == "failed"
    assert progress.error is not None and progress.error.startswith("BadFileError: members file is missing")


def test_plan_finds_a_url_encoded_key_and_refuses_other_buckets(ports: ImportPorts) -> None:
    key = drop(ports, "members 2024.csv", "members", b"member_card,joined_at\nM1,2024-01-01\n")
    planned = plan_import(PlanCommand(action="plan", import_id="imp-u", key=key.replace(" ", "+")), ports, NOW)
    assert planned["rows_total"] == 1
    with pytest.raises(BadFileError, match="data bucket"):
        plan_import(PlanCommand(action="plan", import_id="imp-v", key=key, bucket="elsewhere"), ports, NOW)
    with pytest.raises(BadFileError, match="does not exist"):
        plan_import(PlanCommand(action="plan", import_id="imp-w", key=key + "x"), ports, NOW)


def test_describe_error_reads_the_lambda_payload_in_the_cause() -> None:
    cause = '{"errorType": "StoreError", "errorMessage": "put failed"}'
    assert describe_error({"Error": "StoreError", "Cause": cause}) == "StoreError: put failed"
    assert describe_error({"Error": "States.Timeout", "Cause": "took too long"}) == "States.Timeout: took too long"
    assert describe_error({}) == "Error"


def test_the_rejects_file_never_carries_a_formula(ports: ImportPorts) -> None:
    # Given an orders file whose rejected rows hold cells a spreadsheet would run as formulas
    header = "order_id,member_card,occurred_at,sku,quantity,unit_price\n"
    rows = [
        '=HYPERLINK("http://evil.example","x"),M1,2024-05-01,S1,1,1.00\n',  # a bad order id
        "@SUM(A1),M1,2024-05-01,S1,1,-1.00\n",
        "-1+1,M1,2024-05-01,S1,1,abc\n",
    ]
    key = drop(ports, "formulas.csv", "orders", (header + "".join(rows)).encode())
    # When it is imported
    report = run(ports, key, "imp-formula")
    # Then each row is rejected and the rejects file (opened in Excel by the brand) has no cell starting a formula
    assert report.counts.rejected == 3
    body = (ports.files.read(report.rejects_key) or b"").decode("utf-8-sig")
    cells = [cell for row in csv.reader(io.StringIO(body)) for cell in row]
    assert cells and not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert any(c.startswith("'=HYPERLINK") for c in cells)
