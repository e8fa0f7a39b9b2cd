"""Activation through the real audience API handler on moto (profiles in DynamoDB, snapshots and records in S3, keys
and the brands' ad accounts in Secrets Manager) uploading to the loopback fakes over real HTTP: the routes' scopes,
the brand, unknown audiences and bad bodies, what arrives at each platform, and a platform's refusal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.activation.hashing import phone_md5, phone_sha256
from cdp.connectors.aws import SecretsManagerSources
from cdp.profile.dynamodb import profile_item, profile_tags_item
from cdp.profile.models import ConsentState, Profile, Traits
from cdp.settings import get_settings
from cdp.shared.dynamo import to_item
from cdp_local.fakes.ocean_engine import FakeOceanEngine
from cdp_local.fakes.tencent_ads import FakeTencentAds
from cdp_local.runtime.apigw import build_event, match_route

ADMIN, BRAND_KEY, OUTLET_KEY, STORE_KEY, READER = "act-admin", "act-brand", "act-outlet", "act-store", "act-reader"
BRAND = "demo-brand"
NOW = datetime.now(UTC)
N = 12  # persons act-p00..act-p11: even ones opted in to SMS; act-p11 is demo-outlet's


class FakeContext:
    function_name = "cdp-audience-api"
    memory_limit_in_mb = 1769
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:cdp-audience-api"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def _phone(i: int) -> str:
    return f"+86137{i:08d}"


def _seed(db: Any) -> None:
    for i in range(N):
        profile = Profile(
            person_id=f"act-p{i:02d}",
            brand_id="demo-outlet" if i == N - 1 else BRAND,
            created_at=NOW,
            updated_at=NOW,
            identifiers=[f"phone:{_phone(i)}"],
            traits=Traits(city="Activationville"),
            consent={"sms": ConsentState(granted=i % 2 == 0, changed_at=NOW, source="crm")},
        )
        for item in (profile_item(profile), profile_tags_item(profile, 1)):
            db.put_item(TableName=topology.PROFILES_TABLE.local_name, Item=to_item(item))


@pytest.fixture(scope="module")
def aws() -> Iterator[dict[str, Any]]:
    env = {
        topology.PROFILES_TABLE.env_var: topology.PROFILES_TABLE.local_name,
        topology.DATA_BUCKET_ENV: topology.DATA_BUCKET_LOCAL_NAME,
        topology.API_KEYS_SECRET_ENV: topology.API_KEYS_SECRET_LOCAL_NAME,
        topology.SOURCES_SECRET_ENV: topology.SOURCES_SECRET_LOCAL_NAME,
    }
    with (
        pytest.MonkeyPatch.context() as mp,
        mock_aws(),
        FakeTencentAds() as tencent,
        FakeOceanEngine() as ocean,
    ):
        for k, v in env.items():
            mp.setenv(k, v)
        mp.setattr(SecretsManagerSources, "TTL_S", 0.0)  # each request reads the accounts as the test leaves them
        get_settings.cache_clear()
        from functions.audience_api import handler

        handler.dependencies.cache_clear()
        db = boto3.client("dynamodb")
        from cdp_local.runtime.core import create_table

        create_table(db, topology.PROFILES_TABLE)
        boto3.client("s3").create_bucket(Bucket=topology.DATA_BUCKET_LOCAL_NAME)
        writer = ["audiences:read", "audiences:write"]
        keys = {
            ADMIN: {"client": "marketing", "scopes": writer},
            BRAND_KEY: {"client": "brand-marketing", "scopes": writer, "scope": {"brand_id": BRAND}},
            OUTLET_KEY: {"client": "outlet-marketing", "scopes": writer, "scope": {"brand_id": "demo-outlet"}},
            STORE_KEY: {"client": "till", "scopes": writer, "scope": {"brand_id": BRAND, "store_id": "sh01"}},
            READER: {"client": "analyst", "scopes": ["audiences:read"]},
        }
        secrets = boto3.client("secretsmanager")
        secrets.create_secret(
            Name=topology.API_KEYS_SECRET_LOCAL_NAME, SecretString=json.dumps({"keys": keys, "hmac": {}})
        )
        accounts = {BRAND: {"tencent_ads": tencent.account(), "ocean_engine": ocean.account()}}
        secrets.create_secret(
            Name=topology.SOURCES_SECRET_LOCAL_NAME, SecretString=json.dumps({"ad_platforms": accounts})
        )
        _seed(db)
        yield {"handler": handler, "tencent": tencent, "ocean": ocean}
        handler.dependencies.cache_clear()
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


@pytest.fixture(scope="module")
def exported(aws: dict[str, Any]) -> dict[str, Any]:
    definition = {
        "id": "activationville",
        "name": "Activationville",
        "kind": "static",
        "include": {"attr": "city", "eq": "Activationville"},
    }
    assert call(aws, "POST", "/v1/audiences", definition)[0] == 201
    status, manifest = call(aws, "POST", "/v1/audiences/activationville/export", {"segments": 1})
    assert status == 201 and manifest["count"] == N
    return manifest


def _body(platform: str = "tencent_ads", **fields: Any) -> dict[str, Any]:
    return {"brand_id": BRAND, "platform": platform, "consent_channel": "sms", **fields}


def test_an_activation_uploads_the_brands_consenting_members_hashed_to_each_platform(
    aws: dict[str, Any], exported: dict[str, Any]
) -> None:
    consenting = [i for i in range(N - 1) if i % 2 == 0]  # 0, 2, ..., 10 (act-p11 is demo-outlet's)
    # When the snapshot is activated to Tencent Ads with the brand's own key, then to Ocean Engine
    status, tencent = call(aws, "POST", "/v1/audiences/activationville/activations", _body(), key=BRAND_KEY)
    assert status == 201, tencent
    status, ocean = call(aws, "POST", "/v1/audiences/activationville/activations", _body("ocean_engine"))
    assert status == 201, ocean
    # Then both are complete with the counts per reason
    for done in (tencent, ocean):
        assert done["status"] == "complete" and done["snapshot_id"] == exported["snapshot_id"]
        assert {k: v for k, v in done["counts"].items() if v} == {
            "members": 12,
            "uploaded": 6,
            "identifiers": 6,
            "no_consent": 5,
            "other_brand": 1,
        }
    # And each platform received exactly the consenting persons' hashes, MD5 at Tencent, SHA-256 at Ocean Engine
    assert aws["tencent"].audience_ids(tencent["platform_audience_id"]) == {phone_md5(_phone(i)) for i in consenting}
    held = aws["ocean"].data_source_ids(ocean["platform_audience_id"])
    assert {i.id for i in held} == {phone_sha256(_phone(i)) for i in consenting}
    # And both are listed, newest first, with the platform's ids
    status, listed = call(aws, "GET", "/v1/audiences/activationville/activations", key=READER)
    assert status == 200
    assert [a["activation_id"] for a in listed["activations"][:2]] == [ocean["activation_id"], tencent["activation_id"]]
    # And another brand's key sees none of them
    status, theirs = call(aws, "GET", "/v1/audiences/activationville/activations", key=OUTLET_KEY)
    assert status == 200 and theirs["activations"] == []


def test_keys_without_the_brand_or_the_scope_are_refused(aws: dict[str, Any], exported: dict[str, Any]) -> None:
    path = "/v1/audiences/activationville/activations"
    for key in (OUTLET_KEY, STORE_KEY, READER):
        status, body = call(aws, "POST", path, _body(), key=key)
        assert status == 403, (key, body)
    assert call(aws, "POST", path, _body(), key=None)[0] == 401
    assert call(aws, "POST", path, _body(), key="no-such-key")[0] == 401


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/v1/audiences/no_such_audience/activations", _body(), 404, None),
        ("/v1/audiences/activationville/activations", _body("baidu"), 400, "platform"),
        ("/v1/audiences/activationville/activations", {"platform": "tencent_ads"}, 400, "brand_id"),
        ("/v1/audiences/activationville/activations", _body(brand_id="demo-outlet"), 400, "platform"),  # no account
        ("/v1/audiences/activationville/activations", _body(snapshot_id="x"), 400, "snapshot_id"),
        ("/v1/audiences/activationville/activations", _body(snapshot_id="20990101T000000Z-00000000"), 404, None),
        ("/v1/audiences/activationville/activations", _body(consent_channel="fax"), 400, "consent_channel"),
        ("/v1/audiences/activationville/activations", _body(extra=1), 400, "extra"),
        ("/v1/audiences/activationville/activations", b"[1, 2]", 400, "body"),
        ("/v1/audiences/activationville/activations", b"{nope", 400, "body"),
        ("/v1/audiences/Bad-Id/activations", _body(), 400, "audience_id"),
        ("/v1/audiences/activationville/activations/not-an-id/continue", None, 400, "activation_id"),
        ("/v1/audiences/activationville/activations/20260101T000000Z-00000000/continue", None, 404, None),
    ],
)
def test_bad_requests_get_a_4xx_naming_the_field(
    aws: dict[str, Any], exported: dict[str, Any], path: str, body: Any, status: int, field: str | None
) -> None:
    answered, answer = call(aws, "POST", path, body)
    assert answered == status, answer
    assert answer.get("field") == field


def test_a_platform_refusing_the_token_is_a_502_with_the_failed_record(
    aws: dict[str, Any], exported: dict[str, Any]
) -> None:
    # Given Tencent Ads refuses the brand's token (expired) for this one call
    aws["tencent"].refuse_next(11000, "Access token is expired.")
    status, body = call(aws, "POST", "/v1/audiences/activationville/activations", _body())
    # Then the answer is a 502 naming the platform's code, with the activation recorded as failed
    assert status == 502 and body["error"] == "ad_platform_refused" and body["platform_code"] == "credentials_rejected"
    record = body["activation"]
    assert record["status"] == "failed" and record["error_code"] == "credentials_rejected"
    # When it is continued (the token renewed) / Then the part runs again and completes; continued again, a 409
    path = f"/v1/audiences/activationville/activations/{record['activation_id']}/continue"
    status, done = call(aws, "POST", path)
    assert status == 200 and done["status"] == "complete" and done["counts"]["uploaded"] == 6
    status, again = call(aws, "POST", path)
    assert status == 409 and again["error"] == "activation_state"
    # And a transient refusal that outlasts the retries is a 503
    aws["tencent"].refuse_next(10000, times=3)
    status, busy = call(aws, "POST", "/v1/audiences/activationville/activations", _body())
    assert status == 503 and busy["error"] == "ad_platform_unavailable" and busy["activation"]["status"] == "failed"
