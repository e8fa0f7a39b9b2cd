"""`cdp bench`'s cost figures: per 1M accepted events, by price key, service and operation."""

from __future__ import annotations

from collections import defaultdict

import pytest

from cdp_local.aws_costs import OpUsage
from cdp_local.bench import cost_metrics


def usage(calls: int, **units: float) -> OpUsage:
    return OpUsage(calls, defaultdict(float, units))


def test_costs_are_reported_per_million_events_by_service_and_operation() -> None:
    # Given 2 accepted events that took two 2-WRU puts, one SecretsManager call and a 0.5 GB-s invocation
    ops = {
        "dynamodb.PutItem": usage(2, dynamodb_wru=4),
        "secretsmanager.GetSecretValue": usage(1, secretsmanager_calls=1),
        "lambda.ingest": usage(1, lambda_requests=1, lambda_gb_seconds=0.5),
    }
    # When the bench turns them into metrics
    out = cost_metrics(ops, accepted=2)
    # Then every figure is scaled by 1M / 2 events
    assert out["pipeline.cost.dynamodb.PutItem.calls"]["value"] == 1_000_000
    assert out["pipeline.cost.dynamodb.PutItem.wru"]["value"] == 2_000_000
    assert out["pipeline.cost.dynamodb.PutItem.usd"]["value"] == pytest.approx(1.25)
    assert out["pipeline.billed_wru_per_event"]["value"] == 2
    # And a service's dollars are its operations' (Lambda: requests + GB-s)
    lambda_usd = (0.20 + 0.5 * 16.6667) / 2
    assert out["pipeline.cost.lambda.usd"]["value"] == pytest.approx(lambda_usd, abs=1e-4)
    # And the total and the per-price-key names of the first cost model are still there
    total = 1.25 + 5.00 / 2 + lambda_usd  # Secrets Manager: $0.05 per 10,000 calls = $5 per 1M
    assert out["pipeline.cost_per_1m_events_usd"]["value"] == pytest.approx(total, abs=0.01)
    assert out["pipeline.cost_per_1m_events_usd.dynamodb_wru"]["value"] == pytest.approx(1.25)
    # And an operation's call count is not overwritten by a unit of the same name
    assert out["pipeline.cost.secretsmanager.GetSecretValue.calls"]["unit"] == "calls/1M events"
    assert out["pipeline.cost.secretsmanager.GetSecretValue.api_calls"]["value"] == 500_000
