"""Offers as the API and campaigns use them: the catalog and its budget pools, issuing to a person's wallet (with a
`coupon_issued` or `points_changed` event on their timeline), redemptions matched to the issued code from the orders
and coupon redemptions the channels send, and expiry on time (`coupon_expired`, which journeys can trigger on).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, ValidationError

from cdp.budgets.ledger import BudgetLedger, BudgetPool, PoolBalance
from cdp.errors import ConflictError, ForbiddenError, InvalidInputError, NotFoundError
from cdp.identifiers.model import Identifier
from cdp.ingest.auth import OFFERS_ISSUE_SCOPE, OFFERS_READ_SCOPE, OFFERS_WRITE_SCOPE, authorize
from cdp.ingest.events import CanonicalEvent, Token, parse_event
from cdp.ingest.ports import ApiClient
from cdp.ingest.service import packed
from cdp.observability import logger
from cdp.offers.catalog import Offer
from cdp.offers.promotions import Cart, Evaluation, Promotion, evaluate
from cdp.offers.wallet import OfferStore, StoredOffer, WalletEntry
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
    ) -> None:
        self.store = store
        self.budgets = budgets
        self.profiles = profiles
        self.publisher = publisher
        self.org = org
        self.now = now

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

    def issue_to(self, brand_id: str, offer_id: str, person_id: str, issue_id: str) -> IssueResult:
        """Issue without a caller (a campaign's step): the person must be the brand's."""
        stored = self._offer(brand_id, offer_id)
        profile = self.profiles.get(person_id)
        if profile is None or profile.brand_id != brand_id:
            raise NotFoundError(f"no person {person_id} in brand {brand_id}")
        key = _issue_key(offer_id, profile.person_id, issue_id)
        entry, new = self.store.issue(stored, profile.person_id, key, self.now())
        # both steps are idempotent (the same redemption, the same event id): a retry after a failure redoes them
        if stored.offer.points is not None and entry.state == "issued":
            entry, _ = self.store.redeem(entry, f"points:{entry.issue_id}", entry.cost_minor, self.now())
        self._announce(entry, stored.offer, profile.identifiers, "issued")
        return IssueResult(entry=entry, new=new)

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
        if event.event_type == "order_placed" and props.coupon_code:
            code = props.coupon_code
            discount = sum(line.quantity * line.unit_price_minor for line in props.lines) - props.total_minor
            order_id = props.order_id
        elif event.event_type == "coupon_redeemed" and props.code:
            code, discount, order_id = props.code, props.discount_minor, props.order_id
        else:
            return None
        entry = self.store.by_code(event.brand_id, code)
        if entry is None:
            logger.warning("a redemption names no issued code", brand_id=event.brand_id, event_id=event.event_id)
            return None
        discount = min(max(discount, 0), entry.cost_minor) if entry.cost_minor else max(discount, 0)
        redeemed, new = self.store.redeem(entry, order_id, discount, event.occurred_at)
        return f"{redeemed.issue_id} redeemed for {order_id}" if new else None

    def expire_due(self, limit: int = EXPIRY_BATCH, now: datetime | None = None) -> int:
        """Expire the entries whose validity has ended by `now` (the schedule's tick time; default: the clock): their
        holds go back to the pools and a `coupon_expired` event goes on each person's timeline."""
        now, expired = now or self.now(), 0
        for entry in self.store.due_expiries(now, limit):
            if not self.store.expire(entry, now):
                continue
            expired += 1
            profile = self.profiles.get(entry.person_id)
            stored = self.store.get(entry.brand_id, entry.offer_id)
            if profile is not None and stored is not None:
                self._announce(entry, stored.offer, profile.identifiers, "expired")
        return expired

    # ---- helpers ------------------------------------------------------------------------------------------------

    def _offer(self, brand_id: str, offer_id: str) -> StoredOffer:
        stored = self.store.get(brand_id, offer_id)
        if stored is None:
            raise NotFoundError(f"no offer {offer_id} in brand {brand_id}")
        return stored

    def _announce(self, entry: WalletEntry, offer: Offer, identifiers: Sequence[str], what: str) -> None:
        """The issue or expiry as a canonical event (source cdp) filed under the person's anchor identifier."""
        brand = self.org.brand(entry.brand_id)
        anchor = brand.rules.anchor(identifiers)
        if anchor is None:
            logger.warning("no identifier to file an offer event under", person_id=entry.person_id)
            return
        at = entry.issued_at if what == "issued" else entry.expired_at or self.now()
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
        elif offer.points is not None:
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


def _expired(entry: WalletEntry) -> dict[str, Any]:
    return {"coupon_id": entry.offer_id, "issue_id": entry.issue_id, "campaign_id": entry.campaign_id}
