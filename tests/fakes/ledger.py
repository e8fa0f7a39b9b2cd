"""An in-memory dedupe ledger with the DynamoDB adapter's statuses: a first claim is NEW, an unconfirmed one RETRY,
a confirmed one DUPLICATE."""

from __future__ import annotations

from datetime import datetime

from cdp.ingest.ports import DedupeLedger, DedupeStatus


class MemoryLedger(DedupeLedger):
    def __init__(self) -> None:
        self.status: dict[str, str] = {}

    def claim(self, dedupe_key: str, raw_key: str, received_at: datetime) -> DedupeStatus:
        if dedupe_key not in self.status:
            self.status[dedupe_key] = "pending"
            return DedupeStatus.NEW
        return DedupeStatus.DUPLICATE if self.status[dedupe_key] == "published" else DedupeStatus.RETRY

    def confirm(self, dedupe_keys: list[str], raw_key: str, received_at: datetime) -> None:
        self.status.update(dict.fromkeys(dedupe_keys, "published"))
