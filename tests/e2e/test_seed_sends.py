"""Test sends to a seed list end to end on the local runtime: every message of a journey's version (its paths too)
goes to the seed persons through the real send path, past the frequency caps that would stop a campaign, and counts
in none of the campaign's results."""

from __future__ import annotations

import json
from typing import Any

from cdp import topology
from cdp_local.runtime import LocalRuntime
from tests.e2e.conftest import PostEvents

BRAND = "demo-brand"
CAMPAIGN = "e2e_seed_test"
SEED_PHONE = "13700000001"  # demo-brand's campaigns.seed_list in the packaged org config


def _call(runtime: LocalRuntime, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {"content-type": "application/json", "x-api-key": runtime.admin_key}
    response = runtime.http(method, path, json.dumps(body).encode() if body is not None else b"", headers)
    return response.status, json.loads(response.body or b"null")


def _outbox(runtime: LocalRuntime, run_id: str) -> list[dict[str, Any]]:
    s3 = runtime.client("s3")
    listed = s3.list_objects_v2(Bucket=topology.DATA_BUCKET_LOCAL_NAME, Prefix=topology.OUTBOX_PREFIX)
    out = []
    for obj in listed.get("Contents", []):
        if f"/{run_id}/" in obj["Key"]:
            out.append(json.loads(s3.get_object(Bucket=topology.DATA_BUCKET_LOCAL_NAME, Key=obj["Key"])["Body"].read()))
    return out


def test_every_message_of_a_version_reaches_the_seed_list_and_counts_nowhere(
    runtime: LocalRuntime, post_events: PostEvents
) -> None:
    # Given the seed person (a staff phone that opted in) and a journey of three messages over two paths
    consent = {
        "event_id": "seed-e2e-consent",
        "event_type": "consent_changed",
        "source": "app",
        "brand_id": BRAND,
        "occurred_at": "2026-11-01T10:00:00+08:00",
        "identifiers": [{"type": "phone", "value": SEED_PHONE}],
        "properties": {"channel": "all", "granted": True, "purpose": "marketing"},
    }
    response, report = post_events([consent])
    assert response.status == 202 and report.dead_lettered == 0
    sms = {"channel": "sms", "template": {"body": "Hi {{ traits.name or 'there' }}: step {{ step }}"}}
    definition = {
        "campaign_id": CAMPAIGN,
        "brand_id": BRAND,
        "name": "Seed test",
        "trigger": {"event": "add_to_cart"},
        "steps": [
            {"send": sms},
            {"wait": {"days": 1}},
            {"send": sms},
            {"branch": {"if": {"did": "message_clicked"}, "then": "clicked"}},
        ],
        "paths": {"clicked": [{"send": sms}]},
        "budget": {"amount_minor": 1000, "currency": "CNY", "cost_per_message_minor": {"sms": 5}},
    }
    assert _call(runtime, "POST", "/v1/campaigns", definition)[0] == 201

    # When a test send is asked twice (the packaged seed list, then the seed named in the body plus an unknown one)
    status, sent = _call(runtime, "POST", f"/v1/campaigns/{CAMPAIGN}/test-send?brand_id={BRAND}")
    assert status == 202, sent
    assert [s["step"] for s in sent["sends"]] == ["steps[0]", "steps[2]", "paths.clicked[0]"]
    runtime.drain()
    seeds = {"seeds": [{"type": "phone", "value": SEED_PHONE}, {"type": "phone", "value": "13700000999"}]}
    status, again = _call(runtime, "POST", f"/v1/campaigns/{CAMPAIGN}/test-send?brand_id={BRAND}", seeds)
    assert status == 202 and again["unknown_seeds"] == ["phone:+8613700000999"]
    runtime.drain()

    # Then the seed got all three messages each time, past the brand's cap of 2 SMS a week, rendered for them
    first, second = _outbox(runtime, sent["run_id"]), _outbox(runtime, again["run_id"])
    assert len(first) == 3 and len(second) == 3, (first, second)
    stamp = sent["run_id"].rsplit("-test-", 1)[1]
    assert {m["message"]["body"] for m in first} == {f"Hi there: step test-{stamp}-{i}" for i in range(3)}
    # And the campaign, still a draft, has no entrant, no spend and no run
    assert _call(runtime, "GET", f"/v1/campaigns/{CAMPAIGN}?brand_id={BRAND}")[1]["state"]["status"] == "draft"
    journey = _call(runtime, "GET", f"/v1/campaigns/{CAMPAIGN}/journey?brand_id={BRAND}")[1]
    assert journey["entered"] == {"treatment": 0, "holdout": 0} and journey["spent_minor"] == 0
    # A bad seed is a 400 naming it; an unknown campaign a 404
    # A key that may write campaigns but not approve them sends to the seed list only, never to seeds it names
    marketer = {"content-type": "application/json", "x-api-key": "e2e-marketer-key"}
    path = f"/v1/campaigns/{CAMPAIGN}/test-send?brand_id={BRAND}"
    assert runtime.http("POST", path, json.dumps(seeds).encode(), marketer).status == 403
    assert runtime.http("POST", path, b"", marketer).status == 202
    runtime.drain()
    bad = {"seeds": [{"type": "fax", "value": "1"}]}
    status, answer = _call(runtime, "POST", f"/v1/campaigns/{CAMPAIGN}/test-send?brand_id={BRAND}", bad)
    assert status == 400 and answer["field"] == "seeds[0].type"
    assert _call(runtime, "POST", f"/v1/campaigns/nope/test-send?brand_id={BRAND}")[0] == 404
