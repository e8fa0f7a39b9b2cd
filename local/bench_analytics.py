"""What the customer-analytics reports cost on AWS: the bytes Athena scans for each report over the warehouse bench's
Parquet, billed at Athena's list price.

Athena bills the bytes it reads from S3, rounded up to the next MB, with 10 MB minimum per query. A Parquet reader
reads only the column chunks of the columns a query names, in the partitions it does not prune: here, the brand's
files of each table the report's SQL reads (the events table up to the period's last day, as the reports filter
`dt <= end`), and of each file the compressed size of every column chunk whose column the SQL text names (an upper
bound: a name in the text counts even where a predicate would let Athena skip row groups). The SQL is the report's
own (`ReportRequest.sql("athena")`), so a report that starts reading more columns costs more here too.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import duckdb

from cdp.analytics.models import Period
from cdp.analytics.reports import REPORTS, ReportRequest
from cdp.warehouse.schema import EVENTS, TABLES, WarehouseTable, brand_prefix
from cdp_local import cost_model

Metric = dict[str, float | str]
MB = 1024 * 1024
MIN_BILLED_MB = 10
LARGE_BRAND_EVENTS = 100_000_000
_DAY = re.compile(r"/dt=(\d{4}-\d{2}-\d{2})/")


def _files(bucket: Path, table: WarehouseTable, brand: str, last_day: date) -> list[Path]:
    root = bucket / brand_prefix(table, brand)
    found = sorted(root.rglob("*.parquet")) if root.exists() else []
    if table is not EVENTS:
        return found
    return [f for f in found if (m := _DAY.search(f.as_posix())) and date.fromisoformat(m.group(1)) <= last_day]


def _named(sql: str, table: WarehouseTable) -> list[str]:
    """The table's columns the SQL text names, when it reads the table at all."""
    if not re.search(rf'"{table.name}"', sql):
        return []
    return [c.name for c in table.columns if re.search(rf"\b{re.escape(c.name)}\b", sql)]


def scanned_bytes(sql: str, bucket: Path, brand: str, last_day: date) -> int:
    """Compressed bytes of the column chunks Athena would read for `sql` over the brand's files."""
    total = 0
    with duckdb.connect() as con:
        for table in TABLES:
            columns = _named(sql, table)
            files = _files(bucket, table, brand, last_day)
            if not columns or not files:
                continue
            listed = ", ".join(f"'{f.as_posix()}'" for f in files)
            marks = ", ".join("?" for _ in columns)
            row = con.execute(
                f"SELECT COALESCE(sum(total_compressed_size), 0) FROM parquet_metadata([{listed}]) "  # noqa: S608
                f"WHERE path_in_schema IN ({marks})",
                columns,
            ).fetchone()
            total += int(row[0]) if row else 0
    return total


def billed_mb(scanned: int) -> int:
    return max(MIN_BILLED_MB, -(-scanned // MB))


def analytics_figures(bucket: Path, brand: str, period: Period, events_held: int) -> dict[str, Metric]:
    """Per report: bytes scanned, MB billed and USD per 1,000 queries; and the bytes per 1M events held."""
    out: dict[str, Metric] = {}
    price = cost_model.PRICES["athena_mb_scanned"].usd_per_million / 1_000_000
    for report in REPORTS:
        sql = ReportRequest(report=report, brand_id=brand, period=period).sql("athena", "bench")
        scanned = scanned_bytes(sql, bucket, brand, period.end)
        mb = billed_mb(scanned)
        out[f"analytics.{report}.athena_bytes_scanned"] = {"value": scanned, "unit": "bytes (column chunks read)"}
        out[f"analytics.{report}.athena_bytes_per_1m_events"] = {
            "value": round(scanned / events_held * 1_000_000) if events_held else 0,
            "unit": "bytes scanned per 1M events held",
        }
        out[f"analytics.{report}.usd_per_1000_queries"] = {
            "value": round(mb * price * 1000, 4),
            "unit": f"USD per 1,000 runs ({mb} MB billed each: 10 MB minimum)",
        }
        at_scale = billed_mb(round(scanned / events_held * LARGE_BRAND_EVENTS)) if events_held else MIN_BILLED_MB
        out[f"analytics.{report}.usd_per_query_at_100m_events"] = {
            "value": round(at_scale * price, 5),
            "unit": f"USD per run for a brand holding 100M events ({at_scale:,} MB billed, scaled by events held)",
        }
    return out
