"""Red packets: cash an issued `red_packet` offer sends to the member's WeChat wallet, behind a small port.

A provider (`RedPacketProvider`; WeChat Pay's "sendredpack" in `cdp.offers.wechat_pay`) sends one packet per bill
number. The bill number is derived from the issue (its brand, its issue id and the day it was issued), so every
retry of one issue, in this call or any later one, names the same bill, and the provider pays it at most once.

`RedPacketPayer.pay` is the whole policy, with no AWS in it:
- no provider for the brand: `not_configured` (the entry stays in the wallet, its budget still held, nothing paid);
- no OpenID of the person under the provider's app, a currency other than CNY, or an amount the provider cannot pay
  (`refusal`: checked before the issue, so nothing is issued nor held), or a refusal the provider calls final
  (balance exhausted, the person's daily limit, a bad OpenID): `failed`;
- a transient failure (a timeout, SYSTEMERROR, a rate limit): tried again with the same bill number, and when every
  attempt failed the provider is asked what became of the bill: sent (`paid`), never sent (`failed`), or it cannot
  say (`pending`: the budget stays held and the next issue under the same id asks again).
The offer service turns each outcome into the wallet's state (`cdp.offers.service`).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from cdp.offers.providers import (
    Payout,
    PayoutStatus,
    PayoutUnavailableError,
    RetryPolicy,
    attempt,
    wechat_openid,
)
from cdp.shared.time import utc_now

RED_PACKET_CURRENCY = "CNY"


@dataclass(frozen=True)
class RedPacketOrder:
    """One packet to send: `bill_no` names it at the provider (the same bill is paid once)."""

    bill_no: str
    openid: str
    amount_minor: int
    act_name: str  # the activity, e.g. the offer's name
    wishing: str
    remark: str


@dataclass(frozen=True)
class SentPacket:
    bill_no: str
    provider_ref: str | None


@dataclass(frozen=True)
class BillStatus:
    """What the provider knows of a bill: `sent` (sending, sent, received or refunded later), `failed` or
    `not_found` (never sent)."""

    state: Literal["sent", "failed", "not_found"]
    provider_ref: str | None = None
    reason: str | None = None


class RedPacketProvider(ABC):
    """A payment provider's red packet API, for one merchant account."""

    name: str = "provider"

    @property
    @abstractmethod
    def app_id(self) -> str:
        """The WeChat app whose OpenIDs it pays (a person needs an OpenID scoped to it)."""

    @abstractmethod
    def bill_no(self, brand_id: str, issue_id: str, issued_at: datetime) -> str:
        """The bill number of an issue: the same for every call about it."""

    @abstractmethod
    def check(self, amount_minor: int) -> str | None:
        """Why it cannot send this amount (None: it can)."""

    @abstractmethod
    def send(self, order: RedPacketOrder) -> SentPacket:
        """Send the packet (PayoutRefusedError, PayoutUnavailableError); sending a bill sent before is a success."""

    @abstractmethod
    def lookup(self, bill_no: str) -> BillStatus:
        """What became of a bill (PayoutUnavailableError when the provider cannot say)."""


class RedPacketProviders(ABC):
    """Which provider pays a brand's red packets (none: red packets are recorded and not paid out)."""

    @abstractmethod
    def for_brand(self, brand_id: str) -> RedPacketProvider | None: ...


@dataclass(frozen=True)
class PacketRequest:
    """One issued red packet to pay: the wallet entry's facts the payer needs."""

    brand_id: str
    issue_id: str
    issued_at: datetime
    amount_minor: int
    currency: str
    act_name: str
    wishing: str
    remark: str


class RedPacketPayer:
    def __init__(
        self,
        providers: RedPacketProviders,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._providers = providers
        self._policy = policy or RetryPolicy()
        self._sleep = sleep
        self._now = now

    def pay(self, packet: PacketRequest, identifiers: Sequence[str]) -> Payout:
        """Send the packet to the person (see the module); never raises for the provider's answers."""
        ready = self._prepare(packet, identifiers)
        if isinstance(ready, Payout):
            return ready
        return self._send(*ready)

    def refusal(self, packet: PacketRequest, identifiers: Sequence[str]) -> Payout | None:
        """Why the packet could never be paid, known before any call (no OpenID of the provider's app, a currency or
        an amount it does not pay): a `failed` payout, else None. Checked before an issue, so nothing is held."""
        ready = self._prepare(packet, identifiers)
        return ready if isinstance(ready, Payout) and ready.status == "failed" else None

    def _prepare(
        self, packet: PacketRequest, identifiers: Sequence[str]
    ) -> Payout | tuple[RedPacketProvider, RedPacketOrder]:
        provider = self._providers.for_brand(packet.brand_id)
        if provider is None:
            message = f"no red packet provider is configured for brand {packet.brand_id}: recorded, not paid out"
            return Payout(status="not_configured", reason="no_provider", message=message, at=self._now())
        base = {"provider": provider.name, "at": self._now()}
        if packet.currency != RED_PACKET_CURRENCY:
            message = f"{provider.name} pays red packets in {RED_PACKET_CURRENCY}, not {packet.currency}"
            return Payout(status="failed", reason="currency", message=message, **base)
        refused = provider.check(packet.amount_minor)
        if refused is not None:
            return Payout(status="failed", reason="amount", message=refused, **base)
        openid = wechat_openid(identifiers, provider.app_id)
        if openid is None:
            message = f"the person has no WeChat OpenID of app {provider.app_id}, which the red packet is paid through"
            return Payout(status="failed", reason="no_openid", message=message, **base)
        order = RedPacketOrder(
            bill_no=provider.bill_no(packet.brand_id, packet.issue_id, packet.issued_at),
            openid=openid,
            amount_minor=packet.amount_minor,
            act_name=packet.act_name,
            wishing=packet.wishing,
            remark=packet.remark,
        )
        return provider, order

    def _send(self, provider: RedPacketProvider, order: RedPacketOrder) -> Payout:
        done = attempt(lambda: provider.send(order), self._policy, self._sleep)
        if done.result is not None:
            return self._payout(provider, order, done.count, "paid", ref=done.result.provider_ref)
        if done.refused is not None:
            refused = done.refused
            return self._payout(provider, order, done.count, "failed", reason=refused.code, message=refused.message)
        last = done.unavailable
        assert last is not None
        # Every attempt failed in a way that may still have sent it: ask the provider about the bill.
        try:
            found = provider.lookup(order.bill_no)
        except PayoutUnavailableError as exc:
            message = f"not known whether it was sent ({last.code}, then {exc.code}): issue again to ask"
            return self._payout(provider, order, done.count, "pending", reason=last.code, message=message)
        if found.state == "sent":
            return self._payout(provider, order, done.count, "paid", ref=found.provider_ref)
        message = f"not sent after {done.count} attempts ({last.message})"
        return self._payout(provider, order, done.count, "failed", reason=found.reason or last.code, message=message)

    def _payout(
        self,
        provider: RedPacketProvider,
        order: RedPacketOrder,
        attempts: int,
        status: PayoutStatus,
        **details: str | None,
    ) -> Payout:
        return Payout.of(provider.name, order.bill_no, attempts, status, self._now(), **details)
