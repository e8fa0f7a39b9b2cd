"""What the offer service shares across the outside systems an issue may call: a red packet's payment provider
(`cdp.offers.red_packets`) and an external coupon system (`cdp.offers.external_coupons`).

- `Payout`: what became of the issue at the provider, kept on its wallet entry.
- `PayoutRefusedError` / `PayoutUnavailableError`: a final refusal (calling again cannot help) or no usable answer
  (the same request may be sent again; it may or may not have been done).
- `RetryPolicy` and `attempt`: transient failures are tried again under the same request id, so the provider does it
  at most once.
- `wechat_openid`: the person's OpenID under the provider's app, which both WeChat Pay APIs pay or issue to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from cdp.errors import CdpError
from cdp.identifiers.model import Identifier, IdentifierType

PayoutStatus = Literal["paid", "granted", "failed", "pending", "not_configured"]
T = TypeVar("T")


class Payout(BaseModel):
    """What became of an issue at its provider (kept on its wallet entry)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: PayoutStatus = Field(
        description="paid: a red packet's cash sent to the person's WeChat wallet; granted: an external coupon system "
        "issued the coupon (its id is the entry's code); failed: not done, the issue undone and its budget hold "
        "released; pending: the provider could not say yet (issue again under the same issue_id to ask); "
        "not_configured: no provider for the brand, recorded in the wallet and not paid out"
    )
    provider: str | None = Field(default=None, description="e.g. wechat_pay")
    bill_no: str | None = Field(
        default=None, description="the request at the provider (WeChat Pay's mch_billno or out_request_no)"
    )
    provider_ref: str | None = Field(
        default=None, description="the provider's id of what it did (a packet's send_listid, a coupon_id)"
    )
    reason: str | None = Field(default=None, description="why not done: the provider's error code, or no_openid, ...")
    message: str | None = Field(default=None, max_length=500)
    attempts: int = Field(default=0, ge=0, description="calls made")
    at: datetime

    @classmethod
    def of(
        cls,
        provider: str,
        request_no: str,
        attempts: int,
        status: PayoutStatus,
        at: datetime,
        *,
        ref: str | None = None,
        reason: str | None = None,
        message: str | None = None,
    ) -> Payout:
        """The outcome of a request the provider was called about (its message clipped to what is kept)."""
        return cls(
            status=status,
            provider=provider,
            bill_no=request_no,
            provider_ref=ref,
            reason=reason,
            message=message[:500] if message else None,
            attempts=attempts,
            at=at,
        )


class PayoutRefusedError(CdpError):
    """The provider refused for good (a balance or stock exhausted, the person's limit, a bad OpenID, the request
    itself): asking again cannot help."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class PayoutUnavailableError(CdpError):
    """The provider did not answer, or answered that it could not do it now (SYSTEMERROR, a rate limit): the same
    request may be sent again, and it may or may not have been done."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RetryPolicy:
    """Transient failures: `attempts` calls in all, waiting `backoff_s[i]` after the i-th (the last value repeats).
    Keep the worst case (attempts x the provider's timeout + the waits + one lookup) inside the API's 30 s."""

    attempts: int = 3
    backoff_s: tuple[float, ...] = (0.2, 1.0)

    def wait(self, attempt: int) -> float:
        if not self.backoff_s:
            return 0.0
        return self.backoff_s[min(attempt - 1, len(self.backoff_s) - 1)]


@dataclass(frozen=True)
class Attempts(Generic[T]):
    """How a call under a retry policy ended: its result, a final refusal, or the last transient failure."""

    result: T | None
    refused: PayoutRefusedError | None
    unavailable: PayoutUnavailableError | None
    count: int


def attempt(call: Callable[[], T], policy: RetryPolicy, sleep: Callable[[float], None]) -> Attempts[T]:
    """Call until it answers or refuses, or the policy's attempts are spent (waiting between transient failures)."""
    last: PayoutUnavailableError | None = None
    for n in range(1, policy.attempts + 1):
        try:
            return Attempts(call(), None, None, n)
        except PayoutRefusedError as exc:
            return Attempts(None, exc, None, n)
        except PayoutUnavailableError as exc:
            last = exc
            if n < policy.attempts:
                sleep(policy.wait(n))
    return Attempts(None, None, last, policy.attempts)


def wechat_openid(identifiers: Sequence[str], app_id: str) -> str | None:
    """The person's OpenID under `app_id` (identifier keys `wechat_openid:{app}:{openid}`; app ids compare in lower
    case, as identifiers store their scope)."""
    scope = app_id.strip().lower()
    for key in identifiers:
        if not key.startswith(f"{IdentifierType.WECHAT_OPENID.value}:"):
            continue
        found = Identifier.from_key(key)
        if found.scope == scope and found.value:
            return found.value
    return None
