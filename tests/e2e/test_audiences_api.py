"""Audience packages end to end: events posted to the local API become profiles; then `cdp audience` (the CLI,
over HTTP against a LocalApiServer) defines, validates, sizes, previews and exports; the campaign state machine
selects from the exported snapshot and records which one."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cdp_local.cli import app
from cdp_local.http_server import LocalApiServer
from cdp_local.runtime import LocalRuntime
from tests.e2e.conftest import PostEvents

BRAND = "demo-brand"
CITY = "Audienceville"  # no other e2e test lives here
PERSONS = 10


def _event(n: int, kind: str, i: int, **properties: Any) -> dict[str, Any]:
    return {
        "event_id": f"aud-e2e-{kind}-{i}-{n}",
        "event_type": kind,
        "source": "app",
        "brand_id": BRAND,
        "occurred_at": f"2026-05-{10 + n:02d}T10:00:00+08:00",
        "identifiers": [{"type": "phone", "value": f"1377000{i:04d}"}],
        "properties": properties,
    }


def _order(i: int, n: int) -> dict[str, Any]:
    lines = [{"sku": "CAKE", "category": "cake", "quantity": 1, "unit_price_minor": 8800}]
    return _event(n, "order_placed", i, order_id=f"AUD-{i}-{n}", lines=lines, total_minor=8800, currency="CNY")


@pytest.fixture(scope="module")
def server(runtime: LocalRuntime, post_events: PostEvents) -> Iterator[LocalApiServer]:
    # Given ten persons of Audienceville, each consenting to SMS; person i placed i % 3 orders
    events: list[dict[str, Any]] = []
    for i in range(PERSONS):
        events.append(_event(0, "identify", i, name=f"Zhou Xiaoming{i}", city=CITY, gender="male"))
        events.append(_event(1, "consent_changed", i, channel="sms", granted=True, purpose="marketing"))
        events.extend(_order(i, 2 + n) for n in range(i % 3))
    response, report = post_events(events)
    assert response.status == 202, response.body
    assert report.dead_lettered == 0
    with LocalApiServer(runtime, port=0) as served:
        yield served


@pytest.fixture(scope="module")
def post_events(runtime: LocalRuntime) -> PostEvents:  # module scope: the server fixture posts once
    def post(events: list[dict[str, Any]]) -> Any:
        headers = {"content-type": "application/json", "x-api-key": runtime.api_key}
        response = runtime.http("POST", "/v1/events", json.dumps({"batch": events}).encode(), headers)
        return response, runtime.drain()

    return post


def _cdp(server: LocalApiServer, *args: str) -> Any:
    return CliRunner().invoke(app, [*args, "--url", server.url], catch_exceptions=False)


def _json(server: LocalApiServer, *args: str) -> Any:
    result = _cdp(server, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


REPEAT_BUYERS = f"""
id: audienceville_buyers
name: Audienceville repeat buyers
description: bought a cake twice, consent to SMS
kind: static
include:
  all:
    - {{attr: city, eq: {CITY}}}
    - {{agg: count, event: order_placed, gte: 2}}
consent_channel: sms
"""


def test_define_size_preview_export_and_list_snapshots_from_the_cli(server: LocalApiServer, tmp_path: Path) -> None:
    # Given a definition with a typo'd tag and a test that does not fit its type
    bad = _write(
        tmp_path / "bad.yaml",
        "id: audienceville_bad\nname: bad\nkind: static\ninclude:\n  any:\n"
        "    - {tag: lifecycel, eq: dormant}\n    - {attr: city, gt: 3}\n",
    )
    # When it is validated or defined, Then both problems are listed with their paths, and nothing is saved
    for command in ("validate", "define"):
        refused = _cdp(server, "audience", command, str(bad))
        assert refused.exit_code == 1, refused.output
        assert "include.any[0].tag" in refused.output and "lifecycle" in refused.output
        assert "include.any[1].gt" in refused.output
    # And a file that is not YAML says where
    broken = _cdp(server, "audience", "validate", str(_write(tmp_path / "broken.yaml", "id: [unclosed\n")))
    assert broken.exit_code == 1 and "line" in broken.output

    # When the real definition is validated and defined
    good = _write(tmp_path / "buyers.yaml", REPEAT_BUYERS)
    checked = _cdp(server, "audience", "validate", str(good))
    assert checked.exit_code == 0 and "valid" in checked.output and "order_placed" in checked.output
    defined = _cdp(server, "audience", "define", str(good))
    assert defined.exit_code == 0 and "created" in defined.output and "version 1" in defined.output
    assert "audienceville_buyers" in _cdp(server, "audience", "list").output

    # Then its size is exact (a small table): i % 3 == 2 -> persons 2, 5, 8
    size = _json(server, "audience", "size", "audienceville_buyers")
    assert size["exact"] and size["estimate"] == 3 and size["read_timelines"]
    assert size["timings"]["timelines_read"] == size["profiles_scanned"] > 0
    shown = _cdp(server, "audience", "size", "audienceville_buyers")
    assert shown.exit_code == 0 and "3 members (exact" in shown.output

    # And the preview shows them with masked names and the order counts the condition reads
    preview = _json(server, "audience", "preview", "audienceville_buyers", "--limit", "10")
    assert len(preview["members"]) == 3 and preview["complete"]
    for member in preview["members"]:
        assert member["reads"]["count of order_placed"] == 2 and member["reads"]["attr:consent_sms"] is True
        assert "Zhou" not in str(member["traits"]["name"]) and member["traits"]["city"] == CITY
    table = _cdp(server, "audience", "preview", "audienceville_buyers", "--limit", "2")
    assert table.exit_code == 0 and "2 member(s)" in table.output and "more members exist" in table.output

    # When it is exported, Then a snapshot of the three is listed
    exported = _json(server, "audience", "export", "audienceville_buyers")
    assert exported["count"] == 3 and exported["source"] == "evaluated" and exported["version"] == 1
    snapshots = _json(server, "audience", "snapshots", "audienceville_buyers")
    assert [s["snapshot_id"] for s in snapshots["snapshots"]] == [exported["snapshot_id"]]
    listed = _cdp(server, "audience", "snapshots", "audienceville_buyers")
    assert exported["snapshot_id"] in listed.output


def test_the_campaign_state_machine_selects_the_static_snapshot(server: LocalApiServer, runtime: LocalRuntime) -> None:
    # Given the static audience of Audienceville (every person) exported
    definition = {"id": "audienceville", "name": "all of Audienceville", "kind": "static",
                  "include": {"attr": "city", "eq": CITY}}  # fmt: skip
    request = urllib.request.Request(  # noqa: S310 - the local server
        f"{server.url}/v1/audiences",
        data=json.dumps(definition).encode(),
        method="POST",
        headers={"x-api-key": runtime.admin_key, "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        assert answer.status == 201
    snapshot = _json(server, "audience", "export", "audienceville")
    assert snapshot["count"] == PERSONS
    # When a campaign names the audience
    sample = json.loads((Path(__file__).resolve().parents[2] / "events" / "sfn" / "campaign_input.json").read_text())
    campaign = sample["request"] | {
        "campaign_id": "audienceville-cake",
        "run_id": "audienceville-run-1",
        "brand_id": BRAND,
        "audience": {"audience_id": "audienceville", "require_consent_channel": "sms"},
        "holdout_fraction": 0.0,
        "wait_seconds": 1,
        "touch2": None,
    }
    status, output = runtime.wait_execution(runtime.start_execution("campaign", {"request": campaign}), timeout=120)
    # Then it succeeds, selecting the snapshot's ten persons, and audience.json names the audience and snapshot
    assert status == "SUCCEEDED", output
    body = runtime.client("s3").get_object(Bucket="cdp-data", Key="campaigns/audienceville-run-1/audience.json")
    manifest = json.loads(body["Body"].read())["manifest"]
    assert manifest["counts"]["eligible"] == PERSONS and manifest["counts"]["treatment"] == PERSONS
    assert manifest["audience"] == {
        "audience_id": "audienceville",
        "kind": "static",
        "version": 1,
        "snapshot_id": snapshot["snapshot_id"],
        "snapshot_as_of": manifest["audience"]["snapshot_as_of"],
        "snapshot_count": PERSONS,
        "resolved": PERSONS,
    }


def test_the_openapi_document_served_locally_lists_the_audience_routes(server: LocalApiServer) -> None:
    with urllib.request.urlopen(f"{server.url}/v1/openapi.json", timeout=30) as answer:  # noqa: S310
        document = json.loads(answer.read())
    paths = document["paths"]
    for path, method in [
        ("/v1/audiences", "post"),
        ("/v1/audiences", "get"),
        ("/v1/audiences/validate", "post"),
        ("/v1/audiences/{audience_id}", "delete"),
        ("/v1/audiences/{audience_id}/size", "post"),
        ("/v1/audiences/{audience_id}/preview", "get"),
        ("/v1/audiences/{audience_id}/export", "post"),
        ("/v1/audiences/{audience_id}/snapshots", "get"),
    ]:
        assert method in paths[path], (path, method)
    assert "422" in paths["/v1/audiences"]["post"]["responses"]
    assert "AudienceDefinition" in document["components"]["schemas"]


def _http(runtime: LocalRuntime, method: str, path: str, body: Any = None, key: str | None = None) -> tuple[int, Any]:
    headers = {"x-api-key": key or runtime.admin_key, "content-type": "application/json"}
    answer = runtime.http(method, path, b"" if body is None else json.dumps(body).encode(), headers)
    return answer.status, json.loads(answer.body)


def test_an_unsaved_definition_is_sized_portrayed_and_previewed_in_one_call(
    server: LocalApiServer, runtime: LocalRuntime
) -> None:  # server: its fixture posts Audienceville's events
    # Given a definition the builder holds, not saved: the repeat buyers of Audienceville (persons 2, 5 and 8)
    definition = {
        "id": "audienceville_draft",
        "name": "draft",
        "kind": "static",
        "include": {"all": [{"attr": "city", "eq": CITY}, {"agg": "count", "event": "order_placed", "gte": 2}]},
        "consent_channel": "sms",
    }
    # When it is estimated with a portrait on lifecycle and gender, and two members to preview
    request = {
        "definition": definition,
        "portrait": ["lifecycle", "gender"],
        "preview": 2,
        "size": {"segments": 4, "sample_segments": 4},
    }
    status, answer = _http(runtime, "POST", "/v1/audiences/estimate", request)
    # Then the size is exact (a small table: every segment scanned) and counts the three
    assert status == 200, answer
    size = answer["size"]
    assert size["exact"] is True and size["estimate"] == 3 and size["segments_scanned"] == 4
    assert answer["saved_version"] is None and answer["report"]["valid"] is True
    assert answer["report"]["reads"]["events"] == ["order_placed"]
    # And the portrait compares the members with every profile scanned, value by value
    portrait = answer["portrait"]
    assert portrait["members"] == 3 and portrait["customers"] == size["profiles_scanned"]
    lifecycle, gender = portrait["dimensions"]
    assert [lifecycle["tag"], gender["tag"]] == ["lifecycle", "gender"]
    for dimension in (lifecycle, gender):
        assert sum(v["members"] for v in dimension["values"]) == 3
        assert sum(v["customers"] for v in dimension["values"]) == portrait["customers"]
        for v in dimension["values"]:
            assert v["members_share"] == round(v["members"] / 3, 6)
            assert v["customers_share"] == round(v["customers"] / portrait["customers"], 6)
            assert v["index"] == round(100 * (v["members"] / 3) / (v["customers"] / portrait["customers"]), 1)
    assert {v["value"]: v["members"] for v in gender["values"]}["male"] == 3  # every Audienceville person is male
    # And each member's lifecycle as their profile holds it adds up to the portrait's counts
    by_value: dict[str | None, int] = {}
    for i in (2, 5, 8):
        status, person = _http(runtime, "GET", f"/v1/profiles/by-identifier/phone/1377000{i:04d}?brand_id={BRAND}")
        assert status == 200, person
        value = person["tags"].get("lifecycle", {}).get("value")
        by_value[value] = by_value.get(value, 0) + 1
    assert {v["value"]: v["members"] for v in lifecycle["values"] if v["members"]} == by_value
    # And two members are previewed with what the condition read, their names masked
    assert len(answer["preview"]) == 2
    for member in answer["preview"]:
        assert member["reads"]["count of order_placed"] >= 2
        assert member["traits"]["name"] != "Zhou Xiaoming2" and "*" in member["traits"]["name"]
    # And nothing was saved
    assert _http(runtime, "GET", "/v1/audiences/audienceville_draft")[0] == 404


def test_an_estimate_names_what_is_wrong_and_where(runtime: LocalRuntime) -> None:
    draft = {"id": "audienceville_bad", "name": "bad", "kind": "static", "include": {"tag": "lifecycel", "eq": "x"}}
    # When the definition has a typo'd tag, Then a 422 lists it with its path in the definition
    status, answer = _http(runtime, "POST", "/v1/audiences/estimate", {"definition": draft})
    assert status == 422 and answer["error"] == "invalid_audience"
    assert answer["errors"][0]["field"] == "include.tag" and "lifecycle" in answer["errors"][0]["message"]
    # When a portrait names an unknown tag, or the preview is too long, Then a 400 names the field
    good = {**draft, "include": {"tag": "lifecycle", "eq": "mature"}}
    status, answer = _http(runtime, "POST", "/v1/audiences/estimate", {"definition": good, "portrait": ["nope"]})
    assert (status, answer["field"]) == (400, "portrait[0]"), answer
    status, answer = _http(runtime, "POST", "/v1/audiences/estimate", {"definition": good, "preview": 500})
    assert status == 400 and answer["field"] == "preview", answer
    # When a key limited to one brand asks, Then it is refused (audiences read every brand's profiles)
    status, answer = _http(runtime, "POST", "/v1/audiences/estimate", {"definition": good}, "e2e-marketer-key")
    assert status == 403, answer


def test_the_tag_catalog_lists_every_tag_with_its_values_and_what_a_condition_may_name(runtime: LocalRuntime) -> None:
    # When the catalog is read
    status, catalog = _http(runtime, "GET", "/v1/tags")
    # Then every tag is there with its category, type and the values its rule gives
    assert status == 200, catalog
    tags = {t["name"]: t for t in catalog["tags"]}
    assert tags["lifecycle"]["category"] == "lifecycle" and tags["lifecycle"]["value_type"] == "string"
    assert set(tags["lifecycle"]["values"]) == {"introduction", "growth", "mature", "dormant", "churned"}
    assert tags["cart_abandoner_3d"]["values"] == [True, False]
    assert tags["city"]["values"] == [] and tags["city"]["kind"] == "fact"
    assert "rfm_recency" in tags["rfm_segment"]["reads"]
    # And the attributes, event types, fields, tests and aggregates a condition may name
    assert {"name": "city", "value_type": "string"}.items() <= next(
        a for a in catalog["attributes"] if a["name"] == "city"
    ).items()
    assert "order_placed" in catalog["event_types"] and catalog["event_fields"]["amount_minor"] == "number"
    assert "between" in catalog["operators"] and "days_since_last" in catalog["aggregates"]
    # And a key without audiences:read is refused
    assert _http(runtime, "GET", "/v1/tags", key="e2e-marketer-key")[0] == 403


def test_a_brands_key_builds_audiences_of_its_own_customers_only(runtime: LocalRuntime) -> None:
    # Given Audienceville's persons of demo-brand (the server fixture's) and one of demo-outlet
    outlet = {**_event(0, "identify", 99, city=CITY), "brand_id": "demo-outlet", "event_id": "aud-e2e-outlet-99"}
    status, posted = _http(runtime, "POST", "/v1/events", {"batch": [outlet]}, "e2e-outlet-writer-key")
    assert status == 202 and posted["accepted"] == 1, posted
    runtime.drain()
    everyone = {
        "id": "audienceville_everyone",
        "name": "all",
        "kind": "static",
        "include": {"attr": "city", "eq": CITY},
    }
    status, answer = _http(runtime, "POST", "/v1/audiences/estimate", {"definition": everyone})
    assert status == 200 and answer["size"]["estimate"] == PERSONS + 1, answer  # an unscoped key: every brand's
    # When demo-brand's key estimates and defines the same condition, naming no brand
    mine = {**everyone, "id": "audienceville_brand"}
    status, answer = _http(runtime, "POST", "/v1/audiences/estimate", {"definition": mine}, "e2e-audiences-key")
    # Then it counts demo-brand's customers only, and the saved definition is bound to the brand
    assert status == 200 and answer["size"]["estimate"] == PERSONS and answer["portrait"]["customers"] == PERSONS
    status, stored = _http(runtime, "POST", "/v1/audiences", mine, "e2e-audiences-key")
    assert status == 201 and stored["definition"]["brand_id"] == BRAND
    status, snapshot = _http(runtime, "POST", "/v1/audiences/audienceville_brand/export", {}, "e2e-audiences-key")
    assert status == 201 and snapshot["count"] == PERSONS
    # And demo-outlet's key does not find it, cannot take its id, and cannot name demo-brand
    outlet_key = "e2e-outlet-audiences-key"
    assert _http(runtime, "GET", "/v1/audiences/audienceville_brand", key=outlet_key)[0] == 404
    assert "audienceville_brand" not in [
        a["id"] for a in _http(runtime, "GET", "/v1/audiences", key=outlet_key)[1]["audiences"]
    ]
    assert _http(runtime, "POST", "/v1/audiences", mine, outlet_key)[0] == 409
    named = {**mine, "id": "audienceville_named", "brand_id": BRAND}
    assert _http(runtime, "POST", "/v1/audiences", named, outlet_key)[0] == 403
    # And a store's key holds no whole brand: 403
    assert _http(runtime, "GET", "/v1/audiences", key="e2e-sh01-till-offers-key")[0] == 403
