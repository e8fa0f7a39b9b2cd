"""Offers as the API and campaigns use them: the catalog and its budget pools, issuing to a person's wallet (with a
`coupon_issued` or `points_changed` event on their timeline), redemptions matched to the issued code from the orders
and coupon redemptions the channels send, and expiry on time (`coupon_expired`, which journeys can trigger on).

A red packet issued by a service given a payer (`cdp.offers.red_packets`) is paid out as it is issued: paid, the entry
is redeemed and its hold spent; refused, the issue is undone (RedPacketNotPaidError, a 409 naming the reason); not
known yet, the hold stays and PayoutPendingError asks the caller to issue again under the same issue id. A claim (from
a claim link: `cdp.offers.claims`) is an issue that also puts `coupon_claimed` on the timeline.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, ValidationError

from cdp.budgets.ledger import BudgetExhaustedError, BudgetLedger, BudgetPool, PoolBalance, message_plan_id
from cdp.errors import (
    CdpError,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    RetryableError,
    StoreError,
)
from cdp.identifiers.model import Identifier
from cdp.ingest.auth import OFFERS_ISSUE_SCOPE, OFFERS_READ_SCOPE, OFFERS_WRITE_SCOPE, authorize
from cdp.ingest.events import CanonicalEvent, Token, parse_event
from cdp.ingest.ports import ApiClient
from cdp.ingest.service import packed
from cdp.observability import logger
from cdp.offers.catalog import Offer, OfferKind
from cdp.offers.external_coupons import CouponRequest, ExternalCouponIssuer
from cdp.offers.promotions import Cart, Evaluation, Promotion, evaluate
from cdp.offers.providers import Payout
from cdp.offers.red_packets import PacketRequest, RedPacketPayer
from cdp.offers.wallet import OfferStore, RedemptionError, StoredOffer, WalletEntry
from cdp.org import OrgDirectory
from cdp.profile.ports import ProfileReader
from cdp.shared.ports import EventPublisher
from cdp.shared.time import utc_now
from cdp.tags.selection import AUDIENCE_PREFIX

READ_SCOPE = OFFERS_READ_SCOPE
WRITE_SCOPE = OFFERS_WRITE_SCOPE
ISSUE_SCOPE = OFFERS_ISSUE_SCOPE
MAX_CODES_PER_CALL = 10_000
EXPIRY_BATCH = 500
PENDING_BATCH = 10  # each may take the provider's retries (3 calls and their timeouts): a tick asks about 10 at most
MAX_ISSUE_KEY = 110  # + "offer-expired-" fits an event id (128); a hashed key is at most 64 + 1 + 40


class IssueRequest(BaseModel):
    person_id: str = Field(min_length=1, max_length=128)
    issue_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.:#@/+=-]+$",
        description="names this issue: sent again, it is the same issue (default: a new one)",
    )


class IssueResult(BaseModel):
    entry: WalletEntry
    new: bool = Field(description="false: issued before under this issue_id")
    payout: Payout | None = Field(
        default=None, description="a red packet's cash: paid, or not_configured (recorded in the wallet, not paid out)"
    )


class ProviderRefusedError(CdpError):
    """The outside system an issue needs refused it for good (HTTP 409). Refused by the system: the issue is undone
    (the entry is `failed`; its budget hold, the offer's stock and the person's count are given back) and issuing it
    again needs a new issue id. Refused before any call (no OpenID of the merchant's app, ...): nothing was issued."""

    error_code = "not_issued"
    what = "offer"
    verb = "issued"

    def __init__(self, offer_id: str, person_id: str, payout: Payout | None, entry: WalletEntry | None = None) -> None:
        self.reason = payout.reason if payout and payout.reason else f"not_{self.verb}"
        detail = payout.message if payout and payout.message else self.reason
        super().__init__(f"{self.what} {offer_id} was not {self.verb} to {person_id}: {detail}")
        self.payout = payout
        self.entry = entry

    @classmethod
    def of(cls, entry: WalletEntry) -> ProviderRefusedError:
        return cls(entry.offer_id, entry.person_id, entry.payout, entry)


class RedPacketNotPaidError(ProviderRefusedError):
    """A red packet's cash was not paid out, for good."""

    error_code, what, verb = "red_packet_not_paid", "red packet", "paid out"


class CouponNotGrantedError(ProviderRefusedError):
    """An external coupon system did not issue the coupon, for good."""

    error_code, what, verb = "coupon_not_granted", "external coupon", "granted"


class PayoutPendingError(RetryableError):
    """The outside system could not say whether it paid the red packet or issued the coupon: the budget stays held;
    issuing again under the same issue id asks again (the system does one request at most once)."""

    def __init__(self, entry: WalletEntry) -> None:
        what = "red packet" if entry.kind == "red_packet" else "coupon"
        super().__init__(
            f"{what} {entry.offer_id} for {entry.person_id}: the provider could not say whether it was done; "
            f"issue again under the same issue_id to ask"
        )
        self.entry = entry


@dataclass
class PendingSettled:
    """What a tick's second asking did: done (paid, granted), failed (undone), still pending."""

    done: int = 0
    failed: int = 0
    pending: int = 0


class CodesRequest(BaseModel):
    codes: list[Token] = Field(min_length=1, max_length=MAX_CODES_PER_CALL)


class TopUpRequest(BaseModel):
    amount_minor: int = Field(gt=0, le=10**15)
    op_id: str = Field(min_length=1, max_length=160, pattern=r"^[A-Za-z0-9_.:#@/+=-]+$", description="once per id")


class PromotionList(BaseModel):
    brand_id: str
    promotions: list[Promotion]


class OfferList(BaseModel):
    brand_id: str
    offers: list[StoredOffer]


class PoolList(BaseModel):
    brand_id: str
    pools: list[PoolBalance]


class Wallet(BaseModel):
    person_id: str
    entries: list[WalletEntry]
    counts: dict[str, int] = Field(description="entries by state: issued, redeemed, expired")


def authorize_offers(client: ApiClient, org: OrgDirectory, brand_id: str, scope: str) -> ApiClient:
    """The key holds `scope` and sees the whole brand (offers and budgets are the brand's)."""
    authorize(client, scope)
    if not client.org_scope.holds_brand(org, brand_id):
        raise ForbiddenError(f"the key of {client.name} is limited to {client.org_scope.label}, not brand {brand_id}")
    return client


class OfferService:
    def __init__(
        self,
        store: OfferStore,
        budgets: BudgetLedger,
        profiles: ProfileReader,
        publisher: EventPublisher,
        org: OrgDirectory,
        now: Callable[[], datetime] = utc_now,
        payer: RedPacketPayer | None = None,
        loyalty: PointsGrants | None = None,
        coupons: ExternalCouponIssuer | None = None,
    ) -> None:
        self.store = store
        self.budgets = budgets
        self.profiles = profiles
        self.publisher = publisher
        self.org = org
        self.now = now
        self.payer = payer  # None: red packets are recorded in the wallet, not paid out
        self.coupons = coupons  # None: external coupons cannot be issued (refused before any is held)
        # points of a programme the platform keeps go into the member's account (its lots expire like earned ones)
        self.loyalty = loyalty

    # ---- the catalog --------------------------------------------------------------------------------------------

    def define(self, offer: Offer, client: ApiClient) -> StoredOffer:
        authorize_offers(client, self.org, offer.brand_id, WRITE_SCOPE)
        for i, pool_id in enumerate(offer.budget_pools):
            pool = self.budgets.balance(offer.brand_id, pool_id)
            if pool is None:
                raise InvalidInputError(f"no budget pool {pool_id} in brand {offer.brand_id}", f"budget_pools[{i}]")
            if pool.pool.currency != offer.currency:
                raise InvalidInputError(
                    f"pool {pool_id} is in {pool.pool.currency}, the offer in {offer.currency}", f"budget_pools[{i}]"
                )
        return self.store.define(offer, client.name, self.now())

    def offers(self, brand_id: str, client: ApiClient) -> OfferList:
        authorize_offers(client, self.org, brand_id, READ_SCOPE)
        return OfferList(brand_id=brand_id, offers=self.store.offers(brand_id))

    def get(self, brand_id: str, offer_id: str, client: ApiClient) -> StoredOffer:
        authorize_offers(client, self.org, brand_id, READ_SCOPE)
        return self._offer(brand_id, offer_id)

    def retire(self, brand_id: str, offer_id: str, client: ApiClient) -> StoredOffer:
        authorize_offers(client, self.org, brand_id, WRITE_SCOPE)
        self._offer(brand_id, offer_id)
        return self.store.retire(brand_id, offer_id)

    def import_codes(self, brand_id: str, offer_id: str, request: CodesRequest, client: ApiClient) -> StoredOffer:
        authorize_offers(client, self.org, brand_id, WRITE_SCOPE)
        stored = self._offer(brand_id, offer_id)
        if stored.offer.coupon is None or stored.offer.coupon.codes != "imported":
            raise ConflictError(f"offer {offer_id} does not take imported codes (its codes are generated, or none)")
        seen: set[str] = set()
        for i, code in enumerate(request.codes):
            if code in seen:
                raise InvalidInputError(f"code {code} is in the list twice", f"codes[{i}]")
            seen.add(code)
        return self.store.import_codes(brand_id, offer_id, request.codes)

    # ---- checkout promotions -------------------------------------------------------------------------------------

    def define_promotion(self, promotion: Promotion, client: ApiClient) -> bool:
        """Store it (a new one, or the new rules of one); whether it is new."""
        authorize_offers(client, self.org, promotion.brand_id, WRITE_SCOPE)
        if (
            promotion.budget_pool is not None
            and self.budgets.balance(promotion.brand_id, promotion.budget_pool) is None
        ):
            raise InvalidInputError(
                f"no budget pool {promotion.budget_pool} in brand {promotion.brand_id}", "budget_pool"
            )
        return self.store.put_promotion(promotion)

    def promotions(self, brand_id: str, client: ApiClient) -> PromotionList:
        authorize_offers(client, self.org, brand_id, READ_SCOPE)
        return PromotionList(brand_id=brand_id, promotions=self.store.promotions(brand_id))

    def evaluate(self, cart: Cart, client: ApiClient) -> Evaluation:
        """The promotions a cart earns and the combination it gets (`cdp.offers.promotions`). A till's key (scoped to
        a store) evaluates carts of its own store; the person, when named, gives their level and audiences."""
        authorize(client, READ_SCOPE)
        if not client.org_scope.contains(self.org, cart.brand_id, cart.store_id):
            raise ForbiddenError(f"the key of {client.name} is limited to {client.org_scope.label}")
        if cart.person_id is not None:
            cart = self._with_member(cart)
        promotions = self.store.promotions(cart.brand_id)
        budgets: dict[str, int] = {}
        for pool in {p.budget_pool for p in promotions if p.budget_pool}:
            balance = self.budgets.balance(cart.brand_id, pool)
            budgets[pool] = balance.available_minor if balance else 0
        zone = ZoneInfo(self.org.brand(cart.brand_id).timezone)
        return evaluate(cart, promotions, zone, cart.at or self.now(), budgets)

    def _with_member(self, cart: Cart) -> Cart:
        profile = self.profiles.get(cart.person_id or "")
        if profile is None or profile.brand_id != cart.brand_id:
            raise NotFoundError(f"no person {cart.person_id} in brand {cart.brand_id}")
        audiences = [
            name.removeprefix(AUDIENCE_PREFIX)
            for name, tag in profile.tags.items()
            if name.startswith(AUDIENCE_PREFIX) and tag.value is True
        ]
        level = cart.member_level or profile.traits.member_level
        return cart.model_copy(update={"member_level": level, "audiences": sorted({*cart.audiences, *audiences})})

    # ---- budget pools -------------------------------------------------------------------------------------------

    def define_pool(self, pool: BudgetPool, client: ApiClient) -> PoolBalance:
        authorize_offers(client, self.org, pool.brand_id, WRITE_SCOPE)
        return self.budgets.define(pool)

    def pools(self, brand_id: str, client: ApiClient) -> PoolList:
        authorize_offers(client, self.org, brand_id, READ_SCOPE)
        return PoolList(brand_id=brand_id, pools=self.budgets.pools(brand_id))

    def top_up(self, brand_id: str, pool_id: str, request: TopUpRequest, client: ApiClient) -> PoolBalance:
        authorize_offers(client, self.org, brand_id, WRITE_SCOPE)
        if self.budgets.balance(brand_id, pool_id) is None:
            raise NotFoundError(f"no budget pool {pool_id} in brand {brand_id}")
        return self.budgets.top_up(brand_id, pool_id, request.amount_minor, request.op_id)

    # ---- wallets ------------------------------------------------------------------------------------------------

    def issue(self, brand_id: str, offer_id: str, request: IssueRequest, client: ApiClient) -> IssueResult:
        authorize_offers(client, self.org, brand_id, ISSUE_SCOPE)
        return self.issue_to(brand_id, offer_id, request.person_id, request.issue_id or uuid.uuid4().hex)

    def issue_to(
        self,
        brand_id: str,
        offer_id: str,
        person_id: str,
        issue_id: str,
        claimed: bool = False,
        plan_id: str | None = None,
    ) -> IssueResult:
        """Issue without a caller (a campaign's step, a claim link): the person must be the brand's. `claimed`: the
        person claimed it (a `coupon_claimed` event follows the issue's)."""
        stored = self._offer(brand_id, offer_id)
        profile = self.profiles.get(person_id)
        if profile is None or profile.brand_id != brand_id:
            raise NotFoundError(f"no person {person_id} in brand {brand_id}")
        key = _issue_key(offer_id, profile.person_id, issue_id)
        if stored.offer.red_packet is not None:
            self._refuse_unpayable(stored.offer, profile.person_id, key, profile.identifiers)
        external = stored.offer.coupon.external if stored.offer.coupon is not None else None
        if external is not None:
            self._refuse_ungrantable(stored.offer, profile.person_id, key, profile.identifiers)
        plan = self.budgets.hold(brand_id, plan_id) if plan_id else None
        carve_from = plan.hold_id if plan is not None and plan.state == "open" else None  # else from the pools
        entry, new = self.store.issue(stored, profile.person_id, key, self.now(), carve_from)
        # each step is idempotent (the same bill, redemption or event id): a retry after a failure redoes them
        if stored.offer.red_packet is not None:
            entry = self._pay_out(entry, stored.offer, profile.identifiers)
        if external is not None:
            entry = self._grant_external(entry, stored.offer, profile.identifiers)
        if stored.offer.points is not None and entry.state == "issued":
            entry, _ = self.store.redeem(entry, f"points:{entry.issue_id}", entry.cost_minor, self.now())
        self._announce(entry, stored.offer, profile.identifiers, "issued")
        if claimed:
            self._announce(entry, stored.offer, profile.identifiers, "claimed")
        return IssueResult(entry=entry, new=new, payout=entry.payout)

    def issued_entry(self, brand_id: str, offer_id: str, person_id: str, issue_id: str) -> WalletEntry | None:
        """The entry `issue_to` made (or would make) under `issue_id`, if it was made."""
        profile = self.profiles.get(person_id)
        if profile is None or profile.brand_id != brand_id:
            raise NotFoundError(f"no person {person_id} in brand {brand_id}")
        key = _issue_key(offer_id, profile.person_id, issue_id)
        return self.store.entry(brand_id, profile.person_id, key)

    def offer(self, brand_id: str, offer_id: str) -> StoredOffer:
        """One offer, without a caller (a claim link names it)."""
        return self._offer(brand_id, offer_id)

    def _refuse_unpayable(self, offer: Offer, person_id: str, key: str, identifiers: Sequence[str]) -> None:
        """A red packet that could never be paid to this person is refused before it is issued (nothing is held, and
        once the person can be paid, e.g. has followed the merchant's account, the same issue id works); an issue
        made before under this id goes on to its own answer."""
        if self.payer is None:
            return
        refused = self.payer.refusal(_packet(offer, offer.brand_id, key, self.now()), identifiers)
        if refused is not None and self.store.entry(offer.brand_id, person_id, key) is None:
            raise RedPacketNotPaidError(offer.offer_id, person_id, refused)

    def _pay_out(self, entry: WalletEntry, offer: Offer, identifiers: Sequence[str]) -> WalletEntry:
        """A red packet's cash (see the module): the entry as it ends, or RedPacketNotPaidError/PayoutPendingError."""
        if entry.state == "failed":  # refused before under this issue id: the same answer
            raise RedPacketNotPaidError.of(entry)
        settled = entry.payout is not None and entry.payout.status == "paid"
        if self.payer is None or entry.state != "issued" or settled:
            return entry
        payout = self.payer.pay(_packet(offer, entry.brand_id, entry.issue_id, entry.issued_at), identifiers)
        undone = self._refused_or_none(entry, payout, RedPacketNotPaidError)
        if undone is not None:
            return undone
        if payout.status == "paid":
            return self.store.pay_out(entry, payout, self.now())
        if payout.status == "not_configured" and entry.payout is not None and entry.payout.status == payout.status:
            return entry
        noted = self.store.note_payout(entry, payout)
        if payout.status == "pending":
            raise PayoutPendingError(noted)
        return noted

    def _refuse_ungrantable(self, offer: Offer, person_id: str, key: str, identifiers: Sequence[str]) -> None:
        """An external coupon that could not be obtained for this person (no system for the brand, no OpenID under
        its app) is refused before it is issued, so nothing is held; an issue made before under this id goes on."""
        if self.store.entry(offer.brand_id, person_id, key) is not None:
            return
        if self.coupons is None:
            message = f"offer {offer.offer_id}: no external coupon system is wired where it was issued"
            payout = Payout(status="failed", reason="not_configured", message=message, at=self.now())
            raise CouponNotGrantedError(offer.offer_id, person_id, payout)
        refused = self.coupons.refusal(_coupon_request(offer, offer.brand_id, key, self.now()), identifiers)
        if refused is not None:
            raise CouponNotGrantedError(offer.offer_id, person_id, refused)

    def _grant_external(self, entry: WalletEntry, offer: Offer, identifiers: Sequence[str]) -> WalletEntry:
        """The coupon from its system (`cdp.offers.external_coupons`): the entry with its code, or
        CouponNotGrantedError (the issue undone) / PayoutPendingError (held, no code yet)."""
        if entry.state == "failed":  # refused before under this issue id: the same answer
            raise CouponNotGrantedError.of(entry)
        if entry.code is not None or entry.state != "issued" or self.coupons is None:
            return entry
        request = _coupon_request(offer, entry.brand_id, entry.issue_id, entry.issued_at)
        payout = self.coupons.grant(request, identifiers)
        undone = self._refused_or_none(entry, payout, CouponNotGrantedError)
        if undone is not None:
            return undone
        if payout.status == "granted" and payout.provider_ref:
            return self.store.attach_code(entry, payout.provider_ref, payout)
        raise PayoutPendingError(self.store.note_payout(entry, payout))

    def _refused_or_none(
        self, entry: WalletEntry, payout: Payout, error: type[ProviderRefusedError]
    ) -> WalletEntry | None:
        """What a red packet's and an external coupon's answers share: logged; a pending entry asked in vain stays
        pending (PayoutPendingError); a final refusal undoes the issue (`error`), unless it was settled meanwhile by a
        concurrent issue under the same id (that entry is returned). None: the caller goes on with the answer."""
        logger.info(
            "provider answer",
            kind=entry.kind,
            issue_id=entry.issue_id,
            status=payout.status,
            reason=payout.reason,
            attempts=payout.attempts,
            request_no=payout.bill_no,
        )
        if _unasked_of_pending(entry, payout):
            raise PayoutPendingError(entry)
        if payout.status != "failed":
            return None
        failed = self.store.fail(entry, payout, self.now())
        if failed.state == "failed":
            raise error.of(failed)
        return failed

    def wallet(self, brand_id: str, person_id: str, client: ApiClient) -> Wallet:
        authorize_offers(client, self.org, brand_id, READ_SCOPE)
        profile = self.profiles.get(person_id)
        if profile is None or profile.brand_id != brand_id:
            raise NotFoundError(f"no person {person_id} in brand {brand_id}")
        entries = self.store.wallet(brand_id, profile.person_id)
        counts: dict[str, int] = {}
        for entry in entries:
            counts[entry.state] = counts.get(entry.state, 0) + 1
        return Wallet(person_id=profile.person_id, entries=entries, counts=counts)

    def redeem_from(self, event: CanonicalEvent) -> str | None:
        """An order using an issued coupon's code, or a coupon redemption naming it: the entry is redeemed for the
        order, once; the discount is the order's lines less its total (or the redemption's), at most the coupon's
        worst case. Returns what happened (None: the event names no issued code)."""
        props: Any = event.properties
        charged = self._charge_promotions(event) if event.event_type == "order_placed" else []
        if event.event_type == "order_placed" and props.coupon_code:
            code = props.coupon_code
            promoted = sum(p.discount_minor for p in props.promotions)  # the promotions' part of the discount
            discount = sum(line.quantity * line.unit_price_minor for line in props.lines) - props.total_minor - promoted
            order_id = props.order_id
        elif event.event_type == "coupon_redeemed" and props.code:
            code, discount, order_id = props.code, props.discount_minor, props.order_id
        else:
            return "; ".join(charged) or None
        entry = self.store.by_code(event.brand_id, code)
        if entry is None:
            # a code of the brand's own coupon system (not one this platform issued): the order stands as it is
            logger.info("a redemption names no issued code", brand_id=event.brand_id, event_id=event.event_id)
            return "; ".join(charged) or None
        discount = min(max(discount, 0), entry.cost_minor) if entry.cost_minor else max(discount, 0)
        redeemed, new = self.store.redeem(entry, order_id, discount, event.occurred_at)
        done = [*charged, f"{redeemed.issue_id} redeemed for {order_id}"] if new else charged
        return "; ".join(done) or None

    def _charge_promotions(self, event: CanonicalEvent) -> list[str]:
        """The order's checkout promotions charged to their budget pools, once per order and promotion (the budget
        is debited when the order arrives, not when the cart was evaluated). A promotion the brand has not defined,
        or a pool that cannot cover it (concurrent tills spent it), is a RedemptionError: the order's charge is
        parked with the reason, to redrive once the pool is topped up; what went through before stays counted once."""
        props: Any = event.properties
        if not props.promotions:
            return []
        defined = {p.promotion_id: p for p in self.store.promotions(event.brand_id)}
        done = []
        for applied in props.promotions:
            promotion = defined.get(applied.promotion_id)
            if promotion is None:
                raise RedemptionError(
                    f"order {props.order_id} names promotion {applied.promotion_id}, which the brand has not defined"
                )
            if promotion.budget_pool is None or not applied.cost_minor:
                continue
            op_id = f"promo:{props.order_id}:{applied.promotion_id}"
            try:
                self.budgets.charge(event.brand_id, op_id, {promotion.budget_pool: applied.cost_minor}, self.now())
            except BudgetExhaustedError as exc:
                raise RedemptionError(
                    f"order {props.order_id}: promotion {applied.promotion_id}'s pool {promotion.budget_pool} cannot "
                    f"cover {applied.cost_minor} ({exc}); top the pool up and redrive"
                ) from exc
            done.append(f"{applied.promotion_id} charged {applied.cost_minor} to {promotion.budget_pool}")
        return done

    def expire_due(self, limit: int = EXPIRY_BATCH, now: datetime | None = None) -> int:
        """Expire the entries whose validity has ended by `now` (the schedule's tick time; default: the clock): their
        holds go back to the pools and a `coupon_expired` event goes on each person's timeline."""
        now, expired = now or self.now(), 0
        offers: dict[tuple[str, str], StoredOffer | None] = {}  # a tick's expiries are mostly of a few offers
        for entry in self.store.due_expiries(now, limit):
            if not self.store.expire(entry, now):
                continue
            expired += 1
            profile = self.profiles.get(entry.person_id)
            key = (entry.brand_id, entry.offer_id)
            if key not in offers:
                offers[key] = self.store.get(entry.brand_id, entry.offer_id)
            stored = offers[key]
            if profile is not None and stored is not None:
                self._announce(entry, stored.offer, profile.identifiers, "expired")
        return expired

    def settle_pending(self, limit: int = PENDING_BATCH) -> PendingSettled:
        """Ask the provider again about the issues it could not answer (a red packet's bill, an external coupon's
        request: the same number, so nothing is done twice): done, the entry is paid or gets its code and its issue
        reaches the timeline; refused, the issue is undone; still no answer, it stays pending for the next tick."""
        done = PendingSettled()
        offers: dict[tuple[str, str], StoredOffer | None] = {}
        for entry in self.store.due_pending(limit):
            key = (entry.brand_id, entry.offer_id)
            if key not in offers:
                offers[key] = self.store.get(entry.brand_id, entry.offer_id)
            stored, profile = offers[key], self.profiles.get(entry.person_id)
            if stored is None or profile is None:
                continue  # the offer or the person is gone (erased): its expiry releases the hold
            try:
                if stored.offer.red_packet is not None:
                    settled = self._pay_out(entry, stored.offer, profile.identifiers)
                else:
                    settled = self._grant_external(entry, stored.offer, profile.identifiers)
            except ProviderRefusedError:
                done.failed += 1
                continue
            except PayoutPendingError:
                done.pending += 1
                continue
            except CdpError as exc:  # one entry's trouble (a store error, a coupon held elsewhere) stops no tick
                logger.error("a pending payout could not be settled", issue_id=entry.issue_id, error=str(exc))
                done.pending += 1
                continue
            done.done += 1
            self._announce(settled, stored.offer, profile.identifiers, "issued")
        return done

    # ---- helpers ------------------------------------------------------------------------------------------------

    def _offer(self, brand_id: str, offer_id: str) -> StoredOffer:
        stored = self.store.get(brand_id, offer_id)
        if stored is None:
            raise NotFoundError(f"no offer {offer_id} in brand {brand_id}")
        return stored

    def _grant(self, entry: WalletEntry, offer: Offer) -> None:
        """A points offer of a programme the platform keeps: a lot in the member's account (once per issue)."""
        assert offer.points is not None
        if self.loyalty is None:  # a wiring fault: a retry of the same issue grants once it is wired
            raise StoreError(f"offer {offer.offer_id} grants programme {offer.points.program}: no loyalty engine wired")
        op_id = f"offer-{entry.issue_id}"
        if len(op_id) > 100:  # an op id's limit: a long issue key is named by its digest
            op_id = f"offer-{hashlib.sha256(entry.issue_id.encode()).hexdigest()[:40]}"
        self.loyalty.grant(entry.brand_id, offer.points.program, entry.person_id, offer.points.points, op_id)

    def _announce(self, entry: WalletEntry, offer: Offer, identifiers: Sequence[str], what: str) -> None:
        """The issue or expiry as a canonical event (source cdp) filed under the person's anchor identifier."""
        brand = self.org.brand(entry.brand_id)
        anchor = brand.rules.anchor(identifiers)
        if anchor is None:
            logger.warning("no identifier to file an offer event under", person_id=entry.person_id)
            return
        # a claim is the issue it made (its time too, so a claim asked again is the same event on the timeline)
        at = entry.expired_at if what == "expired" else entry.issued_at
        at = at or self.now()
        raw: dict[str, Any] = {
            "event_id": f"offer-{what}-{entry.issue_id}",
            "source": "cdp",
            "brand_id": entry.brand_id,
            "occurred_at": at.isoformat(),
            "identifiers": [Identifier.from_key(anchor).model_dump(mode="json", exclude_none=True)],
            "context": {"issue_id": entry.issue_id},
        }
        if what == "expired":
            raw |= {"event_type": "coupon_expired", "properties": _expired(entry)}
        elif what == "claimed":
            raw |= {"event_type": "coupon_claimed", "properties": _claimed(entry)}
        elif offer.points is not None:
            if self.org.brand(entry.brand_id).loyalty.kept_by_platform(offer.points.program):
                self._grant(entry, offer)
                return
            points = {"program": offer.points.program, "delta": offer.points.points, "reason": "bonus"}
            raw |= {"event_type": "points_changed", "properties": points}
        else:
            raw |= {"event_type": "coupon_issued", "properties": _issued(entry)}
        try:
            event = parse_event(raw, phone_region=brand.phone_region)
        except ValidationError as exc:  # an offer id or code the canonical model refuses: the wallet still holds it
            logger.error("an offer event did not validate", issue_id=entry.issue_id, error=str(exc))
            return
        self.publisher.publish(packed([event]), f"offer-{entry.issue_id}")


def _packet(offer: Offer, brand_id: str, issue_id: str, issued_at: datetime) -> PacketRequest:
    terms = offer.red_packet
    assert terms is not None
    return PacketRequest(
        brand_id=brand_id,
        issue_id=issue_id,
        issued_at=issued_at,
        amount_minor=terms.amount_minor,
        currency=offer.currency,
        act_name=offer.name,
        wishing=terms.wishing or offer.name,
        remark=terms.remark or offer.name,
    )


def _unasked_of_pending(entry: WalletEntry, payout: Payout) -> bool:
    """An entry the provider may have acted on (pending) whose new asking failed before any call (the merchant's
    credentials gone from the secret, the person's OpenID unbound): it stays pending, as the provider may still
    have sent or issued it under its number; undoing it would free a budget already spent."""
    pending = entry.payout is not None and entry.payout.status == "pending"
    return pending and payout.status in ("failed", "not_configured") and payout.attempts == 0


def _coupon_request(offer: Offer, brand_id: str, issue_id: str, issued_at: datetime) -> CouponRequest:
    external = offer.coupon.external if offer.coupon is not None else None
    assert external is not None
    return CouponRequest(
        brand_id=brand_id,
        issue_id=issue_id,
        issued_at=issued_at,
        system=external.system,
        stock_id=external.stock_id,
        creator_mch_id=external.creator_mch_id,
    )


def plan_id_for(run_id: str, offer_id: str) -> str:
    """The hold a campaign run reserves its coupons' worst case in at selection; each issue for the run is carved
    from it (cdp.budgets.ledger.BudgetLedger.carve)."""
    return f"plan:{run_id}:{offer_id}"


class OfferSpend(BaseModel):
    """What one of a run's offers cost the brand by the run's summary: committed by the holds carved from its plan
    (a redemption's discount, a red packet paid, points granted, a gift handed over)."""

    offer_id: str
    kind: OfferKind
    spent_minor: int = Field(ge=0)
    in_cost: bool = Field(
        description="counted in the run's cost: every kind but a coupon, whose discount the orders' revenue already "
        "nets out (counting it again would take it off twice)"
    )


class RunPlans:
    """A campaign run's offers reserved whole before its first send: the offer's cost for every treated person from
    each of its pools, in one hold per offer (all or nothing across the run's offers); released when the run ends."""

    def __init__(self, store: OfferStore, budgets: BudgetLedger) -> None:
        self.store, self.budgets = store, budgets

    def reserve(self, brand_id: str, run_id: str, offer_ids: Sequence[str], persons: int, now: datetime) -> int:
        """The run's plan (minor units reserved in all); BudgetExhaustedError when a pool cannot cover it, with
        whatever this call reserved released again."""
        done: list[str] = []
        reserved = 0
        try:
            for offer_id in dict.fromkeys(offer_ids):
                stored = self.store.get(brand_id, offer_id)
                if stored is None:
                    raise NotFoundError(f"the campaign names offer {offer_id}, which brand {brand_id} has not defined")
                offer = stored.offer
                if not offer.budget_pools or not offer.cost_minor or persons <= 0:
                    continue
                claims = dict.fromkeys(offer.budget_pools, offer.cost_minor * persons)
                self.budgets.reserve(brand_id, plan_id_for(run_id, offer_id), claims, now)
                done.append(offer_id)
                reserved += offer.cost_minor * persons
        except Exception:
            self._release_plans(brand_id, [plan_id_for(run_id, o) for o in done], now)  # the message plan stays
            raise
        return reserved

    def spent(self, brand_id: str, run_id: str, offer_ids: Sequence[str]) -> list[OfferSpend]:
        """What each of the run's offers drawn from budget pools has cost so far (one read of its plan each); an
        offer with no pool has no plan, so nothing of it is counted."""
        found = []
        for offer_id in dict.fromkeys(offer_ids):
            stored = self.store.get(brand_id, offer_id)
            plan = self.budgets.hold(brand_id, plan_id_for(run_id, offer_id))
            if stored is None or plan is None:
                continue
            kind = stored.offer.kind
            found.append(
                OfferSpend(offer_id=offer_id, kind=kind, spent_minor=plan.carved_spent_minor, in_cost=kind != "coupon")
            )
        return found

    def pool_problem(self, brand_id: str, pool_id: str, currency: str) -> str | None:
        """Why a campaign's budget cannot name this pool (None: it can)."""
        found = self.budgets.balance(brand_id, pool_id)
        if found is None:
            return f"no budget pool {pool_id} in brand {brand_id}"
        if found.pool.currency != currency:
            return f"pool {pool_id} is in {found.pool.currency}, the budget in {currency}"
        return None

    def reserve_messages(self, brand_id: str, run_id: str, pool_id: str, amount_minor: int, now: datetime) -> int:
        """The run's messages' worst case held in their pool (BudgetExhaustedError when it cannot cover it)."""
        if amount_minor <= 0:
            return 0
        self.budgets.reserve(brand_id, message_plan_id(run_id), {pool_id: amount_minor}, now)
        return amount_minor

    def release(self, brand_id: str, run_id: str, offer_ids: Sequence[str], now: datetime) -> None:
        """What the run's plans have left goes back to the pools (the coupons carved from them keep theirs, the
        messages sent keep what they cost)."""
        plans = [*(plan_id_for(run_id, o) for o in dict.fromkeys(offer_ids)), message_plan_id(run_id)]
        self._release_plans(brand_id, plans, now)

    def _release_plans(self, brand_id: str, plan_ids: Sequence[str], now: datetime) -> None:
        for plan_id in plan_ids:
            plan = self.budgets.hold(brand_id, plan_id)
            if plan is not None and plan.state == "open":
                self.budgets.release(brand_id, plan.hold_id, now)


class PointsGrants(Protocol):
    """The loyalty engine's grant (cdp.loyalty.service.LoyaltyService): points as a lot of the member's account,
    once per op id, with its `points_changed` event."""

    def grant(self, brand_id: str, program: str, person_id: str, points: int, op_id: str) -> object: ...


def _issue_key(offer_id: str, person_id: str, issue_id: str) -> str:
    """The wallet entry's and its budget hold's id: the offer, the person and the caller's issue id (hashed when
    long: its events' ids, `offer-issued-{key}`, must fit the 128 characters of an event id), so the same issue id
    given for two persons names two issues."""
    raw = f"{offer_id}:{person_id}:{issue_id}"
    return raw if len(raw) <= MAX_ISSUE_KEY else f"{offer_id}:{hashlib.sha256(raw.encode()).hexdigest()[:40]}"


def _issued(entry: WalletEntry) -> dict[str, Any]:
    return {
        "coupon_id": entry.offer_id,
        "issue_id": entry.issue_id,
        "kind": entry.kind,
        "code": entry.code,
        "value_minor": entry.cost_minor or None,
        "currency": entry.currency,
        "valid_until": entry.valid_until.isoformat(),
        "campaign_id": entry.campaign_id,
    }


def _claimed(entry: WalletEntry) -> dict[str, Any]:
    found = {"campaign_id": entry.campaign_id, "issue_id": entry.issue_id, "kind": entry.kind, "code": entry.code}
    return {"coupon_id": entry.offer_id, **{k: v for k, v in found.items() if v is not None}}


def _expired(entry: WalletEntry) -> dict[str, Any]:
    return {"coupon_id": entry.offer_id, "issue_id": entry.issue_id, "campaign_id": entry.campaign_id}
