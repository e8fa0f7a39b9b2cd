"""Ports of erasure and export: the profiles table, the data bucket, the ledger table, the offers table (adapters:
`cdp.privacy.aws`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cdp.channels.ports import SendKey
from cdp.identity.resolution import IdentifierRecord, LineageRecord
from cdp.ingest.events import CanonicalEvent
from cdp.loyalty.accounts import Account
from cdp.offers.wallet import WalletEntry
from cdp.privacy.models import ErasureReceipt
from cdp.profile.models import Profile
from cdp.profile.ports import MessageRecord


@dataclass(frozen=True, order=True)
class ItemKey:
    pk: str
    sk: str


@dataclass(frozen=True)
class StoredItem:
    key: ItemKey
    data: dict[str, Any]  # the item's attributes other than the key


@dataclass(frozen=True)
class FiledEvent:
    key: ItemKey
    anchor: str  # the identifier key the event is filed under
    event: CanonicalEvent


class PersonRecords(ABC):
    """The profiles table as erasure and export see it (key shapes: `cdp.profile.keys`)."""

    @abstractmethod
    def person(self, person_id: str) -> Profile | None:
        """The person's profile item as stored (merges not followed); None when there is none."""

    @abstractmethod
    def items(self, person_id: str) -> list[StoredItem]:
        """Every item filed under the person: the profile, messages, lineage, edit audits (and any future kind)."""

    @abstractmethod
    def identifier_records(self, namespace: str, keys: Iterable[str]) -> dict[str, IdentifierRecord]:
        """The stored records of the keys (unknown keys are absent)."""

    @abstractmethod
    def filed_events(self, namespace: str, anchors: Iterable[str]) -> list[FiledEvent]:
        """Every event filed under one of the identifier keys."""

    @abstractmethod
    def messages(self, person_id: str) -> list[MessageRecord]:
        """The messages recorded for the person (not following merges)."""

    @abstractmethod
    def lineage(self, person_id: str) -> list[LineageRecord]:
        """The merge history filed under the person (not following merges)."""

    @abstractmethod
    def suppress(self, namespace: str, keys: Iterable[str], at: datetime) -> None:
        """Write a suppression item per key (stored only as a hash), so resolution never stores the key again."""

    @abstractmethod
    def delete(self, keys: Collection[ItemKey]) -> None:
        """Delete the items (in batches; absent items are fine)."""

    @abstractmethod
    def redact(self, key: ItemKey, erased: Collection[str], versioned: bool = False) -> bool:
        """Rewrite one item without any reference to the erased strings (`cdp.privacy.scrub.drop_values`); with
        `versioned`, only if its version is unchanged, bumping it (identifier records). False: absent or unchanged."""

    @abstractmethod
    def replace_event(self, filed: FiledEvent) -> None:
        """Overwrite the event stored at `filed.key` (another person's event, redacted)."""

    @abstractmethod
    def receipt(self, person_id: str) -> ErasureReceipt | None:
        """The receipt stored by an earlier erasure of the person (or of a person merged into them)."""

    @abstractmethod
    def save_receipt(self, receipt: ErasureReceipt, person_ids: Iterable[str]) -> None:
        """Store the receipt under each id, so a repeated erasure of any of them returns it."""


class DataArchive(ABC):
    """The data bucket: raw request bodies, campaign artifacts, the outbox."""

    @abstractmethod
    def keys(self, prefix: str) -> Iterator[str]:
        """Every object key under the prefix."""

    @abstractmethod
    def read(self, key: str) -> bytes | None:
        """An object's bytes; None when it does not exist."""

    @abstractmethod
    def rewrite(self, key: str, body: bytes) -> None:
        """Replace the object, and remove its earlier versions (the bucket is versioned)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete the object with every version of it."""


class LedgerRecords(ABC):
    """The ledger table: ingest dedupe records and send idempotency records."""

    @abstractmethod
    def raw_keys(self, dedupe_keys: Iterable[str]) -> dict[str, str]:
        """Event dedupe key -> the raw archive key of the request that delivered it (when still recorded)."""

    @abstractmethod
    def delete_sends(self, keys: Iterable[SendKey]) -> list[str]:
        """Delete the send idempotency records that exist, and their messages in the message log; return their
        partition keys."""

    def delete_inbox(self, brand_id: str, person_ids: Iterable[str]) -> list[str]:
        """Delete the persons' in-app inbox messages (`cdp.channels.inbox`: the rendered texts they were sent); return
        their keys ('{pk}/{sk}'). A store without inboxes keeps this default."""
        return []


@dataclass(frozen=True)
class WalletErasure:
    """What one pass over the persons' wallets removed (labels as the receipt lists them)."""

    entries: list[str] = field(default_factory=list)  # '{person_id}/{issue_id}'
    # 'code:{issue_id}', 'expiry:…', 'pending:…' (a payout left pending), 'limit:{person}/{offer}'
    records: list[str] = field(default_factory=list)
    holds_released: list[str] = field(default_factory=list)  # hold ids whose reservation went back to the pools
    holds: list[str] = field(default_factory=list)  # 'deleted:{hold_id}' (nothing spent), 'anonymised:{hold_id}'


@dataclass(frozen=True)
class LoyaltyErasure:
    """What one pass over the persons' loyalty accounts removed (labels as the receipt lists them)."""

    accounts: list[str] = field(default_factory=list)  # '{person_id}/{program}'
    operations: list[str] = field(default_factory=list)  # '{program}/{op_id}'
    timers: list[str] = field(default_factory=list)  # '{month}/{program}/{person_id}'


class OfferRecords(ABC):
    """The offers table as erasure sees it: wallets (`cdp.offers.dynamodb`), the budget holds of their entries
    (`cdp.budgets.dynamodb`) and loyalty accounts (`cdp.loyalty.dynamodb`). Both calls may be repeated: what is gone
    is not found again."""

    @abstractmethod
    def erase_wallets(self, brand_id: str, person_ids: Collection[str], at: datetime) -> WalletErasure:
        """Remove the persons' wallet entries with their code index items, expiry timers and per-person limit
        counters. Each entry's budget hold still open is released (its money goes back to the pools); a hold with
        nothing spent is then deleted, one with money spent is kept for the pools' figures under an id that names no
        one ('{offer_id}:erased:{random}')."""

    @abstractmethod
    def wallet(self, brand_id: str, person_ids: Collection[str]) -> list[WalletEntry]:
        """The persons' offers wallet entries (an export lists them)."""

    @abstractmethod
    def loyalty_accounts(self, brand_id: str, person_ids: Collection[str]) -> list[Account]:
        """The persons' loyalty accounts of the programmes the platform keeps (an export lists them)."""

    @abstractmethod
    def erase_loyalty(self, brand_id: str, person_ids: Collection[str]) -> LoyaltyErasure:
        """Remove the persons' loyalty accounts, the operations applied to them and their timers."""
