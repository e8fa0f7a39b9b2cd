"""Activation end to end: events posted to the local API become profiles; the CLI (over HTTP against a
LocalApiServer) defines and exports an audience, then `cdp audience activate` uploads it to the brand's fake Tencent
Ads and Ocean Engine accounts (`LocalAdPlatforms`, as `cdp serve` runs them for demo-brand) and `cdp audience
activations` lists what was done.

The persons are demo-outlet's (campaign tests count demo-brand's customers), and this module sorts after
test_audiences_api.py, whose size test counts every profile of the shared runtime."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from cdp.activation.hashing import phone_md5, phone_sha256
from cdp.connectors.aws import SecretsManagerSources
from cdp_local.cli import app
from cdp_local.fakes.ad_platforms import LocalAdPlatforms
from cdp_local.http_server import LocalApiServer
from cdp_local.runtime import LocalRuntime

BRAND = "demo-outlet"
CITY = "Activationburg"  # no other e2e test lives here
PERSONS = 8


def _phone(i: int) -> str:
    return f"1366600{i:04d}"


def _event(kind: str, i: int, **properties: Any) -> dict[str, Any]:
    return {
        "event_id": f"act-e2e-{kind}-{i}",
        "event_type": kind,
        "source": "app",
        "brand_id": BRAND,
        "occurred_at": "2026-05-10T10:00:00+08:00",
        "identifiers": [{"type": "phone", "value": _phone(i)}],
        "properties": properties,
    }


@pytest.fixture(scope="module")
def server(runtime: LocalRuntime) -> Iterator[LocalApiServer]:
    # Given eight persons of Activationburg; the first six opted in to marketing SMS, the last two refused
    events = []
    for i in range(PERSONS):
        events.append(_event("identify", i, name=f"Li Lei{i}", city=CITY))
        events.append(_event("consent_changed", i, channel="sms", granted=i < 6, purpose="marketing"))
    headers = {"content-type": "application/json", "x-api-key": runtime.api_key}
    assert runtime.http("POST", "/v1/events", json.dumps({"batch": events}).encode(), headers).status == 202
    assert runtime.drain().dead_lettered == 0
    with (
        pytest.MonkeyPatch.context() as mp,
        LocalApiServer(runtime, port=0) as served,
        LocalAdPlatforms(runtime, BRAND) as outlet,
    ):
        mp.setattr(SecretsManagerSources, "TTL_S", 0.0)  # the audience function reads the accounts just written
        served.ad_platforms = outlet  # this brand's fakes, for the assertions
        yield served


def _cdp(server: LocalApiServer, *args: str) -> Any:
    return CliRunner().invoke(app, [*args, "--url", server.url], catch_exceptions=False)


def _json(server: LocalApiServer, *args: str) -> Any:
    result = _cdp(server, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_the_cli_activates_a_snapshot_to_both_platforms_and_lists_it(server: LocalApiServer, tmp_path: Any) -> None:
    definition = tmp_path / "activationburg.yaml"
    definition.write_text(f"id: activationburg\nname: {CITY}\nkind: static\ninclude: {{attr: city, eq: {CITY}}}\n")
    assert _cdp(server, "audience", "define", str(definition)).exit_code == 0
    assert _json(server, "audience", "export", "activationburg")["count"] == PERSONS
    # When it is activated to Tencent Ads, with SMS consent required
    activate = ("audience", "activate", "activationburg", "--brand", BRAND, "--consent", "sms", "--platform")
    done = _cdp(server, *activate, "tencent_ads")
    # Then it completes: six uploaded, two without consent; the fake holds the six MD5s of the 11-digit numbers
    assert done.exit_code == 0, done.output
    assert "complete" in done.output and "6 uploaded" in done.output and "no_consent 2" in done.output
    listed = _json(server, "audience", "activations", "activationburg")["activations"]
    tencent = listed[0]
    fakes = server.ad_platforms
    assert fakes.tencent_ads.audience_ids(tencent["platform_audience_id"]) == {
        phone_md5(f"+86{_phone(i)}") for i in range(6)
    }
    # When it is activated to Ocean Engine / Then its data source holds the six SHA-256s
    ocean = _json(server, *activate, "ocean_engine")
    held = fakes.ocean_engine.data_source_ids(ocean["platform_audience_id"])
    assert {i.id for i in held} == {phone_sha256(f"+86{_phone(i)}") for i in range(6)}
    # And the table lists both, newest first
    listed = _json(server, "audience", "activations", "activationburg")["activations"]
    assert [a["platform"] for a in listed] == ["ocean_engine", "tencent_ads"]
    table = _cdp(server, "audience", "activations", "activationburg")
    assert table.exit_code == 0 and "activations of activationburg" in table.output
    # And an unknown platform or a brand without an account is refused with the field named
    bad = _cdp(server, *activate, "baidu")
    assert bad.exit_code == 1 and "platform" in bad.output
    none = _cdp(server, "audience", "activate", "activationburg", "--platform", "tencent_ads", "--brand", "demo-shop")
    assert none.exit_code == 1 and "ad_platforms.demo-shop" in none.output
