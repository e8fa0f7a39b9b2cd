"""Budget pools that are never overspent: money is reserved on a hold before it is promised (a coupon issued, a
campaign's whole plan selected, a journey's worst case), committed as it is really spent (a redemption, a send), and
released when it will not be (an expiry, a failure, a person leaving a journey early).

A pool keeps `available + reserved + committed == total` at every write, and `available` never goes below zero:
each reserve is a conditional write on every pool it draws from, all in one transaction. Every commit names an
operation id, so a retried commit is applied once. Pools describe what they pay for (a campaign, a form of offer, a
store or dealer); a hold draws from several at once (a coupon's face value from the campaign's pool and the store's).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from cdp.errors import CdpError

MAX_POOL_MINOR = 10**15  # far above any budget, far below DynamoDB's 38 digits when added up
MAX_CLAIMS = 10  # pools one hold may draw from (a transaction writes each, plus the hold and its marker)
LOW_SHARE = 0.1  # a pool with less than this share of its total available is running low: time to top it up

Form = Literal["coupon", "red_packet", "points", "gift", "message"]
PoolId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", description="e.g. xmas-cakes.coupons")]
OpId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:#@/+=-]+$")]
Amount = Annotated[int, Field(gt=0, le=MAX_POOL_MINOR)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BudgetPool(_Frozen):
    """A pot of money (minor units of `currency`) and what it pays for: a campaign, a form of offer, a store."""

    brand_id: str = Field(min_length=1, max_length=128)
    pool_id: PoolId
    total_minor: int = Field(ge=0, le=MAX_POOL_MINOR, description="as defined (top-ups add to the balance's)")
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    campaign_id: str | None = Field(default=None, max_length=64, description="the campaign it pays for")
    form: Form | None = Field(default=None, description="coupon face value, red-packet cash, points, gifts, messages")
    store_id: str | None = Field(default=None, max_length=128, description="the store or dealer it belongs to")
    description: str | None = Field(default=None, max_length=500)


class PoolBalance(_Frozen):
    pool: BudgetPool
    available_minor: int
    reserved_minor: int
    committed_minor: int

    @property
    def total_minor(self) -> int:
        """The pool as defined plus its top-ups."""
        return self.available_minor + self.reserved_minor + self.committed_minor


def running_low(balance: PoolBalance, share: float = LOW_SHARE) -> bool:
    """Less than `share` of the pool's total left to draw (a pool of nothing was never funded: not running low)."""
    return balance.total_minor > 0 and balance.available_minor < share * balance.total_minor


HoldState = Literal["open", "closed"]


class Hold(_Frozen):
    """Money held for one promise: `left` per pool is still reserved, `spent` per pool is committed."""

    brand_id: str
    hold_id: OpId
    claims: dict[PoolId, Amount] = Field(description="what was reserved per pool")
    left: dict[PoolId, int]
    spent: dict[PoolId, int]
    state: HoldState
    at: datetime
    closed_at: datetime | None = None
    carved: dict[PoolId, int] = Field(
        default_factory=dict, description="a plan's reservation handed on to the holds carved from it (`carve`)"
    )
    plan_id: str | None = Field(default=None, description="the plan hold this one was carved from")
    carved_spent_minor: int = Field(
        default=0,
        description="a plan's: what the holds carved from it have committed, once per promise (an offer drawn from "
        "several pools at once is counted at its dearest pool's amount, not once per pool)",
    )

    @property
    def released(self) -> dict[str, int]:
        """Per pool, what went back to the pool (only once the hold is closed)."""
        if self.state != "closed":
            return {}
        return {pool: self.claims[pool] - self.spent.get(pool, 0) - self.carved.get(pool, 0) for pool in self.claims}


_CLAIMS: TypeAdapter[dict[str, int]] = TypeAdapter(
    Annotated[dict[PoolId, Amount], Field(min_length=1, max_length=MAX_CLAIMS)]
)


def checked_claims(claims: Mapping[str, int]) -> dict[str, int]:
    """What a reserve, charge or commit asks of each pool: 1-10 pools, each a positive amount (ValidationError)."""
    return _CLAIMS.validate_python(dict(claims))


class BudgetExhaustedError(CdpError):
    """A pool has less available than asked: nothing was reserved from any pool."""

    def __init__(self, pool_id: str, asked_minor: int, available_minor: int | None) -> None:
        left = "it does not exist" if available_minor is None else f"{available_minor} available"
        super().__init__(f"budget pool {pool_id}: {asked_minor} asked, {left}")
        self.pool_id = pool_id
        self.asked_minor = asked_minor
        self.available_minor = available_minor


class PlanShortError(BudgetExhaustedError):
    """A plan hold has less left than a hold carved from it asks: the plan reserved fewer than are now issued."""

    def __init__(self, plan_id: str, pool_id: str, asked_minor: int, left_minor: int) -> None:
        CdpError.__init__(self, f"plan {plan_id}: {asked_minor} asked of pool {pool_id}, {left_minor} left in the plan")
        self.pool_id = pool_id
        self.asked_minor = asked_minor
        self.available_minor = left_minor


class HoldError(CdpError):
    """A commit asks more than the hold has left in a pool, names a pool it does not draw from, or the hold is
    closed or unknown."""


class BudgetLedger(ABC):
    """Pools and holds (DynamoDB on AWS: `cdp.budgets.dynamodb.DynamoBudgetLedger`)."""

    @abstractmethod
    def define(self, pool: BudgetPool) -> PoolBalance:
        """Create a pool with all its total available (ConflictError when it exists)."""

    @abstractmethod
    def top_up(self, brand_id: str, pool_id: str, amount_minor: int, op_id: str) -> PoolBalance:
        """Add to a pool's total (once per `op_id`)."""

    @abstractmethod
    def balance(self, brand_id: str, pool_id: str) -> PoolBalance | None: ...

    @abstractmethod
    def pools(self, brand_id: str) -> list[PoolBalance]: ...

    @abstractmethod
    def reserve(self, brand_id: str, hold_id: str, claims: Mapping[str, int], now: datetime) -> Hold:
        """Hold `claims` from their pools, all or nothing (BudgetExhaustedError names the first pool short). The same
        hold asked again is the hold already made (HoldError when it asked for something else)."""

    @abstractmethod
    def commit(self, brand_id: str, hold_id: str, op_id: str, amounts: Mapping[str, int], now: datetime) -> Hold:
        """Spend part of what the hold has left (once per `op_id`: a retry returns the hold unchanged)."""

    @abstractmethod
    def release(self, brand_id: str, hold_id: str, now: datetime) -> Hold:
        """Close the hold: what it has left goes back to its pools (a closed hold is returned as it is)."""

    @abstractmethod
    def settle(self, brand_id: str, hold_id: str, amounts: Mapping[str, int], now: datetime) -> Hold:
        """Commit `amounts` and release the rest, closing the hold (a coupon redeemed for less than its worst case);
        a closed hold is returned as it is, so a retried settle counts once."""

    @abstractmethod
    def charge(self, brand_id: str, op_id: str, claims: Mapping[str, int], now: datetime) -> Hold:
        """Reserve and commit at once (a cost with nothing promised before it); once per `op_id`."""

    @abstractmethod
    def carve(self, brand_id: str, plan_id: str, hold_id: str, claims: Mapping[str, int], now: datetime) -> Hold:
        """A hold taken out of an open plan hold's reservation (a campaign run reserved its whole plan at selection;
        each coupon issued for it takes its share): the plan has `claims` less left, the new hold holds them, and
        the pools do not move. Once per `hold_id`; PlanShortError when the plan has less left, HoldError when it is
        closed or unknown."""

    @abstractmethod
    def hold(self, brand_id: str, hold_id: str) -> Hold | None: ...


def message_plan_id(run_id: str) -> str:
    """The hold a campaign run reserves its messages' worst case in at selection, when its budget names a pool; each
    send batch commits what its messages cost from it, and the run's end releases the rest."""
    return f"msgplan:{run_id}"
