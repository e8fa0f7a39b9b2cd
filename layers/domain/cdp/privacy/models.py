"""What erasure and export return: a receipt without personal data, and everything the platform holds on a person."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from cdp import topology
from cdp.identity.resolution import LineageRecord
from cdp.ingest.events import CanonicalEvent
from cdp.loyalty.accounts import Account
from cdp.offers.wallet import WalletEntry
from cdp.profile.models import ModelScore, Profile, TagValue
from cdp.profile.ports import MessageRecord
from cdp.shared.envelope import Publishable


class ObjectChange(BaseModel):
    """One S3 object the erasure touched: deleted (every version), or rewritten without the person's rows."""

    model_config = ConfigDict(frozen=True)

    key: str
    action: Literal["deleted", "rewritten"]
    rows_removed: int = Field(
        default=0, ge=0, description="items or rows removed plus fields redacted (0 when deleted whole)"
    )


class Retained(BaseModel):
    """A class of record deliberately kept, and why (none of them lets the person be recognised)."""

    model_config = ConfigDict(frozen=True)

    what: str
    count: int | None = Field(default=None, description="how many, when known")
    reason: str


OFFER_LISTS = (  # the receipt's lists of what went from the offers table
    "wallet_entries",
    "wallet_records",
    "budget_holds_released",
    "budget_holds",
    "loyalty_accounts",
    "loyalty_operations",
    "loyalty_timers",
)


class ErasureReceipt(BaseModel):
    """What one erasure removed, per store. It holds no personal data: person ids (pseudonymous, and the subject of the
    request), item sort keys, event dedupe keys (`{brand_id}#{source}#{event_id}`), wallet issue ids, budget hold ids
    and loyalty operation ids (some name the person id), S3 keys, and identifiers only as the SHA-256 hashes that the
    suppression list stores (`cdp.profile.keys.suppressed_pk`).

    A repeated erasure of the same person (or of an id merged into them) returns this stored receipt again.
    """

    model_config = ConfigDict(frozen=True)

    receipt_version: Literal[1] = 1
    person_id: str = Field(description="the surviving person that was erased")
    requested_id: str = Field(description="the id the caller named (a merged-away id leads to its survivor)")
    brand_id: str
    namespace: str = Field(description="the identity namespace the identifiers were suppressed in")
    erased_at: datetime
    actor: str
    merged_person_ids: list[str] = Field(default_factory=list, description="persons merged into the erased one")
    identifiers_suppressed: list[str] = Field(default_factory=list, description="SHA-256 of each identifier key")
    profile_items: list[str] = Field(default_factory=list, description="'{person_id}/PROFILE' of the person")
    merged_person_items: list[str] = Field(default_factory=list, description="'{person_id}/PROFILE' of merged persons")
    other_person_items: list[str] = Field(default_factory=list, description="any other item filed under the persons")
    identifier_records: list[str] = Field(default_factory=list, description="SHA-256 of each identifier record removed")
    filed_events: list[str] = Field(default_factory=list, description="dedupe keys of the events removed")
    messages: list[str] = Field(default_factory=list, description="'{person_id}/{sort key}' of message records")
    lineage: list[str] = Field(default_factory=list, description="'{person_id}/{sort key}' of merge history entries")
    edits: list[str] = Field(default_factory=list, description="'{person_id}/{sort key}' of profile edit audits")
    redacted_items: list[str] = Field(
        default_factory=list,
        description="other persons' lineage, identifier records, review entries and events that named the person or "
        "their identifiers, rewritten without them ('{kind}:{person id, SHA-256 or dedupe key}')",
    )
    raw_archive_objects: list[ObjectChange] = Field(default_factory=list)
    campaign_objects: list[ObjectChange] = Field(default_factory=list)
    export_objects: list[ObjectChange] = Field(default_factory=list)
    outbox_objects: list[ObjectChange] = Field(default_factory=list)
    warehouse_request: str | None = Field(
        default=None,
        description="the request the next warehouse export applies: warehouse/_erasures/{sha256 of the person id}.json",
    )
    import_objects: list[ObjectChange] = Field(
        default_factory=list, description="dropped import files, their rejects and reports, without the person's rows"
    )
    raw_objects_not_located: list[str] = Field(
        default_factory=list,
        description="raw objects that delivered the person's events but in which the person was not recognised (kept)",
    )
    ledger_records: list[str] = Field(
        default_factory=list,
        description="send idempotency records with their messages in the message log, and in-app inbox messages "
        "('INBOX#{brand}#{person}/MSG#{message_id}'), removed",
    )
    wallet_entries: list[str] = Field(default_factory=list, description="'{person_id}/{issue_id}' of offers issued")
    wallet_records: list[str] = Field(
        default_factory=list,
        description="what indexed those entries: 'code:{issue_id}' (the brand's code index), 'expiry:{issue_id}' "
        "(expiry timers), 'limit:{person_id}/{offer_id}' (per-person limit counters)",
    )
    budget_holds_released: list[str] = Field(
        default_factory=list, description="holds of entries still issued whose reserved money went back to the pools"
    )
    budget_holds: list[str] = Field(
        default_factory=list,
        description="the entries' budget holds: 'deleted:{hold_id}' (nothing spent), 'anonymised:{hold_id}' (money "
        "spent: kept for the pools' figures under an id that names no one)",
    )
    loyalty_accounts: list[str] = Field(default_factory=list, description="'{person_id}/{program}' of accounts")
    loyalty_operations: list[str] = Field(
        default_factory=list, description="'{program}/{op_id}' of operations applied to the accounts"
    )
    loyalty_timers: list[str] = Field(
        default_factory=list, description="'{month}/{program}/{person_id}' of the accounts' expiry and level timers"
    )
    retained: list[Retained] = Field(default_factory=list)

    _COUNTED: ClassVar[tuple[str, ...]] = (
        "identifiers_suppressed",
        "profile_items",
        "merged_person_items",
        "other_person_items",
        "identifier_records",
        "filed_events",
        "messages",
        "lineage",
        "edits",
        "redacted_items",
        "raw_archive_objects",
        "campaign_objects",
        "export_objects",
        "outbox_objects",
        "import_objects",
        "ledger_records",
        *OFFER_LISTS,
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def counts(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in self._COUNTED}


class PersonExport(BaseModel):
    """Everything the platform holds on one person (data portability / subject access), newest state."""

    person_id: str
    exported_at: datetime
    profile: Profile
    identifiers: list[str] = Field(description="identifier keys, e.g. phone:+8613800138000")
    merged_person_ids: list[str]
    events: list[CanonicalEvent] = Field(description="every event filed under the person's identifiers, oldest first")
    messages: list[MessageRecord]
    lineage: list[LineageRecord]
    edits: list[dict[str, Any]] = Field(description="manual profile edits: who changed what, when")
    tags: dict[str, TagValue]
    scores: dict[str, ModelScore]
    wallet: list[WalletEntry] = Field(default_factory=list, description="offers issued to them: coupons, red packets")
    loyalty_accounts: list[Account] = Field(
        default_factory=list, description="their accounts of the programmes the platform keeps: points lots, level"
    )


class PersonErased(Publishable):
    """Published after an erasure, so downstream systems (warehouses, ESPs, ad audiences) erase their copies."""

    event_name: ClassVar[str] = topology.PERSON_ERASED
    event_source: ClassVar[str] = topology.SOURCE_IDENTITY

    person_id: str
    merged_person_ids: list[str]
    brand_id: str
    erased_at: datetime
