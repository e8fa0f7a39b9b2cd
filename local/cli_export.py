"""`cdp export warehouse`: the warehouse export (profiles, tags and events as Parquet, `cdp.warehouse`) on the
running `cdp serve`, then its files copied next to you to query with DuckDB.

The server runs the export function itself (`POST /_local/warehouse`, what the nightly schedule does on AWS), so
the Parquet lands under warehouse/ in the served bucket; `GET /_local/warehouse/files` then hands the tables'
files over as one zip, which the command unpacks into `--output` (default `warehouse-output/`), laid out as in S3:
`profiles/brand_id=.../part-0.parquet`, `events/brand_id=.../dt=.../part-0.parquet`.

The in-process helpers (`run_export`, `warehouse_zip`) are what the server runs; tests call them on a runtime of
their own.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cdp import topology
from cdp.warehouse.schema import TABLES
from cdp_local.cli_profile import ApiCaller, JsonOption, KeyOption, UrlOption, dump

if TYPE_CHECKING:
    from cdp_local.runtime import LocalRuntime

export_app = typer.Typer(help="Exports of the served data: the brand's warehouse as Parquet.", no_args_is_help=True)
console = Console()
BUCKET = topology.DATA_BUCKET_LOCAL_NAME


# ---- in the server ------------------------------------------------------------------------------------------------


def run_export(rt: LocalRuntime, brand_id: str | None = None, since: date | None = None) -> dict[str, Any]:
    """Invoke the export function as the schedule would (with the brand and first day, when given)."""
    payload: dict[str, Any] = {}
    if brand_id:
        payload["brand_id"] = brand_id
    if since:
        payload["since"] = since.isoformat()
    report: dict[str, Any] = rt.invoke(topology.WAREHOUSE_EXPORT.key, payload)
    return report


def warehouse_zip(rt: LocalRuntime) -> bytes:
    """The tables' files under warehouse/, as one zip (names relative to warehouse/)."""
    s3 = rt.client("s3")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:  # Parquet is compressed already
        for table in TABLES:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=table.prefix):
                for obj in page.get("Contents", []):
                    body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
                    archive.writestr(obj["Key"].removeprefix(topology.WAREHOUSE_PREFIX), body)
    return buffer.getvalue()


# ---- the command ------------------------------------------------------------------------------------------------


def unpack(blob: bytes, output: Path) -> list[Path]:
    """The zip's files into `output`, replacing what an earlier run left there for each table."""
    output.mkdir(parents=True, exist_ok=True)
    for table in TABLES:
        shutil.rmtree(output / table.name, ignore_errors=True)
    root = output.resolve()
    files = []
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        for name in archive.namelist():
            target = (output / name).resolve()
            if root not in target.parents:  # names come from our own server; never written outside `output`
                raise typer.BadParameter(f"unexpected file name in the warehouse archive: {name}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(name))
            files.append(target)
    return files


@export_app.command("warehouse")
def warehouse(
    brand: str | None = typer.Option(None, "--brand", help="one brand (default: every brand)"),
    since: str | None = typer.Option(
        None, "--since", help="rewrite every day from this one on, YYYY-MM-DD (default: each brand's watermark)"
    ),
    output: Path = typer.Option(Path("warehouse-output"), "--output", help="where the Parquet files are copied"),
    url: str = UrlOption,
    api_key: str = KeyOption,
    as_json: bool = JsonOption,
) -> None:
    """Run the warehouse export on the running server and copy its Parquet files here (query them with DuckDB)."""
    first_day = None
    if since is not None:
        try:
            first_day = date.fromisoformat(since)
        except ValueError as exc:
            raise typer.BadParameter(f"{since!r} is not a date (YYYY-MM-DD)", param_hint="--since") from exc
    api = ApiCaller(url, api_key)
    query = {"brand": brand, "since": first_day.isoformat() if first_day else None}
    report = api.call("POST", "/_local/warehouse", query=query)
    files = unpack(api.send("GET", "/_local/warehouse/files"), output)
    if as_json:
        dump({"report": report, "output": str(output), "files": len(files)})
        return
    _print_report(report, output, len(files))


def _print_report(report: dict[str, Any], output: Path, files: int) -> None:
    window = f"from {report['scan_from']}" if report["scan_from"] else "every day"
    console.print(f"[green]warehouse exported[/green] ({window} through {report['through']}, {report['seconds']} s)")
    table = Table(show_header=True)
    for column in ("table", "rows", "files", "bytes"):
        table.add_column(column, justify="left" if column == "table" else "right")
    for name, counts in report["tables"].items():
        table.add_row(name, f"{counts['rows']:,}", f"{counts['files']:,}", f"{counts['bytes']:,}")
    console.print(table)
    for brand_id, brand in sorted(report["brands"].items()):
        console.print(
            f"  {escape(brand_id)}: {brand['profiles']:,} profiles, {brand['tags']:,} tags, {brand['events']:,} "
            f"events in {brand['days_written']:,} days (from {brand['first_day'] or 'the first day'})"
        )
    if report["erasures_applied"]:
        console.print(
            f"  erasures applied: {report['erasures_applied']} ({report['erased_rows_removed']} rows removed "
            f"from {report['erasure_partitions_rewritten']} days)"
        )
    console.print(f"{files} files under [bold]{escape(str(output))}[/bold] (laid out as s3://{BUCKET}/warehouse/)")
