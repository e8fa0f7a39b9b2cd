"""Catalog offers issued as messages leave: the send step's `offer: {offer_id}` becomes an entry in the recipient's
wallet (its own code, its budget hold, a coupon_issued event) through the offer service."""

from __future__ import annotations

from cdp.budgets.ledger import BudgetExhaustedError
from cdp.channels.ports import IssuedOffer, OfferIssuer, OfferNotIssuedError
from cdp.errors import NotFoundError
from cdp.offers.service import OfferService, ProviderRefusedError
from cdp.offers.wallet import OfferUnavailableError


class WalletOffers(OfferIssuer):
    def __init__(self, service: OfferService) -> None:
        self._service = service

    def issue(
        self, brand_id: str, offer_id: str, person_id: str, issue_id: str, plan_id: str | None = None
    ) -> IssuedOffer:
        try:
            entry = self._service.issue_to(brand_id, offer_id, person_id, issue_id, plan_id=plan_id).entry
        except (OfferUnavailableError, BudgetExhaustedError, NotFoundError, ProviderRefusedError) as exc:
            raise OfferNotIssuedError(str(exc)) from exc
        return IssuedOffer(code=entry.code, valid_until=entry.valid_until)
