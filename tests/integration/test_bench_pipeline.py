"""The pipeline benchmark prices the data plane alone and with the platform's loyalty programmes in one run: the
same events twice, first with the programmes the platform keeps taken out of the org config (the figures are read
from `cdp bench`; here only that the split is the programmes' and adds up)."""

from __future__ import annotations

import pytest

from cdp.org import load_org
from cdp_local.bench import pipeline_loyalty_split, platform_programs, without_platform_programs
from cdp_local.demo.brand import generate_brand

pytestmark = pytest.mark.xdist_group("runtime")


def test_taking_the_platforms_programmes_out_keeps_the_reported_ones() -> None:
    org = load_org()
    assert "demo-brand/club" in platform_programs(org)
    plain = without_platform_programs(org)
    assert platform_programs(plain) == []
    reported = {n for n, p in org.brand("demo-brand").loyalty.programs.items() if p.system_of_record == "reported"}
    assert set(plain.brand("demo-brand").loyalty.programs) == reported == {"app", "dealer-sh01", "dealer-bj02"}


def test_the_pipeline_benchmark_shows_the_data_plane_and_the_programmes_own_cost() -> None:
    events = generate_brand(customers=100, seed=11).events[:300]
    value = {name: m["value"] for name, m in pipeline_loyalty_split(events).items()}
    # Given the demo brand's `club`: the usual figures are the run with it, as before
    assert value["pipeline.accepted"] == 300 and value["pipeline.platform_loyalty.programs"] >= 1
    # and without it no order reaches the loyalty engine
    assert value["pipeline.data_plane.cost.lambda.loyalty_events.usd"] == 0
    assert value["pipeline.cost.lambda.loyalty_events.usd"] > 0  # type: ignore[operator]
    # Then the programme's own figures are the difference, and cost something
    for figure in ("aws_api_calls_per_event", "billed_wru_per_event", "cost_per_1m_events_usd"):
        plain, own = value[f"pipeline.data_plane.{figure}"], value[f"pipeline.platform_loyalty.{figure}"]
        assert own > 0  # type: ignore[operator]
        assert plain + own == pytest.approx(value[f"pipeline.{figure}"], abs=1e-4)  # type: ignore[operator]
    assert 0 < value["pipeline.platform_loyalty.cost_share"] < 100  # type: ignore[operator]
