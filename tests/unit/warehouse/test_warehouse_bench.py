"""The warehouse benchmark on a small brand: the full run writes every event held, the nightly run a few days' worth
for the same scan cost, and every figure the results table takes is there."""

from __future__ import annotations

from cdp_local.bench_warehouse import warehouse_benchmark


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
