"""Ports of the channels context: a delivery channel, the send idempotency ledger, the audience batch source."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cdp.channels.lifecycle import Receipt
from cdp.channels.models import ChannelName, DeliveryReceipt, OutboundMessage
from cdp.errors import CdpError, ChannelError


class DeliveryRejected(ChannelError):
    """The provider answered and refused the message, or could not be reached: it was certainly not sent. A plain
    `ChannelError` means the outcome is unknown (e.g. a read timeout): the send must not be repeated within its lease.

    `permanent`: sending it again cannot help (an invalid number, a user who refused the app's messages, no sender
    configured, a template the provider does not know): the message ends `failed` with `code` and is not retried.
    Otherwise transient (throttled, a 5xx, a connection refused): the sender retried it already; a later attempt may.
    `invalid_address`: the address itself is dead (an unregistered push token, a number that does not exist): the
    person is not sent to there again."""

    def __init__(
        self, message: str, *, code: str | None = None, permanent: bool = False, invalid_address: bool = False
    ) -> None:
        super().__init__(message)
        self.code = code
        self.permanent = permanent or invalid_address
        self.invalid_address = invalid_address


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
    FAILED_FOR_GOOD = "failed_for_good"  # an earlier attempt was refused for good (an invalid number, no sender)
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

    @abstractmethod
    def mark_failed(self, key: SendKey, attempt_id: str, code: str, now: datetime) -> None:
        """The provider refused it for good: the record is final, no later attempt sends it."""


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


@dataclass(frozen=True)
class LoggedMessage:
    """A message as the message log keeps it (`cdp.channels.messages.DynamoMessageLog`)."""

    message_id: str
    brand_id: str
    person_id: str
    campaign_id: str
    run_id: str
    step: str
    channel: str
    status: str  # cdp.channels.lifecycle.MessageStatus
    sent_at: datetime
    provider: str | None = None
    provider_id: str | None = None
    code: str | None = None  # the provider's error code of a failure
    times: dict[str, datetime] | None = None  # the first time of each status reached
    variant: str | None = None  # a journey's message: the person's A/B/n arm


@dataclass(frozen=True)
class StepOf:
    """The journey step a message was sent from: its run, its place on the paths (`s1`, `reminder-s0`), its arm."""

    run_id: str
    place: str
    variant: str | None = None


@dataclass(frozen=True)
class Applied:
    """What a receipt did: the message it belongs to, and whether the status it shows moved (from `previous`)."""

    message: LoggedMessage
    previous: str
    moved: bool


class MessageLog(ABC):
    """Every message sent (or failed for good) by message id, its status moved by receipts, and per-run counts."""

    @abstractmethod
    def record(self, messages: Sequence[LoggedMessage]) -> None:
        """A batch's messages as they left (status sent, or failed with the provider's code); counted per run."""

    @abstractmethod
    def apply(self, receipt: Receipt, keep_orphan: bool = True) -> Applied | None:
        """Move the message's status (`cdp.channels.lifecycle.moves`). None when no message of the brand has that id
        (yet): with `keep_orphan` the receipt is kept, and applied when its message is recorded."""

    @abstractmethod
    def count_moves(self, moved: Sequence[Applied]) -> None:
        """Move the run counts of what `apply` moved (one write per campaign run, however many receipts)."""

    @abstractmethod
    def get_many(self, message_ids: Sequence[str]) -> dict[str, LoggedMessage]:
        """The messages of these ids that the log has."""

    @abstractmethod
    def counts(self, brand_id: str, campaign_id: str) -> dict[str, dict[str, dict[str, int]]]:
        """run id -> channel -> status -> messages showing that status now."""

    @abstractmethod
    def step_counts(self, brand_id: str, campaign_id: str) -> dict[StepOf, dict[str, dict[str, int]]]:
        """A journey's messages by the step they were sent from: (run id, place, arm) -> channel -> status -> messages
        showing that status now (`cdp.channels.models.journey_place`; arm None without variants)."""


class DeadAddresses(ABC):
    """Addresses a provider refused for good (`cdp.channels.dead_addresses.DynamoDeadAddresses`)."""

    @abstractmethod
    def dead(self, brand_id: str, address_keys: Iterable[str]) -> set[str]:
        """The identifier keys among these that no message of the brand should go to."""

    @abstractmethod
    def bury(self, brand_id: str, address_key: str, code: str, at: datetime) -> None:
        """Remember that a provider refused this address for good (`code`: its reason)."""
