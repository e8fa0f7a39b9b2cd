"""The file import state machine on the local runtime: the sample files dropped into S3 run to SUCCEEDED, every row is
accounted for, the rejects file names each bad row, and the good rows become persons with their orders.

The runtime executes infra/statemachines/file_import.asl.json on moto Step Functions with the real handler; the
execution is started with the input the S3 -> EventBridge rule gives it ({bucket, key}). Tests share one runtime and
run in file order (the re-run test relies on the first import).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cdp import topology
from cdp.connectors.files import FileKind
from cdp.errors import StoreError
from cdp.identity.dynamodb import DynamoIdentityStore
from cdp.imports import keys, service
from cdp.imports.models import ImportProgress, ImportReport, RowCounts
from cdp_local.cli_import import ImportOutcome, progress_store, run_file, start_import, upload, wait_import
from cdp_local.runtime import LocalRuntime

SAMPLES = Path(__file__).resolve().parents[3] / "events" / "files"
BRAND = "demo-brand"
BUCKET = topology.DATA_BUCKET_LOCAL_NAME


# The tests build on each other's imports (a re-import is a duplicate): one worker runs them in file order.
pytestmark = pytest.mark.xdist_group("imports")


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(state_machines={topology.IMPORT_MACHINE.key}) as rt:
        yield rt


def imported(rt: LocalRuntime, name: str, kind: FileKind) -> tuple[ImportOutcome, ImportReport]:
    outcome = run_file(rt, SAMPLES / name, BRAND, kind)
    assert outcome.status == "SUCCEEDED", outcome.error
    assert outcome.report is not None
    return outcome, ImportReport.model_validate(outcome.report)


def read(rt: LocalRuntime, key: str) -> bytes:
    body: bytes = rt.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return body


def rejects(rt: LocalRuntime, report: ImportReport) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(read(rt, report.rejects_key).decode("utf-8-sig"))))


def profiles(rt: LocalRuntime) -> DynamoIdentityStore:
    return DynamoIdentityStore(topology.PROFILES_TABLE.local_name, client=rt.client("dynamodb"))


def test_member_and_order_files_import_into_persons_with_their_orders(runtime: LocalRuntime) -> None:
    # Given the members and orders samples (CSV with a BOM and CRLF; a few deliberately bad rows)
    # When each is dropped under imports/incoming/demo-brand/{kind}/ and its execution runs
    members_outcome, members = imported(runtime, "members.csv", FileKind.MEMBERS)
    orders_outcome, orders = imported(runtime, "orders.csv", FileKind.ORDERS)
    # Then every row is accepted, a duplicate or rejected
    for report in (members, orders):
        c = report.counts
        assert c.rows == report.rows_total == c.accepted + c.duplicates + c.rejected
    assert (members.counts.accepted, members.counts.rejected) == (6, 4)
    assert (orders.counts.accepted, orders.counts.rejected, orders.counts.events_accepted) == (6, 6, 4)
    # And the rejects file has one line per bad row, with its row number, field, reason and raw row
    bad_members = rejects(runtime, members)
    assert [(r["row"], r["field"]) for r in bad_members] == [
        ("5", "phone"),
        ("6", "member_card"),
        ("7", "birthday"),
        ("9", "joined_at"),
    ]
    assert "missing identifier" in bad_members[1]["reason"] and bad_members[1]["raw"].startswith(",,chen.jie@")
    assert {r["field"] for r in rejects(runtime, orders)} >= {"unit_price", "occurred_at", "member_card", "phone"}
    # And the report and the progress record agree, and point at the dropped file as the raw record
    stored = ImportReport.model_validate_json(read(runtime, keys.report_key(orders.import_id)))
    assert stored == orders and stored.key == keys.incoming_key(BRAND, "orders", "orders.csv")
    progress = progress_store(runtime).get(orders_outcome.import_id)
    assert progress is not None and progress.status == "succeeded"
    assert (progress.rows_done, progress.accepted, progress.rejected) == (12, 6, 6)
    assert members_outcome.import_id != orders_outcome.import_id
    # When the bus is drained
    drained = runtime.drain(max_rounds=100)
    assert drained.quiet and drained.dead_lettered == 0
    # Then 李娜 (member card M20240001) is one person with her phone, e-mail and the file's order
    store = profiles(runtime)
    person_id = store.person_for_identifier(BRAND, "member_card:M20240001")
    assert person_id is not None
    assert store.person_for_identifier(BRAND, "phone:+8613800138001") == person_id
    profile = store.get(person_id)
    assert profile is not None
    assert "email:li.na@example.cn" in profile.identifiers
    assert (profile.facts.order_count, profile.facts.spend_minor) == (1, 27800)
    timeline = {
        (e.event.event_type, e.event.event_id) for e in store.timeline(profile) if e.event.source.value != "cdp"
    }
    assert {e.event.event_type for e in store.timeline(profile) if e.event.source.value == "cdp"} == {"points_changed"}
    assert timeline == {
        ("identify", "file-member-demo-brand-M20240001-20230115T022000Z"),
        ("order_placed", "file-order-demo-brand-SO-SH01-0001"),
    }
    # And the member whose row had a bad phone never became a person
    assert store.person_for_identifier(BRAND, "member_card:M20240004") is None


def test_json_lines_files_import_too(runtime: LocalRuntime) -> None:
    _, members = imported(runtime, "members.jsonl", FileKind.MEMBERS)
    _, orders = imported(runtime, "orders.jsonl", FileKind.ORDERS)
    assert (members.counts.accepted, members.counts.rejected) == (4, 3)
    assert members.ignored_columns == ["wechat_nickname"]
    assert (orders.counts.accepted, orders.counts.rejected, orders.counts.events_accepted) == (4, 2, 3)
    assert [r["field"] for r in rejects(runtime, orders)] == ["unit_price", "occurred_at"]
    # And 王伟, whose CSV order was rejected (a negative price), has the mini-program order from the JSONL file
    assert runtime.drain(max_rounds=100).dead_lettered == 0
    store = profiles(runtime)
    profile = store.get(store.person_for_identifier(BRAND, "member_card:M20240002") or "")
    assert profile is not None and (profile.facts.order_count, profile.facts.spend_minor) == (1, 15800)


def test_importing_the_same_file_again_gives_duplicates_not_double_counts(runtime: LocalRuntime) -> None:
    # Given orders.csv was imported by the first test / When it is dropped and imported again
    _, again = imported(runtime, "orders.csv", FileKind.ORDERS)
    # Then its good rows are duplicates, its bad rows rejected again, and nothing is published
    c = again.counts
    assert (c.rows, c.accepted, c.duplicates, c.rejected) == (12, 0, 6, 6)
    assert (c.events_accepted, c.events_duplicates) == (0, 4)
    drained = runtime.drain()
    store = profiles(runtime)
    person_id = store.person_for_identifier(BRAND, "member_card:M20240001")
    profile = store.get(person_id or "")
    assert profile is not None and profile.facts.order_count == 1
    assert drained.processed == 0


def test_a_file_without_a_required_column_fails_the_execution_and_ingests_nothing(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    path = tmp_path / "members-no-date.csv"
    path.write_text("member_card,phone,name\nM90000001,13800009001,赵六\n", encoding="utf-8")
    outcome = run_file(runtime, path, BRAND, FileKind.MEMBERS)
    # Then the execution fails, the progress record says why, and nothing reached the bus
    assert outcome.status == "FAILED"
    assert outcome.error is not None and "missing required column(s): joined_at" in outcome.error
    progress = progress_store(runtime).get(outcome.import_id)
    assert progress is not None and progress.status == "failed" and progress.error == outcome.error
    assert runtime.drain().processed == 0
    assert profiles(runtime).person_for_identifier(BRAND, "member_card:M90000001") is None


def test_a_file_fans_out_over_chunks_and_a_transient_failure_is_retried(
    runtime: LocalRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 110 members cut into chunks of at most 50 rows (500 in production: moto's SQS slows down with depth),
    # and a chunk task that fails once with a StoreError
    monkeypatch.setattr(service, "MAX_CHUNK_ROWS", 50)
    lines = ["member_card,phone,joined_at"]
    lines += [f"MB{n:07d},1390000{n:04d},2024-02-01 09:00:00" for n in range(110)]
    path = tmp_path / "members-bulk.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    from functions.file_import.handler import lambda_handler

    failures: list[Any] = []

    def flaky(event: Any, context: Any) -> Any:
        if event.get("action") == "chunk" and event.get("index") == 1 and not failures:
            failures.append(event)
            raise StoreError("dynamodb throttled")
        return lambda_handler(event, context)

    runtime.override(topology.FILE_IMPORT.key, flaky)
    try:
        import_id, arn = start_import(runtime, upload(runtime, path, BRAND, FileKind.MEMBERS))
        seen: list[int] = []
        outcome = wait_import(runtime, import_id, arn, on_progress=lambda p: seen.append(p.rows_done), timeout=180)
    finally:
        runtime.override(topology.FILE_IMPORT.key, None)
    # Then the failed chunk was retried, the import succeeded and every row counted once
    assert failures and outcome.status == "SUCCEEDED", outcome.error
    report = ImportReport.model_validate(outcome.report)
    assert report.chunks == 3 and (report.counts.rows, report.counts.accepted) == (110, 110)
    plan = json.loads(read(runtime, keys.plan_key(import_id)))
    assert [c["rows"] for c in plan["chunks"]] == [50, 50, 10]
    progress = progress_store(runtime).get(import_id)
    assert progress is not None and (progress.rows_done, progress.chunks_done) == (110, 3)
    assert seen == sorted(seen)  # the bar only moves forward


def test_the_progress_record_counts_each_chunk_once_in_dynamodb(runtime: LocalRuntime) -> None:
    # Given a progress record in the ledger table (the adapter the handler uses, on moto)
    store = progress_store(runtime)
    started = datetime(2026, 1, 1, tzinfo=UTC)
    store.start(
        ImportProgress(import_id="imp-once", status="running", rows_total=20, chunks_total=2, started_at=started)
    )
    counts = RowCounts(rows=10, accepted=7, duplicates=1, rejected=2)
    # When chunk 0 reports twice (a retry after its counts landed) and chunk 1 once
    assert store.chunk_done("imp-once", 0, counts, started) is True
    assert store.chunk_done("imp-once", 0, counts, started) is False
    assert store.chunk_done("imp-once", 1, counts, started) is True
    # Then each chunk is counted once; a chunk of an import that has no record is not counted at all
    progress = store.get("imp-once")
    assert progress is not None
    assert (progress.rows_done, progress.accepted, progress.rejected, progress.chunks_done) == (20, 14, 4, 2)
    assert store.chunk_done("imp-unknown", 0, counts, started) is False and store.get("imp-unknown") is None
    # And a failure is recorded with its reason
    store.fail("imp-once", "StoreError: throttled", started)
    failed = store.get("imp-once")
    assert failed is not None and (failed.status, failed.error, failed.rows_done) == (
        "failed",
        "StoreError: throttled",
        20,
    )
