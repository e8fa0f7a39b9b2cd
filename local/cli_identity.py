"""`cdp identity ...`: bulk resolution of history files offline, and the identity operations of a running
`cdp serve` (merge with preview, unmerge, unbind, quarantine, review queue); registered on the main `cdp` app."""

from __future__ import annotations

import json
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from cdp.identity.bulk import BulkResolution

identity_app = typer.Typer(
    help="OneID: bulk-resolve history files offline; merge, unmerge, unbind, quarantine and review via the API.",
    no_args_is_help=True,
)
console = Console()

SHOWN_PROBLEMS = 20


class InputFormat(StrEnum):
    LINKS = "links"
    EVENTS = "events"


@identity_app.command("bulk-resolve")
def bulk_resolve(
    input_path: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="links (.csv, .parquet, .jsonl with columns a, b) or events (.jsonl)"
    ),
    input_format: InputFormat = typer.Option(
        InputFormat.LINKS, "--format", help="links: pairs of identifier keys; events: canonical events, one a line"
    ),
    namespace: str = typer.Option(..., help="identity namespace of the person ids (the brand or group id)"),
    output: Path = typer.Option(
        Path("identity-output/persons.parquet"), help="identifier, person_id, hub (CSV if .csv or no Parquet engine)"
    ),
    phone_region: str = typer.Option("CN", help="region of phone numbers written without a country code (events)"),
) -> None:
    """Resolve a history import offline with the online rules: persons, hubs and person ids for every identifier."""
    from cdp.errors import InvalidInputError
    from cdp.identity.bulk import read_events, read_links, resolve_events, resolve_links, write_result

    started = time.perf_counter()
    try:
        if input_format is InputFormat.EVENTS:
            events = read_events(input_path, phone_region=phone_region)
            read_s = time.perf_counter() - started
            result = resolve_events(events.events, namespace=namespace, lines=events.lines, problems=events.problems)
        else:
            links = read_links(input_path)
            read_s = time.perf_counter() - started
            result = resolve_links(links.a, links.b, namespace=namespace, lines=links.lines, problems=links.problems)
    except InvalidInputError as exc:
        console.print(f"[red]cannot read {escape(str(input_path))}:[/red] {escape(exc.message)}")
        raise typer.Exit(code=2) from exc
    written_at = time.perf_counter()
    written = write_result(result, output)
    write_s = time.perf_counter() - written_at
    _print_summary(result, read_s, write_s)
    _print_problems(result)
    console.print(f"wrote [bold]{written}[/bold]")


def _print_summary(result: BulkResolution, read_s: float, write_s: float) -> None:
    s = result.summary
    table = Table(title="Bulk identity resolution", show_header=True)
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("links", f"{s.links:,}"),
        ("rejected lines or identifiers", f"{s.rejected:,}"),
        ("nodes (identifiers)", f"{s.nodes:,}"),
        ("edges", f"{s.edges:,}"),
        ("hubs", f"{s.hubs:,}"),
        ("persons", f"{s.persons:,}"),
        ("over-limit persons", f"{s.persons_over_limit:,}"),
        ("read seconds", f"{read_s:.2f}"),
        ("resolve seconds", f"{s.seconds:.2f}"),
        ("write seconds", f"{write_s:.2f}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


def _print_problems(result: BulkResolution) -> None:
    if not result.summary.rejected:
        return
    console.print(f"[yellow]{result.summary.rejected:,} rejected[/yellow] (first {SHOWN_PROBLEMS}):")
    for problem in result.problems[:SHOWN_PROBLEMS]:
        where = f"line {problem.line}" + (f", {problem.field}" if problem.field else "")
        value = f" [dim]({escape(problem.value)})[/dim]" if problem.value else ""
        console.print(f"  {where}: {escape(problem.message)}{value}")


# ---- identity operations over the HTTP API (merge, unmerge, unbind, review, quarantine) --------------------------
# These talk to a running `cdp serve` (or a deployment) like `cdp profile ...`; the actor recorded in the history
# is the API key's client name.


def _caller(url: str, api_key: str) -> Any:
    from cdp_local.cli_profile import ApiCaller

    return ApiCaller(url, api_key)


def _print_operation(result: dict[str, Any]) -> None:
    state = "[yellow]preview (nothing written)[/yellow]" if result["dry_run"] else "[green]applied[/green]"
    console.print(f"{result['operation']} by {result['actor']}: {state}")
    if result["merged_ids"]:
        console.print(f"merged away: {', '.join(result['merged_ids'])}")
    table = Table(title="resulting persons", title_justify="left", show_header=True)
    for column in ("person", "identifiers", "level", "brand points (per program)", "benefits", "cards (per card)"):
        table.add_column(column)
    for person in result["persons"]:
        loyalty = person["loyalty"]
        points = ", ".join(f"{p['program']} {p['points']}@{p['points_per_brand_point']}:1" for p in loyalty["points"])
        cards = ", ".join(f"{c['card_id']} {c['balance_minor'] / 100:,.2f} {c['currency']}" for c in loyalty["cards"])
        cells = (
            person["person_id"],
            "\n".join(i["key"] for i in person["identifiers"]),
            loyalty["member_level"] or "-",
            f"{loyalty['brand_points']} ({points or '-'})",
            ", ".join(loyalty["active_benefits"]) or "-",
            cards or "-",
        )
        table.add_row(*(escape(c) for c in cells))
    console.print(table)
    for entry in result["lineage"]:
        console.print(escape(f"history: {entry['kind']} - {entry['rule']} ({', '.join(entry['identifiers']) or '-'})"))


def dump(data: Any) -> None:
    """`--json`: plain JSON on stdout, so it pipes (the same as `cdp profile --json`)."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _url_option() -> Any:
    from cdp_local.cli_profile import UrlOption

    return UrlOption


def _key_option() -> Any:
    from cdp_local.cli_profile import KeyOption

    return KeyOption


@identity_app.command()
def merge(
    person_ids: list[str] = typer.Argument(..., help="two or more person ids"),
    reason: str = typer.Option(..., help="why they are one person (kept in the merge history)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="preview the merged person without writing anything"),
    as_json: bool = typer.Option(False, "--json", help="print the raw JSON answer"),
    url: str = _url_option(),
    api_key: str = _key_option(),
) -> None:
    """Merge persons by hand (the preview shows level, converted points, benefits and cards per card)."""
    body = {"person_ids": person_ids, "reason": reason, "dry_run": dry_run}
    result = _caller(url, api_key).call("POST", "/v1/identity/merge", body=body)
    dump(result) if as_json else _print_operation(result)


@identity_app.command()
def unmerge(
    person_id: str = typer.Argument(..., help="the surviving person"),
    merged_person_id: str = typer.Argument(..., help="the person merged into it, to split back out"),
    reason: str = typer.Option(..., help="why (kept in the history)"),
    as_json: bool = typer.Option(False, "--json", help="print the raw JSON answer"),
    url: str = _url_option(),
    api_key: str = _key_option(),
) -> None:
    """Undo a merge: both persons come back with their own events, points and cards."""
    from cdp_local.cli_profile import segment

    body = {"merged_person_id": merged_person_id, "reason": reason}
    result = _caller(url, api_key).call("POST", f"/v1/profiles/{segment(person_id)}/unmerge", body=body)
    dump(result) if as_json else _print_operation(result)


@identity_app.command()
def unbind(
    person_id: str = typer.Argument(..., help="the person"),
    identifier: str = typer.Argument(..., help="type:value, e.g. device_id:abc (as the profile lists it)"),
    reason: str = typer.Option(..., help="why (kept in the history)"),
    identifier_scope: str | None = typer.Option(None, "--identifier-scope", help="WeChat app / platform"),
    as_json: bool = typer.Option(False, "--json", help="print the raw JSON answer"),
    url: str = _url_option(),
    api_key: str = _key_option(),
) -> None:
    """Take one identifier away from a person (its links are cut; it may become a person of its own)."""
    from cdp_local.cli_profile import segment, split_identifier

    kind, value, scope = split_identifier(identifier, identifier_scope)
    path = f"/v1/profiles/{segment(person_id)}/identifiers/{segment(kind)}/{segment(value)}"
    result = _caller(url, api_key).call("DELETE", path, query={"reason": reason, "identifier_scope": scope})
    dump(result) if as_json else _print_operation(result)


@identity_app.command()
def review(
    brand: str | None = typer.Option(None, "--brand", help="the brand (else the key's brand)"),
    as_json: bool = typer.Option(False, "--json", help="print the raw JSON answer"),
    url: str = _url_option(),
    api_key: str = _key_option(),
) -> None:
    """The review queue: identifiers quarantined as shared (hubs) or by hand, in the brand's identity namespace."""
    queue = _caller(url, api_key).call("GET", "/v1/identity/review", query={"brand_id": brand})
    if as_json:
        dump(queue)
        return
    table = Table(title=f"review queue of {queue['brand_id']} ({queue['namespace']})", title_justify="left")
    for column in ("identifier", "reason", "quarantined at", "previous owner"):
        table.add_column(column)
    for item in queue["items"]:
        cells = (item["identifier"], item["reason"], item.get("quarantined_at"), item.get("previous_owner"))
        table.add_row(*(escape(c or "") for c in cells))
    console.print(table)


@identity_app.command()
def quarantine(
    identifier: str = typer.Argument(..., help="type:value, e.g. device_id:store-tablet-1"),
    brand: str = typer.Option(..., "--brand", help="the brand whose identity namespace holds it"),
    reason: str = typer.Option(..., help="why it is shared (kept in the history)"),
    identifier_scope: str | None = typer.Option(None, "--identifier-scope", help="WeChat app / platform"),
    as_json: bool = typer.Option(False, "--json", help="print the raw JSON answer"),
    url: str = _url_option(),
    api_key: str = _key_option(),
) -> None:
    """Mark an identifier as shared by hand: it links nobody any more and goes to the review queue."""
    from cdp_local.cli_profile import split_identifier

    kind, value, scope = split_identifier(identifier, identifier_scope)
    body = {"brand_id": brand, "identifier": {"type": kind, "value": value, "scope": scope}, "reason": reason}
    result = _caller(url, api_key).call("POST", "/v1/identity/quarantine", body=body)
    dump(result) if as_json else _print_operation(result)
