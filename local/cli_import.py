"""`cdp import ...`: batch import of member and order files (CSV, JSON Lines) through the import state machine.

`cdp import run FILE...` starts an in-process local runtime, drops each file where S3 would receive it
(imports/incoming/{brand}/{kind}/{file}), starts the execution the EventBridge rule would start, shows the progress
record as a bar, prints the report and saves the report and rejects next to you (the local bucket lives only as
long as the process). `--drain` then processes the published events into profiles. `cdp import status ID` reads a
deployment's progress record (the ledger table) with your AWS credentials.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cdp import topology
from cdp.connectors.files import FileKind
from cdp.imports import keys
from cdp.imports.aws import DynamoProgressStore
from cdp.imports.models import ImportProgress

if TYPE_CHECKING:
    from cdp_local.runtime import LocalRuntime

import_app = typer.Typer(
    help="Batch import of member and order files (CSV with a header, or JSON Lines) into profiles.",
    no_args_is_help=True,
)
console = Console()
BUCKET = topology.DATA_BUCKET_LOCAL_NAME


@dataclass(frozen=True)
class ImportOutcome:
    import_id: str
    status: str  # SUCCEEDED | FAILED | TIMED_OUT | ABORTED
    report: dict[str, Any] | None  # the import report (SUCCEEDED)
    error: str | None
    progress: ImportProgress | None


def kind_of(path: Path, kind: FileKind | None) -> FileKind:
    """The --kind given, else what the file name starts with (members*.csv, orders*.jsonl)."""
    if kind is not None:
        return kind
    name = path.name.lower()
    for candidate in FileKind:
        if name.startswith(candidate.value.rstrip("s")):
            return candidate
    raise typer.BadParameter(f"{path.name}: pass --kind members|orders (the name does not say)")


def upload(rt: LocalRuntime, path: Path, brand_id: str, kind: FileKind) -> str:
    """Drop the file where the S3 trigger watches; returns its key."""
    key = keys.incoming_key(brand_id, kind.value, path.name)
    rt.client("s3").put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
    return key


def start_import(rt: LocalRuntime, key: str) -> tuple[str, str]:
    """Start the execution the EventBridge rule would start (same input); returns (import id, execution ARN)."""
    arn = rt.start_execution(topology.IMPORT_MACHINE.key, {"bucket": BUCKET, "key": key})
    return arn.rsplit(":", 1)[1], arn


def progress_store(rt: LocalRuntime) -> DynamoProgressStore:
    return DynamoProgressStore(topology.LEDGER_TABLE.local_name, client=rt.client("dynamodb"))


def wait_import(
    rt: LocalRuntime,
    import_id: str,
    execution_arn: str,
    on_progress: Callable[[ImportProgress], None] | None = None,
    timeout: float = 600.0,
) -> ImportOutcome:
    """Poll the execution (and the progress record, for `on_progress`) until it ends."""
    sfn, store = rt.client("stepfunctions"), progress_store(rt)
    deadline = time.monotonic() + timeout
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        status = str(described["status"])
        if on_progress is not None and (progress := store.get(import_id)) is not None:
            on_progress(progress)
        if status != "RUNNING":
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"import {import_id} still running after {timeout}s")
        time.sleep(0.1)
    progress = store.get(import_id)
    if status == "SUCCEEDED":
        return ImportOutcome(import_id, status, json.loads(described.get("output") or "null"), None, progress)
    error = (progress.error if progress else None) or str(described.get("cause") or described.get("error"))
    return ImportOutcome(import_id, status, None, error, progress)


def run_file(
    rt: LocalRuntime,
    path: Path,
    brand_id: str,
    kind: FileKind,
    on_progress: Callable[[ImportProgress], None] | None = None,
) -> ImportOutcome:
    import_id, arn = start_import(rt, upload(rt, path, brand_id, kind))
    return wait_import(rt, import_id, arn, on_progress)


@import_app.command("run")
def run(
    files: list[Path] = typer.Argument(..., exists=True, dir_okay=False, help="members/orders .csv or .jsonl files"),
    brand: str = typer.Option("demo-brand", help="the brand the files belong to (the S3 key's brand)"),
    kind: FileKind | None = typer.Option(None, help="members or orders (default: from each file's name)"),
    drain: bool = typer.Option(False, "--drain", help="then process the published events into profiles"),
    output: Path = typer.Option(Path("import-output"), help="where each import's report and rejects are saved"),
) -> None:
    """Import files on the local runtime (in-process): upload, run the state machine, report."""
    from cdp_local.runtime import LocalRuntime

    failed = 0
    kinds = [kind_of(path, kind) for path in files]
    with LocalRuntime(state_machines={topology.IMPORT_MACHINE.key}) as rt:
        for path, file_kind in zip(files, kinds, strict=True):
            outcome = _run_with_bar(rt, path, brand, file_kind)
            failed += outcome.status != "SUCCEEDED"
            _print_outcome(rt, path, outcome, output)
        if drain:
            _drain(rt)
    if failed:
        raise typer.Exit(code=1)


def _run_with_bar(rt: LocalRuntime, path: Path, brand: str, kind: FileKind) -> ImportOutcome:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(f"{path.name} ({kind.value})", total=None, counts="planning")

        def show(progress: ImportProgress) -> None:
            counts = f"accepted {progress.accepted}  duplicates {progress.duplicates}  rejected {progress.rejected}"
            total = progress.rows_total or None
            bar.update(task, total=total, completed=progress.rows_done, counts=f"{progress.status}  {counts}")

        return run_file(rt, path, brand, kind, show)


def _print_outcome(rt: LocalRuntime, path: Path, outcome: ImportOutcome, output: Path) -> None:
    if outcome.report is None:
        console.print(f"[red]import {outcome.import_id} of {escape(path.name)} {outcome.status}:[/red]")
        console.print(escape(outcome.error or "no error recorded"))
        return
    report = outcome.report
    counts = report["counts"]
    console.print(f"[green]{escape(path.name)}[/green] imported: import id [bold]{outcome.import_id}[/bold]")
    table = Table(show_header=True)
    table.add_column("rows")
    table.add_column("count", justify="right")
    for name in ("rows", "accepted", "duplicates", "rejected"):
        table.add_row(name, f"{counts[name]:,}")
    table.add_row("events published", f"{counts['events_accepted']:,}")
    table.add_row("events already imported", f"{counts['events_duplicates']:,}")
    console.print(table)
    if report["reject_reasons"]:
        reasons = ", ".join(f"{field} {n}" for field, n in report["reject_reasons"].items())
        console.print(f"rejected rows by field: {escape(reasons)}")
    if report["ignored_columns"]:
        console.print(f"ignored columns: {escape(', '.join(report['ignored_columns']))}")
    output.mkdir(parents=True, exist_ok=True)
    s3 = rt.client("s3")
    saved = output / f"{outcome.import_id}.rejects.csv"
    saved.write_bytes(s3.get_object(Bucket=BUCKET, Key=report["rejects_key"])["Body"].read())
    (output / f"{outcome.import_id}.report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    console.print(f"rejects: s3://{BUCKET}/{report['rejects_key']} (saved as [bold]{escape(str(saved))}[/bold])")


def _drain(rt: LocalRuntime) -> None:
    from cdp.profile.dynamodb import DynamoProfileStore

    with console.status("processing the published events into profiles"):
        report = rt.drain(max_rounds=200)
    store = DynamoProfileStore(topology.PROFILES_TABLE.local_name, client=rt.client("dynamodb"))
    persons = sum(1 for _ in store.scan_shard(0, 1))
    console.print(
        f"drained: {report.processed:,} messages, {report.dead_lettered} dead-lettered; "
        f"{persons:,} persons touched (the local runtime started empty)"
    )


@import_app.command("status")
def status(
    import_id: str = typer.Argument(..., help="the import id (the execution name)"),
    table: str = typer.Option(..., help="the deployment's ledger table (stack output / console)"),
    region: str | None = typer.Option(None, help="AWS region (default: your AWS configuration)"),
) -> None:
    """Show an import's progress record from a deployment's ledger table (your AWS credentials)."""
    import boto3

    progress = DynamoProgressStore(table, client=boto3.client("dynamodb", region_name=region)).get(import_id)
    if progress is None:
        console.print(f"[red]no import {escape(import_id)} in {escape(table)}[/red]")
        raise typer.Exit(code=1)
    print_progress(progress)
    if progress.status == "failed":
        raise typer.Exit(code=1)


def print_progress(progress: ImportProgress) -> None:
    grid = Table(title=f"import {progress.import_id}", show_header=False, title_justify="left")
    grid.add_column("field")
    grid.add_column("value")
    done = f"{progress.rows_done:,} / {progress.rows_total:,}"
    rows: list[tuple[str, str]] = [
        ("status", progress.status),
        ("file", progress.key),
        ("rows done", done),
        ("chunks done", f"{progress.chunks_done} / {progress.chunks_total}"),
        (
            "accepted / duplicates / rejected",
            f"{progress.accepted:,} / {progress.duplicates:,} / {progress.rejected:,}",
        ),
        ("started", str(progress.started_at or "-")),
        ("finished", str(progress.finished_at or "-")),
        ("report", progress.report_key or "-"),
        ("rejects", progress.rejects_key or "-"),
    ]
    if progress.error:
        rows.append(("error", progress.error))
    for name, value in rows:
        grid.add_row(name, escape(value))
    console.print(grid)
