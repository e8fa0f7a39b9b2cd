"""In-memory fakes of the channels ports (ledger, channel, batch source), with assertion helpers.

`InMemorySendLedger` follows the same contract as `cdp.channels.ledger.DynamoSendLedger`; the integration suite runs
one set of contract tests against both."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cdp.channels.models import ChannelName, DeliveryReceipt, OutboundMessage
from cdp.channels.ports import (
    DEFAULT_LEASE,
    BatchReader,
    Channel,
    Claim,
    ClaimOutcome,
    DeadAddresses,
    SendKey,
    SendLedger,
)


@dataclass
class LedgerRecord:
    status: str
    attempt_id: str
    lease_until: datetime | None
    message_id: str
    run_id: str
    attempts: int = 1
    provider_id: str | None = None


class InMemorySendLedger(SendLedger):
    def __init__(self) -> None:
        self.records: dict[SendKey, LedgerRecord] = {}
        self._lock = threading.Lock()  # the conditional writes of DynamoDB are atomic; so is this

    def claim(
        self, key: SendKey, message_id: str, run_id: str, now: datetime, lease: timedelta = DEFAULT_LEASE
    ) -> Claim:
        with self._lock:
            attempt_id = uuid.uuid4().hex
            current = self.records.get(key)
            if current is None:
                self.records[key] = LedgerRecord("pending", attempt_id, now + lease, message_id, run_id)
                return Claim(ClaimOutcome.CLAIMED, attempt_id)
            if current.status == "sent":
                return Claim(ClaimOutcome.ALREADY_SENT)
            if current.status == "failed":
                return Claim(ClaimOutcome.FAILED_FOR_GOOD)
            if current.lease_until is not None and current.lease_until > now:
                return Claim(ClaimOutcome.IN_FLIGHT)
            current.attempt_id, current.lease_until, current.run_id = attempt_id, now + lease, run_id
            current.attempts += 1
            return Claim(ClaimOutcome.CLAIMED, attempt_id, taken_over=True)

    def mark_sent(self, key: SendKey, attempt_id: str, provider_id: str, now: datetime) -> None:
        with self._lock:
            current = self.records[key]
            if current.status == "pending":
                current.status, current.provider_id, current.lease_until = "sent", provider_id, None

    def release(self, key: SendKey, attempt_id: str, now: datetime) -> None:
        with self._lock:
            current = self.records.get(key)
            if current is not None and current.status == "pending" and current.attempt_id == attempt_id:
                current.lease_until = now

    def mark_failed(self, key: SendKey, attempt_id: str, code: str, now: datetime) -> None:
        with self._lock:
            current = self.records.get(key)
            if current is not None and current.status == "pending" and current.attempt_id == attempt_id:
                current.status, current.lease_until = "failed", None

    # --- helpers for tests
    def status(self, key: SendKey) -> str | None:
        record = self.records.get(key)
        return record.status if record else None


@dataclass
class RecordingChannel(Channel):
    """Accepts every message, unless `fail` says otherwise for it (return an exception to raise)."""

    name: ChannelName = "sms"
    fail: Callable[[OutboundMessage], Exception | None] = field(default=lambda _message: None)
    sent: list[OutboundMessage] = field(default_factory=list)
    attempts: list[OutboundMessage] = field(default_factory=list)

    def send(self, message: OutboundMessage) -> DeliveryReceipt:
        self.attempts.append(message)
        error = self.fail(message)
        if error is not None:
            raise error
        self.sent.append(message)
        return DeliveryReceipt(
            message_id=message.message_id,
            channel=message.channel,
            provider_id=f"prov-{len(self.sent)}",
            accepted_at=message.created_at,
        )

    def sent_to(self) -> list[str]:
        return [m.person_id for m in self.sent]

    def __len__(self) -> int:
        return len(self.sent)


class StaticBatches(BatchReader):
    def __init__(self, batches: dict[str, list[str]]) -> None:
        self.batches = batches

    def person_ids(self, key: str) -> list[str]:
        return list(self.batches[key])


class InMemoryDeadAddresses(DeadAddresses):
    def __init__(self) -> None:
        self.buried: dict[tuple[str, str], str] = {}
        self.reads = 0

    def dead(self, brand_id: str, address_keys: Iterable[str]) -> set[str]:
        self.reads += 1
        return {key for key in address_keys if (brand_id, key) in self.buried}

    def bury(self, brand_id: str, address_key: str, code: str, at: datetime) -> None:
        self.buried[(brand_id, address_key)] = code
