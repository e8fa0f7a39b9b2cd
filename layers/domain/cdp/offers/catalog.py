"""The offer catalog: what a campaign or the API can issue to a member's account, with what it costs the brand.

- `coupon`: an amount or a percentage off (capped), above a threshold, on eligible products, categories, stores and
  channels; codes generated (unique, random), imported, or issued by an external coupon system (WeChat Pay's cash
  coupons) as each one is issued.
- `red_packet`: cash into the member's account.
- `points`: points of a programme.
- `gift`: a product given away.

Every offer says how long an issued one is valid (until a date, or N days after issue), how many may be issued in
all (`stock`) and per person, its unit cost (what one redeemed offer costs the brand, for budgets and ROI) and the
budget pools an issue reserves that cost from (`cdp.budgets`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cdp.budgets.ledger import MAX_POOL_MINOR, PoolId
from cdp.ingest.events import Currency, Token, UtcDatetime

OfferKind = Literal["coupon", "red_packet", "points", "gift"]
OfferId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", description="e.g. xmas-50-off-300")]
Money = Annotated[int, Field(gt=0, le=MAX_POOL_MINOR)]
MAX_CODES = 1_000_000  # imported codes per offer


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Eligible(_Frozen):
    """Where a coupon applies (an empty list: anywhere)."""

    skus: list[Token] = Field(default_factory=list, max_length=500)
    categories: list[str] = Field(default_factory=list, max_length=100)
    stores: list[Token] = Field(default_factory=list, max_length=1000)
    channels: list[str] = Field(default_factory=list, max_length=20, description="e.g. pos, mini_program, shopify")


class ExternalStock(_Frozen):
    """A coupon another system issues (`cdp.offers.external_coupons`): each issue asks it for a coupon of this stock
    for the person, and the coupon's id there is the code an order names when it is used."""

    system: Literal["wechat_pay"] = Field(
        default="wechat_pay", description="wechat_pay: WeChat Pay cash coupons (代金券), the brand's merchant account"
    )
    stock_id: str = Field(
        min_length=1, max_length=20, pattern=r"^[0-9]+$", description="the stock (批次号) the coupons are issued from"
    )
    creator_mch_id: str | None = Field(
        default=None, pattern=r"^[0-9]{6,12}$", description="the merchant that created the stock (default: the brand's)"
    )


class CouponTerms(_Frozen):
    amount_off_minor: Money | None = Field(default=None, description="e.g. 5000: 50 yuan off")
    percent_off: int | None = Field(default=None, ge=1, le=100, description="e.g. 20: 20% off the eligible lines")
    max_discount_minor: Money | None = Field(default=None, description="the cap of a percentage coupon")
    threshold_minor: int = Field(default=0, ge=0, le=MAX_POOL_MINOR, description="spend on eligible lines needed")
    eligible: Eligible = Field(default_factory=Eligible)
    codes: Literal["generated", "imported", "external"] = Field(
        default="generated", description="external: the coupon's id at the system `external` names is its code"
    )
    code_prefix: str = Field(default="", max_length=8, pattern=r"^[A-Z0-9]*$")
    external: ExternalStock | None = None

    @model_validator(mode="after")
    def _one_value(self) -> CouponTerms:
        if (self.amount_off_minor is None) == (self.percent_off is None):
            raise ValueError("a coupon has exactly one of amount_off_minor or percent_off")
        if self.percent_off is not None and self.max_discount_minor is None:
            raise ValueError("a percentage coupon needs max_discount_minor (its worst case for the budget)")
        if self.amount_off_minor is not None and self.max_discount_minor is not None:
            raise ValueError("max_discount_minor caps a percentage coupon; an amount off is its own cap")
        if self.amount_off_minor is not None and self.threshold_minor and self.amount_off_minor > self.threshold_minor:
            raise ValueError("amount_off_minor is above threshold_minor: the coupon would pay the customer")
        if (self.codes == "external") != (self.external is not None):
            raise ValueError("codes external and the external stock go together: give both or neither")
        if self.external is not None and self.code_prefix:
            raise ValueError("an external coupon's code is the system's coupon id: code_prefix does not apply")
        return self

    @property
    def worst_case_minor(self) -> int:
        """The most one redemption can take off an order."""
        return self.amount_off_minor or self.max_discount_minor or 0


class RedPacketTerms(_Frozen):
    """Cash sent to the member's WeChat wallet (`cdp.offers.red_packets`) as it is issued, when the brand has a
    red packet provider; else recorded in the wallet and not paid out."""

    amount_minor: Money
    wishing: str | None = Field(
        default=None, min_length=1, max_length=128, description="the greeting on the packet (default: the name)"
    )
    remark: str | None = Field(default=None, min_length=1, max_length=256, description="default: the offer's name")


class PointsTerms(_Frozen):
    points: int = Field(gt=0, le=10**9)
    program: Token


class GiftTerms(_Frozen):
    sku: Token
    name: str = Field(min_length=1, max_length=200)


class Validity(_Frozen):
    """An issued offer is valid from its issue (or `starts_at`, when later) until `ends_at`, or for `days` from then
    (and until `ends_at` at the latest, when both are given)."""

    starts_at: UtcDatetime | None = None
    ends_at: UtcDatetime | None = None
    days: int | None = Field(default=None, ge=1, le=3650)

    @model_validator(mode="after")
    def _bounded(self) -> Validity:
        if self.ends_at is None and self.days is None:
            raise ValueError("say how long an issued offer is valid: ends_at, days, or both")
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at is not after starts_at")
        return self

    def window(self, issued_at: datetime) -> tuple[datetime, datetime]:
        """From the issue (or `starts_at`, when later) for `days`, and never past `ends_at`."""
        start = max(issued_at, self.starts_at) if self.starts_at else issued_at
        ends = [e for e in (self.ends_at, start + timedelta(days=self.days) if self.days else None) if e]
        return start, max(start, min(ends))


class Offer(_Frozen):
    """One offer of a brand; exactly one of `coupon`, `red_packet`, `points` or `gift` says what it gives."""

    brand_id: Token
    offer_id: OfferId
    name: str = Field(min_length=1, max_length=200)
    currency: Currency
    coupon: CouponTerms | None = None
    red_packet: RedPacketTerms | None = None
    points: PointsTerms | None = None
    gift: GiftTerms | None = None
    validity: Validity
    stock: int | None = Field(default=None, ge=1, le=10**9, description="how many may be issued in all (null: any)")
    per_person_limit: int = Field(default=1, ge=1, le=1000)
    unit_cost_minor: int | None = Field(
        default=None,
        ge=0,
        le=MAX_POOL_MINOR,
        description="what one redeemed offer costs the brand (default: a coupon's worst case, a red packet's cash)",
    )
    budget_pools: list[PoolId] = Field(
        default_factory=list, max_length=5, description="pools each issue reserves the unit cost from"
    )
    campaign_id: Token | None = Field(default=None, description="the campaign it belongs to (for ROI)")

    @model_validator(mode="after")
    def _one_kind(self) -> Offer:
        kinds = [k for k in ("coupon", "red_packet", "points", "gift") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("an offer is exactly one of coupon, red_packet, points or gift")
        if self.unit_cost_minor is None and self.kind in ("points", "gift"):
            raise ValueError(f"a {self.kind} offer needs unit_cost_minor (what one costs the brand)")
        if self.budget_pools and self.cost_minor == 0:
            raise ValueError("budget_pools reserve the unit cost, and it is 0")
        if len(set(self.budget_pools)) != len(self.budget_pools):
            raise ValueError("budget_pools names a pool twice")
        return self

    @property
    def kind(self) -> OfferKind:
        for kind in ("coupon", "red_packet", "points", "gift"):
            if getattr(self, kind) is not None:
                return kind
        raise AssertionError("validated: exactly one kind")

    @property
    def cost_minor(self) -> int:
        """What one issued offer reserves from each budget pool: the unit cost, else the worst case."""
        if self.unit_cost_minor is not None:
            return self.unit_cost_minor
        if self.coupon is not None:
            return self.coupon.worst_case_minor
        assert self.red_packet is not None
        return self.red_packet.amount_minor

    @property
    def has_codes(self) -> bool:
        return self.coupon is not None
