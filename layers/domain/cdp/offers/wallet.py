"""Offers issued to members' accounts (the wallet), and the port of the store that issues them exactly once.

An issue is one transaction: the offer's count (its stock), the person's count (the per-person limit), the wallet
entry (the issue id: an issue asked again is the same issue), the code (unique in the brand), the entry's expiry
and the budget hold of its cost (`cdp.budgets`): all of it happens, or none of it.

A red packet's cash is paid out after the issue (`cdp.offers.red_packets`): paid, the entry is redeemed and its hold
spent; refused, the entry is `failed` in one transaction that gives back the offer's stock, the person's count and
the hold, so the budget and the pool are as if it had never been issued (the entry stays, with why). An external
coupon's code comes from its system after the issue (`cdp.offers.external_coupons`) and is attached to the entry
then; refused, the entry is failed the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cdp.errors import CdpError, ConflictError
from cdp.offers.catalog import Offer, OfferKind
from cdp.offers.promotions import Promotion
from cdp.offers.providers import Payout

WalletState = Literal["issued", "redeemed", "expired", "failed"]
OfferStatus = Literal["active", "retired"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoredOffer(_Frozen):
    offer: Offer
    status: OfferStatus
    issued: int = Field(description="issued so far")
    codes_imported: int = 0
    created_at: datetime
    created_by: str


class WalletEntry(_Frozen):
    """One offer issued to one person."""

    brand_id: str
    person_id: str
    issue_id: str = Field(description="names the issue: asked again, it is the same issue")
    offer_id: str
    kind: OfferKind
    name: str
    code: str | None = None
    state: WalletState
    issued_at: datetime
    valid_from: datetime
    valid_until: datetime
    cost_minor: int = Field(description="reserved from each of the offer's budget pools at issue")
    currency: str
    pools: list[str] = Field(default_factory=list)
    campaign_id: str | None = None
    redeemed_at: datetime | None = None
    order_id: str | None = None
    discount_minor: int | None = None
    expired_at: datetime | None = None
    payout: Payout | None = Field(default=None, description="a red packet's cash: paid, failed, pending, ...")


class OfferUnavailableError(ConflictError):
    """The offer cannot be issued to this person now: retired, out of stock, or their limit reached."""

    def __init__(
        self, message: str, reason: Literal["retired", "out_of_stock", "person_limit", "no_codes", "ended"]
    ) -> None:
        super().__init__(message)
        self.reason = reason


class RedemptionError(CdpError):
    """A redemption names a code no issued offer has, or one already redeemed for another order."""


class OfferStore(ABC):
    """The offer catalog, code pools and wallets (DynamoDB on AWS: `cdp.offers.dynamodb.DynamoOfferStore`)."""

    @abstractmethod
    def define(self, offer: Offer, by: str, now: datetime) -> StoredOffer:
        """Add an offer (ConflictError when the brand has one of that id)."""

    @abstractmethod
    def get(self, brand_id: str, offer_id: str) -> StoredOffer | None: ...

    @abstractmethod
    def offers(self, brand_id: str) -> list[StoredOffer]: ...

    @abstractmethod
    def retire(self, brand_id: str, offer_id: str) -> StoredOffer:
        """Issue no more of it (issued ones stay valid)."""

    @abstractmethod
    def import_codes(self, brand_id: str, offer_id: str, codes: Sequence[str]) -> StoredOffer:
        """Append codes to an offer whose codes are imported (each issue takes the next one)."""

    @abstractmethod
    def put_promotion(self, promotion: Promotion) -> bool:
        """Store a checkout promotion, replacing one of the same id; whether it is new."""

    @abstractmethod
    def promotions(self, brand_id: str) -> list[Promotion]: ...

    @abstractmethod
    def issue(
        self, stored: StoredOffer, person_id: str, issue_id: str, now: datetime, plan_id: str | None = None
    ) -> tuple[WalletEntry, bool]:
        """Issue the offer to the person (see the module); the entry, and whether it is new (False: issued before
        under this issue id). Its budget hold is drawn from the offer's pools, or carved from the open plan hold
        `plan_id` (a campaign run reserved it at selection). OfferUnavailableError, or BudgetExhaustedError when a
        pool (or the plan) is short."""

    @abstractmethod
    def wallet(self, brand_id: str, person_id: str) -> list[WalletEntry]:
        """The person's offers, newest first."""

    @abstractmethod
    def entry(self, brand_id: str, person_id: str, issue_id: str) -> WalletEntry | None:
        """One wallet entry by its issue id (the store's key, as `issue` made it)."""

    @abstractmethod
    def by_code(self, brand_id: str, code: str) -> WalletEntry | None: ...

    @abstractmethod
    def redeem(self, entry: WalletEntry, order_id: str, discount_minor: int, now: datetime) -> tuple[WalletEntry, bool]:
        """Mark it redeemed for `order_id` and spend `discount_minor` of its hold, releasing the rest; whether this
        call redeemed it (False: it was redeemed for this order before). RedemptionError when it was redeemed for
        another order. An expired entry redeemed anyway (a till that did not check) is charged to its pools."""

    @abstractmethod
    def pay_out(self, entry: WalletEntry, payout: Payout, now: datetime) -> WalletEntry:
        """A red packet paid: the entry is redeemed (for `payout:{bill}`) with its payout, its hold spent in full;
        paid before: the entry as it is. RedemptionError when it failed meanwhile."""

    @abstractmethod
    def fail(self, entry: WalletEntry, payout: Payout, now: datetime) -> WalletEntry:
        """An issued entry (without a code) whose payout was refused: `failed` with its payout, its expiry timer
        gone, the offer's stock and the person's count given back and its hold released, all at once; an entry no
        longer issued is returned as it is."""

    @abstractmethod
    def attach_code(self, entry: WalletEntry, code: str, payout: Payout) -> WalletEntry:
        """An external coupon granted: its id at the system becomes the issued entry's code (indexed, so an order
        naming it redeems it), with the outcome kept; attached before: the entry as it is. ConflictError when the code
        belongs to another issue."""

    @abstractmethod
    def note_payout(self, entry: WalletEntry, payout: Payout) -> WalletEntry:
        """Keep a payout on an entry that stays issued (pending, not configured); the entry as it now is. A pending
        one is listed by `due_pending` until it is paid, granted, failed or expired."""

    @abstractmethod
    def due_pending(self, limit: int) -> list[WalletEntry]:
        """Issued entries whose provider could not say what it did (payout `pending`), for the tick to ask again."""

    @abstractmethod
    def due_expiries(self, until: datetime, limit: int) -> list[WalletEntry]:
        """Issued entries whose validity ended by `until`, oldest first."""

    @abstractmethod
    def expire(self, entry: WalletEntry, now: datetime) -> bool:
        """Mark it expired and release its hold; False when it was redeemed or expired meanwhile."""
