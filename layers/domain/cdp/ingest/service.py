"""Accept a request of canonical events: archive raw, validate each, dedupe on (source, event id), publish."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, Field, ValidationError

from cdp import topology
from cdp.errors import InvalidInputError, PayloadTooLargeError
from cdp.ingest.events import EVENT_TYPES, LOYALTY_EVENT_TYPES, CanonicalEvent, SourceChannel, parse_event
from cdp.ingest.ports import DedupeLedger, DedupeStatus, RawArchive
from cdp.org import OrgDirectory, ScopeRef
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher
from cdp.shared.safe_json import check_depth, storable_problems
from cdp.shared.safe_json import loads as safe_loads

META_WRITER_SCOPE = "writer-scope"  # raw-archive metadata: the org scope of the key that posted the body (JSON)
MAX_BATCH = 500
MAX_BODY_BYTES = 1_000_000
# One canonical event as stored and published: EventBridge takes 256 KB per PutEvents call and SQS wraps the entry
# again, so an event stays at half of that; a 300-line order is ~60 KB.
MAX_EVENT_BYTES = 128 * 1024


# One bus entry carries a request's accepted events of one brand, up to this many bytes of them: EventBridge bills
# per 64 KB of entry and takes 256 KB, and the SQS message that delivers the entry wraps it again (~1 KB).
MAX_PACK_BYTES = 192 * 1024


class EventsReceived(Publishable):
    """Published for the accepted events of a request, packed: one entry per brand and up to `MAX_PACK_BYTES` of
    events (a 100-event request is one entry, not 100: EventBridge bills per entry). `brand_id` is the events'."""

    event_name: ClassVar[str] = topology.EVENT_RECEIVED
    event_source: ClassVar[str] = topology.SOURCE_INGEST

    brand_id: str
    events: list[CanonicalEvent]


class CouponsUsed(EventsReceived):
    """The accepted events of a request that name an issued coupon's code (an order's `coupon_code`, a redemption's
    `code`): a second, small entry for the offer function, which redeems the code."""

    event_name: ClassVar[str] = topology.COUPON_USED


def uses_coupon(event: CanonicalEvent) -> bool:
    """An order naming an issued coupon's code or the promotions it got, or a redemption naming a code."""
    props: Any = event.properties
    if event.event_type == "order_placed":
        return bool(props.coupon_code or props.promotions)
    return bool(event.event_type == "coupon_redeemed" and props.code)


class MessageReceipts(EventsReceived):
    """The accepted events of a request that report on a message sent (delivered, bounced, opened, clicked, a
    complaint or unsubscribe naming it): their own entries for the message log (`cdp.channels.lifecycle`)."""

    event_name: ClassVar[str] = topology.RECEIPTS_RECEIVED


RECEIPT_TYPES = frozenset({"message_delivered", "message_opened", "message_clicked"})


def carries_receipt(event: CanonicalEvent) -> bool:
    """A receipt of a message (`cdp.channels.lifecycle.receipt_of` reads it)."""
    if event.event_type in RECEIPT_TYPES:
        return True
    extra: dict[str, Any] = getattr(event.properties, "model_extra", None) or {}
    return event.event_type == "consent_changed" and isinstance(extra.get("message_id"), str)


def packed(events: Sequence[CanonicalEvent]) -> list[EventsReceived]:
    """The events as few entries as fit, each of one brand (dead letters are scoped by brand), in request order;
    then, for the events naming a coupon's code, their own entries (`CouponsUsed`), and for the receipts of
    messages theirs (`MessageReceipts`)."""
    coupons = [e for e in events if uses_coupon(e)]
    receipts = [e for e in events if carries_receipt(e)]
    return (
        _packed(events, EventsReceived)
        + (_packed(coupons, CouponsUsed) if coupons else [])
        + (_packed(receipts, MessageReceipts) if receipts else [])
    )


def repacked(batches: Sequence[tuple[Sequence[Publishable], str]]) -> list[tuple[Sequence[Publishable], str]]:
    """What a batch of work published one event at a time (a send batch's coupon_issued events), packed again: the
    canonical events of every `EventsReceived` in as few entries as fit, the rest as they were."""
    events: list[CanonicalEvent] = []
    rest: list[tuple[Sequence[Publishable], str]] = []
    first = ""
    for published, correlation_id in batches:
        others = [p for p in published if not isinstance(p, EventsReceived)]
        for p in published:
            if isinstance(p, EventsReceived):
                first = first or correlation_id
                events.extend(p.events)
        if others:
            rest.append((others, correlation_id))
    return rest + ([(packed(events), first)] if events else [])


def _packed(events: Sequence[CanonicalEvent], kind: type[EventsReceived]) -> list[EventsReceived]:
    by_brand: dict[str, list[CanonicalEvent]] = {}
    for event in events:
        by_brand.setdefault(event.brand_id, []).append(event)
    out: list[EventsReceived] = []
    for brand, members in by_brand.items():
        chunk: list[CanonicalEvent] = []
        size = 0
        for event in members:
            n = len(event.model_dump_json()) + 1
            if chunk and size + n > MAX_PACK_BYTES:
                out.append(kind(brand_id=brand, events=chunk))
                chunk, size = [], 0
            chunk.append(event)
            size += n
        out.append(kind(brand_id=brand, events=chunk))
    return out


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
        default=0,
        description="calls a connector could not type (e.g. an e-commerce call missing a property) kept as custom",
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


@dataclass(frozen=True)
class WriteScope:
    """Where a writer may write: each event's (brand, store) must lie inside every one of `scopes` (an API key's
    place in the org hierarchy, a connector's bound brand, an operator's scope on replay). Source `cdp` belongs to
    the platform's own events (profile edits, sends), which never come through this path."""

    org: OrgDirectory
    scopes: tuple[ScopeRef, ...] = ()

    def problem(self, event: CanonicalEvent) -> FieldError | None:
        if event.source is SourceChannel.CDP:
            return FieldError(
                field="source",
                message="source cdp is reserved for events the platform itself emits (profile edits through "
                "PATCH /v1/profiles, sends); name the channel the event came from",
            )
        kept = _kept_programme(self.org, event)
        if kept:
            field, program = kept
            return FieldError(
                field=field,
                message=f"programme {program} is kept by the platform (system_of_record: platform): its points, levels "
                f"and benefits come from its rules over orders, so a source's {event.event_type} would count twice; "
                "send the orders, or declare the programme reported",
            )
        for scope in self.scopes:
            if scope.contains(self.org, event.brand_id, event.store_id):
                continue
            if (scope.brand_id and scope.brand_id != event.brand_id) or (not scope.store_id and not scope.dealer_id):
                return FieldError(field="brand_id", message=f"brand {event.brand_id} is outside {_whose(scope)}")
            store = f"store {event.store_id}" if event.store_id else "an event without store_id"
            return FieldError(field="store_id", message=f"{store} is outside {_whose(scope)}")
        return None


def _kept_programme(org: OrgDirectory, event: CanonicalEvent) -> tuple[str, str] | None:
    """(field, programme) when the event reports on a programme the platform keeps (else None): its points, level
    or benefits, or a benefit its levels grant (the profile keeps benefits by id, whatever programme is named)."""
    props: Any = event.properties
    loyalty = org.brand(event.brand_id).loyalty
    names_program = event.event_type in LOYALTY_EVENT_TYPES or (
        event.event_type == "identify" and props.member_level is not None
    )
    program = getattr(props, "program", None) if names_program else None
    if program and loyalty.kept_by_platform(program):
        return "properties.program", program
    if event.event_type == "benefit_changed":
        owner = loyalty.benefit_owner(props.benefit_id)
        if owner:
            return "properties.benefit_id", owner
    return None


def _whose(scope: ScopeRef) -> str:
    return f"the writer's scope {scope.label}"


def check_body_size(body: bytes, limit: int = MAX_BODY_BYTES) -> None:
    """413 before anything else is done with the body (nothing over the limit is archived)."""
    if len(body) > limit:
        raise PayloadTooLargeError(f"body is {len(body)} bytes; the limit is {limit}", "body")


def split_body(body: bytes) -> tuple[list[Any], bool]:
    """The events of a request body and whether it was a batch."""
    check_body_size(body)
    payload = safe_loads(body)
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


def check_body(body: bytes) -> None:
    """What the edge checks before authentication, archiving or parsing: the size (413) and the nesting depth."""
    check_body_size(body)
    check_depth(body)


def ingest(
    body: bytes,
    request_id: str,
    received_at: datetime,
    archive: RawArchive,
    ledger: DedupeLedger,
    publisher: EventPublisher,
    phone_region: str | RegionOf = "CN",
    write_scope: WriteScope | None = None,
    archive_meta: dict[str, str] | None = None,
) -> IngestResult:
    """Nothing accepted is lost: the raw body is archived first and a claim is only confirmed after publishing.

    `phone_region` is the default region for phone numbers without a country code, or a function of the event's
    brand id that gives each brand's own region. `archive_meta` is kept with the raw body (replay re-applies the
    writer's scope from it). The caller has run `check_body` before authenticating (nothing refused is archived).
    """
    raw_key = archive.archive(request_id, body, received_at, source_hint="events", meta=archive_meta)
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
        write_scope=write_scope,
    )


def validate_item(
    item: Any, received_at: datetime, region_of: RegionOf, write_scope: WriteScope | None, where: str = ""
) -> CanonicalEvent | list[FieldError]:
    """One canonical event dict checked as every write path checks it (storable, valid, inside the writer's scope,
    within the stored size): the event, or the field errors (`where` prefixes their paths)."""
    unstorable = storable_problems(item)
    if unstorable:
        return [FieldError(field=f"{where}{path}".rstrip("."), message=msg) for path, msg in unstorable[:20]]
    try:
        brand = item.get("brand_id") if isinstance(item, dict) else None
        event = parse_event(item, phone_region=region_of(brand if isinstance(brand, str) else None))
    except ValidationError as exc:
        return field_errors(exc, where)
    event = event.model_copy(update={"received_at": received_at})
    problem = write_scope.problem(event) if write_scope else None
    if problem:
        return [FieldError(field=f"{where}{problem.field}", message=problem.message)]
    size = len(event.model_dump_json().encode())
    if size > MAX_EVENT_BYTES:
        return [
            FieldError(
                field=where.rstrip(".") or "body",
                message=f"the event is {size} bytes as stored; the limit is {MAX_EVENT_BYTES}",
            )
        ]
    return event


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
    write_scope: WriteScope | None = None,
) -> IngestResult:
    """Validate each canonical event dict, claim its (source, event id), publish the new ones, confirm the claims.

    `origins` gives each item's index in the native payload (reported in rejects); `redeliver` (replay) publishes
    events even when already confirmed, since every consumer applies an event id once. `write_scope` rejects events
    outside the writer's brand/store and the platform's own source. An event that could not be stored or published
    whole (unstorable numbers or text, over `MAX_EVENT_BYTES`) is rejected here, never accepted and lost later.
    """
    result = IngestResult(
        request_id=request_id, raw_key=raw_key, rejected=list(rejected or []), kept_as_custom=kept_as_custom
    )
    valid: list[CanonicalEvent] = []
    for index, item in enumerate(items):
        origin = origins[index] if origins is not None else index
        checked = validate_item(item, received_at, region_of, write_scope, f"{prefix}{origin}." if prefix else "")
        if isinstance(checked, list):
            event_id = item.get("event_id") if isinstance(item, dict) else None
            event_ref = str(event_id)[:128] if event_id is not None and str(event_id) else None
            result.rejected.append(RejectedEvent(index=origin, event_id=event_ref, errors=checked))
        else:
            valid.append(checked)

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
        publisher.publish(packed(to_publish), correlation_id=request_id)
        ledger.confirm([e.dedupe_key for e in to_publish], raw_key, received_at)
    result.accepted = len(to_publish)
    result.rejected.sort(key=lambda r: r.index)
    return result
