"""The warehouse export at scale: rows/s, Parquet bytes per 1M events and the AWS cost per 1M events.

A seeded brand (persons with their tags and filed events over a year) is laid out as the profiles table holds it
(`cdp.profile.dynamodb.profile_item`/`tags_item`, filed events as identity files them) and served, page by page as a
parallel Scan returns it (1 MB of items read per page, the filter applied after), to the real adapter
(`DynamoWarehouseSource`), which feeds the real export (`export_warehouse` with the DuckDB writer). Pages are held as
JSON text and parsed on each read, standing in for the SDK's parsing of the response.

Figures (`warehouse.*`): a full run (the first export, or `--since` the first day) and the next night's incremental
run (4 days rewritten): rows/s and events/s of the run on this machine, Parquet bytes per 1M events, and the AWS bill
per 1M events at list prices (`cdp_local.cost_model`), and then what each customer-analytics report costs in Athena
over the files written (`cdp_local.bench_analytics`): DynamoDB scan RRU (eventually consistent, 4 KB per started
chunk of a page's items), S3 PUT/LIST and GET requests, Lambda GB-s at the function's 2 GB (the run's CPU time scaled
to Lambda's share of a vCPU, plus a modelled latency per S3 call and scan page). The scan reads the whole table every
night, so the nightly run's cost grows with the events held, not with the new ones.
"""

from __future__ import annotations

import base64
import json
import random
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cdp.analytics.models import Period
from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.org import OrgDirectory
from cdp.profile import keys
from cdp.profile.dynamodb import profile_item, tags_item
from cdp.profile.models import Profile, TagValue, fold_event
from cdp.shared.dynamo import to_item
from cdp.shared.time import iso
from cdp.topology import WAREHOUSE_EXPORT
from cdp.warehouse.aws import DynamoWarehouseSource
from cdp.warehouse.parquet import DuckDbTableWriter
from cdp.warehouse.ports import WarehouseObjects
from cdp.warehouse.service import ExportReport, ExportRequest, export_warehouse
from cdp_local import cost_model
from cdp_local.bench_analytics import analytics_figures

Metric = dict[str, float | str]
BRAND = "bench-brand"
PAGE_BYTES = 1024 * 1024  # a Scan page reads up to 1 MB of items (before the filter)
S3_CALL_MS = 20.0  # modelled same-region round trip of one S3 request from Lambda
SCAN_PAGE_MS = 30.0  # modelled round trip of one 1 MB Scan page
_TYPES = ("page_view", "page_view", "page_view", "add_to_cart", "order_placed", "message_delivered", "identify")
_CATEGORIES = ("cakes", "bread", "coffee", "air-conditioners", "kettles")


def _event(rng: random.Random, n: int, phone: str, at: datetime, store: str) -> CanonicalEvent:
    kind = rng.choice(_TYPES)
    sku = f"sku-{rng.randrange(500)}"
    lines: list[dict[str, Any]] = [
        {
            "sku": f"sku-{rng.randrange(500)}",
            "category": rng.choice(_CATEGORIES),
            "quantity": 1 + n % 3,
            "unit_price_minor": 1000 + rng.randrange(9000),
        }
        for _ in range(1 + n % 3)
    ]
    choices: dict[str, dict[str, Any]] = {
        "page_view": {"url": f"https://shop.example.cn/p/{sku}?utm_source=ad"},
        "add_to_cart": {
            "sku": sku,
            "category": rng.choice(_CATEGORIES),
            "quantity": 1,
            "unit_price_minor": 2550,
            "currency": "CNY",
        },
        "order_placed": {
            "order_id": f"o-{n}",
            "lines": lines,
            "total_minor": sum(line["quantity"] * line["unit_price_minor"] for line in lines),
            "currency": "CNY",
        },
        "message_delivered": {"message_id": f"m-{n}", "channel": "sms", "campaign_id": "winter-cake"},
        "identify": {"city": "Shanghai", "gender": "female", "member_level": "gold"},
    }
    props = choices[kind]
    return parse_event(
        {
            "event_id": f"e-{n}",
            "source": "app",
            "brand_id": BRAND,
            "store_id": store if rng.random() < 0.5 else None,  # the person's own store, or online
            "occurred_at": at.isoformat(),
            "received_at": at.isoformat(),
            "event_type": kind,
            "identifiers": [{"type": "phone", "value": phone}, {"type": "device_id", "value": f"dev-{phone}"}],
            "properties": props,
            "context": {"ip": "10.0.0.1", "user_agent": "Mozilla/5.0"},
        }
    )


def brand_items(persons: int, events_per_person: int, today: date, seed: int = 7) -> tuple[list[dict[str, Any]], int]:
    """The profiles table of a seeded brand, as DynamoDB JSON items (what a scan returns); and its event count."""
    rng = random.Random(seed)
    namespace = OrgDirectory().brand(BRAND).namespace
    start = datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(days=365)
    items: list[dict[str, Any]] = []
    n = 0
    for p in range(persons):
        phone = f"139{p:08d}"
        events = []
        for _ in range(max(1, int(rng.expovariate(1 / events_per_person)))):
            n += 1
            at = start + timedelta(seconds=rng.randrange(365 * 86_400))
            events.append(_event(rng, n, phone, at, f"s{p % 40:02d}"))
        anchor = f"phone:+86{phone}"
        profile = Profile(
            person_id=f"p{p:07d}",
            brand_id=BRAND,
            created_at=start,
            updated_at=start,
            identifiers=sorted({i.key for e in events for i in e.identifiers}),
            anchors=[anchor],
        )
        for event in sorted(events, key=lambda e: e.occurred_at):
            fold_event(profile, event)
        tags = {
            name: TagValue(value=rng.choice(values), since=start, expires_at=start + timedelta(days=400))
            for name, values in (
                ("lifecycle", ("growth", "mature", "dormant")),
                ("rfm_segment", ("champions", "at_risk")),
                ("rfm_monetary", (1, 2, 3, 4, 5)),
                ("purchased_last_7d", (True, False)),
                ("top_category", _CATEGORIES),
                ("spend_tier", ("low", "mid", "high")),
            )
        }
        items.append(to_item(profile_item(profile)))
        items.append(to_item(tags_item(profile.person_id, 1, tags, {}, None)))
        for event in events:
            filed = {
                "pk": keys.anchor_pk(namespace, anchor),
                "sk": keys.timeline_sk(event.occurred_at, event.event_id),
                "event_type": event.event_type,
                "occurred_at": iso(event.occurred_at),
                "brand_id": event.brand_id,
                "store_id": event.store_id,
                "event": event.model_dump_json(),
            }
            items.append(to_item(filed))
    return items, n


class ScanTable:
    """A stand-in DynamoDB client for scans only: items in partition order, split into segments by partition key,
    pages of 1 MB of items read, the warehouse source's filter applied after the read, capacity as AWS meters it."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.segments: dict[int, list[tuple[int, str]]] = {}
        self._items = items
        self.pages = 0

    def get_paginator(self, name: str) -> ScanTable:
        assert name == "scan"
        return self

    def paginate(self, **request: Any) -> Iterator[dict[str, Any]]:
        total, segment = request["TotalSegments"], request["Segment"]
        since = request["ExpressionAttributeValues"].get(":from", {}).get("S")
        page: list[str] = []
        size = 0
        for item in self._items:
            if zlib.crc32(item["pk"]["S"].encode()) % total != segment:
                continue
            size += cost_model.item_size(item)
            sk = item["sk"]["S"]
            kept = sk == keys.TAGS_SK or (sk == keys.PROFILE_SK and "merged_into" not in item)
            kept = kept or (sk.startswith(keys.TIMELINE_PREFIX) and (since is None or sk >= since))
            if kept:
                page.append(json.dumps(item, default=_binary))
            if size >= PAGE_BYTES:
                yield self._page(page, size)
                page, size = [], 0
        if size:
            yield self._page(page, size)

    def _page(self, items: list[str], size: int) -> dict[str, Any]:
        self.pages += 1
        units = cost_model.read_units(size, consistent=False)
        parsed = [json.loads(i, object_hook=_unbinary) for i in items]
        return {"Items": parsed, "ConsumedCapacity": {"CapacityUnits": units}}


def _binary(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"__b64": base64.b64encode(value).decode()}
    raise TypeError(type(value))


def _unbinary(obj: dict[str, Any]) -> Any:
    return base64.b64decode(obj["__b64"]) if "__b64" in obj else obj


class DirObjects(WarehouseObjects):
    """The bucket as a local directory, with S3's request kinds counted."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: Counter[str] = Counter()

    def _path(self, key: str) -> Path:
        return self.root / key

    def keys(self, prefix: str, start_after: str | None = None) -> list[str]:
        self.requests["LIST"] += 1
        found = sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return [k for k in found if k.startswith(prefix) and (start_after is None or k > start_after)]

    def read(self, key: str) -> bytes | None:
        self.requests["GET"] += 1
        path = self._path(key)
        return path.read_bytes() if path.exists() else None

    def write(self, key: str, body: bytes, content_type: str = "application/json") -> None:
        self.requests["PUT"] += 1
        self._path(key).parent.mkdir(parents=True, exist_ok=True)
        self._path(key).write_bytes(body)

    def upload(self, key: str, path: Path) -> int:
        self.requests["PUT"] += 1
        self._path(key).parent.mkdir(parents=True, exist_ok=True)
        self._path(key).write_bytes(path.read_bytes())
        return path.stat().st_size

    def download(self, key: str, path: Path) -> None:
        self.requests["GET"] += 1
        path.write_bytes(self._path(key).read_bytes())

    def delete(self, keys: Iterable[str]) -> None:
        self.requests["DELETE"] += 1
        for key in keys:
            self._path(key).unlink(missing_ok=True)


def _run(table: ScanTable, objects: DirObjects, work: Path, now: datetime) -> tuple[ExportReport, float, float]:
    objects.requests.clear()
    table.pages = 0
    source = DynamoWarehouseSource("bench", client=table, org=OrgDirectory(), segments=4)  # type: ignore[arg-type]
    wall, cpu = time.perf_counter(), time.process_time()
    with DuckDbTableWriter(work, memory_limit_mb=int(WAREHOUSE_EXPORT.memory_mb * 0.6)) as writer:
        report = export_warehouse(ExportRequest(), source, objects, writer, OrgDirectory(), now, work)
    return report, time.perf_counter() - wall, time.process_time() - cpu


def _figures(
    name: str, report: ExportReport, wall_s: float, cpu_s: float, events_held: int, pages: int
) -> dict[str, Metric]:
    rows = sum(t.rows for t in report.tables.values())
    s3 = report.s3_requests
    put_list, get = s3.get("PUT", 0) + s3.get("LIST", 0), s3.get("GET", 0)
    latency_ms = (put_list + get) * S3_CALL_MS + pages * SCAN_PAGE_MS / 4  # 4 segments in parallel
    billed_ms = cost_model.lambda_billed_ms(
        cost_model.lambda_modelled_ms(cpu_s * 1000, latency_ms, WAREHOUSE_EXPORT.memory_mb)
    )
    units = {
        "dynamodb_rru": report.read_units,
        "s3_put": put_list,
        "s3_get": get,
        "lambda_requests": 1,
        "lambda_gb_seconds": cost_model.lambda_gb_seconds(billed_ms, WAREHOUSE_EXPORT.memory_mb),
    }
    per_million = 1_000_000 / events_held
    usd = {k: v * per_million for k, v in cost_model.cost_usd(units).items() if units.get(k)}
    events = report.tables["events"]
    out: dict[str, Metric] = {
        f"warehouse.{name}.rows_per_s": {"value": round(rows / wall_s), "unit": "rows/s (profiles + tags + events)"},
        f"warehouse.{name}.events_written": {"value": events.rows, "unit": "events"},
        f"warehouse.{name}.seconds": {"value": round(wall_s, 2), "unit": "s (this machine)"},
        f"warehouse.{name}.lambda_billed_s": {"value": round(billed_ms / 1000, 1), "unit": "s at 2 GB (modelled)"},
        f"warehouse.{name}.cost_per_1m_events_held_usd": {
            "value": round(sum(usd.values()), 4),
            "unit": "USD per 1M events in the table, per run",
        },
    }
    for key, value in usd.items():
        out[f"warehouse.{name}.cost_per_1m_events_held_usd.{key}"] = {"value": round(value, 5), "unit": "USD"}
    if events.rows:
        out[f"warehouse.{name}.events_per_s"] = {"value": round(events.rows / wall_s), "unit": "events/s"}
        out[f"warehouse.{name}.parquet_bytes_per_1m_events"] = {
            "value": round(events.bytes / events.rows * 1_000_000),
            "unit": "bytes (events table, ZSTD)",
        }
    return out


def warehouse_benchmark(persons: int = 10_000, events_per_person: int = 20, seed: int = 7) -> dict[str, Metric]:
    today = datetime.now(UTC).date()
    items, events = brand_items(persons, events_per_person, today, seed)
    table = ScanTable(items)
    table_bytes = sum(cost_model.item_size(i) for i in items)
    results: dict[str, Metric] = {
        "warehouse.events_held": {"value": events, "unit": "events"},
        "warehouse.persons": {"value": persons, "unit": "persons"},
        "warehouse.table_bytes_per_event": {"value": round(table_bytes / events), "unit": "bytes of items per event"},
    }
    with tempfile.TemporaryDirectory(prefix="bench-warehouse-") as tmp:
        root = Path(tmp)
        objects = DirObjects(root / "bucket")
        now = datetime(today.year, today.month, today.day, 1, 30, tzinfo=UTC)
        for name, at in (("full", now), ("nightly", now + timedelta(days=1))):
            work = root / name
            work.mkdir()
            report, wall, cpu = _run(table, objects, work, at)
            results |= _figures(name, report, wall, cpu, events, table.pages)
            results[f"warehouse.{name}.parquet_bytes"] = {
                "value": sum(t.bytes for t in report.tables.values()),
                "unit": "bytes written (all tables)",
            }
        # what each customer-analytics report then costs in Athena over these files (the last 12 months)
        period = Period(start=date(today.year - 1, today.month, 1), end=today)
        results |= analytics_figures(root / "bucket", BRAND, period, events)
    return results


if __name__ == "__main__":  # pragma: no cover - `python -m cdp_local.bench_warehouse [persons] [events/person]`
    import sys

    args = [int(a) for a in sys.argv[1:3]]
    print(json.dumps(warehouse_benchmark(*args), indent=2))
