"""One scheduled pull of one shop: page by page, archive -> map -> validate/dedupe/publish -> then move the cursor.

The window is [cursor - 5 min, now) (first run: [now - 1 day, now)), cut into pieces no wider than the platform
allows (TOP: one day). For each piece every kind is pulled page by page; each raw page is archived to S3 before it is
mapped (source hint "platform-{platform}", with the shop, kind, method and window in its metadata, so the page can be
mapped again), its events go through `cdp.ingest.service.accept` (validation, dedupe on (source, event id),
publish), and only when every page of the piece is published does the shop's cursor move to the piece's end. A
failure leaves the cursor where it was: the next run pulls the same window again and dedupe turns what was already
published into duplicates, not double counts. The 5-minute overlap catches records the platform indexed late.

Nothing is dropped silently: a record that cannot be mapped or fails validation is written to
rejects/platforms/{shop}/{yyyy/mm/dd}/{run id}.jsonl (one line per record: its index in the archived page, its id,
the field and the reason; the record itself stays in the raw archive, so no personal data is copied out), and a
record left out on purpose (unpaid order, pending refund) is counted by reason in the summary.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, Field

from cdp import topology
from cdp.connectors.platforms.ports import (
    KINDS,
    Kind,
    MapContext,
    Page,
    PlatformApiError,
    PlatformClient,
    PullState,
    RejectsSink,
)
from cdp.connectors.sources import PlatformShop
from cdp.ingest.ports import DedupeLedger, RawArchive
from cdp.ingest.service import IngestResult, RegionOf, RejectedEvent, accept
from cdp.observability import logger
from cdp.shared.ports import EventPublisher
from cdp.shared.time import iso

OVERLAP = timedelta(minutes=5)
FIRST_LOOKBACK = timedelta(days=1)
MAX_PAGES = 1000  # per kind and window: a platform that always says "more" must not loop forever
REJECTS_PREFIX = f"{topology.REJECTS_PREFIX}platforms/"


@dataclass(frozen=True)
class PullPorts:
    archive: RawArchive
    ledger: DedupeLedger
    publisher: EventPublisher
    region_of: RegionOf
    state: PullState
    rejects: RejectsSink


class PullSummary(BaseModel):
    shop_id: str
    platform: str
    run_id: str
    window_start: datetime | None = None
    cursor: datetime | None = Field(default=None, description="the shop's cursor after the run")
    pages: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    skipped: dict[str, int] = Field(default_factory=dict, description="reason -> records left out on purpose")
    rejects_key: str | None = None


def rejects_key(shop_id: str, now: datetime, run_id: str) -> str:
    return f"{REJECTS_PREFIX}{shop_id}/{now:%Y/%m/%d}/{run_id}.jsonl"


@dataclass
class _Run:
    shop_id: str
    shop: PlatformShop
    client: PlatformClient
    ports: PullPorts
    now: datetime
    run_id: str
    summary: PullSummary
    buyers: dict[str, str] = field(default_factory=dict)  # order id -> buyer id, seen in this run
    lines: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    def buyer_of(self, order_id: str) -> str | None:
        return self.buyers.get(order_id) or self.ports.state.buyer_of(self.shop_id, order_id)


def pull_shop(
    shop_id: str,
    shop: PlatformShop,
    client: PlatformClient,
    ports: PullPorts,
    now: datetime,
    run_id: str,
) -> PullSummary:
    run = _Run(
        shop_id, shop, client, ports, now, run_id, PullSummary(shop_id=shop_id, platform=shop.platform, run_id=run_id)
    )
    logger.append_keys(shop_id=shop_id, run_id=run_id)
    for kind in KINDS:  # queued kinds (bindings on TOP's message channel) have no window: take what is queued
        if not client.windowed(kind):
            _pull_kind(run, kind, now, now)
    cursor = ports.state.cursor(shop_id)
    start = cursor - OVERLAP if cursor else now - FIRST_LOOKBACK
    run.summary.window_start = start
    run.summary.cursor = cursor
    while start < now:
        end = min(now, start + client.max_window)
        for kind in KINDS:
            if client.windowed(kind):
                _pull_kind(run, kind, start, end)
        ports.state.advance(shop_id, end)  # every page of [start, end) is published (and its rejects written)
        run.summary.cursor = end
        start = end
    run.summary.skipped = dict(run.skipped)
    logger.info("shop pulled", summary=run.summary.model_dump(mode="json"))
    return run.summary


def _pull_kind(run: _Run, kind: Kind, start: datetime, end: datetime) -> None:
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = run.client.fetch(kind, start, end, cursor)
        _ingest_page(run, page, start, end, cursor)
        run.client.acknowledge(page)  # a queued page is confirmed only once its events are published
        cursor = page.next_cursor
        if cursor is None:
            return
    raise PlatformApiError(f"{run.shop_id}: more than {MAX_PAGES} pages of {kind} in one window")


def _ingest_page(run: _Run, page: Page, start: datetime, end: datetime, cursor: str | None) -> None:
    run.summary.pages += 1
    request_id = f"{run.run_id}-{page.kind.value}-{run.summary.pages:04d}"
    meta = {
        "connector": f"platform-{run.shop.platform}",
        "shop-id": quote(run.shop_id, safe=""),
        "brand-id": run.shop.brand_id,
        "kind": page.kind.value,
        "method": page.method,
        "page-cursor": cursor or "",
        "window-start": iso(start),
        "window-end": iso(end),
    }
    raw_key = run.ports.archive.archive(request_id, page.body(), run.now, f"platform-{run.shop.platform}", meta)
    mapped = run.client.map_page(page, MapContext(run.shop_id, run.shop, run.buyer_of))
    if mapped.buyers:
        run.buyers.update(mapped.buyers)
        run.ports.state.remember_buyers(run.shop_id, mapped.buyers)
    result = accept(
        mapped.items,
        request_id=request_id,
        received_at=run.now,
        raw_key=raw_key,
        ledger=run.ports.ledger,
        publisher=run.ports.publisher,
        region_of=run.ports.region_of,
        origins=mapped.origins,
        rejected=mapped.rejected,
    )
    run.skipped.update(mapped.skipped)
    _count(run, page.kind, result, raw_key)


def _count(run: _Run, kind: Kind, result: IngestResult, raw_key: str) -> None:
    run.summary.accepted += result.accepted
    run.summary.duplicates += result.duplicates
    run.summary.rejected += len(result.rejected)
    if not result.rejected:
        return
    run.lines.extend(_line(run, kind, r, raw_key) for r in result.rejected)
    key = rejects_key(run.shop_id, run.now, run.run_id)
    # the whole run's rejects so far, rewritten before the page is confirmed or the cursor moves
    run.ports.rejects.write(key, ("\n".join(run.lines) + "\n").encode())
    run.summary.rejects_key = key


def _line(run: _Run, kind: Kind, rejected: RejectedEvent, raw_key: str) -> str:
    first = rejected.errors[0] if rejected.errors else None
    line: dict[str, Any] = {
        "shop_id": run.shop_id,
        "kind": kind.value,
        "index": rejected.index,
        "id": rejected.event_id,
        "field": first.field if first else None,
        "reason": first.message if first else "rejected",
        "raw_key": raw_key,
        "run_id": run.run_id,
    }
    if len(rejected.errors) > 1:
        line["errors"] = [e.model_dump() for e in rejected.errors]
    return json.dumps(line, ensure_ascii=False, separators=(",", ":"))
