"""The ingest benchmark runs the real handler with every AWS call answered offline and reports its figures (speed is
read from `cdp bench --suite ingest`, never asserted here)."""

from __future__ import annotations

from cdp_local.bench_ingest import ingest_benchmark


def test_the_ingest_benchmark_reports_throughput_and_calls_per_event() -> None:
    results = ingest_benchmark(events=400, batch=100)
    for name in ("canonical", "segment"):
        assert results[f"ingest.{name}.events_per_cpu_second"]["value"] > 0  # type: ignore[operator]
        # batches of 100: one archive put, one dedupe read, one bus put (the request's events packed in one entry)
        # and four confirmations per request (plus one secret read when the keyring is first used)
        assert 0.07 <= results[f"ingest.{name}.aws_calls_per_event"]["value"] <= 0.08  # type: ignore[operator]
        assert results[f"ingest.{name}.calls_per_event.dynamodb.BatchGetItem"]["value"] == 0.01
