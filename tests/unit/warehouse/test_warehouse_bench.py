"""The warehouse benchmark on a small brand: the full run writes every event held, the nightly run a few days' worth
for the same scan cost, and every figure the results table takes is there."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb

from cdp.analytics.reports import REPORTS
from cdp.warehouse.schema import EVENTS, brand_prefix
from cdp_local.bench_analytics import MB, billed_mb, scanned_bytes
from cdp_local.bench_warehouse import warehouse_benchmark
from cdp_local.cost_model import PRICES

ATHENA_PER_MB = PRICES["athena_mb_scanned"].usd_per_million / 1_000_000


def test_the_benchmark_reports_rates_sizes_and_costs() -> None:
    # Given a small seeded brand / When benchmarked
    results = warehouse_benchmark(persons=60, events_per_person=5)
    value = {name: metric["value"] for name, metric in results.items()}
    # Then the full run wrote every event held, the nightly one only its window, both read the whole table
    assert value["warehouse.full.events_written"] == value["warehouse.events_held"] > 0
    assert value["warehouse.nightly.events_written"] < value["warehouse.full.events_written"]
    full, nightly = "warehouse.full.cost_per_1m_events_held_usd", "warehouse.nightly.cost_per_1m_events_held_usd"
    assert value[f"{full}.dynamodb_rru"] == value[f"{nightly}.dynamodb_rru"] > 0
    assert value[full] > value[nightly] > 0
    assert value["warehouse.full.parquet_bytes_per_1m_events"] > 0 and value["warehouse.full.rows_per_s"] > 0
    # And each analytics report has its Athena scan and price: never under the 10 MB minimum, more for more data
    for report in REPORTS:
        scanned = value[f"analytics.{report}.athena_bytes_scanned"]
        assert 0 < scanned < sum(value[f"warehouse.{run}.parquet_bytes"] for run in ("full", "nightly")), report
        assert value[f"analytics.{report}.usd_per_1000_queries"] == round(10 * ATHENA_PER_MB * 1000, 4)
        assert value[f"analytics.{report}.usd_per_query_at_100m_events"] >= 10 * ATHENA_PER_MB


def test_athena_bills_whole_megabytes_with_a_10_mb_minimum() -> None:
    assert billed_mb(0) == billed_mb(1) == billed_mb(10 * MB) == 10
    assert billed_mb(10 * MB + 1) == 11 and billed_mb(250 * MB) == 250
    # $5 per TB: 1,048,576 MB
    assert round(1_048_576 * ATHENA_PER_MB, 4) == 5.0


def test_a_report_reads_only_the_columns_it_names_and_the_days_up_to_its_end(tmp_path: Path) -> None:
    # Given the events of two days of a brand, in two files, with a wide column no report reads
    events = tmp_path / brand_prefix(EVENTS, "b")
    for day in ("2026-01-01", "2026-02-01"):
        (events / f"dt={day}").mkdir(parents=True)
        target = (events / f"dt={day}" / "part-0.parquet").as_posix()
        rows = "SELECT 'p' || i AS person_id, 'order_placed' AS event_type, repeat('x', 500) AS payload_json"
        duckdb.execute(f"COPY ({rows} FROM range(2000) t(i)) TO '{target}' (FORMAT parquet)")
    # When a query naming person_id and event_type is priced for January only, and then for both months
    sql = 'SELECT person_id FROM "db"."events" WHERE event_type = 1'
    january = scanned_bytes(sql, tmp_path, "b", date(2026, 1, 31))
    both = scanned_bytes(sql, tmp_path, "b", date(2026, 2, 28))
    # Then January reads one file's two column chunks, both months twice as much, and never the wide column
    january_file = f"{events}/dt=2026-01-01/part-0.parquet"
    chunks = duckdb.execute(
        "SELECT path_in_schema, sum(total_compressed_size) FROM parquet_metadata(?) GROUP BY 1", [january_file]
    ).fetchall()
    sizes = dict(chunks)
    assert january == sizes["person_id"] + sizes["event_type"] and both == 2 * january
    assert scanned_bytes('SELECT 1 FROM "db"."profiles"', tmp_path, "b", date(2026, 2, 28)) == 0
