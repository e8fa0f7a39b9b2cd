"""Events the platform ingests on a person's behalf, from the routes an end customer reaches with a token (an in-app
message read, `cdp.app.inbox_api`; a consent changed in the preference centre, `cdp.app.preference_centre`).

They are ingested like any channel's (`cdp.ingest.service.accept`): the raw event archived first (under raw/events/,
so it replays as a canonical event), claimed in the dedupe ledger, published on the bus, where the profile, the
message log and the timeline take them. A canonical event names the person by an identifier and the platform has
none for a person id, so the event names the identifier the person is best known by (`person_identifier`).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cdp.identifiers.model import Identifier, IdentifierType
from cdp.ingest.ports import DedupeLedger, RawArchive
from cdp.ingest.service import META_WRITER_SCOPE, WriteScope, accept
from cdp.observability import logger
from cdp.org import OrgDirectory, ScopeRef
from cdp.profile.models import Profile
from cdp.shared.ports import EventPublisher
from cdp.shared.time import utc_now

ARCHIVE_SOURCE = "events"  # = cdp.connectors.replay.CANONICAL_SOURCE: these events replay as canonical events
# The identifier an event names the person by, in this order of preference (the most recently learned of a type).
PERSON_IDENTIFIERS = (
    IdentifierType.USER_ID,
    IdentifierType.MEMBER_CARD,
    IdentifierType.PHONE,
    IdentifierType.EMAIL,
    IdentifierType.WECHAT_UNIONID,
    IdentifierType.DEVICE_ID,
    IdentifierType.WECHAT_OPENID,
    IdentifierType.PLATFORM_BUYER_ID,
)


class EventSink(ABC):
    @abstractmethod
    def publish(self, event: dict[str, Any], request_id: str) -> bool:
        """Ingest one canonical event; True when it was accepted (or was already)."""


class IngestedEvents(EventSink):
    """Each event archived, claimed in the dedupe ledger and published (`cdp.ingest.service.accept`), written under
    the scope of the brand it names; `client` names who wrote it in the archive's metadata."""

    def __init__(
        self,
        archive: RawArchive,
        ledger: DedupeLedger,
        publisher: EventPublisher,
        org: OrgDirectory,
        client: str,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._archive = archive
        self._ledger = ledger
        self._publisher = publisher
        self._org = org
        self._client = client
        self._now = now

    def publish(self, event: dict[str, Any], request_id: str) -> bool:
        scope = ScopeRef(brand_id=str(event["brand_id"]))
        received_at = self._now()
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        meta = {
            "client": self._client,
            META_WRITER_SCOPE: json.dumps(scope.model_dump(exclude_none=True), separators=(",", ":")),
        }
        raw_key = self._archive.archive(request_id, body, received_at, ARCHIVE_SOURCE, meta)
        result = accept(
            [event],
            request_id=request_id,
            received_at=received_at,
            raw_key=raw_key,
            ledger=self._ledger,
            publisher=self._publisher,
            region_of=lambda _brand: "CN",  # the identifier comes from the profile, normalized already
            write_scope=WriteScope(self._org, (scope,)),
        )
        if result.rejected:
            errors = [e.model_dump() for r in result.rejected for e in r.errors]
            logger.error("an event was rejected", client=self._client, raw_key=raw_key, errors=errors[:5])
            return False
        return True


def person_identifier(profile: Profile) -> dict[str, str] | None:
    """The identifier an event names the person by (`PERSON_IDENTIFIERS`), as a canonical identifier; None for a
    person with none of them (every identifier unbound)."""
    for kind in PERSON_IDENTIFIERS:
        for key in reversed(profile.identifiers):
            if key.startswith(f"{kind.value}:"):
                ident = Identifier.from_key(key)
                out = {"type": ident.type.value, "value": ident.value}
                if ident.scope:
                    out["scope"] = ident.scope
                return out
    return None
