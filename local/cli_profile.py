"""`cdp profile ...`: the 360-degree profile API of a running `cdp serve` (or any deployment), over HTTP.

`ApiCaller` is shared with the identity operations in `cdp_local.cli_identity`. Keys: `--api-key`, else
$CDP_ADMIN_API_KEY (which also names the runtime's administrator key), else $CDP_API_KEY, else the local administrator
key the runtime seeds (see the README's profile API section).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote, urlencode

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cdp_local.runtime.environment import ADMIN_API_KEY, ADMIN_API_KEY_ENV, API_KEY_ENV

profile_app = typer.Typer(help="The 360-degree profile over the HTTP API: show, timeline, edit, erase, export.")
console = Console()

DEFAULT_URL = "http://127.0.0.1:8787"
SCOPED_TYPES = ("wechat_openid", "platform_buyer_id")
TIMEOUT_S = 60.0

UrlOption = typer.Option(DEFAULT_URL, "--url", envvar="CDP_URL", help="base URL of the API (cdp serve)")
KeyOption = typer.Option(
    ADMIN_API_KEY,
    "--api-key",
    envvar=[ADMIN_API_KEY_ENV, API_KEY_ENV],
    help="API key (default: $CDP_ADMIN_API_KEY, $CDP_API_KEY, else the local administrator key)",
)
JsonOption = typer.Option(False, "--json", help="print the raw JSON answer")
ScopeOption = typer.Option(None, "--scope", help="narrow the view within the key's scope, e.g. store:sh01")


@dataclass(frozen=True)
class ApiCaller:
    """A small JSON-over-HTTP client (standard library only); any non-2xx answer exits with its message."""

    url: str
    api_key: str

    def call(self, method: str, path: str, body: Any = None, query: dict[str, str | None] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        return json.loads(self.send(method, path, data, query) or b"null")

    def send(
        self,
        method: str,
        path: str,
        data: bytes | None = None,
        query: dict[str, str | None] | None = None,
        content_type: str = "application/json",
    ) -> bytes:
        """One request with a raw body; the raw answer (`call` is this with JSON both ways)."""
        params = {k: v for k, v in (query or {}).items() if v is not None}
        target = self.url.rstrip("/") + path + (f"?{urlencode(params)}" if params else "")
        request = urllib.request.Request(  # noqa: S310 - the URL is the operator's own API
            target,
            data=data,
            method=method,
            headers={"x-api-key": self.api_key, "content-type": content_type, "accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as exc:
            _fail(exc.code, exc.read())
        except urllib.error.URLError as exc:
            console.print(f"[red]cannot reach {self.url}:[/red] {exc.reason} (is `cdp serve` running?)")
            raise typer.Exit(code=2) from exc


def _fail(status: int, raw: bytes) -> NoReturn:
    try:
        body = json.loads(raw or b"{}")
    except json.JSONDecodeError:
        body = {"message": raw.decode(errors="replace")}
    field = f" (field: {escape(str(body['field']))})" if body.get("field") else ""
    console.print(f"[red]{status} {body.get('error', 'error')}[/red]{field}: {escape(str(body.get('message', '')))}")
    for problem in body.get("errors") or []:  # a 422: every problem with its field path
        if isinstance(problem, dict) and problem.get("field"):
            console.print(f"  {escape(str(problem['field']))}: {escape(str(problem.get('message', '')))}")
    raise typer.Exit(code=1)


def segment(value: str) -> str:
    """One URL path segment (a phone's + or an e-mail's @ travel percent-encoded)."""
    return quote(value, safe="")


def split_identifier(text: str, scope: str | None = None) -> tuple[str, str, str | None]:
    """`type:value` (as identifiers print, e.g. phone:+8613800138000) -> (type, value, scope). A scoped type may
    carry its scope as `type:scope:value`, the key form."""
    kind, sep, value = text.partition(":")
    if not sep or not value:
        console.print(f"[red]identifier must be type:value, e.g. phone:13800138000; got {text!r}[/red]")
        raise typer.Exit(code=2)
    if kind in SCOPED_TYPES and scope is None and ":" in value:
        scope, _, value = value.partition(":")
    return kind, value, scope


def dump(data: Any) -> None:
    """`--json`: the answer as plain JSON on stdout (no colours, no wrapping), so it pipes into jq or python."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


# ---- show ---------------------------------------------------------------------------------------------------------


@profile_app.command()
def show(
    person_id: str | None = typer.Argument(None, help="the person id (or use --identifier)"),
    identifier: str | None = typer.Option(None, "--identifier", "-i", help="type:value, e.g. phone:13800138000"),
    brand: str | None = typer.Option(None, "--brand", help="the brand of --identifier (else the key's brand)"),
    identifier_scope: str | None = typer.Option(None, "--identifier-scope", help="WeChat app / platform"),
    scope: str | None = ScopeOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """The 360-degree profile: identity, traits, loyalty, orders, returns, reviews, messages, tags, history."""
    api = ApiCaller(url, api_key)
    if identifier:
        kind, value, id_scope = split_identifier(identifier, identifier_scope)
        path = f"/v1/profiles/by-identifier/{segment(kind)}/{segment(value)}"
        view = api.call("GET", path, query={"brand_id": brand, "identifier_scope": id_scope, "scope": scope})
    elif person_id:
        view = api.call("GET", f"/v1/profiles/{segment(person_id)}", query={"scope": scope})
    else:
        console.print("[red]give a person id or --identifier type:value[/red]")
        raise typer.Exit(code=2)
    if as_json:
        dump(view)
    else:
        print_profile(view)


def _table(title: str, *columns: str) -> Table:
    table = Table(title=escape(title), title_justify="left", show_header=True)
    for column in columns:
        table.add_column(column)
    return table


def _row(table: Table, *cells: object) -> None:
    """Add a row of data: values are escaped, so a `[` in a name is shown, not read as rich markup."""
    table.add_row(*(escape("" if c is None else str(c)) for c in cells))


def _money(minor: int | None, currency: str | None) -> str:
    return "-" if minor is None else f"{minor / 100:,.2f} {currency or ''}".strip()


def print_profile(view: dict[str, Any]) -> None:
    merged = f" [yellow](asked for {view['requested_id']}, merged into this person)[/yellow]" if view.get(
        "merged_away"
    ) else ""  # fmt: skip
    console.print(
        f"[bold]person {view['person_id']}[/bold]{merged}  brand {view['brand_id']}  view {view['view_scope']}"
    )
    if view.get("over_limit"):
        console.print(f"[yellow]over the identifier limits: {', '.join(view['over_limit'])}[/yellow]")
    ids = _table("identifiers", "type", "value", "scope")
    for ident in view["identifiers"]:
        _row(ids, ident["type"], ident["value"], ident.get("scope") or "")
    console.print(ids)
    traits = _table("traits", "trait", "value", "all values (newest first)")
    for name, value in view["traits"].items():
        if value is not None or name in view["trait_values"]:
            _row(traits, name, str(value), " | ".join(view["trait_values"].get(name, [])))
    console.print(traits)
    _print_loyalty(view["loyalty"])
    act = view["activity"]
    console.print(
        f"activity: {act['event_count']} events, {act['order_count']} orders, {act['return_count']} returns, "
        f"net spend {_money(act['net_spend_minor'], act['currency'])}, last seen {act['last_seen_at'] or '-'}"
    )
    _print_orders(view)
    if view["messages"]:
        messages = _table("messages sent", "sent at", "channel", "campaign", "step", "status")
        for m in view["messages"]:
            _row(messages, m["sent_at"], m["channel"], m["campaign_id"], m["step"], m["status"])
        console.print(messages)
    tags = ", ".join(f"{k}={v['value']}" for k, v in view["tags"].items()) or "-"
    scores = ", ".join(f"{k}={v['score']:.3f}" for k, v in view["scores"].items()) or "-"
    consent = ", ".join(f"{k}={'yes' if v['granted'] else 'no'}" for k, v in view["consent"].items()) or "-"
    console.print(escape(f"tags: {tags}\nscores: {scores}\nconsent: {consent}"))
    _print_history(view)


def _print_loyalty(loyalty: dict[str, Any]) -> None:
    benefits = escape(", ".join(loyalty["active_benefits"]) or "-")
    console.print(
        f"member level: [bold]{escape(loyalty['member_level'] or '-')}[/bold] ({loyalty['level_rule']}); "
        f"brand points: [bold]{loyalty['brand_points']}[/bold]; benefits: {benefits}"
    )
    if loyalty["points"]:
        points = _table("points by program", "program", "points", "rate", "brand points")
        for p in loyalty["points"]:
            rate = f"{p['points_per_brand_point']}:1"
            _row(points, p["program"], str(p["points"]), rate, str(p["brand_points"]))
        console.print(points)
    if loyalty["cards"]:
        cards = _table("cards (each its own balance)", "card", "kind", "balance", "last change")
        for c in loyalty["cards"]:
            _row(cards, c["card_id"], c["kind"], _money(c["balance_minor"], c["currency"]), c["last_change_at"] or "")
        console.print(cards)


def _print_orders(view: dict[str, Any]) -> None:
    for kind in ("online", "offline"):
        orders = view["orders"][kind]
        if orders:
            table = _table(f"{kind} orders", "at", "order", "store", "total")
            for o in orders:
                _row(
                    table, o["occurred_at"], o["order_id"], o["store_id"] or "", _money(o["total_minor"], o["currency"])
                )
            console.print(table)
    if view["returns"]:
        returns = _table("returns", "at", "order", "refund", "reason")
        for r in view["returns"]:
            _row(returns, r["occurred_at"], r["order_id"], _money(r["refund_minor"], r["currency"]), r["reason"] or "")
        console.print(returns)
    if view["reviews"]:
        reviews = _table("reviews", "at", "sku", "rating", "text")
        for r in view["reviews"]:
            _row(reviews, r["occurred_at"], r["sku"], str(r["rating"]), (r["text"] or "")[:60])
        console.print(reviews)


def _print_history(view: dict[str, Any]) -> None:
    if view["merge_history"]:
        history = _table("merge history", "at", "kind", "by", "rule", "identifiers")
        for h in view["merge_history"]:
            _row(history, h["at"], h["kind"], h["actor"] or "rules", h["rule"], ", ".join(h["identifiers"]))
        console.print(history)
    if view["edits"]:
        edits = _table("edits", "at", "by", "changes", "reason")
        for e in view["edits"]:
            changes = {**e["traits"], **{f"consent.{k}": v for k, v in e["consent"].items()}}
            _row(edits, e["at"], e["actor"], json.dumps(changes, ensure_ascii=False), e.get("reason") or "")
        console.print(edits)


# ---- timeline -----------------------------------------------------------------------------------------------------


@profile_app.command()
def timeline(
    person_id: str = typer.Argument(..., help="the person id"),
    limit: int = typer.Option(20, min=1, max=200, help="events per page"),
    cursor: str | None = typer.Option(None, help="the next_cursor of the previous page"),
    scope: str | None = ScopeOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """One page of the person's events, newest first (prints the cursor of the next page)."""
    page = ApiCaller(url, api_key).call(
        "GET",
        f"/v1/profiles/{segment(person_id)}/timeline",
        query={"limit": str(limit), "cursor": cursor, "scope": scope},
    )
    if as_json:
        dump(page)
        return
    table = _table(f"timeline of {page['person_id']} ({page['view_scope']})", "at", "type", "source", "store", "id")
    for entry in page["entries"]:
        e = entry["event"]
        _row(table, e["occurred_at"], e["event_type"], e["source"], e.get("store_id") or "", e["event_id"])
    console.print(table)
    console.print(f"next page: --cursor {page['next_cursor']}" if page["next_cursor"] else "(end of the timeline)")


# ---- edit, erase, export --------------------------------------------------------------------------------------------


def _pairs(values: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            console.print(f"[red]{what} must be name=value; got {item!r}[/red]")
            raise typer.Exit(code=2)
        out[name.strip()] = value.strip()
    return out


def _flag(channel: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "yes", "y", "1", "granted"):
        return True
    if lowered in ("false", "no", "n", "0", "withdrawn", "refused"):
        return False
    console.print(f"[red]consent {channel} must be true or false; got {value!r}[/red]")
    raise typer.Exit(code=2)


@profile_app.command()
def edit(
    person_id: str = typer.Argument(..., help="the person id"),
    set_: list[str] = typer.Option([], "--set", help="trait=value (name, gender, birthday, city, country, timezone)"),
    consent: list[str] = typer.Option([], "--consent", help="channel=true|false (sms, email, push, wechat, all)"),
    reason: str | None = typer.Option(None, help="why (kept in the audit entry)"),
    scope: str | None = ScopeOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Edit traits and marketing consent; the edit is an event on the timeline and an audit entry with its actor."""
    body: dict[str, Any] = {
        "traits": _pairs(set_, "--set"),
        "consent": {k: _flag(k, v) for k, v in _pairs(consent, "--consent").items()},
    }
    if reason:
        body["reason"] = reason
    result = ApiCaller(url, api_key).call(
        "PATCH", f"/v1/profiles/{segment(person_id)}", body=body, query={"scope": scope}
    )
    if as_json:
        dump(result)
        return
    e = result["edit"]
    console.print(
        f"[green]edit {e['edit_id']}[/green] by {e['actor']} at {e['at']}: events {', '.join(e['event_ids'])}"
    )
    if result["superseded"]:
        kept = escape(", ".join(result["superseded"]))
        console.print(f"[yellow]the brand's merge policy keeps another source's value for: {kept}[/yellow]")
    print_profile(result["profile"])


@profile_app.command()
def erase(
    person_id: str = typer.Argument(..., help="the person id"),
    yes: bool = typer.Option(False, "--yes", help="do not ask for confirmation"),
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Erase the person everywhere (identifiers suppressed against re-ingest) and print the receipt."""
    if not yes:
        typer.confirm(f"Erase {person_id} and everything held on them? This cannot be undone", abort=True)
    receipt = ApiCaller(url, api_key).call("DELETE", f"/v1/profiles/{segment(person_id)}")
    table = _table(f"erased {receipt['person_id']} at {receipt['erased_at']} by {receipt['actor']}", "what", "count")
    for name, count in receipt["counts"].items():
        _row(table, name, str(count))
    console.print(table)
    for kept in receipt.get("retained", []):
        console.print(f"kept: {kept['what']} - {kept['reason']}")


@profile_app.command()
def export(
    person_id: str = typer.Argument(..., help="the person id"),
    output: Path | None = typer.Option(None, "--output", "-o", help="write the JSON here (default: print it)"),
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Everything held on the person (subject access request), as JSON."""
    data = ApiCaller(url, api_key).call("GET", f"/v1/profiles/{segment(person_id)}/export")
    if output is None:
        dump(data)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    console.print(f"wrote [bold]{output}[/bold] ({len(data.get('events', []))} events)")
