"""The official Segment Python SDK, pointed at `cdp serve`, sends identify and track calls; the person's profile has
them. Plus the hardening every connector shares: write-key auth, size limits, gzip, malformed bodies, dedupe."""

from __future__ import annotations

import base64
import gzip
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from segment.analytics import Client

from cdp_local.http_server import LocalApiServer
from cdp_local.runtime import LocalRuntime

SAMPLES = Path(__file__).resolve().parents[2] / "events" / "segment"


@pytest.fixture(scope="module")
def server(runtime: LocalRuntime) -> Iterator[LocalApiServer]:
    with LocalApiServer(runtime, port=0, drain="sync") as srv:
        yield srv


def _get(server: LocalApiServer, runtime: LocalRuntime, path: str) -> tuple[int, Any]:
    request = urllib.request.Request(server.url + path, headers={"x-api-key": runtime.admin_key})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the local server
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _post(server: LocalApiServer, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(server.url + path, data=body, method="POST", headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the local server
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


WRITE_KEY = "{write key}"  # replaced by the runtime's write key ($CDP_WRITE_KEY or the local default)


def _basic(key: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode(),
    }


def test_the_official_segment_sdk_builds_a_profile(server: LocalApiServer, runtime: LocalRuntime) -> None:
    # Given the Segment SDK configured with our URL and the local write key, unchanged otherwise
    client = Client(write_key=runtime.write_key, host=server.url, sync_mode=True, max_retries=0)
    # When the app identifies a user and tracks a page, an e-commerce order and a custom event
    client.identify("sdk-user-1", {"email": "Sdk.User@Example.cn", "phone": "13911110001", "name": "Sdk User"})
    client.page("sdk-user-1", "Cakes", properties={"url": "https://shop.example.cn/cakes"})
    client.track(
        "sdk-user-1",
        "Order Completed",
        {
            "order_id": "sdk-o-1",
            "total": 49.9,
            "currency": "CNY",
            "products": [{"sku": "CAKE-1", "price": 49.9, "quantity": 1, "category": "cake"}],
        },
    )
    client.track(anonymous_id="sdk-anon-1", event="Coupon Viewed", properties={"coupon": "SPRING"})
    client.alias("sdk-anon-1", "sdk-user-1")
    client.flush()
    # Then one person holds the user id, the e-mail, the phone and the anonymous id, with every event
    status, person = _get(server, runtime, "/v1/profiles/by-identifier/user_id/sdk-user-1?brand_id=demo-brand")
    assert status == 200, person
    keys = {i["key"] for i in person["identifiers"]}
    assert keys == {"user_id:sdk-user-1", "email:sdk.user@example.cn", "phone:+8613911110001", "device_id:sdk-anon-1"}
    assert person["traits"]["name"] == "Sdk User"
    activity = person["activity"]
    assert activity["order_count"] == 1 and activity["spend_minor"] == 4990 and activity["page_views"] == 1
    # the order also earned club points (the programme the platform keeps): its points_changed is the 6th event
    assert activity["custom_counts"] == {"Coupon Viewed": 1} and activity["event_count"] == 6
    status, timeline = _get(server, runtime, f"/v1/profiles/{person['person_id']}/timeline")
    assert status == 200 and len(timeline["entries"]) == 6


def test_samples_post_as_gzip_and_a_resend_is_accepted_once(server: LocalApiServer, runtime: LocalRuntime) -> None:
    body = gzip.compress((SAMPLES / "batch.json").read_bytes())
    headers = {**_basic(runtime.write_key), "content-encoding": "gzip"}
    status, result = _post(server, "/v1/batch", body, headers)
    assert status == 200 and result["accepted"] == 4 and result["success"] is True
    status, again = _post(server, "/v1/batch", body, headers)
    assert status == 200 and again["accepted"] == 0 and again["duplicates"] == 4
    status, person = _get(server, runtime, "/v1/profiles/by-identifier/user_id/u-100877?brand_id=demo-brand")
    assert status == 200 and person["activity"]["source_counts"] == {"app": 4}


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "field"),
    [
        ("/v1/track", b"{}", {"content-type": "application/json"}, 401, None),
        ("/v1/track", b"{}", _basic("not-a-key"), 401, None),
        ("/v1/batch", b"x" * 600_000, _basic(WRITE_KEY), 413, "body"),
        ("/v1/batch", b"{not json", _basic(WRITE_KEY), 400, "body"),
        ("/v1/batch", json.dumps({"batch": {}}).encode(), _basic(WRITE_KEY), 400, "batch"),
        (
            "/v1/batch",
            gzip.compress(b"{" + b" " * 2_000_000 + b"}"),
            {**_basic(WRITE_KEY), "content-encoding": "gzip"},
            413,
            "body",
        ),
        (
            "/v1/identify",
            json.dumps({"messageId": "m-bad-1", "traits": {"email": "li.na@example.cn"}}).encode(),
            _basic(WRITE_KEY),
            400,
            "userId",
        ),
    ],
    ids=["no-key", "bad-key", "oversize", "malformed", "batch-not-list", "gzip-bomb", "no-user-or-anonymous-id"],
)
def test_bad_requests_get_a_clear_4xx(
    server: LocalApiServer,
    runtime: LocalRuntime,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    field: str | None,
) -> None:
    if headers.get("authorization") == _basic(WRITE_KEY)["authorization"]:
        headers = {**headers, **_basic(runtime.write_key)}
    got, answer = _post(server, path, body, headers)
    assert got == status, answer
    if field == "userId":  # not a valid Segment call: the call is named with its field
        assert answer["success"] is False and answer["rejected"][0]["errors"][0]["field"] == "userId"
        return
    assert answer["code"] and answer["message"]  # the shape Segment SDKs read
    if field:
        assert answer["field"] == field


def test_the_sdk_delivers_every_call_the_spec_allows(server: LocalApiServer, runtime: LocalRuntime) -> None:
    # Given the official SDK in sync mode, which raises on any answer but 200 (and the call is then lost)
    client = Client(write_key=runtime.write_key, host=server.url, sync_mode=True, max_retries=0)
    # When it sends calls the spec allows but our typed mapping cannot fill, and calls with few fields
    client.identify(20260001)  # a numeric user id and no traits
    client.identify("sdk-spec-1", {"email": "not an address", "birthday": "spring"})
    client.track("sdk-spec-1", "Order Completed", {"order_id": "sdk-spec-o-1", "total": 10, "currency": "CNY"})
    client.track("sdk-spec-1", "Product Added", {"sku": "CAKE-1", "quantity": 1})  # no price
    client.track("sdk-spec-1", "Order Refunded", {"order_id": "sdk-spec-o-1"})  # no amount
    client.track("sdk-spec-1", "Product Reviewed", {"product_id": "CAKE-1", "review_body": "nice"})  # no rating
    client.track(
        "sdk-spec-1",
        "Order Completed",
        {"order_id": "o-2", "total": 5, "products": [{"sku": "S", "price": 5, "quantity": -1}]},
    )
    client.page("sdk-spec-1")  # no name, no url
    client.screen(anonymous_id="sdk-spec-anon")  # no name
    client.group("sdk-spec-1", "group-7", {"plan": "gold"})
    client.flush()
    # Then every call was delivered (no exception) and the person has each as an event
    status, person = _get(server, runtime, "/v1/profiles/by-identifier/user_id/sdk-spec-1?brand_id=demo-brand")
    assert status == 200, person
    assert person["activity"]["custom_counts"] == {
        "Order Completed": 2,
        "Product Added": 1,
        "Order Refunded": 1,
        "Product Reviewed": 1,
        "Loaded a Page": 1,
        "group": 1,
    }
    status, numeric = _get(server, runtime, "/v1/profiles/by-identifier/user_id/20260001?brand_id=demo-brand")
    assert status == 200, numeric


def test_calls_kept_as_custom_are_counted_in_the_answer(server: LocalApiServer, runtime: LocalRuntime) -> None:
    # Given a batch of a typed order, an order without products and a custom call
    batch = [
        {"type": "track", "event": "Order Completed", "userId": "sdk-spec-2", "messageId": "spec-2-a",
         "properties": {"order_id": "spec-2-o", "total": 3, "products": [{"sku": "S", "price": 3}]}},
        {"type": "track", "event": "Order Completed", "userId": "sdk-spec-2", "messageId": "spec-2-b",
         "properties": {"order_id": "spec-2-p", "total": 3}},
        {"type": "track", "event": "Coupon Viewed", "userId": "sdk-spec-2", "messageId": "spec-2-c"},
    ]  # fmt: skip
    # When it is posted
    status, result = _post(server, "/v1/batch", json.dumps({"batch": batch}).encode(), _basic(runtime.write_key))
    # Then all three are accepted and the one that could not be typed is counted
    assert status == 200, result
    assert (result["accepted"], result["kept_as_custom"], result["rejected"]) == (3, 1, [])
