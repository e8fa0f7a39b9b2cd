"""`cdp tags`: check a tag catalog, list it, and evaluate it in batch (DuckDB SQL over a Parquet export)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from cdp.shared.time import to_utc, utc_now
from cdp.tags.catalog import CatalogError, TagCatalog, bundled_catalog

tags_app = typer.Typer(no_args_is_help=True, help="The tag catalog: validate, list, batch-evaluate.")
console = Console()
_SUFFIXES = (".yaml", ".yml", ".json")


def _load(paths: list[Path] | None) -> TagCatalog:
    if not paths:
        return bundled_catalog()
    documents: dict[str, str] = {}
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in _SUFFIXES)
            if not files:
                raise typer.BadParameter(f"{path} holds no .yaml, .yml or .json file")
        elif path.is_file():
            files = [path]
        else:
            raise typer.BadParameter(f"{path} does not exist")
        for file in files:
            documents[str(file)] = file.read_text(encoding="utf-8")
    return TagCatalog.from_documents(documents)


@tags_app.command()
def validate(
    paths: list[Path] | None = typer.Argument(None, help="catalog files or directories (default: the bundled one)"),
) -> None:
    """Check a catalog: every error is printed as `file: field: message` (exit code 1 when any)."""
    try:
        catalog = _load(paths)
    except CatalogError as exc:
        for error in exc.errors:
            console.print(f"[red]{error.file}[/red]: [bold]{error.field}[/bold]: {error.message}", highlight=False)
        console.print(f"{len(exc.errors)} error(s)")
        raise typer.Exit(1) from exc
    console.print(f"[green]ok[/green]: {len(catalog.order)} tags ({catalog.version})")


@tags_app.command("list")
def list_tags(
    paths: list[Path] | None = typer.Argument(None, help="catalog files or directories (default: the bundled one)"),
) -> None:
    """Every tag with its category, kind, freshness, value type and the event types that wake it."""
    catalog = _load(paths)
    table = Table(title=f"Tag catalog {catalog.version}")
    for column in ("tag", "category", "kind", "freshness", "type", "triggers", "description"):
        table.add_column(column)
    for name in catalog.order:
        d = catalog.definitions[name]
        table.add_row(
            name,
            d.category,
            d.kind + ("" if d.dynamic else " (static)"),
            d.freshness,
            catalog.value_type(name),
            ", ".join(sorted(catalog.triggers[name])) or "-",
            d.description,
        )
    console.print(table)


@tags_app.command()
def batch(
    data: Path = typer.Option(..., help="an export directory with profiles.parquet and events.parquet"),
    as_of: str | None = typer.Option(None, help="ISO time to evaluate at (default: now)"),
    tag: list[str] | None = typer.Option(None, help="only these tags (repeatable; default: all)"),
    catalog_path: list[Path] | None = typer.Option(None, "--catalog", help="catalog files or directories"),
) -> None:
    """Evaluate the catalog for everyone as one SQL query (DuckDB) and print the commonest values of each tag."""
    from cdp_local.tags_batch import BatchTagEngine

    catalog = _load(catalog_path)
    unknown = [t for t in tag or [] if t not in catalog.definitions]
    if unknown:
        raise typer.BadParameter(f"unknown tag(s): {', '.join(unknown)}", param_hint="--tag")
    at = to_utc(datetime.fromisoformat(as_of)) if as_of else utc_now()
    with console.status(f"evaluating {len(tag or catalog.order)} tags over {data}"), BatchTagEngine(data) as engine:
        result = engine.evaluate_tags(catalog, at, tag or None)
        table = Table(title=f"{result.persons:,} persons, {len(result.tags)} tags in {result.seconds:.2f} s")
        table.add_column("tag")
        table.add_column("commonest values (persons)")
        for name in result.tags:
            counts = engine.value_counts(result, name, limit=6)
            table.add_row(name, ", ".join(f"{value}: {n:,}" for value, n in counts))
    console.print(table)
    console.print(f"wrote {result.path}")
