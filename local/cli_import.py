"""`cdp import ...`: batch import of member and order files (CSV, JSON Lines) through the import state machine.

`cdp import run FILE...` uploads each file to the running `cdp serve` (`--url`), which drops it where S3 would
receive it (imports/incoming/{brand}/{kind}/{file}) and starts the execution the EventBridge rule would start; the
command shows the progress record as a bar, prints the totals and saves the report and the rejects file next to you.
The rows land in the served runtime, so `cdp profile show --identifier phone:...` finds the members afterwards.
`cdp import status ID` reads a deployment's progress record (the ledger table) with your AWS credentials.

The in-process helpers (`upload`, `start_import`, `wait_import`, `run_file`) are what the server runs; tests call them
on a runtime of their own.
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
from cdp_local.cli_profile import ApiCaller, KeyOption, UrlOption, segment

if TYPE_CHECKING:
    from cdp_local.runtime import LocalRuntime

import_app = typer.Typer(
    help="Batch import of member and order files (CSV with a header, or JSON Lines) into profiles.",
    no_args_is_help=True,
)
console = Console()
BUCKET = topology.DATA_BUCKET_LOCAL_NAME
HISTORY = "history"  # the kind of a history import on the server's local import route


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
    return upload_bytes(rt, path.read_bytes(), brand_id, kind, path.name)


def upload_bytes(rt: LocalRuntime, body: bytes, brand_id: str, kind: FileKind, name: str) -> str:
    key = keys.incoming_key(brand_id, kind.value, name)
    rt.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)
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


def start_history_import(rt: LocalRuntime, body: bytes, brand_id: str, name: str) -> tuple[str, str, str]:
    """Drop a history file under imports/history/{brand}/ and start the history import machine as its rule would;
    returns (import id, execution ARN, key)."""
    key = f"{keys.HISTORY_PREFIX}{brand_id}/{name}"
    rt.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)
    arn = rt.start_execution(topology.HISTORY_IMPORT_MACHINE.key, {"bucket": BUCKET, "key": key})
    return arn.rsplit(":", 1)[1], arn, key


def run_history(
    rt: LocalRuntime,
    body: bytes,
    brand_id: str,
    name: str = "history.jsonl",
    on_progress: Callable[[ImportProgress], None] | None = None,
    timeout: float = 900.0,
) -> ImportOutcome:
    import_id, arn, _ = start_history_import(rt, body, brand_id, name)
    return wait_import(rt, import_id, arn, on_progress, timeout)


@import_app.command("run")
def run(
    files: list[Path] = typer.Argument(..., exists=True, dir_okay=False, help="members/orders .csv or .jsonl files"),
    brand: str = typer.Option("demo-brand", help="the brand the files belong to (the S3 key's brand)"),
    kind: FileKind | None = typer.Option(None, help="members or orders (default: from each file's name)"),
    output: Path = typer.Option(Path("import-output"), help="where each import's report and rejects are saved"),
    timeout: float = typer.Option(600.0, min=1.0, help="seconds to wait for each import to end"),
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Import files into the running `cdp serve`: upload, run the state machine, show progress, report."""
    api = ApiCaller(url, api_key)
    failed = 0
    kinds = [kind_of(path, kind) for path in files]
    for path, file_kind in zip(files, kinds, strict=True):
        outcome = _run_with_bar(api, path, brand, file_kind.value, timeout)
        failed += outcome.status != "SUCCEEDED"
        _print_outcome(api, path, outcome, output)
    if failed:
        raise typer.Exit(code=1)
    console.print(
        f"the rows are in the server at {escape(url)}: e.g. cdp profile show --identifier phone:<a phone of the file> "
        f"--brand {escape(brand)}"
    )


def upload_to_server(api: ApiCaller, path: Path, brand: str, kind: str) -> tuple[str, str]:
    """POST the file to the server's local import route (kind: members, orders or history); returns (import id,
    the file's S3 key)."""
    query: dict[str, str | None] = {"brand": brand, "kind": kind, "name": path.name}
    answer = json.loads(api.send("POST", "/_local/imports", path.read_bytes(), query, "application/octet-stream"))
    return str(answer["import_id"]), str(answer["key"])


def wait_on_server(
    api: ApiCaller,
    import_id: str,
    on_progress: Callable[[ImportProgress], None] | None = None,
    timeout: float = 600.0,
    poll: float = 0.25,
) -> ImportOutcome:
    """Poll the server's import route until the execution ends (the server drains its events before saying so)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = api.call("GET", f"/_local/imports/{segment(import_id)}")
        progress = ImportProgress.model_validate(answer["progress"]) if answer["progress"] else None
        if on_progress is not None and progress is not None:
            on_progress(progress)
        if answer["status"] != "RUNNING":
            return ImportOutcome(import_id, answer["status"], answer["report"], answer["error"], progress)
        if time.monotonic() > deadline:
            console.print(f"[red]import {escape(import_id)} still running after {timeout:.0f}s[/red]")
            raise typer.Exit(code=1)
        time.sleep(poll)


def _run_with_bar(api: ApiCaller, path: Path, brand: str, kind: str, timeout: float) -> ImportOutcome:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(escape(f"{path.name} ({kind})"), total=None, counts="uploading")

        def show(progress: ImportProgress) -> None:
            counts = f"accepted {progress.accepted}  duplicates {progress.duplicates}  rejected {progress.rejected}"
            total = progress.rows_total or None
            bar.update(task, total=total, completed=progress.rows_done, counts=f"{progress.status}  {counts}")

        import_id, _ = upload_to_server(api, path, brand, kind)
        bar.update(task, counts="planning")
        return wait_on_server(api, import_id, show, timeout)


def _print_outcome(api: ApiCaller, path: Path, outcome: ImportOutcome, output: Path) -> None:
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
    if report.get("kind") == HISTORY:
        table.add_row("events filed (under persons or shared identifiers)", f"{report['events_filed']:,}")
        table.add_row("persons", f"{report['persons']:,}")
        table.add_row("identifiers", f"{report['identifiers']:,}")
        table.add_row("tag history entries", f"{report['tag_history_entries']:,}")
    else:
        table.add_row("events published", f"{counts['events_accepted']:,}")
        table.add_row("events already imported", f"{counts['events_duplicates']:,}")
    console.print(table)
    if report["reject_reasons"]:
        reasons = ", ".join(f"{field} {n}" for field, n in report["reject_reasons"].items())
        console.print(f"rejected rows by field: {escape(reasons)}")
    if report.get("ignored_columns"):
        console.print(f"ignored columns: {escape(', '.join(report['ignored_columns']))}")
    output.mkdir(parents=True, exist_ok=True)
    saved = output / f"{outcome.import_id}.rejects.csv"
    saved.write_bytes(api.send("GET", f"/_local/imports/{segment(outcome.import_id)}/rejects"))
    (output / f"{outcome.import_id}.report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    console.print(f"rejects: s3://{BUCKET}/{report['rejects_key']} (saved as [bold]{escape(str(saved))}[/bold])")


@import_app.command("history")
def history(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="a .jsonl file: one canonical event per line"),
    brand: str = typer.Option("demo-brand", help="the brand every event of the file belongs to (the S3 key's brand)"),
    output: Path = typer.Option(Path("import-output"), help="where the import's report and rejects are saved"),
    timeout: float = typer.Option(900.0, min=1.0, help="seconds to wait for the import to end"),
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Import a brand's past events into the running `cdp serve` before its live traffic: bulk OneID, profiles,
    and tag history as of when each event happened."""
    api = ApiCaller(url, api_key)
    outcome = _run_with_bar(api, file, brand, HISTORY, timeout)
    _print_outcome(api, file, outcome, output)
    if outcome.status != "SUCCEEDED":
        raise typer.Exit(code=1)


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
