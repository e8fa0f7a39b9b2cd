"""`cdp model ...`: the model registry over the HTTP API of a running `cdp serve` (or a deployment, with a key holding
models:read, models:promote for a rollback, models:score for one person): the models with their headlines, a
model's versions and one version's report, a rollback of `latest`, and one person scored now."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from cdp_local.cli_profile import ApiCaller, JsonOption, KeyOption, UrlOption, console, dump, segment, split_identifier

model_app = typer.Typer(help="Models: the registry's versions and reports, rollback, one person scored on demand.")

ModelArgument = typer.Argument(..., help="the model name, e.g. churn")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _interval(interval: list[float] | None) -> str:
    return "-" if not interval else f"{interval[0]:.3f}-{interval[1]:.3f}"


def _promotion(promoted: dict[str, Any] | None) -> str:
    if not promoted:
        return "none promoted"
    by = promoted["promoted_by"] or "the train machine"
    return f"{promoted['version']} (promoted {promoted['promoted_at']} by {by})"


@model_app.command("list")
def list_models(as_json: bool = JsonOption, url: str = UrlOption, api_key: str = KeyOption) -> None:
    """Every model: its promoted version and how that version did on held-out data."""
    answer = ApiCaller(url, api_key).call("GET", "/v1/models")
    if as_json:
        dump(answer)
        return
    table = Table(title="models", title_justify="left")
    for column in ("model", "kind", "promoted", "by", "metric", "value", "95% interval", "baseline", "accepted"):
        table.add_column(column)
    for model in answer["models"]:
        line, promoted = model["headline"] or {}, model["promoted"] or {}
        table.add_row(
            escape(model["model_name"]),
            model["kind"] or "-",
            escape(promoted.get("version") or "none"),
            escape(promoted.get("promoted_by") or ("train" if promoted else "-")),
            escape(line.get("metric", model["problem"] or "-")),
            _number(line.get("value")),
            _interval(line.get("interval")),
            _number(line.get("baseline_value")),
            ("yes" if line["accepted"] else "no") if line else "-",
        )
    console.print(table)


@model_app.command()
def show(
    model_name: str = ModelArgument,
    version: str | None = typer.Option(None, "--version", help="one version's report (default: the versions)"),
    limit: int = typer.Option(20, "--limit", min=1, max=100, help="the newest versions listed"),
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """A model's versions, newest first, with their headlines; or one version's report (--version)."""
    caller = ApiCaller(url, api_key)
    if version:
        report = caller.call("GET", f"/v1/models/{segment(model_name)}/versions/{segment(version)}")
        dump(report) if as_json else _print_report(report)
        return
    answer = caller.call("GET", f"/v1/models/{segment(model_name)}", query={"limit": str(limit)})
    if as_json:
        dump(answer)
        return
    console.print(f"[bold]{escape(model_name)}[/bold]: {escape(_promotion(answer['promoted']))}")
    table = Table(
        title=f"versions ({len(answer['versions'])} of {answer['total']}, newest first)", title_justify="left"
    )
    for column in ("version", "trained", "promoted", "metric", "value", "95% interval", "baseline", "accepted"):
        table.add_column(column)
    for entry in answer["versions"]:
        line = entry["headline"]
        table.add_row(
            escape(entry["version"]),
            entry["trained_at"][:19],
            "yes" if entry["promoted"] else "",
            escape(line["metric"]),
            _number(line["value"]),
            _interval(line["interval"]),
            _number(line["baseline_value"]),
            "yes" if line["accepted"] else "[red]no[/red]",
        )
    console.print(table)


def _print_report(report: dict[str, Any]) -> None:
    manifest, line = report["manifest"], report["headline"]
    metrics = manifest["metrics"]
    promoted = " (promoted)" if report["promoted"] else ""
    console.print(f"[bold]{escape(report['model_name'])}[/bold] {escape(report['version'])}{promoted}")
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("kind", manifest["kind"]),
        ("predicts", report["label"]),
        ("trained at", manifest["trained_at"]),
        (line["metric"], f"{_number(line['value'])} (95%: {_interval(line['interval'])})"),
        ("baseline", f"{line['baseline']}: {_number(line['baseline_value'])}"),
        ("bar", line["bar"]),
        ("accepted", "yes" if manifest["accepted"] else "no"),
        ("held-out rows", f"{line['held_out_rows']:,}"),
        ("training rows", f"{metrics['train_rows']:,}" if "train_rows" in metrics else "-"),
        ("algorithm", metrics.get("algorithm") or metrics.get("learner") or metrics["kind"]),
        ("features", f"{len(manifest['feature_names'])}"),
        ("scikit-learn", manifest["sklearn_version"]),
        ("libraries", ", ".join(f"{k} {v}" for k, v in manifest.get("library_versions", {}).items()) or "-"),
        ("size", f"{manifest['size_bytes']:,} bytes"),
        ("sha256", manifest["sha256"]),
    ]
    for name, value in rows:
        table.add_row(escape(str(name)), escape(str(value)))
    console.print(table)
    for note in manifest["rejected_because"]:
        console.print(f"[red]rejected:[/red] {escape(note)}")
    for note in line["notes"][len(manifest["rejected_because"]) :]:
        console.print(f"[yellow]note:[/yellow] {escape(note)}")


@model_app.command()
def rollback(
    model_name: str = ModelArgument,
    version: str = typer.Argument(..., help="the saved version latest points at next"),
    force: bool = typer.Option(False, "--force", help="also the promoted version, or one rejected at training"),
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Point the model's latest at another saved version (its bytes verified); recorded with the key's client."""
    body = {"version": version, "force": force}
    result = ApiCaller(url, api_key).call("POST", f"/v1/models/{segment(model_name)}/rollback", body)
    if as_json:
        dump(result)
        return
    before = result["previous_version"] or "none"
    console.print(
        f"{escape(result['model_name'])}: latest is {escape(result['version'])} (was {escape(before)}), by "
        f"{escape(result['promoted_by'])} at {result['promoted_at']}" + (" (forced)" if result["forced"] else "")
    )


@model_app.command()
def score(
    model_name: str = ModelArgument,
    person_id: str | None = typer.Option(None, "--person-id", help="the person id"),
    phone: str | None = typer.Option(None, "--phone", help="or the person's phone"),
    identifier: str | None = typer.Option(None, "--identifier", "-i", help="or type:value, e.g. email:a@b.cn"),
    brand: str | None = typer.Option(None, "--brand", envvar="CDP_BRAND", help="the brand of --phone/--identifier"),
    write: bool = typer.Option(True, "--write/--no-write", help="store the score (default) or only show it"),
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Score one person now with the promoted version; stored with the predictive tags it moves."""
    named = [x for x in (person_id, phone, identifier) if x is not None]
    if len(named) != 1:
        console.print("[red]name the person once: --person-id, --phone or --identifier[/red]")
        raise typer.Exit(code=2)
    body: dict[str, Any] = {"write": write}
    if person_id is not None:
        body["person_id"] = person_id
    else:
        kind, value, scope = ("phone", str(phone), None) if phone is not None else split_identifier(str(identifier))
        body["identifier"] = {"type": kind, "value": value, "scope": scope}
    if brand:
        body["brand_id"] = brand
    result = ApiCaller(url, api_key).call("POST", f"/v1/models/{segment(model_name)}/score", body)
    if as_json:
        dump(result)
        return
    outputs = "".join(f", {escape(k)} {v:.3f}" for k, v in result["outputs"].items())
    items = f", items {escape(', '.join(result['items']))}" if result["items"] else ""
    stored = "stored" if result["written"] else "not stored"
    console.print(
        f"{escape(result['person_id'])}: {escape(result['model_name'])} {result['score']:.4f}{outputs}{items} "
        f"(version {escape(result['model_version'])}; {stored})"
    )
    for change in result["tag_changes"]:
        console.print(f"  tag {escape(change['tag'])}: {change['old']} -> {change['new']}")
