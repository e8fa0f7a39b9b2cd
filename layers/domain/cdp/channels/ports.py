"""Ports of the channels context: a delivery channel, the send idempotency ledger, the audience batch source."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cdp.channels.models import ChannelName, DeliveryReceipt, OutboundMessage
from cdp.errors import CdpError, ChannelError


class DeliveryRejected(ChannelError):
    """The provider answered and refused the message (throttled, invalid, opted out): it was certainly not sent,
    so the send may be retried at once. A plain `ChannelError` means the outcome is unknown (e.g. a timeout)."""


class Channel(ABC):
    name: ChannelName

    @abstractmethod
    def send(self, message: OutboundMessage) -> DeliveryReceipt:
        """Hand one message to the provider. Raises DeliveryRejected or ChannelError."""


@dataclass(frozen=True)
class SendKey:
    """What is delivered at most once: one campaign step to one (surviving) person."""

    campaign_id: str
    step: str
    person_id: str


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"  # this attempt owns the send
    ALREADY_SENT = "already_sent"  # an earlier attempt delivered it
    IN_FLIGHT = "in_flight"  # another attempt holds an unexpired lease


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    attempt_id: str | None = None  # set when CLAIMED; proves ownership to mark_sent/release
    taken_over: bool = False  # CLAIMED from a crashed attempt whose lease had expired


DEFAULT_LEASE = timedelta(minutes=5)


class SendLedger(ABC):
    @abstractmethod
    def claim(
        self, key: SendKey, message_id: str, run_id: str, now: datetime, lease: timedelta = DEFAULT_LEASE
    ) -> Claim:
        """Record a pending send before the channel is called, or say why this attempt must not send."""

    @abstractmethod
    def mark_sent(self, key: SendKey, attempt_id: str, provider_id: str, now: datetime) -> None:
        """The channel accepted the message: make the record final."""

    @abstractmethod
    def release(self, key: SendKey, attempt_id: str, now: datetime) -> None:
        """The channel certainly did not send: keep the record pending but let the next attempt take it at once."""


class BatchReader(ABC):
    @abstractmethod
    def person_ids(self, key: str) -> list[str]:
        """The person ids of one audience batch file."""


class StopSwitch(ABC):
    """The brand's campaign stop switch (`cdp.campaigns.dynamodb.DynamoCampaignCatalog` holds it)."""

    @abstractmethod
    def stopped(self, brand_id: str) -> str | None:
        """Why the brand's campaigns are stopped (who, and the reason), or None when they may send."""


@dataclass(frozen=True)
class IssuedOffer:
    """An offer issued to the recipient at send time: what the template shows as {{ offer.code }}."""

    code: str | None
    valid_until: datetime


class OfferNotIssuedError(CdpError):
    """The step's offer could not be issued to this person (out of stock, their limit, the budget): not sent."""


class MessageSpending(ABC):
    """Pays a batch's messages from the run's message plan (`cdp.channels.spending.PlanSpending`)."""

    @abstractmethod
    def spend(self, brand_id: str, run_id: str, pool_id: str, amount_minor: int, op_id: str) -> None:
        """Commit `amount_minor` from the run's plan (once per `op_id`); never raises for the budget's answer: the
        messages have left."""


class OfferIssuer(ABC):
    """Issues a catalog offer to a recipient as their message leaves (`cdp.channels.offers.WalletOffers`)."""

    @abstractmethod
    def issue(
        self, brand_id: str, offer_id: str, person_id: str, issue_id: str, plan_id: str | None = None
    ) -> IssuedOffer:
        """Once per `issue_id` (a retried send shows the same code), from the run's plan hold `plan_id` when it has
        one; OfferNotIssuedError."""
