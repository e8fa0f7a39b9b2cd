"""Per-route throttling on the HTTP API stage, and the data bucket's lifecycle from the topology's retention figures."""

from __future__ import annotations

from typing import Any

import pytest

from cdp import topology
from infra.config import DeployConfig
from tests.infra.conftest import CONTEXT, Synth

pytestmark = pytest.mark.xdist_group("cdk")


def _stage(synth: Synth) -> dict[str, Any]:
    (stage,) = synth.resources("AWS::ApiGatewayV2::Stage").values()
    return stage


def test_operations_profile_and_tracked_link_routes_are_throttled_tighter_than_the_default(synth: Synth) -> None:
    config = DeployConfig.from_context(CONTEXT.get)
    stage = _stage(synth)
    default = stage["Properties"]["DefaultRouteSettings"]
    expected = {
        topology.OPERATIONS.key: (config.admin_rate_limit, config.admin_burst_limit),
        topology.PROFILE_API.key: (config.profile_rate_limit, config.profile_burst_limit),
    }
    route_keys = {f"{method} {path}": key for method, path, key in topology.API_ROUTES}
    settings = stage["Properties"]["RouteSettings"]
    # Given the routes of the operations and profile functions, and the tracked links' route / Then exactly those have
    # their own settings
    redirect = (config.redirect_rate_limit, config.redirect_burst_limit)
    assert set(settings) == {rk for rk, key in route_keys.items() if key in expected} | {topology.REDIRECT_ROUTE}
    for route_key, limits in settings.items():
        rate, burst = redirect if route_key == topology.REDIRECT_ROUTE else expected[route_keys[route_key]]
        # And their limits are the configured ones, below the stage default
        assert limits == {"ThrottlingRateLimit": rate, "ThrottlingBurstLimit": burst}, route_key
        assert rate < default["ThrottlingRateLimit"] and burst < default["ThrottlingBurstLimit"], route_key
    # And the stage is created after those routes (API Gateway refuses settings naming a route it does not know)
    routes = {r["Properties"]["RouteKey"]: k for k, r in synth.resources("AWS::ApiGatewayV2::Route").items()}
    assert {routes[rk] for rk in settings} <= set(stage.get("DependsOn", []))


@pytest.mark.parametrize(
    "override",
    [{"adminRateLimit": 500}, {"profileBurstLimit": 1000}, {"apiRateLimit": 10}, {"redirectRateLimit": 1000}],
)
def test_route_limits_looser_than_the_default_fail_synth(override: dict[str, int]) -> None:
    from pydantic import ValidationError

    # Given route throttling above the API's default (a typo: it would not tighten anything)
    context = {**CONTEXT, **override}
    # When the config is read / Then synth stops naming the limits
    with pytest.raises(ValidationError, match="must not exceed the API default"):
        DeployConfig.from_context(context.get)


def _data_bucket_rules(synth: Synth) -> list[dict[str, Any]]:
    (data,) = [b for b in synth.resources("AWS::S3::Bucket").values() if "LoggingConfiguration" in b["Properties"]]
    rules: list[dict[str, Any]] = data["Properties"]["LifecycleConfiguration"]["Rules"]
    assert all(rule["Status"] == "Enabled" for rule in rules)
    return rules


def test_data_bucket_prefixes_expire_after_the_topology_retention(synth: Synth) -> None:
    rules = _data_bucket_rules(synth)
    expiring = {rule["Prefix"]: rule["ExpirationInDays"] for rule in rules if "ExpirationInDays" in rule}
    # Given the retention figures the erasure receipt quotes / Then each prefix expires after exactly that many days
    assert expiring == {
        topology.RAW_PREFIX: topology.RAW_RETENTION_DAYS,
        topology.IMPORTS_PREFIX: topology.IMPORTS_RETENTION_DAYS,
        topology.REJECTS_PREFIX: topology.REJECTS_RETENTION_DAYS,
        topology.EXPORTS_PREFIX: topology.EXPORTS_RETENTION_DAYS,
        topology.ANALYTICS_RESULTS_PREFIX: topology.ANALYTICS_RESULTS_RETENTION_DAYS,
    }


def test_old_versions_and_their_delete_markers_go_too(synth: Synth) -> None:
    # Given a versioned bucket, where an expired object only gets a delete marker
    rules = [rule for rule in _data_bucket_rules(synth) if "NoncurrentVersionExpiration" in rule]
    (versions,) = [rule for rule in rules if "Prefix" not in rule]
    # Then the old version expires after the topology's figure, bucket-wide, and the marker left alone is removed
    assert versions["NoncurrentVersionExpiration"] == {"NoncurrentDays": topology.NONCURRENT_VERSION_DAYS}
    assert versions["ExpiredObjectDeleteMarker"] is True
    # And the warehouse's replaced and erasure-rewritten files lose their old versions sooner
    (warehouse,) = [rule for rule in rules if "Prefix" in rule]
    assert warehouse["Prefix"] == topology.WAREHOUSE_PREFIX
    assert warehouse["NoncurrentVersionExpiration"] == {"NoncurrentDays": topology.WAREHOUSE_NONCURRENT_DAYS}
