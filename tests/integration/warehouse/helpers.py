"""Shared steps of the warehouse tests on a local runtime: canonical events in, Parquet out, read with DuckDB."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import duckdb

from cdp import topology
from cdp_local.runtime import LocalRuntime

BUCKET = topology.DATA_BUCKET_LOCAL_NAME


def event(
    event_id: str, brand: str, day: date, phone: str, event_type: str = "page_view", **extra: Any
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "page_view": {"url": f"https://shop.example.cn/p/{event_id}?utm=x"},
        "add_to_cart": {
            "sku": "cake-1",
            "category": "cakes",
            "quantity": 1,
            "unit_price_minor": 2550,
            "currency": "CNY",
        },
        "order_placed": {
            "order_id": f"o-{event_id}",
            "lines": [{"sku": "cake-1", "category": "cakes", "quantity": 2, "unit_price_minor": 2550}],
            "total_minor": 5100,
            "currency": "CNY",
        },
        "custom": {"name": "tapped_banner"},
        "identify": {"name": "Wang Fang", "birthday": "1990-05-04", "city": "Hangzhou"},
    }[event_type]
    return {
        "event_id": event_id,
        "source": "app",
        "brand_id": brand,
        "occurred_at": datetime(day.year, day.month, day.day, 9, tzinfo=UTC).isoformat(),
        "event_type": event_type,
        "identifiers": [{"type": "phone", "value": phone}, *extra.pop("identifiers", [])],
        "properties": properties,
    }


def post(rt: LocalRuntime, events: list[dict[str, Any]]) -> None:
    headers = {"content-type": "application/json", "x-api-key": rt.api_key}
    response = rt.http("POST", "/v1/events", json.dumps({"batch": events}).encode(), headers)
    assert response.status == 202, response.body
    report = rt.drain()
    assert report.dead_lettered == 0


def person_of(rt: LocalRuntime, brand: str, phone: str) -> str:
    headers = {"x-api-key": rt.admin_key}
    response = rt.http("GET", f"/v1/profiles/by-identifier/phone/{quote(phone)}?brand_id={brand}", b"", headers)
    assert response.status == 200, response.body
    return str(json.loads(response.body)["person_id"])


def objects(rt: LocalRuntime, prefix: str = topology.WAREHOUSE_PREFIX) -> dict[str, str]:
    """key -> ETag of every object under the prefix."""
    s3 = rt.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}


def download(rt: LocalRuntime, into: Path) -> Path:
    """The warehouse's Parquet files, laid out as in S3 under `into` (emptied first)."""
    for old in into.rglob("*.parquet"):
        old.unlink()
    s3 = rt.client("s3")
    for key in objects(rt):
        if key.endswith(".parquet"):
            target = into / key
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(BUCKET, key, str(target))
    return into / topology.WAREHOUSE_PREFIX


def query(root: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """SQL over views `profiles`, `tags` and `events` of the files under `root` (Hive partitions as columns)."""
    with duckdb.connect() as con:
        for table in ("profiles", "tags", "events"):
            files = sorted(str(p) for p in (root / table).rglob("*.parquet"))
            if files:
                con.execute(
                    f"CREATE VIEW {table} AS SELECT * FROM read_parquet({files!r}, hive_partitioning = true)"  # noqa: S608
                )
            else:
                con.execute(f"CREATE VIEW {table} AS SELECT NULL AS person_id, NULL AS brand_id WHERE false")
        return con.execute(sql, params or []).fetchall()
