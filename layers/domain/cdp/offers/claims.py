"""Claim links: a person claims an offer from a link (a red packet for posting a review, a coupon in a post), on a
small page the API serves (`GET /v1/claim/{token}`, claimed by `POST /v1/claim/{token}`: `cdp.app.claim_page`).

The token is the authority of these unauthenticated routes. It names the brand, the offer, the person, a claim
reference and an expiry, signed as tracked links are (`cdp.connectors.redirect.sign_body`: base64url JSON and a
128-bit HMAC-SHA256, checked in constant time) under a key of its own derived from the tracked-link secret of the
sources document (HMAC-SHA256(that secret, "cdp/claim-link/v1")): a tracked link's token is not a claim token, nor
the other way round. Nothing in it is personal but the person id, which is opaque.

Claiming issues the offer through the offer service (`OfferService.issue_to`) under the issue id `claim:{ref}`: a
link claimed twice (or two links with the same reference) is one issue, and the page says it was claimed already.
The claim puts `coupon_claimed` on the person's timeline after the issue's own event. Minting a link needs
offers:issue on the whole brand (`POST /v1/offers/{offer_id}/claim-links`, `cdp offer claim-link`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from cdp.connectors.redirect import sign_body, signed_body
from cdp.connectors.sources import SourceRegistry
from cdp.errors import CdpError, InvalidInputError, NotFoundError
from cdp.ingest.ports import ApiClient
from cdp.offers.catalog import Offer
from cdp.offers.service import ISSUE_SCOPE, IssueResult, OfferService, authorize_offers
from cdp.offers.wallet import OfferUnavailableError, WalletEntry
from cdp.shared.time import utc_now

CLAIM_KEY_INFO = b"cdp/claim-link/v1"
CLAIM_PATH = "/v1/claim/"
DEFAULT_VALID_DAYS = 7
MAX_VALID_DAYS = 90
REF_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
_LATEST = datetime(2100, 1, 1, tzinfo=UTC)


class ClaimLinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person_id: str = Field(min_length=1, max_length=128, description="the person the link is for")
    ref: str | None = Field(
        default=None,
        pattern=REF_PATTERN,
        description="names the claim: links with the same ref claim the same wallet entry (e.g. the review it "
        "rewards); default: a new one for each link",
    )
    valid_days: int = Field(default=DEFAULT_VALID_DAYS, ge=1, le=MAX_VALID_DAYS, description="the link's lifetime")


class ClaimLink(BaseModel):
    token: str
    path: str = Field(description="/v1/claim/{token}: the page on this API")
    url: str | None = Field(description="the whole link, when the API's public base URL is configured")
    brand_id: str
    offer_id: str
    person_id: str
    ref: str
    issue_id: str = Field(description="the issue id a claim issues under (claim:{ref})")
    expires_at: datetime


@dataclass(frozen=True)
class ClaimToken:
    brand_id: str
    offer_id: str
    person_id: str
    ref: str
    expires_at: datetime

    @property
    def issue_id(self) -> str:
        return f"claim:{self.ref}"


@dataclass(frozen=True)
class ClaimView:
    """What the page shows before a claim: the offer, and the entry when the link was claimed already."""

    claim: ClaimToken
    offer: Offer
    entry: WalletEntry | None


@dataclass(frozen=True)
class ClaimOutcome:
    claim: ClaimToken
    offer: Offer
    result: IssueResult


class ClaimLinkExpiredError(CdpError):
    """A genuine claim link past its expiry."""

    def __init__(self, expired_at: datetime) -> None:
        super().__init__(f"this link expired at {expired_at.isoformat()}")
        self.expired_at = expired_at


class ClaimLinksNotConfiguredError(CdpError):
    """The sources document has no tracked-link secret, so claim links can be neither made nor checked."""


def claim_key(link_secret: str) -> str:
    """The claim links' own key, derived from the tracked-link secret."""
    return hmac.new(link_secret.encode(), CLAIM_KEY_INFO, hashlib.sha256).hexdigest()


def mint_claim_token(claim: ClaimToken, link_secret: str) -> str:
    body = {
        "k": "claim",
        "b": claim.brand_id,
        "o": claim.offer_id,
        "p": claim.person_id,
        "r": claim.ref,
        "x": int(claim.expires_at.timestamp()),
    }
    return sign_body(body, claim_key(link_secret))


def read_claim_token(token: str, link_secret: str, now: datetime) -> ClaimToken:
    """The claim a token minted with `link_secret` names; InvalidInputError (field `token`) for anything that is not
    one, ClaimLinkExpiredError for one past its expiry."""
    body = signed_body(token, claim_key(link_secret))
    fields = {k: body.get(k) for k in ("b", "o", "p", "r")}
    expires = body.get("x")
    if (
        body.get("k") != "claim"
        or not all(isinstance(v, str) and v for v in fields.values())
        or not isinstance(expires, int)
        or isinstance(expires, bool)
        or not 0 < expires < _LATEST.timestamp()
    ):
        raise InvalidInputError("invalid or tampered link", "token")
    claim = ClaimToken(
        brand_id=str(fields["b"]),
        offer_id=str(fields["o"]),
        person_id=str(fields["p"]),
        ref=str(fields["r"]),
        expires_at=datetime.fromtimestamp(expires, UTC),
    )
    if now >= claim.expires_at:
        raise ClaimLinkExpiredError(claim.expires_at)
    return claim


def sources_link_secret(sources: SourceRegistry) -> Callable[[], str | None]:
    """The tracked-link secret of the sources document, read when needed (it rotates without a deploy)."""

    def secret() -> str | None:
        redirect = sources.sources().redirect
        return redirect.secret.get_secret_value() if redirect is not None else None

    return secret


class ClaimLinks:
    def __init__(
        self,
        offers: OfferService,
        link_secret: Callable[[], str | None],
        base_url: str = "",
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._offers = offers
        self._secret = link_secret
        self._base_url = base_url.rstrip("/")
        self._now = now

    def create(self, brand_id: str, offer_id: str, request: ClaimLinkRequest, client: ApiClient) -> ClaimLink:
        """A link for one person to claim one offer (offers:issue on the brand); the offer must be active and the
        person the brand's."""
        authorize_offers(client, self._offers.org, brand_id, ISSUE_SCOPE)
        stored = self._offers.offer(brand_id, offer_id)
        if stored.status != "active":
            raise OfferUnavailableError(f"offer {offer_id} is retired", "retired")
        profile = self._offers.profiles.get(request.person_id)
        if profile is None or profile.brand_id != brand_id:
            raise NotFoundError(f"no person {request.person_id} in brand {brand_id}")
        ref = request.ref or secrets.token_urlsafe(12)
        expires_at = (self._now() + timedelta(days=request.valid_days)).replace(microsecond=0)
        claim = ClaimToken(brand_id, offer_id, profile.person_id, ref, expires_at)
        token = mint_claim_token(claim, self._key())
        path = CLAIM_PATH + token
        return ClaimLink(
            token=token,
            path=path,
            url=self._base_url + path if self._base_url else None,
            brand_id=brand_id,
            offer_id=offer_id,
            person_id=profile.person_id,
            ref=ref,
            issue_id=claim.issue_id,
            expires_at=expires_at,
        )

    def view(self, token: str) -> ClaimView:
        """What the link's page shows (nothing is issued: link previews and crawlers GET it)."""
        claim = self.read(token)
        offer = self._offers.offer(claim.brand_id, claim.offer_id).offer
        entry = self._offers.issued_entry(claim.brand_id, claim.offer_id, claim.person_id, claim.issue_id)
        return ClaimView(claim, offer, entry)

    def claim(self, token: str) -> ClaimOutcome:
        """Issue the link's offer to its person under `claim:{ref}` (claimed again: the same entry, `new` false)."""
        claim = self.read(token)
        offer = self._offers.offer(claim.brand_id, claim.offer_id).offer
        result = self._offers.issue_to(claim.brand_id, claim.offer_id, claim.person_id, claim.issue_id, claimed=True)
        return ClaimOutcome(claim, offer, result)

    def read(self, token: str) -> ClaimToken:
        return read_claim_token(token, self._key(), self._now())

    def _key(self) -> str:
        secret = self._secret()
        if not secret:
            raise ClaimLinksNotConfiguredError("claim links are not configured (the sources secret has no redirect)")
        return secret
