"""`cdp offer ...` and `cdp budget ...`: the offer catalog, issuing to wallets and budget pools over the HTTP API of
a running `cdp serve` (or a deployment, with a key holding offers:read / offers:write / offers:issue)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from cdp_local.cli_audience import read_definition
from cdp_local.cli_profile import ApiCaller, JsonOption, KeyOption, UrlOption, console, dump, segment

offer_app = typer.Typer(help="Offers: coupons, red packets, points and gifts issued to members' wallets.")
budget_app = typer.Typer(help="Budget pools per campaign, form of offer and store: never overspent.")

BrandOption = typer.Option("demo-brand", "--brand", envvar="CDP_BRAND", help="the brand")
OfferArgument = typer.Argument(..., help="the offer id")


def _money(minor: int, currency: str) -> str:
    return f"{minor / 100:,.2f} {currency}"


def _print_offer(stored: dict[str, Any]) -> None:
    offer = stored["offer"]
    stock = f" of {offer['stock']:,}" if offer.get("stock") else ""
    console.print(
        f"[bold]{escape(offer['offer_id'])}[/bold] ({escape(offer['name'])}): {stored['status']}, "
        f"{stored['issued']:,}{stock} issued; at most {offer['per_person_limit']} per person"
        + (f"; {stored['codes_imported']:,} codes imported" if stored["codes_imported"] else "")
    )


@offer_app.command()
def define(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="the offer, .yaml/.yml or .json"),
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Define an offer (every problem with its field path when it is not valid)."""
    stored = ApiCaller(url, api_key).call("POST", "/v1/offers", read_definition(file))
    dump(stored) if as_json else _print_offer(stored)


@offer_app.command("list")
def list_offers(
    brand: str = BrandOption, as_json: bool = JsonOption, url: str = UrlOption, api_key: str = KeyOption
) -> None:
    """The brand's offers and how many of each were issued."""
    answer = ApiCaller(url, api_key).call("GET", "/v1/offers", query={"brand_id": brand})
    if as_json:
        dump(answer)
        return
    table = Table(title=f"offers of {escape(brand)}", title_justify="left")
    for column in ("offer", "kind", "status", "issued", "stock", "per person", "cost"):
        table.add_column(column)
    for stored in answer["offers"]:
        offer = stored["offer"]
        kind = next(k for k in ("coupon", "red_packet", "points", "gift") if offer.get(k))
        cost = offer.get("unit_cost_minor")
        table.add_row(
            escape(offer["offer_id"]),
            kind,
            stored["status"],
            f"{stored['issued']:,}",
            f"{offer['stock']:,}" if offer.get("stock") else "-",
            str(offer["per_person_limit"]),
            _money(cost, offer["currency"]) if cost is not None else "-",
        )
    console.print(table)


@offer_app.command()
def show(
    offer_id: str = OfferArgument,
    brand: str = BrandOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """One offer."""
    stored = ApiCaller(url, api_key).call("GET", f"/v1/offers/{segment(offer_id)}", query={"brand_id": brand})
    dump(stored) if as_json else _print_offer(stored)


@offer_app.command()
def retire(
    offer_id: str = OfferArgument, brand: str = BrandOption, url: str = UrlOption, api_key: str = KeyOption
) -> None:
    """Issue no more of an offer (issued ones stay valid)."""
    _print_offer(
        ApiCaller(url, api_key).call("POST", f"/v1/offers/{segment(offer_id)}/retire", query={"brand_id": brand})
    )


@offer_app.command("import-codes")
def import_codes(
    offer_id: str = OfferArgument,
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="one code per line"),
    brand: str = BrandOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Import the codes of an offer whose codes come from another system (POS, a platform)."""
    codes = [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    path = f"/v1/offers/{segment(offer_id)}/codes"
    _print_offer(ApiCaller(url, api_key).call("POST", path, {"codes": codes}, query={"brand_id": brand}))


@offer_app.command()
def issue(
    offer_id: str = OfferArgument,
    person: str | None = typer.Option(None, "--person", help="the person id"),
    phone: str | None = typer.Option(None, "--phone", help="or the person's phone"),
    issue_id: str | None = typer.Option(None, "--issue-id", help="names the issue: sent again, the same issue"),
    brand: str = BrandOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Issue an offer to a person's wallet: a code, a budget hold and a coupon_issued event on their timeline."""
    caller = ApiCaller(url, api_key)
    person = _person_of(caller, person, phone, brand)
    body = {"person_id": person, **({"issue_id": issue_id} if issue_id else {})}
    result = caller.call("POST", f"/v1/offers/{segment(offer_id)}/issue", body, query={"brand_id": brand})
    if as_json:
        dump(result)
        return
    entry = result["entry"]
    code = f" code {entry['code']}" if entry.get("code") else ""
    again = "" if result["new"] else " (issued before under this issue id)"
    console.print(
        f"issued {escape(entry['offer_id'])} to {escape(entry['person_id'])}{code}, valid until "
        f"{entry['valid_until']}{again}"
    )
    payout = result.get("payout")
    if payout:
        what = "red packet" if entry["kind"] == "red_packet" else f"{payout.get('provider') or 'external'} coupon"
        note = f" ({escape(payout['message'])})" if payout.get("message") else ""
        console.print(f"{what}: {payout['status']}{note}")


@offer_app.command("claim-link")
def claim_link(
    offer_id: str = OfferArgument,
    person: str | None = typer.Option(None, "--person", help="the person id"),
    phone: str | None = typer.Option(None, "--phone", help="or the person's phone"),
    ref: str | None = typer.Option(None, "--ref", help="names the claim (links with one ref claim one entry)"),
    days: int = typer.Option(7, "--days", help="how long the link works (1-90)"),
    brand: str = BrandOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """A link the person claims the offer from, on a small page of the API (signed; it expires; claimed once)."""
    caller = ApiCaller(url, api_key)
    person_id = _person_of(caller, person, phone, brand)
    body: dict[str, Any] = {"person_id": person_id, "valid_days": days, **({"ref": ref} if ref else {})}
    link = caller.call("POST", f"/v1/offers/{segment(offer_id)}/claim-links", body, query={"brand_id": brand})
    if as_json:
        dump(link)
        return
    where = link.get("url") or f"{url.rstrip('/')}{link['path']}"
    console.print(
        f"claim link for {escape(link['person_id'])} to claim {escape(link['offer_id'])} "
        f"(until {link['expires_at']}, issue id {escape(link['issue_id'])}):"
    )
    console.print(where, markup=False, soft_wrap=True)


def _person_of(caller: ApiCaller, person: str | None, phone: str | None, brand: str) -> str:
    if (person is None) == (phone is None):
        console.print("[red]name the person: --person or --phone[/red]")
        raise typer.Exit(code=2)
    if phone is not None:
        found = caller.call("GET", f"/v1/profiles/by-identifier/phone/{segment(phone)}", query={"brand_id": brand})
        return str(found["person_id"])
    return str(person)


@offer_app.command()
def wallet(
    person: str = typer.Argument(..., help="the person id"),
    brand: str = BrandOption,
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """A person's wallet: every offer issued to them, issued, redeemed or expired."""
    answer = ApiCaller(url, api_key).call("GET", f"/v1/wallets/{segment(person)}", query={"brand_id": brand})
    if as_json:
        dump(answer)
        return
    table = Table(title=f"wallet of {escape(answer['person_id'])}", title_justify="left")
    for column in ("offer", "code", "state", "issued", "valid until", "order", "discount"):
        table.add_column(column)
    for entry in answer["entries"]:
        discount = entry.get("discount_minor")
        table.add_row(
            escape(entry["offer_id"]),
            escape(entry.get("code") or "-"),
            entry["state"],
            entry["issued_at"][:16],
            entry["valid_until"][:16],
            escape(entry.get("order_id") or "-"),
            _money(discount, entry["currency"]) if discount is not None else "-",
        )
    console.print(table)


# ---- budget pools ------------------------------------------------------------------------------------------------


@budget_app.command("define")
def define_pool(
    pool_id: str = typer.Argument(..., help="the pool id, e.g. xmas-coupons"),
    total: int = typer.Option(..., "--total", help="the pool in minor units (fen, cents)"),
    currency: str = typer.Option("CNY", "--currency"),
    campaign: str | None = typer.Option(None, "--campaign", help="the campaign it pays for"),
    form: str | None = typer.Option(None, "--form", help="coupon, red_packet, points, gift or message"),
    store: str | None = typer.Option(None, "--store", help="the store or dealer it belongs to"),
    brand: str = BrandOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Define a budget pool."""
    body: dict[str, Any] = {"brand_id": brand, "pool_id": pool_id, "total_minor": total, "currency": currency}
    body |= {k: v for k, v in (("campaign_id", campaign), ("form", form), ("store_id", store)) if v}
    _print_pool(ApiCaller(url, api_key).call("POST", "/v1/budgets", body))


@budget_app.command("list")
def list_pools(
    brand: str = BrandOption, as_json: bool = JsonOption, url: str = UrlOption, api_key: str = KeyOption
) -> None:
    """The brand's pools: available, reserved (held for issued offers) and committed (spent)."""
    answer = ApiCaller(url, api_key).call("GET", "/v1/budgets", query={"brand_id": brand})
    if as_json:
        dump(answer)
        return
    for balance in answer["pools"]:
        _print_pool(balance)


@budget_app.command("top-up")
def top_up(
    pool_id: str = typer.Argument(..., help="the pool id"),
    amount: int = typer.Argument(..., help="minor units to add"),
    op_id: str = typer.Option(..., "--op-id", help="names the top-up: sent again, it counts once"),
    brand: str = BrandOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Add to a pool, once per --op-id."""
    path = f"/v1/budgets/{segment(pool_id)}/top-up"
    _print_pool(
        ApiCaller(url, api_key).call("POST", path, {"amount_minor": amount, "op_id": op_id}, {"brand_id": brand})
    )


def _print_pool(balance: dict[str, Any]) -> None:
    pool = balance["pool"]
    currency = pool["currency"]
    total = balance["available_minor"] + balance["reserved_minor"] + balance["committed_minor"]
    console.print(
        f"[bold]{escape(pool['pool_id'])}[/bold]: {_money(balance['available_minor'], currency)} available of "
        f"{_money(total, currency)}; {_money(balance['reserved_minor'], currency)} reserved, "
        f"{_money(balance['committed_minor'], currency)} spent"
    )


# ---- checkout promotions -----------------------------------------------------------------------------------------

promotion_app = typer.Typer(help="Checkout promotions: 满减, 满赠, 满返, 满换; evaluate a cart.")


@promotion_app.command("define")
def define_promotions(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="one promotion, or `promotions:` with shared fields"
    ),
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Define promotions (a new one, or the new rules of one): a file of one, or of `promotions:` sharing its other
    fields (brand_id, currency)."""
    raw = read_definition(file)
    items = raw.pop("promotions", None)
    caller = ApiCaller(url, api_key)
    for item in items if isinstance(items, list) else [raw]:
        stored = caller.call("POST", "/v1/promotions", {**raw, **item} if items else item)
        console.print(f"defined {escape(stored['promotion_id'])} ({escape(stored['name'])})")


@promotion_app.command("list")
def list_promotions(
    brand: str = BrandOption, as_json: bool = JsonOption, url: str = UrlOption, api_key: str = KeyOption
) -> None:
    """The brand's checkout promotions."""
    answer = ApiCaller(url, api_key).call("GET", "/v1/promotions", query={"brand_id": brand})
    if as_json:
        dump(answer)
        return
    for promotion in answer["promotions"]:
        stacking = (
            "exclusive" if promotion["exclusive"] else f"group {promotion['group']}" if promotion["group"] else ""
        )
        console.print(f"{escape(promotion['promotion_id'])}: {escape(promotion['name'])} {stacking}".rstrip())


@promotion_app.command("evaluate")
def evaluate_cart(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="a cart, .json or .yaml (or a sample: its `cart`)"
    ),
    as_json: bool = JsonOption,
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """What a cart earns: the combination applied, what it pays, and why each other promotion does not apply."""
    raw = read_definition(file)
    answer = ApiCaller(url, api_key).call("POST", "/v1/promotions/evaluate", raw.get("cart", raw))
    if as_json:
        dump(answer)
        return
    currency = answer["currency"]
    for applied in answer["applied"]:
        parts = [f"{_money(applied['discount_minor'], currency)} off"] if applied["discount_minor"] else []
        parts += [f"{_money(applied['cashback_minor'], currency)} back"] if applied["cashback_minor"] else []
        parts += [f"gift {applied['gift']['name']}"] if applied.get("gift") else []
        parts += (
            [f"{applied['trade_up']['name']} for {_money(applied['trade_up']['price_minor'], currency)}"]
            if applied.get("trade_up")
            else []
        )
        doubled = " (member day: doubled)" if applied["doubled"] else ""
        console.print(f"[green]applied[/green] {escape(applied['promotion_id'])}: {escape(', '.join(parts))}{doubled}")
    for refused in answer["not_applied"]:
        console.print(f"not applied {escape(refused['promotion_id'])}: {escape(refused['reason'])}")
    console.print(
        f"lines {_money(answer['lines_total_minor'], currency)}, pays {_money(answer['payable_minor'], currency)}"
    )
