"""`cdp audience ...`: audience packages over the HTTP API of a running `cdp serve` (or a deployment, with a key
holding audiences:read / audiences:write and no org scope): define, validate, list, show, size, preview, export,
snapshots, delete; activate (a snapshot uploaded, hashed, to a brand's ad account) and activations. Definitions are
YAML or JSON files, one audience per file."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from cdp_local.cli_profile import ApiCaller, JsonOption, KeyOption, UrlOption, console, dump, segment

audience_app = typer.Typer(help="Audience packages: define, validate, size, preview and export (snapshots).")

FileArgument = typer.Argument(..., exists=True, dir_okay=False, help="the definition, .yaml/.yml or .json")


def read_definition(path: Path) -> Any:
    """The file's document; a parse error exits with the file, line and what is wrong."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        _fail(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        _fail(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}")
    if not isinstance(data, dict):
        _fail(f"{path}: expected one definition (a mapping of fields)")
    return _plain(data)


def _plain(value: Any) -> Any:
    """YAML reads `2026-12-01` as a date and `2027-03-01T10:00` as a datetime: sent as the ISO text written."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def _fail(message: str) -> Any:
    console.print(f"[red]{escape(message)}[/red]")
    raise typer.Exit(code=1)


def print_problems(errors: list[dict[str, str]], where: str) -> None:
    """A validation report's problems, one row per field path (audiences and campaigns)."""
    table = Table(title=escape(f"{where}{len(errors)} problem(s)"), title_justify="left")
    table.add_column("field")
    table.add_column("problem")
    for error in errors:
        table.add_row(escape(error["field"]), escape(error["message"]))
    console.print(table)


def _print_report(report: dict[str, Any], path: Path | None = None) -> None:
    where = f"{path}: " if path else ""
    if not report["valid"]:
        print_problems(report["errors"], where)
        return
    reads = report["reads"]
    parts = [f"{k}: {', '.join(v)}" for k, v in reads.items() if v]
    console.print(
        f"[green]{escape(where)}valid[/green] {escape(str(report['audience_id']))} ({report['kind']}, "
        f"{report['freshness']}; catalog {escape(report['catalog_version'])})"
    )
    console.print(escape("reads " + ("; ".join(parts) or "nothing")))
    for note in report["notes"]:
        console.print(f"[yellow]note:[/yellow] {escape(note)}")


@audience_app.command()
def validate(
    file: Path = FileArgument,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Check a definition against the tag catalog and the stored audiences (nothing is saved)."""
    report = ApiCaller(url, api_key).call("POST", "/v1/audiences/validate", read_definition(file))
    if as_json:
        dump(report)
    else:
        _print_report(report, file)
    if not report["valid"]:
        raise typer.Exit(code=1)


@audience_app.command()
def define(
    file: Path = FileArgument,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Define an audience, or update it (its version goes up by one). Validates first and lists every problem."""
    api = ApiCaller(url, api_key)
    definition = read_definition(file)
    report = api.call("POST", "/v1/audiences/validate", definition)
    if not report["valid"]:
        if as_json:
            dump(report)
        else:
            _print_report(report, file)
        raise typer.Exit(code=1)
    stored = api.call("POST", "/v1/audiences", definition)
    if as_json:
        dump(stored)
        return
    d = stored["definition"]
    verb = "created" if stored["created_at"] == stored["updated_at"] else "updated"
    console.print(f"[green]{verb}[/green] {escape(d['id'])} ({d['kind']}) version {stored['version']}")
    _print_report(report)


@audience_app.command("list")
def list_audiences(as_json: bool = JsonOption, url: str = UrlOption, api_key: str = KeyOption) -> None:
    """Every audience with its kind and version."""
    result = ApiCaller(url, api_key).call("GET", "/v1/audiences")
    if as_json:
        dump(result)
        return
    table = Table(title="audiences", title_justify="left")
    for column in ("id", "name", "kind", "version", "owner", "updated"):
        table.add_column(column, no_wrap=column in ("id", "kind", "version"))
    for a in result["audiences"]:
        table.add_row(*(escape(str(a[k])) for k in ("id", "name", "kind", "version", "owner", "updated_at")))
    console.print(table)
    console.print(f"{len(result['audiences'])} audience(s)")


@audience_app.command()
def show(audience_id: str = typer.Argument(...), url: str = UrlOption, api_key: str = KeyOption) -> None:
    """An audience's definition (YAML) with its version."""
    stored = ApiCaller(url, api_key).call("GET", f"/v1/audiences/{segment(audience_id)}")
    console.print(f"version {stored['version']}, updated {stored['updated_at']}")
    console.print(escape(yaml.safe_dump(stored["definition"], sort_keys=False, allow_unicode=True)))


@audience_app.command()
def size(
    audience_id: str = typer.Argument(...),
    segments: int = typer.Option(16, min=1, max=1000, help="parallel scan segments the table is split into"),
    sample: int | None = typer.Option(None, min=2, max=1000, help="segments to scan (default: automatic)"),
    exact_below: int = typer.Option(20_000, min=1, help="scan everything when the table seems this small"),
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Estimate the size: exact on a small table, else a sample of the scan segments with a 95% interval."""
    body = {"segments": segments, "sample_segments": sample, "exact_below": exact_below}
    result = ApiCaller(url, api_key).call("POST", f"/v1/audiences/{segment(audience_id)}/size", body)
    if as_json:
        dump(result)
        return
    if result["exact"]:
        console.print(f"[bold]{result['estimate']:,}[/bold] members (exact: all {result['segments_total']} segments)")
    else:
        console.print(
            f"about [bold]{result['estimate']:,}[/bold] members, 95% interval {result['low']:,}-{result['high']:,} "
            f"({result['members_counted']:,} found in {result['segments_scanned']} of {result['segments_total']} "
            "segments)"
        )
    t = result["timings"]
    console.print(
        f"{result['profiles_scanned']:,} profiles scanned of about {result['population_estimate']:,}; "
        f"{t['total_ms']:.0f} ms (scan {t['scan_ms']:.0f}, timelines {t['timelines_ms']:.0f} for "
        f"{t['timelines_read']}, evaluate {t['evaluate_ms']:.0f})"
    )
    console.print(escape(f"method: {result['method']}"))


def _cell(value: Any) -> str:
    return "" if value is None else escape(str(value))


@audience_app.command()
def preview(
    audience_id: str = typer.Argument(...),
    limit: int = typer.Option(10, min=1, max=100, help="members to show"),
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """A sample of members with key traits (PII masked) and the values the condition reads."""
    result = ApiCaller(url, api_key).call(
        "GET", f"/v1/audiences/{segment(audience_id)}/preview", query={"limit": str(limit)}
    )
    if as_json:
        dump(result)
        return
    table = Table(title=escape(f"{audience_id} v{result['version']}: preview"), title_justify="left")
    for column in ("person", "brand", "traits", "condition reads"):
        table.add_column(column, no_wrap=column == "person")
    for m in result["members"]:
        traits = ", ".join(f"{k}={v}" for k, v in m["traits"].items() if v is not None)
        reads = "\n".join(f"{k} = {v}" for k, v in m["reads"].items())
        table.add_row(_cell(m["person_id"]), _cell(m["brand_id"]), _cell(traits), _cell(reads))
    console.print(table)
    more = "every profile scanned" if result["complete"] else "more members exist"
    console.print(
        f"{len(result['members'])} member(s) from {result['profiles_scanned']:,} profiles scanned ({more}); "
        f"{result['timings']['total_ms']:.0f} ms"
    )


@audience_app.command()
def export(
    audience_id: str = typer.Argument(...),
    segments: int = typer.Option(16, min=1, max=1000, help="parallel scan segments"),
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Freeze the current members into a snapshot (S3: members files, then the manifest)."""
    manifest = ApiCaller(url, api_key).call(
        "POST", f"/v1/audiences/{segment(audience_id)}/export", {"segments": segments}
    )
    if as_json:
        dump(manifest)
        return
    console.print(
        f"[green]snapshot {manifest['snapshot_id']}[/green] of {escape(audience_id)} v{manifest['version']}: "
        f"[bold]{manifest['count']:,}[/bold] members ({manifest['source']}, as of {manifest['as_of']})"
    )
    console.print(f"files: {escape(', '.join(manifest['member_keys']))}")


@audience_app.command()
def snapshots(
    audience_id: str = typer.Argument(...), as_json: bool = JsonOption, url: str = UrlOption, api_key: str = KeyOption
) -> None:
    """An audience's snapshots, newest first."""
    result = ApiCaller(url, api_key).call("GET", f"/v1/audiences/{segment(audience_id)}/snapshots")
    if as_json:
        dump(result)
        return
    table = Table(title=escape(f"snapshots of {audience_id}"), title_justify="left")
    for column in ("snapshot", "version", "as of", "members", "source"):
        table.add_column(column, no_wrap=column == "snapshot")
    for s in result["snapshots"]:
        table.add_row(s["snapshot_id"], str(s["version"]), s["as_of"], f"{s['count']:,}", s["source"])
    console.print(table)


@audience_app.command()
def delete(
    audience_id: str = typer.Argument(...),
    yes: bool = typer.Option(False, "--yes", help="do not ask for confirmation"),
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Delete an audience (its snapshots stay; campaigns can no longer name it)."""
    if not yes:
        typer.confirm(f"Delete audience {audience_id}?", abort=True)
    tombstone = ApiCaller(url, api_key).call("DELETE", f"/v1/audiences/{segment(audience_id)}")
    console.print(f"deleted {escape(audience_id)} (version {tombstone['version']})")


PlatformOption = typer.Option(..., "--platform", help="tencent_ads or ocean_engine")


def _counts_line(counts: dict[str, int]) -> str:
    left = ", ".join(f"{k} {v:,}" for k, v in counts.items() if v and k not in ("members", "uploaded", "identifiers"))
    return (
        f"{counts['members']:,} members read: [bold]{counts['uploaded']:,}[/bold] uploaded "
        f"({counts['identifiers']:,} hashed identifiers)" + (f"; left out: {left}" if left else "")
    )


@audience_app.command()
def activate(
    audience_id: str = typer.Argument(...),
    platform: str = PlatformOption,
    brand: str = typer.Option("demo-brand", "--brand", help="whose ad account uploads (only its customers go)"),
    snapshot: str | None = typer.Option(None, "--snapshot", help="the snapshot to upload (default: the latest)"),
    consent: str = typer.Option(
        "all", "--consent", help="members need marketing opt-in on this channel (all, sms, email, push, wechat)"
    ),
    resume: str | None = typer.Option(None, "--resume", help="continue this activation (in progress, or failed)"),
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Upload a snapshot's members to the brand's ad account as hashed mobile numbers (a custom audience / data
    source at the platform), part after part until complete: a large snapshot takes one request per 10,000 members."""
    api = ApiCaller(url, api_key)
    base = f"/v1/audiences/{segment(audience_id)}/activations"
    try:
        if resume is None:
            body = {"brand_id": brand, "platform": platform, "consent_channel": consent, "in_parts": True}
            record = api.call("POST", base, {**body, **({"snapshot_id": snapshot} if snapshot else {})})
        else:
            record = api.call("POST", f"{base}/{segment(resume)}/continue")
        while record["status"] == "in_progress":
            if not as_json:
                console.print(f"part done: {record['next_offset']:,} of {record['snapshot_count']:,} members read")
            record = api.call("POST", f"{base}/{segment(record['activation_id'])}/continue")
    except typer.Exit:
        console.print(
            f"see `cdp audience activations {escape(audience_id)}`; a failed activation continues with --resume ID"
        )
        raise
    if as_json:
        dump(record)
        return
    where = record["platform_audience_id"] or "none (nobody to upload)"
    console.print(
        f"[green]{record['status']}[/green] activation {record['activation_id']} of {escape(audience_id)} "
        f"(snapshot {record['snapshot_id']}) to {record['platform']}: platform audience {escape(str(where))}, "
        f"{record['id_type']}, {len(record['file_refs'])} file(s)"
    )
    console.print(_counts_line(record["counts"]))


@audience_app.command()
def activations(
    audience_id: str = typer.Argument(...), as_json: bool = JsonOption, url: str = UrlOption, api_key: str = KeyOption
) -> None:
    """An audience's activations to ad platforms, newest first."""
    result = ApiCaller(url, api_key).call("GET", f"/v1/audiences/{segment(audience_id)}/activations")
    if as_json:
        dump(result)
        return
    table = Table(title=escape(f"activations of {audience_id}"), title_justify="left")
    for column in ("activation", "brand", "platform", "status", "platform audience", "uploaded", "members", "started"):
        table.add_column(column, no_wrap=column in ("activation", "platform", "status"))
    for a in result["activations"]:
        table.add_row(
            a["activation_id"],
            escape(a["brand_id"]),
            a["platform"],
            a["status"] + (f" ({escape(a['error_code'])})" if a.get("error_code") else ""),
            escape(str(a["platform_audience_id"] or "")),
            f"{a['counts']['uploaded']:,}",
            f"{a['counts']['members']:,}",
            a["started_at"],
        )
    console.print(table)
