"""A campaign's results as a marketer reads them in a terminal: the funnel from the audience to credited revenue,
conversion and revenue per person against the holdout with their 95% intervals, ROI with its definition."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cdp.shared.money import format_money

RECEIPT_STAGES = ("delivered", "opened", "clicked")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _funnel_rows(summary: dict[str, Any], receipts: dict[str, int]) -> list[tuple[str, str, str]]:
    f, money = summary["funnel"], summary.get("display", {})
    rows = [
        ("eligible", f"{f['eligible']:,}", "matched the audience and consent"),
        ("excluded", f"{f['excluded_contact_policy']:,}", "global control group or a suppression list"),
        ("selected", f"{f['selected']:,}", f"{f['treatment']:,} treated + {f['holdout']:,} held out"),
    ]
    for step, s in f["steps"].items():
        kept = ", ".join(f"{k.removeprefix('suppressed_')} {v:,}" for k, v in s["suppressed"].items()) or "none"
        rows.append((f"{step} sent", f"{s['sent']:,}", f"kept back: {kept}; failed {s['failed']:,}"))
    for stage in RECEIPT_STAGES:
        if stage in receipts:
            rows.append((stage, f"{receipts[stage]:,}", "messages whose receipts reached it (live)"))
    rows += [
        ("coupon redeemed", f"{f['offers_redeemed']:,}", "credited orders that used the campaign's code"),
        ("purchased", f"{f['purchased']:,}", f"{f['credited_orders']:,} orders credited to the campaign"),
        ("revenue", money.get("credited_revenue", f"{f['credited_revenue_minor']:,}"), "what those orders paid"),
    ]
    return rows


def _rate(rate: dict[str, Any]) -> str:
    return f"{_pct(rate['rate'])} of {rate['size']:,} (95% {_pct(rate['low'])} to {_pct(rate['high'])})"


def _kept_back(step: dict[str, Any]) -> str:
    return ", ".join(f"{k.removeprefix('suppressed_')} {v:,}" for k, v in step["suppressed"].items()) or "-"


def journey_steps_table(title: str, steps: list[dict[str, Any]]) -> Table:
    """A journey's funnel, one row per step: who reached it, what became of its messages, their receipts."""
    table = Table(title=escape(title), title_justify="left")
    columns = ("step", "kind", "reached", "sent", "kept back", "deferred", "failed", "delivered", "opened", "clicked")
    for column in columns:
        table.add_column(column, justify="left" if column in ("step", "kind", "kept back") else "right")
    for s in steps:
        kind = f"{s['kind'] or '(gone)'} {s['channel'] or ''}".strip()
        reached = f"{s['reached']:,}" + (f" (+{s['reached_holdout']:,} held out)" if s.get("reached_holdout") else "")
        messages: tuple[str, ...] = ("",) * 7  # a wait or a branch sends nothing
        if s["kind"] in ("send", None):
            numbers = (s["sent"], s["deferred"], s["failed"], s["delivered"], s["opened"], s["clicked"])
            sent, deferred, failed, delivered, opened, clicked = (f"{n:,}" for n in numbers)
            messages = (sent, _kept_back(s), deferred, failed, delivered, opened, clicked)
        cells = (s["step"], kind, reached, *messages)
        table.add_row(*(escape(str(c)) for c in cells))
    return table


def print_journey_results(journey: dict[str, Any], console: Console) -> None:
    """A journey's entries and conversion against the holdout, its funnel per step, then each A/B/n arm's."""
    entered = journey["entered"]
    console.print(
        f"journey {escape(journey['campaign_id'])}: entered {entered['treatment']:,} treated, "
        f"{entered['holdout']:,} held out"
    )
    lift = journey.get("lift")
    if lift:
        console.print(f"converted: treated {_rate(lift['treatment'])}, held out {_rate(lift['control'])}")
        console.print(f"  {escape(lift['verdict'])}")
    if journey.get("steps"):
        console.print(journey_steps_table("funnel per step", journey["steps"]))
    for name, steps in journey.get("variant_steps", {}).items():
        arm = journey.get("variants", {}).get(name)
        console.print(journey_steps_table(f"arm {name}", steps))
        if arm:
            console.print(f"  converted {_rate(arm['treatment'])}; {escape(arm['verdict'])}")
    if journey.get("spent_minor") is not None:
        console.print(f"spent {journey['spent_minor']:,} minor units of the budget")


def print_campaign_results(results: dict[str, Any], console: Console) -> None:
    if results["kind"] == "journey":
        print_journey_results(results["journey"], console)
        return
    view = results["run"]
    run, summary = view["run"], view.get("summary")
    console.print(f"{escape(results['campaign_id'])}, run {escape(run['run_id'])}: {view['status'] or run['outcome']}")
    if not summary:
        status = view["status"] or run["outcome"]
        if status == "RUNNING":
            console.print("no results yet: the run's conversion window is still open")
        else:
            console.print(f"no results: the run ended {escape(status)} before its summary")
        return
    if summary.get("funnel"):
        table = Table(title="funnel", title_justify="left")
        for column in ("stage", "count", "what it counts"):
            table.add_column(column)
        for row in _funnel_rows(summary, results.get("receipts", {})):
            table.add_row(*(escape(c) for c in row))
        console.print(table)
    lift, currency = summary.get("conversion_lift"), summary["currency"]
    if lift:
        t, c = lift["treatment"], lift["control"]
        console.print(
            f"conversion: treated {_pct(t['rate'])} (95% {_pct(t['low'])} to {_pct(t['high'])}), held out "
            f"{_pct(c['rate'])} (95% {_pct(c['low'])} to {_pct(c['high'])})"
        )
        console.print(f"  {escape(lift['verdict'])}")
    revenue = summary.get("revenue_lift")
    if revenue and revenue.get("difference") is not None:
        low, high = (format_money(round(revenue[k]), currency) for k in ("low", "high"))
        console.print(
            f"revenue per person: {format_money(round(revenue['treatment_mean']), currency)} treated, "
            f"{format_money(round(revenue['control_mean']), currency)} held out (difference 95% {low} to {high})"
        )
        console.print(f"  {escape(revenue['verdict'])}")
    money = summary.get("display", {})
    roi = summary.get("roi")
    console.print(
        f"cost {money.get('cost', '-')} (offers {money.get('offer_cost', '-')}), "
        f"incremental revenue {money.get('incremental_revenue', '-')}, "
        f"ROI {'-' if roi is None else f'{roi:,.2f}'}"
    )
    per = summary.get("cost_per_incremental_conversion_minor")
    if per is not None:
        console.print(f"cost per incremental conversion {format_money(per, currency)}")
    console.print(f"[dim]{escape(summary.get('roi_definition', ''))}[/dim]")
