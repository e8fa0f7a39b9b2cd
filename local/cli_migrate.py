"""`cdp migrate ...`: item-layout migrations of an existing deployment, through the operations API of a running
`cdp serve` (or a deployment, with an unscoped key holding operations:replay). Each call moves one page and the
server keeps the progress, so a run interrupted anywhere is continued by running the command again."""

from __future__ import annotations

import typer

from cdp_local.cli_profile import ApiCaller, JsonOption, KeyOption, UrlOption, console, dump

migrate_app = typer.Typer(help="Move an existing deployment's items to the current layout (idempotent, resumable).")


@migrate_app.command("person-layout")
def person_layout(
    limit: int = typer.Option(1000, "--limit", min=1, max=10_000, help="items each call's scan reads"),
    restart: bool = typer.Option(False, "--restart", help="scan again from the start (finds nothing once done)"),
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Person items of the earlier layout -> compressed body + their own tags item, page by page until done."""
    api = ApiCaller(url, api_key)
    pages = scanned = migrated = 0
    while True:
        request = {"limit": limit, "restart": restart and not pages}  # restart once, then continue
        page = api.call("POST", "/v1/admin/migrations/person-layout", request)
        pages += 1
        scanned += page["scanned"]
        migrated += page["migrated"]
        if not as_json:
            console.print(f"page {pages}: scanned {page['scanned']}, moved {page['migrated']}", highlight=False)
        if page["done"]:
            break
    if as_json:
        dump({**page, "pages": pages, "scanned_this_run": scanned, "migrated_this_run": migrated})
        return
    console.print(
        f"done: {migrated} person items moved in this run ({page['total_migrated']} since the migration started "
        f"{page['started_at']}); items read: {scanned}"
    )
