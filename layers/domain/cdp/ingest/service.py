"""Accept a request of canonical events: archive raw, validate each, dedupe on (source, event id), publish."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, Field, ValidationError

from cdp import topology
from cdp.errors import InvalidInputError
from cdp.ingest.events import EVENT_TYPES, CanonicalEvent, parse_event
from cdp.ingest.ports import DedupeLedger, DedupeStatus, RawArchive
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher

MAX_BATCH = 500
MAX_BODY_BYTES = 1_000_000


class EventReceived(Publishable):
    """Published for every accepted event; `data` is the canonical event itself."""

    event_name: ClassVar[str] = topology.EVENT_RECEIVED
    event_source: ClassVar[str] = topology.SOURCE_INGEST

    event: CanonicalEvent


class FieldError(BaseModel):
    field: str
    message: str


class RejectedEvent(BaseModel):
    index: int
    event_id: str | None
    errors: list[FieldError]


class IngestResult(BaseModel):
    request_id: str
    accepted: int = 0
    duplicates: int = 0
    rejected: list[RejectedEvent] = Field(default_factory=list)
    kept_as_custom: int = Field(
        default=0, description="calls a connector could not type (e.g. an e-commerce call missing a property) kept as custom"
    )
    raw_key: str


def field_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    out = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        # Drop the discriminator tag pydantic puts first ("order_placed.properties...") for readability.
        if loc and loc[0] in _EVENT_TYPE_TAGS:
            loc = loc[1:]
        out.append(
            FieldError(field=prefix + ".".join(loc) if loc else prefix.rstrip(".") or "body", message=err["msg"])
        )
    return out


_EVENT_TYPE_TAGS = frozenset(EVENT_TYPES)


def split_body(body: bytes) -> tuple[list[Any], bool]:
    """The events of a request body and whether it was a batch."""
    if len(body) > MAX_BODY_BYTES:
        raise InvalidInputError(f"body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}", "body")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"body is not valid JSON: {exc}", "body") from exc
    if isinstance(payload, dict) and "batch" in payload:
        items = payload["batch"]
        if not isinstance(items, list) or not items:
            raise InvalidInputError("batch must be a non-empty list of events", "batch")
        if len(items) > MAX_BATCH:
            raise InvalidInputError(f"batch holds {len(items)} events; the limit is {MAX_BATCH}", "batch")
        return items, True
    if isinstance(payload, dict):
        return [payload], False
    raise InvalidInputError('body must be an event object or {"batch": [events]}', "body")


RegionOf = Callable[[str | None], str]


def region_resolver(phone_region: str | RegionOf) -> RegionOf:
    if callable(phone_region):
        return phone_region
    fixed: str = phone_region
    return lambda _brand: fixed


def ingest(
    body: bytes,
    request_id: str,
    received_at: datetime,
    archive: RawArchive,
    ledger: DedupeLedger,
    publisher: EventPublisher,
    phone_region: str | RegionOf = "CN",
) -> IngestResult:
    """Nothing accepted is lost: the raw body is archived first and a claim is only confirmed after publishing.

    `phone_region` is the default region for phone numbers without a country code, or a function of the event's
    brand id that gives each brand's own region.
    """
    raw_key = archive.archive(request_id, body, received_at, source_hint="events")
    items, is_batch = split_body(body)
    return accept(
        items,
        request_id=request_id,
        received_at=received_at,
        raw_key=raw_key,
        ledger=ledger,
        publisher=publisher,
        region_of=region_resolver(phone_region),
        prefix="batch." if is_batch else "",
    )


def accept(
    items: list[Any],
    *,
    request_id: str,
    received_at: datetime,
    raw_key: str,
    ledger: DedupeLedger,
    publisher: EventPublisher,
    region_of: RegionOf,
    prefix: str = "",
    origins: list[int] | None = None,
    rejected: list[RejectedEvent] | None = None,
    redeliver: bool = False,
    kept_as_custom: int = 0,
) -> IngestResult:
    """Validate each canonical event dict, claim its (source, event id), publish the new ones, confirm the claims.

    `origins` gives each item's index in the native payload (reported in rejects); `redeliver` (replay) publishes
    events even when already confirmed, since every consumer applies an event id once.
    """
    result = IngestResult(
        request_id=request_id, raw_key=raw_key, rejected=list(rejected or []), kept_as_custom=kept_as_custom
    )
    valid: list[CanonicalEvent] = []
    for index, item in enumerate(items):
        origin = origins[index] if origins is not None else index
        try:
            brand = item.get("brand_id") if isinstance(item, dict) else None
            event = parse_event(item, phone_region=region_of(brand if isinstance(brand, str) else None))
        except ValidationError as exc:
            event_id = item.get("event_id") if isinstance(item, dict) else None
            result.rejected.append(
                RejectedEvent(
                    index=origin,
                    event_id=str(event_id) if event_id else None,
                    errors=field_errors(exc, f"{prefix}{origin}." if prefix else ""),
                )
            )
            continue
        valid.append(event.model_copy(update={"received_at": received_at}))

    unique: dict[str, CanonicalEvent] = {}
    for event in valid:  # the same id twice in one request is one event
        if event.dedupe_key in unique:
            result.duplicates += 1
        else:
            unique[event.dedupe_key] = event
    statuses = ledger.claim_many(list(unique), raw_key, received_at) if unique else {}
    to_publish: list[CanonicalEvent] = []
    for key, event in unique.items():
        if statuses[key] is DedupeStatus.DUPLICATE and not redeliver:
            result.duplicates += 1
        else:
            to_publish.append(event)
    if to_publish:
        publisher.publish([EventReceived(event=e) for e in to_publish], correlation_id=request_id)
        ledger.confirm([e.dedupe_key for e in to_publish], raw_key, received_at)
    result.accepted = len(to_publish)
    result.rejected.sort(key=lambda r: r.index)
    return result
