"""Promotion rules for the checkout: which promotions a cart earns, and the combination it gets.

A promotion is "condition x benefit x restriction": spend (or quantity) on eligible lines, in a time window, at some
stores and channels, for some member levels or audiences; it gives an amount off (满减, once or for every multiple of
the threshold), a percentage off (capped), a gift (满赠), cashback (满返) or a trade-up (满换: an item at a special
price); it is exclusive (alone), in a mutually exclusive group, or stackable, and may be doubled on member days.

`evaluate` is pure: every promotion is checked against the cart (each one's benefit on the cart's eligible lines at
list price), then the combination chosen is the one that gives the customer the largest benefit, ties going to the
lower cost for the brand, then to the higher priorities; every promotion not in it says why. Discounts together never
exceed the cart's lines. A budget pool short of a promotion's cost makes it not apply; promotions sharing a pool share
what it has left. (Evaluation reads the pools; nothing debits them for promotions yet.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cdp.budgets.ledger import MAX_POOL_MINOR, PoolId
from cdp.ingest.events import Currency, Token, UtcDatetime

PromotionId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
Money = Annotated[int, Field(ge=0, le=MAX_POOL_MINOR)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Conditions(_Frozen):
    skus: list[Token] = Field(default_factory=list, max_length=1000, description="eligible products (empty: any)")
    categories: list[str] = Field(default_factory=list, max_length=200, description="eligible categories")
    min_amount_minor: Money = Field(default=0, description="spend on eligible lines needed")
    min_quantity: int = Field(default=0, ge=0, le=10_000, description="eligible items needed")
    starts_at: UtcDatetime | None = None
    ends_at: UtcDatetime | None = None
    stores: list[Token] = Field(default_factory=list, max_length=5000)
    regions: list[str] = Field(default_factory=list, max_length=100, description="cities or provinces of the store")
    channels: list[str] = Field(default_factory=list, max_length=20, description="e.g. pos, mini_program, tmall")
    member_levels: list[str] = Field(default_factory=list, max_length=20)
    audiences: list[str] = Field(default_factory=list, max_length=20, description="any of these dynamic audiences")


class GiftBenefit(_Frozen):
    sku: Token
    name: str = Field(min_length=1, max_length=200)
    value_minor: Money = Field(description="what the customer would pay for it")
    cost_minor: Money = Field(description="what it costs the brand")


class TradeUp(_Frozen):
    sku: Token
    name: str = Field(min_length=1, max_length=200)
    price_minor: Money = Field(description="the special price")
    value_minor: Money = Field(description="its list price")


class Benefit(_Frozen):
    amount_off_minor: Money | None = None
    every: bool = Field(default=False, description="amount off for every multiple of the threshold (每满减)")
    max_times: int | None = Field(default=None, ge=1, le=100, description="at most this many multiples")
    percent_off: int | None = Field(default=None, ge=1, le=100)
    max_discount_minor: Money | None = None
    gift: GiftBenefit | None = None
    cashback_minor: Money | None = None
    cashback_percent: int | None = Field(default=None, ge=1, le=100)
    trade_up: TradeUp | None = None

    @model_validator(mode="after")
    def _one(self) -> Benefit:
        given = [
            k
            for k in ("amount_off_minor", "percent_off", "gift", "cashback_minor", "cashback_percent", "trade_up")
            if getattr(self, k) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "a benefit is exactly one of amount_off_minor, percent_off, gift, cashback_minor, cashback_percent "
                "or trade_up"
            )
        if self.every and self.amount_off_minor is None:
            raise ValueError("`every` repeats an amount off")
        if self.max_discount_minor is not None and self.percent_off is None:
            raise ValueError("max_discount_minor caps a percentage off")
        return self


class MemberDays(_Frozen):
    """Days the benefit is doubled (in the brand's time zone): weekdays 1-7 (Monday 1) and days of the month."""

    weekdays: list[Annotated[int, Field(ge=1, le=7)]] = Field(default_factory=list, max_length=7)
    month_days: list[Annotated[int, Field(ge=1, le=31)]] = Field(default_factory=list, max_length=31)

    def holds(self, local: datetime) -> bool:
        return local.isoweekday() in self.weekdays or local.day in self.month_days


class Promotion(_Frozen):
    brand_id: Token
    promotion_id: PromotionId
    name: str = Field(min_length=1, max_length=200)
    currency: Currency
    when: Conditions = Field(default_factory=Conditions)
    benefit: Benefit
    exclusive: bool = Field(default=False, description="applies alone, never with another promotion")
    group: str | None = Field(default=None, max_length=64, description="at most one promotion of a group applies")
    doubled_on: MemberDays | None = Field(default=None, description="member days: the benefit counts twice")
    priority: int = Field(default=0, ge=-1000, le=1000, description="breaks ties (higher first)")
    budget_pool: PoolId | None = Field(default=None, description="the pool its cost comes from")

    @model_validator(mode="after")
    def _threshold(self) -> Promotion:
        if self.benefit.every and not self.when.min_amount_minor:
            raise ValueError("`every` needs when.min_amount_minor (the multiple)")
        if self.when.starts_at and self.when.ends_at and self.when.ends_at <= self.when.starts_at:
            raise ValueError("when.ends_at is not after when.starts_at")
        return self


class CartLine(_Frozen):
    sku: Token
    category: str | None = Field(default=None, max_length=100)
    unit_price_minor: Money
    quantity: int = Field(ge=1, le=10_000)

    @property
    def amount_minor(self) -> int:
        return self.unit_price_minor * self.quantity


class Cart(_Frozen):
    """What the checkout asks about: the lines at list price, where and when, and who is buying."""

    brand_id: Token
    currency: Currency
    lines: list[CartLine] = Field(min_length=1, max_length=500)
    store_id: Token | None = None
    region: str | None = Field(default=None, max_length=100)
    channel: str | None = Field(default=None, max_length=32)
    at: UtcDatetime | None = Field(default=None, description="the order's time (default: now)")
    member_level: str | None = Field(default=None, max_length=32)
    audiences: list[str] = Field(default_factory=list, max_length=200, description="the person's dynamic audiences")
    person_id: str | None = Field(default=None, max_length=128, description="read for level and audiences")


class Applied(_Frozen):
    promotion_id: str
    name: str
    discount_minor: int = 0
    cashback_minor: int = 0
    gift: GiftBenefit | None = None
    trade_up: TradeUp | None = None
    doubled: bool = False
    customer_benefit_minor: int = Field(description="discount + cashback + gift value + trade-up saving")
    brand_cost_minor: int = Field(description="discount + cashback + gift cost + trade-up saving")


class NotApplied(_Frozen):
    promotion_id: str
    reason: str


class Evaluation(_Frozen):
    lines_total_minor: int
    discount_minor: int
    payable_minor: int
    cashback_minor: int
    customer_benefit_minor: int
    brand_cost_minor: int
    currency: str
    applied: list[Applied]
    not_applied: list[NotApplied]


def _money(minor: int, currency: str) -> str:
    return f"{minor / 100:,.2f} {currency}"


def _eligible(promotion: Promotion, cart: Cart) -> list[CartLine]:
    when = promotion.when
    if not when.skus and not when.categories:
        return list(cart.lines)
    return [line for line in cart.lines if line.sku in when.skus or (line.category in when.categories)]


def _refusal(promotion: Promotion, cart: Cart, at: datetime) -> str | None:
    when, currency = promotion.when, promotion.currency
    if promotion.brand_id != cart.brand_id or currency != cart.currency:
        return f"a promotion of {promotion.brand_id} in {currency}"
    if when.starts_at and at < when.starts_at:
        return f"starts {when.starts_at.isoformat()}"
    if when.ends_at and at >= when.ends_at:
        return f"ended {when.ends_at.isoformat()}"
    if when.stores and cart.store_id not in when.stores:
        return f"not at store {cart.store_id or '(none given)'}"
    if when.regions and cart.region not in when.regions:
        return f"not in region {cart.region or '(none given)'}"
    if when.channels and cart.channel not in when.channels:
        return f"not on channel {cart.channel or '(none given)'}"
    if when.member_levels and cart.member_level not in when.member_levels:
        return f"for members {', '.join(when.member_levels)}, not {cart.member_level or 'a guest'}"
    if when.audiences and not set(when.audiences) & set(cart.audiences):
        return f"for the audiences {', '.join(when.audiences)} only"
    lines = _eligible(promotion, cart)
    if not lines:
        return "no eligible line in the cart"
    spend = sum(line.amount_minor for line in lines)
    if spend < when.min_amount_minor:
        short = when.min_amount_minor - spend
        return (
            f"eligible lines come to {_money(spend, currency)}, {_money(short, currency)} short of "
            f"{_money(when.min_amount_minor, currency)}"
        )
    quantity = sum(line.quantity for line in lines)
    if quantity < when.min_quantity:
        return f"{quantity} eligible items, {when.min_quantity} needed"
    return None


def _benefit(promotion: Promotion, cart: Cart, local: datetime) -> Applied:
    b, lines = promotion.benefit, _eligible(promotion, cart)
    spend = sum(line.amount_minor for line in lines)
    doubled = promotion.doubled_on is not None and promotion.doubled_on.holds(local)
    factor = 2 if doubled else 1
    discount = cashback = 0
    gift_value = gift_cost = trade = 0
    if b.amount_off_minor is not None:
        times = 1
        if b.every and promotion.when.min_amount_minor:
            times = spend // promotion.when.min_amount_minor
            times = min(times, b.max_times) if b.max_times else times
        discount = b.amount_off_minor * times * factor
    elif b.percent_off is not None:
        discount = spend * b.percent_off * factor // 100
        if b.max_discount_minor is not None:
            discount = min(discount, b.max_discount_minor * factor)
    elif b.cashback_minor is not None:
        cashback = b.cashback_minor * factor
    elif b.cashback_percent is not None:
        cashback = spend * b.cashback_percent * factor // 100
    elif b.gift is not None:
        gift_value, gift_cost = b.gift.value_minor * factor, b.gift.cost_minor * factor
    elif b.trade_up is not None:
        trade = max(b.trade_up.value_minor - b.trade_up.price_minor, 0)
    discount = min(discount, spend)
    return Applied(
        promotion_id=promotion.promotion_id,
        name=promotion.name,
        discount_minor=discount,
        cashback_minor=cashback,
        gift=b.gift,
        trade_up=b.trade_up,
        doubled=doubled,
        customer_benefit_minor=discount + cashback + gift_value + trade,
        brand_cost_minor=discount + cashback + gift_cost + trade,
    )


def _compatible(chosen: Sequence[Promotion]) -> bool:
    if len(chosen) > 1 and any(p.exclusive for p in chosen):
        return False
    groups = [p.group for p in chosen if p.group]
    return len(groups) == len(set(groups))


def evaluate(
    cart: Cart,
    promotions: Sequence[Promotion],
    zone: ZoneInfo,
    at: datetime,
    budgets: Mapping[str, int] | None = None,
) -> Evaluation:
    """The promotions the cart earns and the combination chosen (see the module); `budgets`: each pool's available
    minor units (a pool missing from it is not checked)."""
    local = at.astimezone(zone)
    candidates: list[tuple[Promotion, Applied]] = []
    refused: list[NotApplied] = []
    for promotion in sorted(promotions, key=lambda p: p.promotion_id):
        why = _refusal(promotion, cart, at)
        if why is None:
            applied = _benefit(promotion, cart, local)
            pool = promotion.budget_pool
            left = (budgets or {}).get(pool) if pool else None
            if applied.customer_benefit_minor == 0:
                why = "gives nothing on this cart"
            elif left is not None and left < applied.brand_cost_minor:
                why = (
                    f"budget pool {pool} has {_money(left, promotion.currency)} left, it would cost "
                    f"{_money(applied.brand_cost_minor, promotion.currency)}"
                )
            else:
                candidates.append((promotion, applied))
                continue
        refused.append(NotApplied(promotion_id=promotion.promotion_id, reason=why))
    best = _best(cart, candidates, budgets)
    chosen_ids = {a.promotion_id for a in best}
    by_id = {p.promotion_id: p for p, _ in candidates}
    for promotion, applied in candidates:
        if applied.promotion_id not in chosen_ids:
            why = _left_out(promotion, best, by_id)
            refused.append(NotApplied(promotion_id=promotion.promotion_id, reason=why))
    lines_total = sum(line.amount_minor for line in cart.lines)
    discount = min(sum(a.discount_minor for a in best), lines_total)
    return Evaluation(
        lines_total_minor=lines_total,
        discount_minor=discount,
        payable_minor=lines_total - discount,
        cashback_minor=sum(a.cashback_minor for a in best),
        customer_benefit_minor=sum(a.customer_benefit_minor for a in best),
        brand_cost_minor=sum(a.brand_cost_minor for a in best),
        currency=cart.currency,
        applied=best,
        not_applied=sorted(refused, key=lambda r: r.promotion_id),
    )


def _within_budgets(
    chosen: Sequence[tuple[Promotion, Applied]], budgets: Mapping[str, int] | None
) -> list[tuple[Promotion, Applied]]:
    """The promotions whose pools cover them together, the largest benefits first (two promotions on one pool share
    what it has left)."""
    left = dict(budgets or {})
    kept = []
    for promotion, applied in sorted(chosen, key=lambda c: (-c[1].customer_benefit_minor, c[0].promotion_id)):
        pool = promotion.budget_pool
        if pool is not None and pool in left:
            if left[pool] < applied.brand_cost_minor:
                continue
            left[pool] -= applied.brand_cost_minor
        kept.append((promotion, applied))
    return kept


def _best(
    cart: Cart, candidates: Sequence[tuple[Promotion, Applied]], budgets: Mapping[str, int] | None = None
) -> list[Applied]:
    """The compatible combination with the largest customer benefit; ties: the lower brand cost, then the higher
    priorities (summed), then fewer promotions, then the promotion ids (never the catalog's order).

    Benefits add up, so the only combinations that can win are: every stackable promotion with the best one of each
    group, or one exclusive promotion alone. Linear in the promotions, whatever the catalog's size."""
    lines_total = sum(line.amount_minor for line in cart.lines)

    def key(combo: Sequence[tuple[Promotion, Applied]]) -> tuple[int, int, int, int, tuple[str, ...]]:
        applied = [a for _, a in combo]
        over = max(sum(a.discount_minor for a in applied) - lines_total, 0)  # discounts never pass the lines
        benefit = sum(a.customer_benefit_minor for a in applied) - over
        cost = sum(a.brand_cost_minor for a in applied) - over
        ids = tuple(sorted(a.promotion_id for a in applied))
        return (benefit, -cost, sum(p.priority for p, _ in combo), -len(combo), ids)

    stackable: list[tuple[Promotion, Applied]] = []
    groups: dict[str, list[tuple[Promotion, Applied]]] = {}
    options: list[list[tuple[Promotion, Applied]]] = []
    for candidate in candidates:
        promotion = candidate[0]
        if promotion.exclusive:
            options.append([candidate])
        elif promotion.group:
            groups.setdefault(promotion.group, []).append(candidate)
        else:
            stackable.append(candidate)
    together = stackable + [max(members, key=lambda c: key([c])) for members in groups.values()]
    together = _within_budgets(together, budgets)
    if together:
        options.append(together)
    if not options:
        return []
    best = max(options, key=key)
    return sorted((a for _, a in best), key=lambda a: a.promotion_id)


def _left_out(promotion: Promotion, chosen: Sequence[Applied], by_id: Mapping[str, Promotion]) -> str:
    """Why a promotion the cart earned is not in the chosen combination."""
    names = ", ".join(a.promotion_id for a in chosen)
    rivals = [a.promotion_id for a in chosen if promotion.group and by_id[a.promotion_id].group == promotion.group]
    if promotion.exclusive:
        return f"exclusive (it combines with nothing): {names} give more"
    if rivals:
        return f"one promotion of group {promotion.group} applies: {rivals[0]} gives more"
    if promotion.budget_pool is not None and any(
        by_id[a.promotion_id].budget_pool == promotion.budget_pool for a in chosen
    ):
        return f"budget pool {promotion.budget_pool} does not cover it beside {names}"
    if len(chosen) == 1 and by_id[chosen[0].promotion_id].exclusive:
        return f"{chosen[0].promotion_id} is exclusive and gives more alone"
    return f"{names} give more (or cost the brand less for the same)"
