"""Ports of the ingest path."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from cdp.org import ScopeRef


@dataclass(frozen=True)
class ArchivedRequest:
    """A raw request body as archived, with what replay needs to map it again (connector, source key, ...)."""

    key: str
    body: bytes
    meta: dict[str, str]


class RawArchive(ABC):
    @abstractmethod
    def archive(
        self,
        request_id: str,
        body: bytes,
        received_at: datetime,
        source_hint: str,
        meta: dict[str, str] | None = None,
    ) -> str:
        """Store the raw request body before anything else happens; return its key."""

    @abstractmethod
    def keys_between(self, source_hint: str, start: datetime, end: datetime) -> list[str]:
        """Keys archived for a source in [start, end) (by receipt hour, then exact receipt time)."""

    @abstractmethod
    def read(self, key: str) -> ArchivedRequest:
        """One archived request with its metadata (what replay maps again)."""


class DedupeStatus(StrEnum):
    NEW = "new"  # first time seen: publish it
    RETRY = "retry"  # seen before but never confirmed published: publish again
    DUPLICATE = "duplicate"  # already published: accept once only


class DedupeLedger(ABC):
    @abstractmethod
    def claim(self, dedupe_key: str, raw_key: str, received_at: datetime) -> DedupeStatus:
        """Claim an event id (conditional write)."""

    @abstractmethod
    def confirm(self, dedupe_keys: list[str], raw_key: str, received_at: datetime) -> None:
        """Mark claimed events as published."""

    def claim_many(self, dedupe_keys: list[str], raw_key: str, received_at: datetime) -> dict[str, DedupeStatus]:
        """The status of each key (a store overrides this with one batched read)."""
        return {key: self.claim(key, raw_key, received_at) for key in dedupe_keys}


class ApiKeyring(ABC):
    @abstractmethod
    def clients(self) -> dict[str, ApiClient]:
        """API keys -> their client (cached; refreshed on a TTL)."""

    @abstractmethod
    def hmac_secrets(self) -> dict[str, str]:
        """Webhook key id -> shared secret."""


@dataclass(frozen=True)
class ApiClient:
    """Who called: the client's name (recorded as the actor of every change), its permission scopes
    (`events:write`, `profiles:read`, ...) and where in the org hierarchy it may look (`ScopeRef()`: everywhere)."""

    name: str
    scopes: frozenset[str]
    org_scope: ScopeRef = field(default_factory=ScopeRef)
