"""The journey benchmark runs the whole local pipeline twice (journey paused, then live) and prices the difference
(the figures are read from `cdp bench --suite journeys`; here only that they are the journey's and add up)."""

from __future__ import annotations

import pytest

from cdp.campaigns.sweeps import SWEEP_SHARDS
from cdp_local.bench_journeys import journey_benchmark

pytestmark = pytest.mark.xdist_group("runtime")


def test_the_journey_benchmark_prices_entries_and_sends_against_a_paused_baseline() -> None:
    results = journey_benchmark(entries=20, latency_samples=3)
    value = {name: metric["value"] for name, metric in results.items()}
    # Given 20 persons entering a 2-send journey with a 10% holdout: every one entered, the treated got both sends
    assert value["journeys.entries"] == 20
    assert 2 * 14 <= value["journeys.sends"] <= 2 * 20  # type: ignore[operator]
    assert value["journeys.sends"] % 2 == 0  # type: ignore[operator]
    # and the journey's own work costs something on the services it uses
    assert value["journeys.cost_per_1m_entries.dynamodb.usd"] > 0  # type: ignore[operator]
    assert value["journeys.cost_per_1m_entries.events.usd"] > 0  # type: ignore[operator]
    assert value["journeys.billed_wru_per_entry"] > 5  # type: ignore[operator]
    assert value["journeys.trigger_to_send_ms_p95"] >= value["journeys.trigger_to_send_ms_p50"]  # type: ignore[operator]
    # and the daily sweep of a date journey scanned every shard of the profiles table, billed by what it read
    assert value["journeys.sweep_shards"] == SWEEP_SHARDS
    assert value["journeys.sweep_rru_per_profile"] > 0 and value["journeys.sweep_cost_per_1m_profiles_usd"] > 0  # type: ignore[operator]
