"""Which campaign an order is credited to: once, to one campaign, by the strongest evidence on the person's own record.

1. `coupon`: the order used a code the campaign issued to the person (`coupon_issued.code`), or the campaign's coupon
   was redeemed by that order (`coupon_redeemed.order_id`);
2. `campaign_id`: the order names the campaign (a tagged checkout link, a POS campaign field);
3. `click`: the person's last tracked click (`message_clicked`) within the brand's attribution window before the order;
4. `last_touch`: the last message that left for them (`sent`) within that window.

Evidence of a higher rank wins whatever its time; within one rank the latest wins. An order with none is credited to
no campaign. A campaign's funnel then counts its treated persons' orders credited to it (`purchased`, revenue), while
the lift against the holdout counts every order in the window (the holdout has no messages to credit).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from cdp.ingest.events import CouponIssuedEvent, CouponRedeemedEvent, MessageClickedEvent, OrderPlacedEvent
from cdp.profile.ports import MessageRecord, TimelineEntry

Evidence = Literal["coupon", "campaign_id", "click", "last_touch"]
EVIDENCE: tuple[Evidence, ...] = ("coupon", "campaign_id", "click", "last_touch")


@dataclass(frozen=True)
class Credit:
    campaign_id: str
    evidence: Evidence


@dataclass(frozen=True)
class Touchpoints:
    """What on a person's record can earn an order: their codes, redemptions, clicks and messages."""

    codes: dict[str, str]  # code -> the campaign that issued it
    redeemed: dict[str, str]  # order id -> the campaign whose coupon it redeemed
    clicks: list[tuple[datetime, str]]  # (when, campaign), oldest first
    sends: list[tuple[datetime, str]]  # (when, campaign), oldest first

    @classmethod
    def of(cls, timeline: Iterable[TimelineEntry], messages: Iterable[MessageRecord] = ()) -> Touchpoints:
        codes: dict[str, str] = {}
        redeemed: dict[str, str] = {}
        clicks: list[tuple[datetime, str]] = []
        for entry in timeline:
            event = entry.event
            if isinstance(event, CouponIssuedEvent) and event.properties.code and event.properties.campaign_id:
                codes[event.properties.code] = event.properties.campaign_id
            elif isinstance(event, CouponRedeemedEvent) and event.properties.campaign_id:
                redeemed[event.properties.order_id] = event.properties.campaign_id
            elif isinstance(event, MessageClickedEvent) and event.properties.campaign_id:
                clicks.append((event.occurred_at, event.properties.campaign_id))
        sends = [(m.sent_at, m.campaign_id) for m in messages if m.status == "sent"]
        return cls(codes, redeemed, sorted(clicks), sorted(sends))


def _latest(touches: Sequence[tuple[datetime, str]], before: datetime, window: timedelta) -> str | None:
    found = [campaign for at, campaign in touches if before - window <= at <= before]
    return found[-1] if found else None


def credit(order: OrderPlacedEvent, touches: Touchpoints, window: timedelta) -> Credit | None:
    """The campaign the order is credited to, and why (None: no campaign earned it)."""
    props = order.properties
    by_coupon = touches.redeemed.get(props.order_id) or (touches.codes.get(props.coupon_code or "") or None)
    if by_coupon:
        return Credit(by_coupon, "coupon")
    if props.campaign_id:
        return Credit(props.campaign_id, "campaign_id")
    clicked = _latest(touches.clicks, order.occurred_at, window)
    if clicked:
        return Credit(clicked, "click")
    sent = _latest(touches.sends, order.occurred_at, window)
    return Credit(sent, "last_touch") if sent else None


class Attributed(BaseModel):
    """The orders of a group credited to one campaign."""

    persons: int = Field(default=0, description="persons with at least one order credited to the campaign")
    orders: int = 0
    revenue_minor: int = Field(default=0, description="what the credited orders paid (after discounts)")
    discounts_minor: int = Field(default=0, description="what the credited orders saved (lines minus paid)")
    by_evidence: dict[str, int] = Field(default_factory=dict, description="credited orders by their evidence")
    coupon_orders: int = Field(default=0, description="credited orders that redeemed the campaign's coupon")
    credited_elsewhere: int = Field(default=0, description="orders in the window credited to another campaign")
    uncredited: int = Field(default=0, description="orders in the window no campaign earned")

    def add(
        self, person_orders: Sequence[tuple[OrderPlacedEvent, Credit | None]], campaign_id: str, currency: str
    ) -> None:
        mine = False
        for order, earned in person_orders:
            if earned is None:
                self.uncredited += 1
                continue
            if earned.campaign_id != campaign_id:
                self.credited_elsewhere += 1
                continue
            mine = True
            self.orders += 1
            self.by_evidence[earned.evidence] = self.by_evidence.get(earned.evidence, 0) + 1
            self.coupon_orders += earned.evidence == "coupon"
            if order.properties.currency == currency:
                lines = sum(line.quantity * line.unit_price_minor for line in order.properties.lines)
                self.revenue_minor += order.properties.total_minor
                self.discounts_minor += lines - order.properties.total_minor
        self.persons += mine
