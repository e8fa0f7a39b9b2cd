"""`cdp loyalty ...`: the brand's points programmes and members' accounts, burns, adjustments and conversions over
the HTTP API of a running `cdp serve` (or a deployment, with a key holding loyalty:read / loyalty:write)."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from cdp_local.cli_profile import ApiCaller, JsonOption, KeyOption, UrlOption, console, dump

loyalty_app = typer.Typer(help="Points programmes: earn, burn, convert and expire points; levels and benefits.")

BrandOption = typer.Option("demo-brand", "--brand", envvar="CDP_BRAND", help="the brand")
ProgramArgument = typer.Argument(..., help="the programme (one the platform keeps)")
PersonArgument = typer.Argument(..., help="the member's person id")
OpOption = typer.Option(..., "--op-id", help="names the operation: sent again, it happens once")


@loyalty_app.command()
def programs(
    brand: str = BrandOption, as_json: bool = JsonOption, url: str = UrlOption, api_key: str = KeyOption
) -> None:
    """The brand's programmes: who keeps each one, and the rules of those the platform keeps."""
    answer = ApiCaller(url, api_key).call("GET", "/v1/loyalty/programs", query={"brand_id": brand})
    if as_json:
        dump(answer)
        return
    table = Table(title=f"points programmes of {escape(brand)}", title_justify="left")
    for column in ("programme", "kept by", "points per unit", "multipliers", "expire after", "levels"):
        table.add_column(column)
    for name, program in sorted(answer["programs"].items()):
        earn = program.get("earn") or {}
        levels = ", ".join(
            f"{rule['level']} ({rule['qualifying_spend_minor'] / 100:,.0f})" for rule in program.get("levels", [])
        )
        months = program.get("expire_after_months")
        table.add_row(
            escape(name),
            "platform" if program["system_of_record"] == "platform" else "its source (reported)",
            str(earn.get("points_per_unit", "-")),
            str(len(earn.get("multipliers", []))),
            f"{months} months" if months else "-",
            escape(levels) or "-",
        )
    console.print(table)


@loyalty_app.command()
def account(
    person: str = PersonArgument,
    brand: str = BrandOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """A member's accounts: balance, lots with their expiry, level and its hold, qualifying spend, benefits."""
    answer = ApiCaller(url, api_key).call("GET", f"/v1/loyalty/accounts/{person}", query={"brand_id": brand})
    if as_json:
        dump(answer)
        return
    for view in answer["accounts"]:
        lots = ", ".join(f"{lot['points']:,} until {lot['expires_at'] or 'never'}" for lot in view["lots"]) or "-"
        to_next = (
            f"; {view['spend_to_next_minor'] / 100:,.2f} more to {view['next_level']}" if view["next_level"] else ""
        )
        console.print(
            f"[bold]{escape(view['program'])}[/bold]: {view['balance']:,} points ({escape(lots)}); "
            f"level {escape(str(view['level']))} until {view['level_until']}; qualifying spend "
            f"{view['qualifying_spend_minor'] / 100:,.2f}{escape(to_next)}; benefits: "
            f"{escape(', '.join(view['benefits']) or '-')}"
        )
    if not answer["accounts"]:
        console.print("no account in a programme the platform keeps")


def _operate(action: str, program: str, body: dict[str, Any], as_json: bool, url: str, api_key: str) -> None:
    answer = ApiCaller(url, api_key).call("POST", f"/v1/loyalty/{program}/{action}", body)
    if as_json:
        dump(answer)
        return
    again = "" if answer["new"] else " (applied before under this op id: nothing moved again)"
    console.print(f"{answer['points']:+,} points; balance {answer['balance']:,}{again}")


@loyalty_app.command()
def burn(
    program: str = ProgramArgument,
    person: str = PersonArgument,
    points: int = typer.Argument(..., help="how many points to spend"),
    op_id: str = OpOption,
    brand: str = BrandOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Spend a member's points, oldest first; more than the balance is refused."""
    body = {"brand_id": brand, "person_id": person, "points": points, "op_id": op_id}
    _operate("burn", program, body, as_json, url, api_key)


@loyalty_app.command()
def adjust(
    program: str = ProgramArgument,
    person: str = PersonArgument,
    points: int = typer.Argument(..., help="signed: added (a lot that expires like earned points) or taken"),
    op_id: str = OpOption,
    note: str = typer.Option(None, "--note", help="why (kept with the operation)"),
    brand: str = BrandOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Add or take points by hand (customer service), with a note."""
    body = {"brand_id": brand, "person_id": person, "points": points, "op_id": op_id, "note": note}
    _operate("adjust", program, body, as_json, url, api_key)


@loyalty_app.command()
def convert(
    program: str = ProgramArgument,
    person: str = PersonArgument,
    points: int = typer.Argument(..., help="how many of the programme's points to convert"),
    to_program: str = typer.Option(..., "--to", help="the programme to convert into"),
    op_id: str = OpOption,
    brand: str = BrandOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Convert points into another programme the platform keeps, at the rate the programme states."""
    body = {"brand_id": brand, "person_id": person, "points": points, "op_id": op_id, "to_program": to_program}
    _operate("convert", program, body, as_json, url, api_key)
