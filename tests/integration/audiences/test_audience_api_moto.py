"""The audience API through the real handler on moto: profiles in DynamoDB (parallel scan, timelines), definitions
and snapshots in S3, API keys in Secrets Manager; then the campaign Lambda selecting from a stored audience."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.identity.dynamodb import _filed_item
from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.org import load_org
from cdp.profile.dynamodb import profile_item, profile_tags_item
from cdp.profile.models import ConsentState, Profile, ProfileFacts, TagValue, Traits
from cdp.settings import get_settings
from cdp.shared.dynamo import to_item
from cdp_local.runtime.apigw import build_event, match_route
from cdp_local.runtime.core import create_table

ADMIN, READER, SCOPED, INGEST = "aud-admin", "aud-reader", "aud-scoped", "aud-ingest"
BRAND = "demo-brand"
NOW = datetime.now(UTC)
SAMPLE_CAMPAIGN = Path(__file__).resolve().parents[3] / "events" / "sfn" / "campaign_input.json"
N_PROFILES = 120


class FakeContext:
    function_name = "cdp-audience-api"
    memory_limit_in_mb = 1769
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:cdp-audience-api"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def _order(card: str, n: int, days_ago: int) -> CanonicalEvent:
    return parse_event(
        {
            "event_id": f"aud-o-{card}-{n}",
            "event_type": "order_placed",
            "source": "pos",
            "brand_id": BRAND,
            "occurred_at": (NOW - timedelta(days=days_ago)).isoformat(),
            "identifiers": [{"type": "member_card", "value": card}],
            "properties": {
                "order_id": f"aud-{card}-{n}",
                "lines": [{"sku": "cake", "category": "cake", "quantity": 1, "unit_price_minor": 9900}],
                "total_minor": 9900,
                "currency": "CNY",
            },
        }
    )


def _seed(db: Any) -> None:
    """120 persons: every third in Shanghai (40), every fourth dormant; person i placed i % 3 orders this month;
    even persons hold SMS consent and the dynamic membership tag of "vip"."""
    namespace = load_org().brand(BRAND).namespace
    for i in range(N_PROFILES):
        card = f"member_card:C{i:04d}"
        tags: dict[str, str | bool] = {"lifecycle": "dormant" if i % 4 == 0 else "mature"}
        if i % 2 == 0:
            tags["audience:vip"] = True
        profile = Profile(
            person_id=f"aud-p{i:04d}",
            brand_id=BRAND,
            created_at=NOW,
            updated_at=NOW,
            identifiers=[card],
            traits=Traits(
                name=f"Person Number{i:04d}", city="Shanghai" if i % 3 == 0 else "Beijing", birthday=date(1990, 1, 1)
            ),
            tags={k: TagValue(value=v, since=NOW) for k, v in tags.items()},
            consent={"sms": ConsentState(granted=i % 2 == 0, changed_at=NOW, source="crm")},
            facts=ProfileFacts(order_count=i % 3),
        )
        for item in (profile_item(profile), profile_tags_item(profile, 1)):
            db.put_item(TableName=topology.PROFILES_TABLE.local_name, Item=to_item(item))
        for n in range(i % 3):
            filed = _filed_item(namespace, card, _order(f"C{i:04d}", n, days_ago=1 + n))
            db.put_item(TableName=topology.PROFILES_TABLE.local_name, Item=to_item(filed))


@pytest.fixture(scope="module")
def aws() -> Iterator[dict[str, Any]]:
    env = {
        topology.PROFILES_TABLE.env_var: topology.PROFILES_TABLE.local_name,
        topology.LEDGER_TABLE.env_var: topology.LEDGER_TABLE.local_name,
        topology.OFFERS_TABLE.env_var: topology.OFFERS_TABLE.local_name,  # the campaign function's offer plans
        topology.EVENT_BUS_ENV: topology.EVENT_BUS_LOCAL_NAME,  # and the selected persons' groups it files
        topology.DATA_BUCKET_ENV: topology.DATA_BUCKET_LOCAL_NAME,
        topology.API_KEYS_SECRET_ENV: topology.API_KEYS_SECRET_LOCAL_NAME,
        topology.SOURCES_SECRET_ENV: topology.SOURCES_SECRET_LOCAL_NAME,  # the ad accounts (read only to activate)
    }
    with pytest.MonkeyPatch.context() as mp, mock_aws():
        for k, v in env.items():
            mp.setenv(k, v)
        get_settings.cache_clear()
        from functions.audience_api import handler
        from functions.campaign import handler as campaign

        handler.dependencies.cache_clear()
        campaign._ports.cache_clear()
        campaign._audiences.cache_clear()
        campaign._bus.cache_clear()
        boto3.client("events").create_event_bus(Name=topology.EVENT_BUS_LOCAL_NAME)
        db = boto3.client("dynamodb")
        create_table(db, topology.PROFILES_TABLE)
        create_table(db, topology.LEDGER_TABLE)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=topology.DATA_BUCKET_LOCAL_NAME)
        keys = {
            ADMIN: {"client": "marketing", "scopes": ["audiences:read", "audiences:write"]},
            READER: {"client": "analyst", "scopes": ["audiences:read"]},
            SCOPED: {
                "client": "store",
                "scopes": ["audiences:read", "audiences:write"],
                "scope": {"brand_id": BRAND, "store_id": "sh01"},
            },
            INGEST: {"client": "pos", "scopes": ["events:write"]},
        }
        boto3.client("secretsmanager").create_secret(
            Name=topology.API_KEYS_SECRET_LOCAL_NAME, SecretString=json.dumps({"keys": keys, "hmac": {}})
        )
        _seed(db)
        yield {"handler": handler, "campaign": campaign, "s3": s3}
        handler.dependencies.cache_clear()
        campaign._ports.cache_clear()
        campaign._audiences.cache_clear()
        get_settings.cache_clear()


def call(aws: dict[str, Any], method: str, path: str, body: Any = None, key: str | None = ADMIN) -> tuple[int, Any]:
    raw_path, _, query = path.partition("?")
    matched = match_route(method, raw_path)
    assert matched is not None, f"no route {method} {raw_path} in topology.API_ROUTES"
    route, params = matched
    assert route.function is topology.AUDIENCE_API
    raw = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
    headers = {"content-type": "application/json", **({"x-api-key": key} if key else {})}
    event = build_event(route, params, method, raw_path, query, raw, headers)
    result = aws["handler"].lambda_handler(event, FakeContext())
    return result["statusCode"], json.loads(result["body"] or "null")


SHANGHAI = {
    "id": "shanghai",
    "name": "Shanghai",
    "kind": "static",
    "include": {"attr": "city", "eq": "Shanghai"},
    "consent_channel": "sms",
}


def test_define_update_get_and_list(aws: dict[str, Any]) -> None:
    # When an audience is defined, then changed
    status, created = call(aws, "POST", "/v1/audiences", {**SHANGHAI, "id": "crud_demo"})
    assert status == 201 and created["version"] == 1
    status, updated = call(aws, "POST", "/v1/audiences", {**SHANGHAI, "id": "crud_demo", "name": "Shanghai SMS"})
    # Then the version goes up and reads return the latest
    assert status == 200 and updated["version"] == 2 and updated["created_at"] == created["created_at"]
    status, got = call(aws, "GET", "/v1/audiences/crud_demo", key=READER)
    assert status == 200 and got["definition"]["name"] == "Shanghai SMS"
    status, listed = call(aws, "GET", "/v1/audiences", key=READER)
    assert status == 200 and "crud_demo" in {a["id"] for a in listed["audiences"]}
    stored = aws["s3"].get_object(Bucket=topology.DATA_BUCKET_LOCAL_NAME, Key="audiences/definitions/crud_demo.json")
    assert json.loads(stored["Body"].read())["version"] == 2


def test_bad_definitions_get_a_422_naming_every_field(aws: dict[str, Any]) -> None:
    bad = {
        **SHANGHAI,
        "id": "bad",
        "include": {"all": [{"tag": "lifecycle", "in": [1]}, {"tag": "lifecylce", "eq": "x"}]},
    }
    status, body = call(aws, "POST", "/v1/audiences", bad)
    assert status == 422 and body["error"] == "invalid_audience"
    assert [e["field"] for e in body["errors"]] == ["include.all[0].in", "include.all[1].tag"]
    assert body["field"] == "include.all[0].in" and "did you mean 'lifecycle'" in body["errors"][1]["message"]
    # And validate answers 200 with the same report, saving nothing
    status, report = call(aws, "POST", "/v1/audiences/validate", bad, key=READER)
    assert status == 200 and report["valid"] is False and len(report["errors"]) == 2
    assert call(aws, "GET", "/v1/audiences/bad")[0] == 404


def test_malformed_requests_and_credentials_are_refused_clearly(aws: dict[str, Any]) -> None:
    status, body = call(aws, "POST", "/v1/audiences", b"{not json")
    assert status == 400 and body["field"] == "body" and "not valid JSON" in body["message"]
    status, body = call(aws, "GET", "/v1/audiences/Not-An-Id")
    assert status == 400 and body["field"] == "audience_id"
    status, body = call(aws, "POST", "/v1/audiences/shanghai/size", {"segments": 0})
    assert status == 400 and body["field"] == "segments"
    status, body = call(aws, "GET", "/v1/audiences/shanghai/preview?limit=500")
    assert status == 400 and body["field"] == "limit"
    assert call(aws, "GET", "/v1/audiences", key=None)[0] == 401
    assert call(aws, "GET", "/v1/audiences", key="wrong")[0] == 401
    status, body = call(aws, "GET", "/v1/audiences", key=INGEST)
    assert status == 403 and "audiences:read" in body["message"]
    assert call(aws, "POST", "/v1/audiences", SHANGHAI, key=READER)[0] == 403
    status, body = call(aws, "GET", "/v1/audiences", key=SCOPED)
    assert status == 403 and "sh01" in body["message"] and "use a key of the brand" in body["message"], body
    assert call(aws, "GET", "/v1/audiences/nobody_here")[0] == 404


def test_size_is_exact_on_a_small_table_and_sampled_on_request(aws: dict[str, Any]) -> None:
    assert call(aws, "POST", "/v1/audiences", SHANGHAI)[0] in (200, 201)
    # Shanghai with SMS consent: i % 3 == 0 and even -> i % 6 == 0 -> 20 of 120
    status, size = call(aws, "POST", "/v1/audiences/shanghai/size", {}, key=READER)
    assert status == 200 and size["exact"] and size["estimate"] == 20 and size["profiles_scanned"] == N_PROFILES
    assert size["segments_scanned"] == 16 and not size["read_timelines"]
    assert size["timings"]["total_ms"] > 0 and size["timings"]["timelines_read"] == 0
    status, sampled = call(aws, "POST", "/v1/audiences/shanghai/size", {"segments": 8, "sample_segments": 4})
    assert status == 200 and not sampled["exact"] and sampled["segments_scanned"] == 4
    assert sampled["low"] <= sampled["estimate"] <= sampled["high"] and sampled["confidence"] == 0.95
    assert sampled["members_counted"] <= 20 and sampled["profiles_scanned"] < N_PROFILES


def test_preview_reads_timelines_only_for_event_aggregates_and_masks_names(aws: dict[str, Any]) -> None:
    buyers = {
        "id": "repeat_buyers",
        "name": "bought twice this month",
        "kind": "static",
        "include": {"all": [{"agg": "count", "event": "order_placed", "within_days": 30, "gte": 2}]},
        "exclude": [{"tag": "lifecycle", "eq": "dormant"}],
    }
    assert call(aws, "POST", "/v1/audiences", buyers)[0] in (200, 201)
    status, preview = call(aws, "GET", "/v1/audiences/repeat_buyers/preview?limit=5", key=READER)
    assert status == 200 and len(preview["members"]) == 5 and preview["read_timelines"]
    # a dormant person is ruled out by the exclude alone: no timeline is read for them
    assert 5 <= preview["timings"]["timelines_read"] <= preview["profiles_scanned"]
    for member in preview["members"]:
        assert int(member["person_id"][-4:]) % 3 == 2  # two orders: i % 3 == 2
        assert member["reads"]["count of order_placed in the last 30 days"] == 2
        assert member["reads"]["tag:lifecycle"] == "mature"
        assert member["traits"]["name"].startswith("***") and "Person" not in member["traits"]["name"]
    status, size = call(aws, "POST", "/v1/audiences/repeat_buyers/size", {"segments": 16, "sample_segments": 16})
    # i % 3 == 2 (40) minus dormant (i % 4 == 0): i % 12 == 8 -> 10; 30 remain
    assert status == 200 and size["exact"] and size["estimate"] == 30 and size["read_timelines"]
    # Then only the 90 persons the exclude does not rule out (not dormant) had their timelines read
    assert size["profiles_scanned"] == N_PROFILES and size["timings"]["timelines_read"] == 90
    # And over one segment the scan returns the filed events with the profiles: the same size, no timeline query
    status, one = call(aws, "POST", "/v1/audiences/repeat_buyers/size", {"segments": 1})
    assert status == 200 and one["exact"] and one["estimate"] == 30 and one["profiles_scanned"] == N_PROFILES
    assert one["sample"] == [{"segment": 0, "profiles": N_PROFILES, "members": 30}]
    assert one["timings"]["timelines_ms"] == 0 and one["timings"]["timelines_read"] == N_PROFILES
    # And asked nothing, a table this small is read that way at once (one segment counted first)
    status, default = call(aws, "POST", "/v1/audiences/repeat_buyers/size", {})
    assert status == 200 and default["estimate"] == 30 and default["segments_total"] == 1
    assert default["timings"]["timelines_ms"] == 0
    status, exported = call(aws, "POST", "/v1/audiences/repeat_buyers/export", {"segments": 1})
    assert status == 201 and exported["count"] == 30 and exported["profiles_scanned"] == N_PROFILES


def test_export_writes_members_then_manifest_and_lists_snapshots(aws: dict[str, Any]) -> None:
    assert call(aws, "POST", "/v1/audiences", SHANGHAI)[0] in (200, 201)
    assert call(aws, "POST", "/v1/audiences/shanghai/export", {}, key=READER)[0] == 403  # export writes
    status, manifest = call(aws, "POST", "/v1/audiences/shanghai/export", {"segments": 4})
    assert status == 201 and manifest["count"] == 20 and manifest["source"] == "evaluated"
    prefix = f"audiences/snapshots/shanghai/{manifest['snapshot_id']}/"
    listed = aws["s3"].list_objects_v2(Bucket=topology.DATA_BUCKET_LOCAL_NAME, Prefix=prefix)["Contents"]
    assert sorted(o["Key"] for o in listed) == [f"{prefix}manifest.json", f"{prefix}members-00000.jsonl"]
    body = aws["s3"].get_object(Bucket=topology.DATA_BUCKET_LOCAL_NAME, Key=f"{prefix}members-00000.jsonl")["Body"]
    members = [json.loads(line)["person_id"] for line in body.read().splitlines()]
    assert members == [f"aud-p{i:04d}" for i in range(0, N_PROFILES, 6)]
    status, snapshots = call(aws, "GET", "/v1/audiences/shanghai/snapshots", key=READER)
    assert status == 200 and snapshots["snapshots"][0]["snapshot_id"] == manifest["snapshot_id"]


def test_delete_refuses_while_referenced_then_leaves_a_tombstone(aws: dict[str, Any]) -> None:
    live = {"id": "live_vip", "name": "vip", "kind": "dynamic", "include": {"attr": "consent_sms", "eq": True}}
    reader = {"id": "vip_reader", "name": "r", "kind": "dynamic", "include": {"audience": "live_vip", "eq": True}}
    assert call(aws, "POST", "/v1/audiences", live)[0] in (200, 201)
    assert call(aws, "POST", "/v1/audiences", reader)[0] in (200, 201)
    status, body = call(aws, "DELETE", "/v1/audiences/live_vip")
    assert status == 409 and "vip_reader" in body["message"]
    assert call(aws, "DELETE", "/v1/audiences/vip_reader")[0] == 200
    status, tombstone = call(aws, "DELETE", "/v1/audiences/live_vip")
    assert status == 200 and tombstone["deleted_at"]
    assert call(aws, "GET", "/v1/audiences/live_vip")[0] == 404


def _campaign(aws: dict[str, Any], audience: dict[str, Any], run_id: str) -> dict[str, Any]:
    request: dict[str, Any] = json.loads(SAMPLE_CAMPAIGN.read_text())["request"]
    request.update(brand_id=BRAND, run_id=run_id, holdout_fraction=0.0, scan_segments=4)
    request["audience"] = {"require_consent_channel": "sms", **audience}
    result: dict[str, Any] = aws["campaign"].lambda_handler({"action": "select", "request": request}, FakeContext())
    return result


def test_the_campaign_lambda_selects_a_static_and_a_dynamic_audience(aws: dict[str, Any]) -> None:
    # Given the static Shanghai audience exported, and the dynamic "vip" audience kept by tag_update (even persons)
    assert call(aws, "POST", "/v1/audiences", SHANGHAI)[0] in (200, 201)
    status, manifest = call(aws, "POST", "/v1/audiences/shanghai/export", {})
    assert status == 201
    vip = {"id": "vip", "name": "vip", "kind": "dynamic", "include": {"attr": "consent_sms", "eq": True}}
    assert call(aws, "POST", "/v1/audiences", vip)[0] in (200, 201)
    # When the campaign Lambda selects each
    static = _campaign(aws, {"audience_id": "shanghai"}, "aud-static-run")
    dynamic = _campaign(aws, {"audience_id": "vip"}, "aud-dynamic-run")
    # Then it reads the snapshot, resp. the membership tags, and records which in audience.json
    assert static["selection"]["counts"]["eligible"] == 20
    assert dynamic["selection"]["counts"]["eligible"] == N_PROFILES // 2
    doc = json.loads(
        aws["s3"]
        .get_object(Bucket=topology.DATA_BUCKET_LOCAL_NAME, Key="campaigns/aud-static-run/audience.json")["Body"]
        .read()
    )
    assert doc["manifest"]["audience"]["snapshot_id"] == manifest["snapshot_id"]
    assert doc["manifest"]["audience"]["kind"] == "static"
