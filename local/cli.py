"""`cdp`: the command line of the local runtime (demo, serve, bench, identity, profile)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cdp_local.cli_audience import audience_app
from cdp_local.cli_campaign import campaign_app
from cdp_local.cli_console import console_app
from cdp_local.cli_export import export_app
from cdp_local.cli_identity import identity_app
from cdp_local.cli_import import import_app
from cdp_local.cli_loyalty import loyalty_app
from cdp_local.cli_migrate import migrate_app
from cdp_local.cli_model import model_app
from cdp_local.cli_offer import budget_app, offer_app, promotion_app
from cdp_local.cli_profile import profile_app
from cdp_local.cli_replay import replay_app
from cdp_local.cli_results import results_app
from cdp_local.cli_tags import tags_app

if TYPE_CHECKING:
    from collections.abc import Callable

    from cdp_local.bench import Metric

app = typer.Typer(help="Customer data platform: the whole stack locally on emulated AWS (no account needed).")
app.add_typer(identity_app, name="identity")
app.add_typer(profile_app, name="profile")
app.add_typer(import_app, name="import")
app.add_typer(replay_app, name="replay")
app.add_typer(audience_app, name="audience")
app.add_typer(campaign_app, name="campaign")
app.add_typer(console_app, name="console")
app.add_typer(offer_app, name="offer")
app.add_typer(budget_app, name="budget")
app.add_typer(promotion_app, name="promotion")
app.add_typer(loyalty_app, name="loyalty")
app.add_typer(model_app, name="model")
app.add_typer(tags_app, name="tags")
app.add_typer(migrate_app, name="migrate")
app.add_typer(export_app, name="export")
app.add_typer(results_app, name="results")
console = Console()


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


@app.command()
def demo(
    customers: int = typer.Option(1500, min=300, help="true customers in the synthetic brand"),
    seed: int = typer.Option(7, help="random seed of the synthetic brand"),
    output: Path = typer.Option(Path("demo-output"), help="where summary.json and report.html go"),
    min_auc: float = typer.Option(
        0.5,
        min=0.0,
        max=1.0,
        help="held-out AUC the response model needs to be promoted (a first model, ~1k rows: its AUC on 250 held-out"
        " persons moves by +-0.05 with the generated world, so the bar refuses only a model no better than chance)",
    ),
) -> None:
    """Generate a synthetic brand and run ingest -> OneID -> tags -> train -> score -> campaign -> measure."""
    from cdp_local.demo_job import DemoFailed, run_demo

    with _progress() as progress:
        try:
            summary = run_demo(
                customers=customers, seed=seed, output=output, progress=progress, console=console, min_auc=min_auc
            )
        except DemoFailed as exc:
            console.print(f"[red]demo failed:[/red] {exc}")
            raise typer.Exit(code=1) from exc
    _print_summary(summary)
    console.print(f"\nwrote [bold]{output / 'summary.json'}[/bold] and [bold]{output / 'report.html'}[/bold]")


def _print_summary(summary: dict[str, Any]) -> None:
    table = Table(title="Demo summary", show_header=True)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in summary.get("headline", {}).items():
        table.add_row(name, str(value))
    console.print(table)


@app.command()
def serve(
    port: int = typer.Option(8787, help="port on 127.0.0.1"),
    drain: str = typer.Option("sync", help="sync: process events before answering; background; off"),
    history: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="canonical events (.jsonl) of one brand to import in bulk first"
    ),
    users: Path | None = typer.Option(
        None,
        dir_okay=False,
        help="the console's users (default: $CDP_CONSOLE_USERS_FILE, else ~/.cdp/console-users.json)",
    ),
    demo: int = typer.Option(
        0, min=0, help="first run the demo with this many customers (300 or more) and serve its data (0: start empty)"
    ),
) -> None:
    """Serve the HTTP API and the console on 127.0.0.1 (curl, an SDK, or a browser at /)."""
    from cdp_local.console_users import users_file_path
    from cdp_local.http_server import LocalApiServer
    from cdp_local.runtime import LocalRuntime

    users_file = users_file_path(users)  # the console signs in and the settings API manages the same users
    with (
        LocalRuntime(console_users_file=users_file) as rt,
        LocalApiServer(rt, port=port, drain=drain, ticks=True, users_file=users_file) as server,
    ):
        if history is not None:
            _import_history(rt, history)
        if demo:
            _serve_demo(rt, demo)
        console.print(f"[green]CDP local API[/green] on {server.url}  (API key: {rt.api_key!r}; Ctrl-C stops)")
        console.print(f"  console: {server.url}/ (users in {server.users_file}: cdp console add-user)")
        console.print(
            f"  curl -X POST {server.url}/v1/events -H 'x-api-key: {rt.api_key}' "
            f"-H 'content-type: application/json' --data @{_sample_path('canonical/order_placed.v1.json')}",
            soft_wrap=True,  # one line, so it can be copied as it is
        )
        console.print(
            f"  profile API: cdp profile show <person_id> (admin key {rt.admin_key!r}; "
            "store sh01 read key 'local-store-sh01-key')"
        )
        console.print(
            f"  Segment/RudderStack SDKs: host {server.url}, write key {rt.write_key!r}; other channels' routes and "
            f"local secrets: README 'Channel connectors'; OpenAPI: {server.url}/v1/openapi.json"
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            console.print("stopping")


def _sample_path(name: str) -> str:
    """A sample under events/ as an absolute path when the repository is at hand (an editable install), so the
    hint works from any directory; else the path relative to the repository root."""
    sample = Path(__file__).resolve().parents[1] / "events" / name
    return str(sample) if sample.is_file() else f"events/{name}"


def _serve_demo(rt: Any, customers: int) -> None:
    """The demo run into the served runtime: the console and the API then show its brand (demo-output/ as usual)."""
    from cdp_local.demo_job import DemoFailed, run_demo

    if customers < 300:
        raise typer.BadParameter("--demo needs 300 customers or more")
    with _progress() as progress:
        try:
            run_demo(customers, 7, Path("demo-output"), progress, console, runtime=rt)
        except DemoFailed as exc:
            raise typer.BadParameter(f"the demo failed: {exc}") from exc


def _import_history(rt: Any, path: Path) -> None:
    """Bulk-resolve a history file and load it into the runtime's tables before live traffic (cdp.identity.history)."""
    from cdp import topology
    from cdp.errors import InvalidInputError
    from cdp.identity.dynamodb import DynamoIdentityStore
    from cdp.identity.history import import_history
    from cdp.ingest.events import parse_event
    from cdp.org import load_org

    lines = [line for line in path.read_text().splitlines() if line.strip()]
    try:
        events = [parse_event(line) for line in lines]
    except ValueError as exc:
        raise typer.BadParameter(f"{path}: {exc}") from exc
    brands = sorted({e.brand_id for e in events})
    if len(brands) != 1:
        raise typer.BadParameter(f"{path}: a history file holds one brand's events, found {brands[:5]}")
    store = DynamoIdentityStore(topology.PROFILES_TABLE.local_name, client=rt.client("dynamodb"))
    try:
        load = import_history(events, load_org().brand(brands[0]), store)
    except InvalidInputError as exc:
        raise typer.BadParameter(f"{path}: {exc.message}") from exc
    console.print(
        f"imported {len(events):,} events of {brands[0]}: {len(load.profiles):,} persons, {len(load.hubs)} shared "
        f"identifiers quarantined ({load.seconds})"
    )


class BenchSuite(StrEnum):
    PIPELINE = "pipeline"
    IDENTITY_BULK = "identity-bulk"
    PROFILE_LOOKUP = "profile-lookup"
    INGEST = "ingest"
    TAGS = "tags"
    JOURNEYS = "journeys"
    OFFERS = "offers"
    CHANNELS = "channels"
    WAREHOUSE = "warehouse"
    ACTIVATION = "activation"
    MODELS = "models"
    TARGETING = "targeting"
    CAMPAIGNS = "campaigns"
    ALL = "all"


@app.command()
def bench(
    events: int = typer.Option(5000, min=100, help="events to push through the local pipeline"),
    output: Path = typer.Option(Path("bench-output"), help="results.json goes here"),
    suite: BenchSuite = typer.Option(
        BenchSuite.PIPELINE,
        help="pipeline: events/s and AWS cost; identity-bulk: offline resolution of --links; "
        "profile-lookup: profile API latency over --persons; ingest: events/s per core through the ingest handler "
        "(canonical and Segment batches of 100) and AWS calls per event; tags: batch evaluation of 20 tags and an "
        "audience size over --profiles profiles and --tag-events events (DuckDB), and tag_update p50/p95 per event; "
        "journeys: the AWS cost per 1M journey entries and sends, and trigger-to-send latency; offers: promotion "
        "evaluation p50/p95, the budget ledger under contention, the cost per 1M offers issued and redeemed; channels: "
        "each channel's throughput at its rate limit (loopback providers) and the AWS cost per 1M sends, receipts and "
        "preference changes; warehouse: the nightly Parquet export's rows/s, bytes and cost per 1M events held; "
        "activation: an audience snapshot uploaded through the audience API to each ad platform (loopback fakes), "
        "persons/s and the AWS cost per 1M persons; models: training seconds per model kind over --persons persons, "
        "and the nightly score's persons/s and AWS cost per 1M persons, four models in one pass and one per pass; "
        "targeting: uplift vs response ranking at the demo campaign's budget over --worlds seeded brands, judged by "
        "each world's hidden true uplift; campaigns: the AWS cost per 1M persons selected of filing each one's "
        "randomized group on their timeline; all",
    ),
    profiles: int = typer.Option(1_000_000, min=1000, help="profiles the tags suite generates"),
    tag_events: int = typer.Option(10_000_000, min=10_000, help="events the tags suite generates"),
    links: int = typer.Option(10_000_000, min=1000, help="identifier links the identity-bulk suite resolves"),
    persons: int = typer.Option(
        2000, min=10, help="persons the profile-lookup suite loads through the pipeline (models: trains and scores)"
    ),
    lookups: int = typer.Option(500, min=10, help="timed lookups of each kind in the profile-lookup suite"),
    worlds: int = typer.Option(10, min=2, help="seeded brands the targeting suite compares the rankings on"),
) -> None:
    """Events/s through the local pipeline and the AWS cost per 1M events at list prices; with --suite identity-bulk
    (or all) also links/s of offline identity resolution; with --suite profile-lookup (or all) the latency of the
    profile API's lookups."""
    from cdp_local.bench import record

    sizes = _BenchSizes(events, output, profiles, tag_events, links, persons, lookups, worlds)
    results: dict[str, Metric] = {}
    for each, run in _SUITES.items():
        if suite in (each, BenchSuite.ALL):
            results |= run(sizes)
    record(results, output / "results.json")
    table = Table(title="Benchmark", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("unit")
    for name, metric in results.items():
        if ".calls_per_event." not in name:
            table.add_row(name, str(metric["value"]), str(metric["unit"]))
    console.print(table)
    console.print(f"wrote {output / 'results.json'} ({len(json.loads((output / 'results.json').read_text()))} metrics)")


def _bench_pipeline(events: int) -> dict[str, Metric]:
    from cdp_local.bench import DATA_PLANE, PLATFORM_LOYALTY, pipeline_loyalty_split
    from cdp_local.demo.brand import generate_brand

    brand = generate_brand(customers=max(100, events // 8), seed=11)
    sample = brand.events[:events]
    with _progress() as progress:

        def run(label: str) -> Callable[[int, int], None]:
            task = progress.add_task(label, total=len(sample))
            return lambda done, total: progress.update(task, completed=done)

        results = pipeline_loyalty_split(sample, progress=run)
    programs = str(results[f"{PLATFORM_LOYALTY}.programs"]["unit"])
    table = Table(title=f"Pipeline: the data plane alone, and with the platform's programmes ({programs})")
    for column in ("", "data plane", "with programmes", "programmes' own"):
        table.add_column(column, justify="right" if column else "left", no_wrap=True)
    for figure, label in (
        ("aws_api_calls_per_event", "AWS calls/event"),
        ("billed_wru_per_event", "WRU/event"),
        ("billed_rru_per_event", "RRU/event"),
        ("cost_per_1m_events_usd", "USD/1M events"),
    ):
        values = (results[f"{prefix}.{figure}"]["value"] for prefix in (DATA_PLANE, "pipeline", PLATFORM_LOYALTY))
        table.add_row(label, *(f"{v:g}" for v in values))
    console.print(table)
    return results


@dataclass(frozen=True)
class _BenchSizes:
    events: int
    output: Path
    profiles: int
    tag_events: int
    links: int
    persons: int
    lookups: int
    worlds: int


def _identity_bulk(sizes: _BenchSizes) -> dict[str, Metric]:
    from cdp_local.bench_identity import identity_bulk_benchmark

    with console.status("identity-bulk") as status:
        return identity_bulk_benchmark(sizes.links, status=lambda text: status.update(text))


def _ingest(sizes: _BenchSizes) -> dict[str, Metric]:
    from cdp_local.bench_ingest import ingest_benchmark

    with console.status("ingest: the ingest handler in-process, AWS calls answered without emulation"):
        return ingest_benchmark(sizes.events)


def _tags(sizes: _BenchSizes) -> dict[str, Metric]:
    from cdp_local.bench_tags import tags_benchmark

    with console.status("tags") as status:
        return tags_benchmark(
            sizes.output / "tags-data", sizes.profiles, sizes.tag_events, status=lambda text: status.update(text)
        )


def _journeys(sizes: _BenchSizes) -> dict[str, Metric]:
    from cdp_local.bench_journeys import journey_benchmark

    with console.status("journeys: the same events with a journey paused, then live"):
        return journey_benchmark(max(100, sizes.events // 10))


def _offers(_: _BenchSizes) -> dict[str, Metric]:
    from cdp_local.bench_offers import offers_benchmark

    with console.status("offers: promotion evaluation, the budget ledger under contention, issue and redeem"):
        return offers_benchmark()


def _channels(_: _BenchSizes) -> dict[str, Metric]:
    from cdp_local.bench_channels import channels_benchmark

    with console.status("channels: sends at each provider's rate, their receipts, one-click unsubscribes"):
        return channels_benchmark()


def _warehouse(_: _BenchSizes) -> dict[str, Metric]:
    from cdp_local.bench_warehouse import warehouse_benchmark

    with console.status("warehouse: a full export, then a nightly run, of a generated brand's table"):
        return warehouse_benchmark()


def _activation(_: _BenchSizes) -> dict[str, Metric]:
    from cdp_local.bench_activation import activation_benchmark

    with console.status("activation: opted-in persons through ingest, a snapshot, uploaded to each ad platform"):
        return activation_benchmark()


def _models(sizes: _BenchSizes) -> dict[str, Metric]:
    from cdp_local.bench_models import MIN_PERSONS, models_benchmark

    if sizes.persons < MIN_PERSONS:
        raise typer.BadParameter(f"the models suite trains on at least {MIN_PERSONS} persons", param_hint="--persons")
    with console.status("models") as status:
        results = models_benchmark(sizes.persons, status=lambda text: status.update(text))
    value = {name: metric["value"] for name, metric in results.items()}
    train = Table(title=f"Models: training on {value['models.persons']:,} persons (in-process)")
    for column in ("kind", "seconds", "artifact KB"):
        train.add_column(column, justify="left" if column == "kind" else "right")
    for name in results:
        if name.startswith("models.train_seconds."):
            kind = name.rsplit(".", 1)[1]
            train.add_row(kind, f"{value[name]:g}", f"{value[f'models.artifact_kb.{kind}']:g}")
    console.print(train)
    score = Table(title="Models: the nightly score, four models in one pass or one per pass (USD per 1M persons)")
    for column in ("", "one pass", "one per pass"):
        score.add_column(column, justify="right" if column else "left")
    for figure, label in (("rru_per_person", "RRU/person"), ("wru_per_person", "WRU/person")):
        score.add_row(label, *(f"{value[f'models.{p}.{figure}']:g}" for p in ("one_pass", "one_model_per_pass")))
    score.add_row(
        "USD/1M persons",
        f"{value['models.usd_per_1m_persons_scored']:g}",
        f"{value['models.usd_per_1m_persons_scored_one_model_per_pass']:g}",
    )
    console.print(score)
    return results


def _targeting(sizes: _BenchSizes) -> dict[str, Metric]:
    from cdp_local.bench_targeting import targeting_benchmark

    with console.status("targeting") as status:
        results = targeting_benchmark(sizes.worlds, sizes.persons, status=lambda text: status.update(text))
    value = {name: metric["value"] for name, metric in results.items()}
    table = Table(title=f"Targeting: true incremental orders at equal budget, {value['targeting.worlds']} worlds")
    for column in ("world (seed)", "uplift - response", "picks"):
        table.add_column(column, justify="left" if column == "picks" else "right")
    for name, metric in results.items():
        if name.startswith("targeting.world_"):
            table.add_row(name.split("_")[1].split(".")[0], f"{metric['value']:+g}", str(metric["unit"]))
    console.print(table)
    console.print(
        f"mean {value['targeting.uplift_minus_response']:+g} (95% over worlds "
        f"{value['targeting.uplift_minus_response_low']:+g} to {value['targeting.uplift_minus_response_high']:+g}); "
        f"uplift ahead in {value['targeting.worlds_uplift_ahead']} of {value['targeting.worlds']}"
    )
    return results


def _campaigns(sizes: _BenchSizes) -> dict[str, Metric]:
    from cdp_local.bench_campaigns import campaigns_benchmark

    with console.status("campaigns: persons through ingest, a run's selection, its groups filed on the timelines"):
        results = campaigns_benchmark(sizes.persons)
    console.print(
        f"filing {results['campaigns.persons_selected']['value']:,} persons' groups: "
        f"${results['campaigns.assignments_cost_per_1m_persons_usd']['value']:g} per 1M persons selected, "
        f"{results['campaigns.assignments_wru_per_person']['value']:g} WRU a person"
    )
    return results


_SUITES: dict[BenchSuite, Callable[[_BenchSizes], dict[str, Metric]]] = {
    BenchSuite.PIPELINE: lambda sizes: _bench_pipeline(sizes.events),
    BenchSuite.IDENTITY_BULK: _identity_bulk,
    BenchSuite.PROFILE_LOOKUP: lambda sizes: _bench_profile_lookup(sizes.persons, sizes.lookups),
    BenchSuite.INGEST: _ingest,
    BenchSuite.TAGS: _tags,
    BenchSuite.JOURNEYS: _journeys,
    BenchSuite.OFFERS: _offers,
    BenchSuite.CHANNELS: _channels,
    BenchSuite.WAREHOUSE: _warehouse,
    BenchSuite.ACTIVATION: _activation,
    BenchSuite.MODELS: _models,
    BenchSuite.TARGETING: _targeting,
    BenchSuite.CAMPAIGNS: _campaigns,
}
"""Each suite's run, in the order `--suite all` runs them."""


def _bench_profile_lookup(persons: int, lookups: int) -> dict[str, Metric]:
    from cdp_local.bench_profile import profile_lookup_benchmark

    with _progress() as progress:
        task = progress.add_task("profile-lookup: loading persons", total=persons * 3)
        return profile_lookup_benchmark(
            persons, lookups, progress=lambda done, total: progress.update(task, completed=done)
        )


if __name__ == "__main__":  # pragma: no cover
    app()
