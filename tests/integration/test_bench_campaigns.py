"""The campaigns benchmark selects every consenting person through the real campaign function and prices filing their
groups on the timelines (the figures are read from `cdp bench --suite campaigns`; here only that they are the filing's
and add up)."""

from __future__ import annotations

import pytest

from cdp_local.bench_campaigns import campaigns_benchmark

pytestmark = pytest.mark.xdist_group("runtime")


def test_the_campaigns_benchmark_prices_filing_each_selected_persons_group() -> None:
    results = campaigns_benchmark(persons=60)
    value = {name: float(metric["value"]) for name, metric in results.items()}
    # Given 60 persons with SMS consent and budget for all: everyone is selected, a share of them held out
    assert value["campaigns.persons_selected"] == 60
    assert "held out" in str(results["campaigns.persons_selected"]["unit"])
    # Then each person's filed event writes to the table, and the events travel packed (fewer entries than persons)
    assert value["campaigns.assignments_wru_per_person"] >= 1
    assert 0 < value["campaigns.assignments_bus_entries_per_1k_persons"] < 1000
    # And the total is the sum of its services
    services = [v for name, v in value.items() if name.startswith("campaigns.assignments_cost_per_1m_persons.")]
    assert value["campaigns.assignments_cost_per_1m_persons_usd"] == pytest.approx(sum(services), abs=0.02)
    assert value["campaigns.assignments_cost_per_1m_persons.dynamodb.usd"] > 0
