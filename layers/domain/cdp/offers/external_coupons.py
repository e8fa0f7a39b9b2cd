"""External coupon systems: coupons whose codes another system issues (WeChat Pay's cash coupons, 代金券), behind a
small port.

An offer's `coupon.external` names the system and the stock it issues from. Issuing one to a person
(`cdp.offers.service.OfferService.issue_to`):
1. the platform's own issue, in one transaction as for any offer (the offer's stock, the person's limit, the wallet
   entry, the budget hold), without a code yet;
2. the system is asked for a coupon of the stock for the person, under a request number derived from the issue (its
   brand, its issue id, the day it was issued), so every retry, in this call or a later one, names the same request
   and the system issues at most one coupon for it (WeChat Pay answers a request number it has seen with the coupon it
   issued then);
3. granted: the coupon's id becomes the entry's code, indexed like every code, so an order that names it redeems it;
   refused for good (the stock used up at the system, the person's limit there, no OpenID): the issue is undone (the
   entry `failed`; the offer's stock, the person's count and the hold given back); no answer after every attempt: the
   entry keeps its hold and no code (`pending`) and issuing again under the same issue id asks again.

`ExternalCouponIssuer` is that policy without AWS; the store records each outcome.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from cdp.offers.providers import Payout, PayoutStatus, RetryPolicy, attempt, wechat_openid
from cdp.shared.time import utc_now


@dataclass(frozen=True)
class CouponGrant:
    """One coupon to issue: `request_no` names it at the system (the same request issues one coupon)."""

    request_no: str
    openid: str
    stock_id: str
    creator_mch_id: str | None


@dataclass(frozen=True)
class GrantedCoupon:
    coupon_id: str


class ExternalCouponSystem(ABC):
    """A coupon system's issuing API, for one brand's account."""

    name: str = "system"

    @property
    @abstractmethod
    def app_id(self) -> str:
        """The WeChat app whose OpenIDs it issues to (a person needs an OpenID scoped to it)."""

    @abstractmethod
    def request_no(self, brand_id: str, issue_id: str, issued_at: datetime) -> str:
        """The request number of an issue: the same for every call about it."""

    @abstractmethod
    def grant(self, grant: CouponGrant) -> GrantedCoupon:
        """Issue the coupon (PayoutRefusedError, PayoutUnavailableError); a request issued before answers its
        coupon."""


class ExternalCouponSystems(ABC):
    """Which system issues a brand's external coupons (None: the brand has not configured it)."""

    @abstractmethod
    def coupons_for(self, brand_id: str, system: str) -> ExternalCouponSystem | None: ...


@dataclass(frozen=True)
class CouponRequest:
    """One issued external coupon to obtain: the wallet entry's facts the issuer needs."""

    brand_id: str
    issue_id: str
    issued_at: datetime
    system: str
    stock_id: str
    creator_mch_id: str | None


class ExternalCouponIssuer:
    def __init__(
        self,
        systems: ExternalCouponSystems,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._systems = systems
        self._policy = policy or RetryPolicy()
        self._sleep = sleep
        self._now = now

    def refusal(self, request: CouponRequest, identifiers: Sequence[str]) -> Payout | None:
        """Why the coupon could never be issued to this person, known before any call (the brand has no such system,
        the person has no OpenID under its app): a `failed` outcome, else None. Checked before the platform's issue,
        so nothing is held."""
        ready = self._prepare(request, identifiers)
        return ready if isinstance(ready, Payout) else None

    def grant(self, request: CouponRequest, identifiers: Sequence[str]) -> Payout:
        """Ask the system for the coupon (see the module); never raises for the system's answers."""
        ready = self._prepare(request, identifiers)
        if isinstance(ready, Payout):
            return ready
        system, grant = ready
        done = attempt(lambda: system.grant(grant), self._policy, self._sleep)
        if done.result is not None:
            return self._outcome(system, grant, done.count, "granted", ref=done.result.coupon_id)
        if done.refused is not None:
            refused = done.refused
            return self._outcome(system, grant, done.count, "failed", reason=refused.code, message=refused.message)
        last = done.unavailable
        assert last is not None
        # The system may have issued it: the same request number asks again, and answers that coupon if it did.
        message = f"not known whether it was issued ({last.message}): issue again under the same issue_id to ask"
        return self._outcome(system, grant, done.count, "pending", reason=last.code, message=message)

    def _prepare(
        self, request: CouponRequest, identifiers: Sequence[str]
    ) -> Payout | tuple[ExternalCouponSystem, CouponGrant]:
        system = self._systems.coupons_for(request.brand_id, request.system)
        if system is None:
            message = f"brand {request.brand_id} has no {request.system} account for external coupons"
            return Payout(status="failed", reason="no_provider", message=message, at=self._now())
        openid = wechat_openid(identifiers, system.app_id)
        if openid is None:
            message = f"the person has no WeChat OpenID of app {system.app_id}, which the coupon is issued to"
            return Payout(status="failed", provider=system.name, reason="no_openid", message=message, at=self._now())
        grant = CouponGrant(
            request_no=system.request_no(request.brand_id, request.issue_id, request.issued_at),
            openid=openid,
            stock_id=request.stock_id,
            creator_mch_id=request.creator_mch_id,
        )
        return system, grant

    def _outcome(
        self,
        system: ExternalCouponSystem,
        grant: CouponGrant,
        attempts: int,
        status: PayoutStatus,
        **details: str | None,
    ) -> Payout:
        return Payout.of(system.name, grant.request_no, attempts, status, self._now(), **details)
