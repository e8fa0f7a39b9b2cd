"""`cdp console`: the users `cdp serve` signs into the console (a local users file; Cognito's user pool on AWS)."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from cdp.errors import InvalidInputError
from cdp.org import ScopeRef
from cdp_local.console_users import ROLES, ConsoleUser, hash_password, load_users, save_users, users_file_path

console_app = typer.Typer(help="Console users of the local server (`cdp serve` signs them in at /).")
console = Console()
PASSWORD_ENV = "CDP_CONSOLE_PASSWORD"  # noqa: S105 - the variable's name: a script passes a password without a prompt

Role = StrEnum("Role", {name: name for name in ROLES})  # type: ignore[misc]
UsersOption = typer.Option(
    None,
    "--users",
    dir_okay=False,
    help="the users file (default: $CDP_CONSOLE_USERS_FILE, else ~/.cdp/console-users.json)",
)


@console_app.command("add-user")
def add_user(
    username: str = typer.Argument(..., help="what the user signs in with"),
    role: Role = typer.Option(Role("marketer"), help="scopes by role: " + "; ".join(ROLES)),  # noqa: B008
    scope: list[str] = typer.Option([], "--scope", help="a scope more (repeat), e.g. campaigns:approve"),
    brand: str | None = typer.Option(None, help="the brand the user works for (none: every brand)"),
    store: str | None = typer.Option(None, help="narrow the user to one store of the brand"),
    name: str = typer.Option("", help="the name the console shows"),
    locale: str = typer.Option("en", help="en or zh: the console's language for the user"),
    users: Path | None = UsersOption,
) -> None:
    """Add a console user (or replace one of that name); the password is asked for, or read from
    $CDP_CONSOLE_PASSWORD."""
    password = os.environ.get(PASSWORD_ENV) or typer.prompt("password", hide_input=True, confirmation_prompt=True)
    path = users_file_path(users)
    found = load_users(path)
    try:
        user = ConsoleUser(
            password=hash_password(password),
            name=name,
            locale=locale,
            scopes=sorted({*ROLES[str(role.value)], *scope}),
            scope=ScopeRef(brand_id=brand, store_id=store),
        )
    except (ValidationError, InvalidInputError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    found.users[username] = user
    save_users(path, found)
    console.print(
        f"[green]{username}[/green] can sign in at http://127.0.0.1:8787/ ({len(user.scopes)} scopes, {path})"
    )


@console_app.command("users")
def list_users(users: Path | None = UsersOption) -> None:
    """The console's users: their scopes and where in the org they may look."""
    path = users_file_path(users)
    table = Table("user", "name", "locale", "brand / store", "scopes", title=str(path))
    for username, user in sorted(load_users(path).users.items()):
        where = "/".join(p for p in (user.scope.brand_id, user.scope.store_id) if p) or "every brand"
        shown = f"{username} (disabled)" if user.disabled else username  # DELETE /v1/admin/console-users/{name}
        table.add_row(shown, user.name, user.locale, where, " ".join(user.scopes))
    console.print(table)
