"""`cdp campaign ...`: campaigns as data over the HTTP API of a running `cdp serve` (or a deployment, with a key
holding campaigns:read / campaigns:write, and campaigns:approve for approvals and the stop switch): validate,
define, list, show, approve, start, activate, pause, resume, stop, runs, run, journey, switch, tick; and external
signals for journeys (signals:write). Definitions are YAML or JSON files, one campaign per file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from cdp import topology
from cdp_local.cli_audience import print_problems, read_definition
from cdp_local.cli_profile import ApiCaller, JsonOption, KeyOption, UrlOption, console, dump, segment
from cdp_local.results_view import journey_steps_table, print_campaign_results

campaign_app = typer.Typer(help="Campaigns as data: define, validate, approve, start or schedule, and their runs.")

FileArgument = typer.Argument(..., exists=True, dir_okay=False, help="the definition, .yaml/.yml or .json")
BrandOption = typer.Option("demo-brand", "--brand", envvar="CDP_BRAND", help="the campaign's brand")
CampaignArgument = typer.Argument(..., help="the campaign id")


def _print_report(report: dict[str, Any], path: Path | None = None) -> None:
    where = f"{path}: " if path else ""
    if not report["valid"]:
        print_problems(report["errors"], where)
        return
    approval = "needs an approval before it runs" if report["needs_approval"] else "no approval needed"
    console.print(
        f"[green]{escape(where)}valid[/green] {escape(str(report['campaign_id']))}: at most "
        f"{report['planned_sends']:,} first sends; {approval}"
    )
    if report["next_runs"]:
        console.print("next runs (UTC): " + ", ".join(report["next_runs"]))


def _print_view(view: dict[str, Any]) -> None:
    state, version = view["state"], view["version"]
    approval = version.get("approval")
    console.print(
        f"[bold]{escape(state['campaign_id'])}[/bold] ({escape(state['name'])}): {state['status']}, "
        f"version {version['version']} of {state['latest_version']}"
        + (f", scheduled on version {state['active_version']}" if state["active_version"] else "")
    )
    if approval:
        console.print(f"approved by {escape(approval['by'])} at {approval['at']}")
    elif view["needs_approval"]:
        console.print("[yellow]needs an approval[/yellow] (its planned sends or budget exceed the brand's limits)")
    console.print(f"at most {view['planned_sends']:,} first sends per run")
    if view["next_runs"]:
        console.print("next runs (UTC): " + ", ".join(view["next_runs"]))


def _print_run(view: dict[str, Any]) -> None:
    run = view["run"]
    status = view["status"] or run["outcome"]
    reason = f" ({run['reason']})" if run.get("reason") else ""
    console.print(f"{escape(run['run_id'])}: {status}{escape(reason)}, version {run['version']}, by {run['by']}")
    summary = view.get("summary")
    if summary:
        t, h = summary["treatment"], summary["holdout"]
        console.print(
            f"treatment {t['converted']}/{t['size']} converted, holdout {h['converted']}/{h['size']}; "
            f"cost {summary['cost_minor']:,} {summary['currency']} minor units; ROI {summary['roi']}"
        )
        if summary.get("conversion_lift"):
            console.print(escape(summary["conversion_lift"]["verdict"]))


@campaign_app.command()
def validate(
    file: Path = FileArgument, as_json: bool = JsonOption, url: str = UrlOption, api_key: str = KeyOption
) -> None:
    """Check a definition: every problem with its field path, planned sends, approval, next runs (nothing saved)."""
    report = ApiCaller(url, api_key).call("POST", "/v1/campaigns/validate", read_definition(file))
    if as_json:
        dump(report)
    else:
        _print_report(report, file)
    if not report["valid"]:
        raise typer.Exit(code=1)


@campaign_app.command()
def define(
    file: Path = FileArgument, as_json: bool = JsonOption, url: str = UrlOption, api_key: str = KeyOption
) -> None:
    """Define a campaign, or its next version. Validates first and lists every problem."""
    api = ApiCaller(url, api_key)
    definition = read_definition(file)
    report = api.call("POST", "/v1/campaigns/validate", definition)
    if not report["valid"]:
        if as_json:
            dump(report)
        else:
            _print_report(report, file)
        raise typer.Exit(code=1)
    view = api.call("POST", "/v1/campaigns", definition)
    if as_json:
        dump(view)
        return
    _print_view(view)


@campaign_app.command("list")
def list_campaigns(
    brand: str = BrandOption, as_json: bool = JsonOption, url: str = UrlOption, api_key: str = KeyOption
) -> None:
    """The brand's campaigns with their status, and whether the brand's stop switch is on."""
    result = ApiCaller(url, api_key).call("GET", "/v1/campaigns", query={"brand_id": brand})
    if as_json:
        dump(result)
        return
    table = Table(title=escape(f"campaigns of {brand}"), title_justify="left")
    for column in ("id", "name", "status", "latest", "active", "next run (UTC)"):
        table.add_column(column, no_wrap=column != "name")
    for c in result["campaigns"]:
        cells = (c["campaign_id"], c["name"], c["status"], c["latest_version"], c["active_version"], c["next_run_at"])
        table.add_row(*("" if v is None else escape(str(v)) for v in cells))
    console.print(table)
    switch = result["switch"]
    if switch["stopped"]:
        console.print(f"[red]stop switch ON[/red] since {switch['at']} by {escape(str(switch['by']))}")


@campaign_app.command()
def show(
    campaign_id: str = CampaignArgument,
    version: int | None = typer.Option(None, min=1, help="a version (default: the latest)"),
    brand: str = BrandOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """A campaign's status and a version of its definition (YAML)."""
    path = f"/v1/campaigns/{segment(campaign_id)}" + (f"/versions/{version}" if version else "")
    view = ApiCaller(url, api_key).call("GET", path, query={"brand_id": brand})
    if as_json:
        dump(view)
        return
    _print_view(view)
    console.print(escape(yaml.safe_dump(view["version"]["definition"], sort_keys=False, allow_unicode=True)))


@campaign_app.command()
def approve(
    campaign_id: str = CampaignArgument,
    version: int = typer.Option(..., min=1, help="the version approved"),
    brand: str = BrandOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Approve a version above the brand's limits (campaigns:approve; not by the client that defined it)."""
    body = {"version": version}
    view = ApiCaller(url, api_key).call(
        "POST", f"/v1/campaigns/{segment(campaign_id)}/approve", body, query={"brand_id": brand}
    )
    if as_json:
        dump(view)
    else:
        _print_view(view)


@campaign_app.command()
def start(
    campaign_id: str = CampaignArgument,
    version: int | None = typer.Option(None, min=1, help="a version (default: the latest)"),
    brand: str = BrandOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Run a version now, whatever its schedule."""
    view = ApiCaller(url, api_key).call(
        "POST", f"/v1/campaigns/{segment(campaign_id)}/start", {"version": version}, query={"brand_id": brand}
    )
    if as_json:
        dump(view)
    else:
        _print_run(view)


def _transition(action: str, campaign_id: str, brand: str, as_json: bool, url: str, api_key: str) -> None:
    view = ApiCaller(url, api_key).call(
        "POST", f"/v1/campaigns/{segment(campaign_id)}/{action}", query={"brand_id": brand}
    )
    if as_json:
        dump(view)
    else:
        _print_view(view)


@campaign_app.command()
def activate(
    campaign_id: str = CampaignArgument,
    brand: str = BrandOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Schedule a draft: its schedule starts runs of the latest version."""
    _transition("activate", campaign_id, brand, as_json, url, api_key)


@campaign_app.command()
def pause(
    campaign_id: str = CampaignArgument,
    brand: str = BrandOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Pause a scheduled campaign: its occurrences are skipped until it resumes."""
    _transition("pause", campaign_id, brand, as_json, url, api_key)


@campaign_app.command()
def resume(
    campaign_id: str = CampaignArgument,
    brand: str = BrandOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Resume a paused campaign from its next occurrence."""
    _transition("resume", campaign_id, brand, as_json, url, api_key)


@campaign_app.command()
def stop(
    campaign_id: str = CampaignArgument,
    brand: str = BrandOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Stop a campaign: no further runs, and its runs in flight are stopped."""
    _transition("stop", campaign_id, brand, as_json, url, api_key)


@campaign_app.command()
def runs(
    campaign_id: str = CampaignArgument,
    brand: str = BrandOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """A campaign's runs and skipped occurrences, newest first."""
    result = ApiCaller(url, api_key).call(
        "GET", f"/v1/campaigns/{segment(campaign_id)}/runs", query={"brand_id": brand}
    )
    if as_json:
        dump(result)
        return
    table = Table(title=escape(f"runs of {campaign_id}"), title_justify="left")
    for column in ("run", "version", "trigger", "at (UTC)", "status", "reason"):
        table.add_column(column, no_wrap=column != "reason")
    for v in result["runs"]:
        r = v["run"]
        cells = (r["run_id"], r["version"], r["trigger"], r["at"], v["status"] or r["outcome"], r.get("reason"))
        table.add_row(*("" if c is None else escape(str(c)) for c in cells))
    console.print(table)


@campaign_app.command()
def run(
    campaign_id: str = CampaignArgument,
    run_id: str = typer.Argument(..., help="the run id (from `cdp campaign runs`)"),
    brand: str = BrandOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """One run with its results once it has finished."""
    view = ApiCaller(url, api_key).call(
        "GET", f"/v1/campaigns/{segment(campaign_id)}/runs/{segment(run_id)}", query={"brand_id": brand}
    )
    if as_json:
        dump(view)
    else:
        _print_run(view)


@campaign_app.command()
def results(
    campaign_id: str = CampaignArgument,
    run: str | None = typer.Option(None, "--run", help="a run id (default: the latest run with results)"),
    brand: str = BrandOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """What a campaign achieved: the funnel from the audience to credited revenue, conversion and revenue per person
    against the holdout with 95% intervals, ROI with its definition (a journey: its entries and conversion against the
    holdout, its funnel per step and per A/B/n arm)."""
    found = ApiCaller(url, api_key).call(
        "GET", f"/v1/campaigns/{segment(campaign_id)}/results", query={"brand_id": brand, "run_id": run}
    )
    if as_json:
        dump(found)
    else:
        print_campaign_results(found, console)


@campaign_app.command("dry-run")
def dry_run(
    campaign_id: str = CampaignArgument,
    version: int | None = typer.Option(None, min=1, help="a version (default: the latest)"),
    brand: str = BrandOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """What a scheduled campaign's next runs would do on today's profiles: selection, cost, sends per day, persons a
    frequency cap would stop, other campaigns the same days. Nothing is sent."""
    report = ApiCaller(url, api_key).call(
        "POST", f"/v1/campaigns/{segment(campaign_id)}/dry-run", {"version": version}, query={"brand_id": brand}
    )
    if as_json:
        dump(report)
        return
    if "basis" in report:
        _print_journey_dry_run(report)
        return
    console.print(
        f"{escape(report['campaign_id'])}: {report['eligible']:,} eligible, {report['selected']:,} selected = "
        f"{report['treatment']:,} treated + {report['holdout']:,} holdout ({report['unscored']:,} unscored)"
    )
    console.print(
        f"cost: first send {report['first_send_cost_minor']:,}, follow-up at most "
        f"{report['follow_up_cost_at_most_minor']:,} ({report['currency']} minor units); "
        f"{report['capped_today']:,} treated would be stopped by a frequency cap today"
    )
    days = ", ".join(f"{day} {n:,}" for day, n in report["sends_by_day"].items()) or "none within 14 days"
    console.print(f"first sends by day: {escape(days)}")
    for overlap in report["overlaps"]:
        console.print(
            f"[yellow]overlaps[/yellow] {escape(overlap['campaign_id'])} ({overlap['status']}): "
            f"{escape(', '.join(overlap['days']))}"
        )


@campaign_app.command("preview")
def preview(
    campaign_id: str = CampaignArgument,
    person: str = typer.Option(..., "--person", help="the person id to render the messages for"),
    version: int | None = typer.Option(None, min=1, help="a version (default: the latest)"),
    brand: str = BrandOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Every message of a campaign as one person would get it (text, SMS length and segments, what would fail).
    Nothing is sent."""
    report = ApiCaller(url, api_key).call(
        "POST",
        f"/v1/campaigns/{segment(campaign_id)}/preview",
        {"person_id": person, "version": version},
        query={"brand_id": brand},
    )
    if as_json:
        dump(report)
        return
    console.print(f"{escape(report['campaign_id'])} v{report['version']} for {escape(report['person_id'])}")
    for step in report["steps"]:
        for message in step["messages"]:
            head = f"[bold]{escape(step['step'])}[/bold] {message['channel']} to {escape(str(message['address']))}"
            sms = message.get("sms")
            if sms:
                head += f" ({sms['characters']} characters, {sms['encoding']}, {sms['segments']} segment(s))"
            console.print(head)
            if message.get("subject"):
                console.print(f"  subject: {escape(message['subject'])}")
            if message.get("body"):
                console.print(f"  {escape(message['body'])}")
            for name, value in message.get("fields", {}).items():
                console.print(f"  {escape(name)} = {escape(value)}")
            for problem in message.get("problems", []):
                console.print(f"  [red]{escape(problem)}[/red]")


def _print_journey_dry_run(report: dict[str, Any]) -> None:
    basis = "replayed on the last 14 days of events" if report["basis"] == "replayed" else "forecast, next 14 days"
    console.print(
        f"{escape(report['campaign_id'])} ({basis}): {report['entries']:,} entries = {report['treatment']:,} treated "
        f"+ {report['holdout']:,} holdout; {report['not_entered_already_in']:,} trigger events of persons already in "
        f"it, {report['not_eligible']:,} persons kept out"
    )
    console.print(
        f"cost: first send {report['first_send_cost_minor']:,}, at most {report['cost_at_most_minor']:,} "
        f"({report['currency']} minor units); {report['capped_today']:,} treated would be stopped by a cap today"
    )
    days = ", ".join(f"{day} {n:,}" for day, n in report["entries_by_day"].items()) or "none"
    console.print(f"entries by day: {escape(days)}")
    for overlap in report["overlaps"]:
        console.print(f"[yellow]also live[/yellow] {escape(overlap['campaign_id'])} ({overlap['status']})")


@campaign_app.command("test-send")
def test_send(
    campaign_id: str = CampaignArgument,
    phone: list[str] = typer.Option(None, "--phone", help="a seed's phone (default: the brand's seed list)"),
    version: int | None = typer.Option(None, min=1, help="a version (default: the latest)"),
    brand: str = BrandOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Send every message of a version to the seed list now, to see it as a customer will (past caps and quiet
    hours; counted in no result or budget)."""
    body: dict[str, Any] = {"version": version}
    if phone:
        body["seeds"] = [{"type": "phone", "value": p} for p in phone]
    result = ApiCaller(url, api_key).call(
        "POST", f"/v1/campaigns/{segment(campaign_id)}/test-send", body, query={"brand_id": brand}
    )
    if as_json:
        dump(result)
        return
    for send in result["sends"]:
        console.print(f"{escape(send['step'])}: {send['channel']} to {send['persons']} seed(s)")
    for unknown in result["unknown_seeds"]:
        console.print(f"[yellow]no person has {escape(unknown)}[/yellow]")
    console.print(f"run {escape(result['run_id'])}")


@campaign_app.command()
def journey(
    campaign_id: str = CampaignArgument,
    brand: str = BrandOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """A triggered journey's persons by group: where they are now, conversions against the holdout, and spend."""
    result = ApiCaller(url, api_key).call(
        "GET", f"/v1/campaigns/{segment(campaign_id)}/journey", query={"brand_id": brand}
    )
    if as_json:
        dump(result)
        return
    table = Table(title=escape(f"journey {campaign_id}"), title_justify="left")
    for column in ("group", "entered", "converted", "rate", "where they are"):
        table.add_column(column)
    for group in ("treatment", "holdout"):
        rate = result["conversion_rate"][group]
        where = ", ".join(f"{k} {v}" for k, v in sorted(result["by_status"][group].items()))
        cells = (group, result["entered"][group], result["converted"][group], "" if rate is None else f"{rate:.1%}")
        table.add_row(*(escape(str(c)) for c in cells), escape(where))
    console.print(table)
    if result.get("lift"):
        console.print(escape(result["lift"]["verdict"]))
    if result.get("steps"):
        console.print(journey_steps_table("funnel per step (cdp campaign results: per arm too)", result["steps"]))
    console.print(f"spent {result['spent_minor']:,} minor units of the budget")


@campaign_app.command()
def switch(
    state: str = typer.Argument(..., help="on (stop every campaign of the brand) or off"),
    reason: str | None = typer.Option(None, help="why (shown with the switch)"),
    brand: str = BrandOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """The brand's stop switch: while on, no campaign run starts, scheduled runs are skipped and runs in flight send
    nothing more."""
    if state not in ("on", "off"):
        console.print("[red]the switch is on or off[/red]")
        raise typer.Exit(code=2)
    body = {"brand_id": brand, "stopped": state == "on", "reason": reason}
    result = ApiCaller(url, api_key).call("POST", "/v1/campaigns/switch", body)
    if as_json:
        dump(result)
        return
    console.print(f"stop switch of {escape(brand)}: {'[red]ON[/red]' if result['stopped'] else 'off'}")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def duration_seconds(text: str) -> int:
    """`90s`, `61m`, `3h`, `2d` as seconds."""
    number, unit = text[:-1], text[-1:]
    if unit not in _UNITS or not number.isdigit():
        raise typer.BadParameter(f"{text!r} is not a duration such as 90s, 61m, 3h or 2d", param_hint="--after")
    return int(number) * _UNITS[unit]


@campaign_app.command()
def tick(
    at: str | None = typer.Option(None, help="the time it fires at, ISO 8601 with an offset (default: now)"),
    after: str | None = typer.Option(None, help="or this long after the local clock's now: 90s, 61m, 3h, 2d"),
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """`cdp serve` only: fire the campaign schedule's tick now, or as if it were `--at` (to run next Monday's
    occurrence today) or `--after` a while; a later time moves the local clock there. On AWS, EventBridge Scheduler
    fires it every minute; `cdp serve` does too."""
    if at and after:
        raise typer.BadParameter("give --at or --after, not both", param_hint="--after")
    query = {"at": at, "after": str(duration_seconds(after)) if after else None}
    result = ApiCaller(url, api_key).call(
        "POST", f"/_local/schedules/{segment(topology.CAMPAIGN_TICK.local_name)}", query=query
    )
    if as_json:
        dump(result)
        return
    fired = result["result"]
    console.print(f"tick at {result['at']}: {len(fired['started'])} run(s) started, {len(fired['skipped'])} skipped")
    for run_id in fired["started"]:
        console.print(f"  started {escape(run_id)}")
    for skipped in fired["skipped"]:
        console.print(f"  skipped {escape(skipped['run_id'])}: {escape(str(skipped['reason']))}")
    sweeps = fired.get("sweeps") or {}
    if sweeps.get("pages") or sweeps.get("shards"):
        scanned = f"{sweeps.get('pages', 0)} page(s) scanned, {sweeps['shards']} shard(s) finished"
        console.print(f"  sweeps: {scanned}, {sweeps['entered']} person(s) entered")
    if fired.get("journey_steps"):
        console.print(f"  journeys: {fired['journey_steps']} person(s) moved on")


@campaign_app.command()
def signal(
    kind: str = typer.Argument(..., help="weather or location"),
    city: str | None = typer.Option(None, help="weather: the city"),
    celsius: float | None = typer.Option(None, help="weather: the temperature"),
    phone: str | None = typer.Option(None, help="location: the person's phone (or --device)"),
    device: str | None = typer.Option(None, help="location: the person's device id"),
    store: str | None = typer.Option(None, help="location: the store whose geofence they entered"),
    home: bool = typer.Option(False, "--home", help="location: they are near home"),
    at: str | None = typer.Option(None, help="when, ISO 8601 with an offset (default: now)"),
    brand: str = BrandOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Post an external signal for journeys: a weather reading for a city (a journey whose threshold it crosses
    sweeps the city's customers at the next tick), or a person's device entering a store's geofence or home."""
    from datetime import UTC, datetime

    when = at or datetime.now(UTC).isoformat()
    body: dict[str, Any]
    if kind == "weather":
        body = {"kind": "weather", "city": city, "temperature_c": celsius, "observed_at": when}
    elif kind == "location":
        identifier = {"type": "phone", "value": phone} if phone else {"type": "device_id", "value": device}
        body = {"kind": "location", "identifier": identifier, "place": "home" if home else "store", "at": when}
        if store:
            body["store_id"] = store
    else:
        console.print("[red]a signal is weather or location[/red]")
        raise typer.Exit(code=2)
    result = ApiCaller(url, api_key).call("POST", "/v1/signals", body, query={"brand_id": brand})
    if as_json:
        dump(result)
        return
    who = f" for {result['person_id']}" if result.get("person_id") else ""
    console.print(f"{kind} signal accepted{escape(who)}")
