"""Re-drive archived raw requests of a source for a time range: each body is mapped again by its connector (with the
brand binding recorded when it was first authenticated) and republished. Consumers apply each event id once, so a
replay over events that were already processed changes nothing; events lost downstream are processed again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from cdp.connectors.base import Binding, Connector, InboundRequest
from cdp.connectors.platforms.replay import is_platform_source, map_archived_page
from cdp.connectors.service import (
    META_BRAND,
    META_CHANNEL,
    META_ENCODING,
    META_KEY,
    META_LABEL,
    META_METHOD,
    META_STORE,
    Ports,
)
from cdp.errors import CdpError
from cdp.ingest.ports import ArchivedRequest
from cdp.ingest.security import decoded_body
from cdp.ingest.service import META_WRITER_SCOPE, WriteScope, accept, split_body
from cdp.org import OrgDirectory, ScopeRef, load_org
from cdp.shared.safe_json import check_depth
from cdp.shared.time import parse_iso

CANONICAL_SOURCE = "events"  # POST /v1/events archives under raw/events/
MAX_REPLAY_BYTES = 20 * 1024 * 1024


MAX_REPLAY_RANGE = timedelta(days=31)  # the archive is listed hour by hour


class ReplayRequest(BaseModel):
    source: str = Field(
        min_length=1,
        max_length=64,
        description="connector name (segment, wechat_oa, shopify, ...), platform-tmall / platform-jd, or events",
    )
    start: datetime
    end: datetime
    after: str | None = Field(default=None, description="continue after this archive key (from next_after)")
    limit: int = Field(default=200, ge=1, le=1000)

    @model_validator(mode="after")
    def _ordered(self) -> ReplayRequest:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.end - self.start > MAX_REPLAY_RANGE:
            raise ValueError(f"a replay covers at most {MAX_REPLAY_RANGE.days} days per request; split the range")
        return self


class ReplayFailure(BaseModel):
    key: str
    error: str


class ReplaySummary(BaseModel):
    source: str
    start: datetime
    end: datetime
    objects: int = 0
    accepted: int = 0
    rejected: int = 0
    failures: list[ReplayFailure] = Field(default_factory=list)
    next_after: str | None = Field(default=None, description="pass as `after` to continue; None: the range is done")


BuyerOf = Callable[[str, str], str | None]  # (shop id, order id) -> buyer id, for pulled platform pages


def replay_archive(
    source: str,
    start: datetime,
    end: datetime,
    ports: Ports,
    connector_for: Callable[[str, dict[str, str]], Connector | None],
    after: str | None = None,
    limit: int = 200,
    buyer_of: BuyerOf | None = None,
    operator: ScopeRef | None = None,
    org: OrgDirectory | None = None,
) -> ReplaySummary:
    """Replay up to `limit` archived requests of `source` received in [start, end), after the key `after`.

    `operator`: the replaying key's place in the org hierarchy. Objects bound to a brand outside it are skipped
    unread, and so are the events of a canonical batch outside it (not counted, not listed); events outside the
    scope of the key that first wrote them (recorded with the body) are rejected with the reason. An object that
    cannot be mapped is a failure of that object, never of the call.
    """
    summary = ReplaySummary(source=source, start=start, end=end)
    org = org or load_org()
    operator = operator or ScopeRef()
    keys = [k for k in ports.archive.keys_between(source, start, end) if after is None or k > after]
    for key in keys[:limit]:
        archived = ports.archive.read(key)
        brand = archived.meta.get(META_BRAND)
        if brand and operator != ScopeRef() and not operator.covers_brand(org, brand):
            continue
        visible = None if operator == ScopeRef() else (lambda b: operator.covers_brand(org, b))
        try:
            scopes = (operator, *_writer_scope(archived.meta))
            accepted, rejected = _replay_one(
                source, archived, ports, connector_for, buyer_of, WriteScope(org, scopes), visible
            )
        except _NothingVisible:
            continue  # a canonical batch of other brands only: not this operator's to see, not even as a count
        except (CdpError, ValidationError, ValueError, TypeError, KeyError, ArithmeticError, OSError) as exc:
            # an object archived before today's checks that still cannot be mapped fails alone, never the call
            summary.objects += 1
            summary.failures.append(ReplayFailure(key=key, error=f"{type(exc).__name__}: {exc}"[:500]))
            continue
        summary.objects += 1
        summary.accepted += accepted
        summary.rejected += rejected
    if len(keys) > limit:
        summary.next_after = keys[limit - 1]
    return summary


def _replay_one(
    source: str,
    archived: ArchivedRequest,
    ports: Ports,
    connector_for: Callable[[str, dict[str, str]], Connector | None],
    buyer_of: BuyerOf | None = None,
    write_scope: WriteScope | None = None,
    visible: Callable[[str], bool] | None = None,
) -> tuple[int, int]:
    meta = archived.meta
    received_at = _received_at(archived)
    request_id = archived.key.rsplit("/", 1)[-1]
    if source == CANONICAL_SOURCE:
        items, is_batch = split_body(archived.body)
        prefix, origins, rejected_before = ("batch." if is_batch else ""), None, []
        if visible is not None:  # a batch may hold several brands: the operator's own are replayed and counted
            kept = [(i, item) for i, item in enumerate(items) if visible(_brand_of(item))]
            if not kept:
                raise _NothingVisible
            origins, items = [i for i, _ in kept], [item for _, item in kept]
    elif is_platform_source(source):
        page = map_archived_page(meta, archived.body, buyer_of or (lambda _shop, _order: None))
        items, prefix, origins, rejected_before = page.items, "", page.origins, page.rejected
    else:
        connector = connector_for(source, meta)
        if connector is None:
            raise CdpError(f"no connector named {source!r} can map this object")
        headers = {"content-encoding": meta[META_ENCODING]} if meta.get(META_ENCODING) else {}
        body = decoded_body(archived.body, headers, max(connector.max_body_bytes, MAX_REPLAY_BYTES))
        if connector.json_body and body:
            check_depth(body)  # bodies archived before the depth check existed: a failure of this object, not a 500
        request = InboundRequest(
            connector=source,
            method=meta.get(META_METHOD, "POST"),
            body=body,
            received_at=received_at,
            request_id=request_id,
            key=meta.get(META_KEY),
            # a connector's `archive_meta` keeps what it reads from headers or the query (e.g. a webhook topic)
            headers={k: v for k, v in meta.items() if k != META_ENCODING},
            query=dict(meta),
        )
        binding = Binding(
            brand_id=meta[META_BRAND],
            label=meta.get(META_LABEL, "replay"),
            store_id=meta.get(META_STORE),
            channel=meta.get(META_CHANNEL),
        )
        mapped = connector.map(request, binding)
        items, prefix, origins, rejected_before = (
            mapped.items,
            "batch." if mapped.batch else "",
            mapped.origins,
            mapped.rejected,
        )
    result = accept(
        items,
        request_id=f"replay-{request_id}",
        received_at=received_at,
        raw_key=archived.key,
        ledger=ports.ledger,
        publisher=ports.publisher,
        region_of=ports.region_of,
        prefix=prefix,
        origins=origins,
        rejected=rejected_before,
        redeliver=True,
        write_scope=write_scope,
    )
    return result.accepted, len(result.rejected)


def _brand_of(item: Any) -> str:
    brand = item.get("brand_id") if isinstance(item, dict) else None
    return brand if isinstance(brand, str) else ""


class _NothingVisible(Exception):
    """An archived object holds nothing inside the replaying operator's scope."""


def _received_at(archived: ArchivedRequest) -> datetime:
    """The receipt time recorded with the body, else the one in its key (an object rewritten without metadata)."""
    if archived.meta.get("received-at"):
        return parse_iso(archived.meta["received-at"])
    stamp = archived.key.rsplit("/", 1)[-1].split("-", 1)[0]
    try:
        return datetime.strptime(stamp, "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC)
    except ValueError as exc:
        raise CdpError(f"{archived.key}: no receipt time in its metadata or its name") from exc


def _writer_scope(meta: dict[str, str]) -> tuple[ScopeRef, ...]:
    """The scope of the key that first posted a canonical body (none recorded: bodies archived before it was)."""
    raw = meta.get(META_WRITER_SCOPE)
    if not raw:
        return ()
    try:
        return (ScopeRef.model_validate_json(raw),)
    except ValueError as exc:
        raise CdpError(f"unreadable {META_WRITER_SCOPE} metadata: {exc}") from exc
