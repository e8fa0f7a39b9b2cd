"""The offers benchmark at a small size: evaluation timings exist and grow with the catalog no faster than it, the
ledger under 16 parallel workers reserves exactly what fits and balances, and issues and redemptions are priced."""

from __future__ import annotations

from cdp_local.bench_offers import offers_benchmark


def test_the_offers_benchmark_reports_latency_contention_and_cost() -> None:
    value = {name: m["value"] for name, m in offers_benchmark(persons=10, pool_total=900, rounds=5).items()}
    assert 0 < value["offers.evaluate_10_promotions_ms_p50"] <= value["offers.evaluate_10_promotions_ms_p95"]  # type: ignore[operator]
    assert value["offers.ledger_reserves_won"] == 30 and value["offers.ledger_balanced_under_contention"] == 1
    # an issue is one transaction: the offer's count, the person's, the wallet entry, the code, the expiry, the hold
    # and the pool, each billed twice (transactional), after reading the entry (issued before?), the offer and the code
    assert value["offers.wru_per_issue"] == 14 and value["offers.aws_calls_per_issue"] == 4  # 3 reads first
    assert value["offers.cost_per_1m_issues_usd"] > value["offers.cost_per_1m_redemptions_usd"] > 0  # type: ignore[operator]
