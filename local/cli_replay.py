"""`cdp replay ...`: dead letters (with why each failed) and redrive, and replay of the raw archive for a time range,
through the operations API of a running `cdp serve` (or a deployment, with a key holding operations:replay)."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.markup import escape
from rich.table import Table

from cdp import topology
from cdp_local.cli_profile import ApiCaller, JsonOption, KeyOption, UrlOption, console, dump

replay_app = typer.Typer(help="Dead letters (list with reasons, redrive) and replay of archived raw requests.")
QUEUES = tuple(q.local_name.removeprefix("cdp-") for q in topology.QUEUES)  # every consumer's queue


@replay_app.command("dead-letters")
def dead_letters(
    queue: str = typer.Option("identity-merge", "--queue", help=f"one of {', '.join(QUEUES)}"),
    redrive: bool = typer.Option(False, "--redrive", help="send them back to the queue (after fixing the cause)"),
    limit: int = typer.Option(100, "--limit", min=1, max=1000),
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """List a queue's dead letters with the error that parked each one; --redrive re-drives them."""
    api = ApiCaller(url, api_key)
    if redrive:
        summary = api.call("POST", "/v1/admin/dead-letters/redrive", {"queue": queue, "limit": limit})
    else:
        summary = api.call("GET", "/v1/admin/dead-letters", query={"queue": queue, "limit": str(limit)})
    if as_json:
        dump(summary)
        return
    table = Table(title=f"dead letters of {queue}")
    for column in ("message", "error", "permanent", "receives", "failed at"):
        table.add_column(column)
    for item in summary["listed"]:
        reason = item["reason"] or {}
        table.add_row(
            item["message_id"][:12],
            escape(
                f"{reason.get('error_type', 'no reason recorded (crash or timeout)')}: {reason.get('error', '')}"[:120]
            ),
            str(reason.get("permanent", "")),
            str(reason.get("receive_count", "")),
            str(reason.get("failed_at", "")),
        )
    console.print(table)
    verb = "re-driven" if redrive else "listed (use --redrive to send them back)"
    console.print(f"{len(summary['listed'])} dead letters {verb}")


def _when(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not an ISO-8601 time") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@replay_app.command("archive")
def archive(
    source: str = typer.Option(..., "--source", help="connector name (segment, wechat, shopify, ...) or events"),
    since: str = typer.Option(..., "--since", help="ISO-8601 start of the receipt time range (UTC if no offset)"),
    until: str = typer.Option(..., "--until", help="ISO-8601 end (exclusive)"),
    page: int = typer.Option(200, "--page", min=1, max=1000, help="archived requests per call"),
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Map and republish every archived raw request of a source received in [since, until). Safe to repeat:
    consumers apply each event id once."""
    api = ApiCaller(url, api_key)
    start, end = _when(since), _when(until)
    totals = {"objects": 0, "accepted": 0, "rejected": 0, "failures": 0}
    after: str | None = None
    with console.status(f"replaying {source} archive") as status:
        while True:
            body = {"source": source, "start": start.isoformat(), "end": end.isoformat(), "limit": page, "after": after}
            summary = api.call("POST", "/v1/admin/replay", body)
            for key in ("objects", "accepted", "rejected"):
                totals[key] += summary[key]
            totals["failures"] += len(summary["failures"])
            for failure in summary["failures"]:
                console.print(f"[red]{escape(failure['key'])}[/red]: {escape(failure['error'])}")
            status.update(f"replaying {source} archive: {totals['objects']} requests, {totals['accepted']} events")
            after = summary["next_after"]
            if not after:
                break
    console.print(
        f"replayed {totals['objects']} archived requests of {source}: {totals['accepted']} events republished, "
        f"{totals['rejected']} rejected, {totals['failures']} requests failed"
    )
    if totals["failures"]:
        raise typer.Exit(code=1)
