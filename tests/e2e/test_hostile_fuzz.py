"""Hostile inputs generated on every inbound route: a valid, correctly authenticated sample body of each route with
one value anywhere in it replaced by something an attacker or a broken client sends (deep nesting, numbers past
what DynamoDB holds, NaN, unpaired surrogates, huge strings, timestamps without a UTC instant, spreadsheet
formulas, wrong types).

The property: every answer is a 4xx or a 2xx, never a 5xx; and whatever was accepted with a 2xx is then processed
with nothing dead-lettered (accepted means stored). `CDP_PROPERTY_SCALE=N` multiplies the examples."""

from __future__ import annotations

import base64
import json
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.ingest.security import hmac_base64, sign_cdp
from cdp_local.runtime import LocalRuntime

EVENTS = Path(__file__).resolve().parents[2] / "events"
SCALE = int(os.environ.get("CDP_PROPERTY_SCALE", "1"))
ID_KEYS = {
    *("event_id", "messageId", "receipt_no", "click_id", "lead_id", "id", "order_id", "biz_id", "message_id"),
    "MsgID",  # a WeChat push's message id
}
CUSTOMER_KEYS = {
    "value",  # a canonical identifier's value
    *("phone", "phone_number", "mobile", "email", "card_no", "member_card", "openid", "unionid", "device_id"),
    *("userId", "anonymousId", "click_id"),
    "FromUserName",  # a WeChat push's OpenID
}
PHONE = re.compile(r"[+\d][\d\s-]{7,}")


@dataclass(frozen=True)
class Route:
    path: str
    sample: Any
    headers: Callable[[LocalRuntime, bytes], dict[str, str]]
    query: Callable[[], str] | None = None  # credentials in the query string, fresh for each request


def _wechat_push_query(token: str) -> Callable[[], str]:
    """WeChat's signed query (sha1 of token, timestamp, nonce): a new nonce each time, as each push has."""

    def query() -> str:
        from urllib.parse import urlencode

        from cdp.connectors.wechat import oa_signature

        timestamp, nonce = str(int(time.time())), uuid.uuid4().hex
        signed = {"signature": oa_signature(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
        return f"?{urlencode(signed)}"

    return query


def _api_key(runtime: LocalRuntime, _body: bytes) -> dict[str, str]:
    return {"content-type": "application/json", "x-api-key": runtime.api_key}


def _write_key(runtime: LocalRuntime, _body: bytes) -> dict[str, str]:
    auth = base64.b64encode(f"{runtime.write_key}:".encode()).decode()
    return {"content-type": "application/json", "authorization": f"Basic {auth}"}


def _signed(secret: str) -> Callable[[LocalRuntime, bytes], dict[str, str]]:
    def headers(_runtime: LocalRuntime, body: bytes) -> dict[str, str]:
        signature = sign_cdp(secret, body, int(time.time()))
        return {"content-type": "application/json", "x-cdp-signature": signature}

    return headers


def _shopify(_runtime: LocalRuntime, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-shopify-topic": "orders/create",
        "x-shopify-hmac-sha256": hmac_base64("local-shopify-secret", body),
        "x-shopify-shop-domain": "demo-brand.myshopify.com",
        "x-shopify-webhook-id": f"wh-{uuid.uuid4().hex}",
    }


def _admin_key(runtime: LocalRuntime, _body: bytes) -> dict[str, str]:
    return {"content-type": "application/json", "x-api-key": runtime.admin_key}


def _load(name: str) -> Any:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def _canonical() -> Any:
    events = [_load(f"canonical/{n}.v1.json") for n in ("identify", "order_placed", "points_changed")]
    return {"batch": [{**e, "brand_id": "demo-brand", "store_id": "sh01"} for e in events]}


ROUTES = [
    Route("/v1/events", _canonical(), _api_key),
    Route("/v1/batch", _load("segment/batch.json"), _write_key),
    Route("/v1/track", _load("segment/track_order_completed.json"), _write_key),
    Route("/v1/identify", _load("segment/identify.json"), _write_key),
    Route("/v1/webhooks/pos/demo-pos", _load("pos/sale.json"), _signed("local-pos-secret")),
    Route("/v1/webhooks/ads/oceanengine", _load("ads/lead.json"), _signed("local-oceanengine-secret")),
    Route("/v1/feedback/sms/aliyun", _load("feedback/sms_receipts.json"), _signed("local-sms-secret")),
    Route("/v1/feedback/push/jpush", _load("feedback/push_opens.json"), _signed("local-push-secret")),
    Route(
        "/v1/wechat/wx-local-mp/events", _load("wechat/miniprogram_events.json"), _signed("local-mini-program-secret")
    ),
    Route("/v1/webhooks/shopify/demo-brand.myshopify.com", _load("shopify/orders_create.json"), _shopify),
    *(
        Route(  # the mini-program's message push, JSON format (its token is LOCAL_SOURCES')
            "/v1/wechat/wx-local-mp",
            _load(f"wechat/{name}.json"),
            lambda _runtime, _body: {"content-type": "application/json"},
            _wechat_push_query("local-mini-program-token"),
        )
        for name in ("subscribe_msg_sent", "subscribe_msg_popup")
    ),
    Route("/v1/signals?brand_id=demo-brand", _load("signals/weather.json"), _admin_key),
    Route("/v1/signals?brand_id=demo-brand", _load("signals/location.json"), _admin_key),
    Route(
        "/v1/loyalty/club/burn", {"brand_id": "demo-brand", "person_id": "p1", "points": 5, "op_id": "f1"}, _admin_key
    ),
    Route(
        "/v1/loyalty/club/convert",
        {"brand_id": "demo-brand", "person_id": "p1", "points": 10, "op_id": "f2", "to_program": "club"},
        _admin_key,
    ),
    Route("/v1/inbox/tokens", {"brand_id": "demo-brand", "person_id": "p1", "valid_hours": 24}, _admin_key),
    Route(
        "/v1/audiences/estimate",
        {
            "definition": {
                "id": "fuzz_audience",
                "name": "fuzz",
                "kind": "static",
                "include": {"tag": "lifecycle", "eq": "mature"},
            },
            "portrait": ["lifecycle"],
            "preview": 2,
        },
        _admin_key,
    ),
    Route(
        "/v1/audiences/fuzz_audience/activations",
        {"brand_id": "demo-brand", "platform": "tencent_ads", "consent_channel": "sms", "in_parts": False},
        _admin_key,
    ),
    Route(
        "/v1/inbox/tokens",
        {"brand_id": "demo-brand", "identifier": {"type": "phone", "value": "13766990199", "scope": None}},
        _admin_key,
    ),
    Route("/v1/models/response/rollback", {"version": "20261206T030000Z-1a2b3c4d", "force": False}, _admin_key),
    Route(
        "/v1/models/response/score",
        {"identifier": {"type": "phone", "value": "13766990199", "scope": None}, "brand_id": "demo-brand"},
        _admin_key,
    ),
    Route(
        "/v1/admin/api-keys",
        {"client": "fuzz-client", "scopes": ["events:write"], "scope": {"brand_id": "demo-brand", "store_id": "sh01"}},
        _admin_key,
    ),
    Route(
        "/v1/admin/console-users",
        {
            "username": "fuzz-user",
            "name": "Fuzz",
            "role": "analyst",
            "scopes": ["campaigns:read"],
            "scope": {"brand_id": "demo-brand"},
            "locale": "zh",
            "password": "fuzz console password",
        },
        _admin_key,
    ),
]

HOSTILE_VALUES = st.one_of(
    st.sampled_from(
        [
            10**40,
            -(10**40),
            10**17,
            1e300,
            1e-300,
            "\ud800",
            '=HYPERLINK("http://x")',
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "1969-01-01T00:00:00Z",
            "x" * 140_000,
            "",
            None,
            True,
            [],
            {},
            -1,
        ]
    ),
    st.integers(min_value=2, max_value=60).map(lambda n: json.loads("[" * n + "]" * n)),
    st.text(max_size=40),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
)
RAW_CONSTANTS = ("NaN", "Infinity", "-Infinity")


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path] if path else []
    if isinstance(value, dict):
        for key, child in value.items():
            out.extend(_paths(child, (*path, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out.extend(_paths(child, (*path, index)))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


def _fresh_ids(value: Any, salt: int | None = None) -> Any:
    """Each example gets new event ids (dedupe must not hide what is stored) and new customers: the samples' own
    persons belong to the other e2e tests, which count their orders."""
    salt = uuid.uuid4().int if salt is None else salt
    if isinstance(value, dict):
        return {k: _fresh_value(k, v, salt) for k, v in value.items()}
    if isinstance(value, list):
        return [_fresh_ids(v, salt) for v in value]
    return value


def _fresh_value(key: str, value: Any, salt: int) -> Any:
    if not isinstance(value, str):
        return _fresh_ids(value, salt)
    if key in ID_KEYS:
        return f"{value}-{salt % 10**8:08d}"
    if key in CUSTOMER_KEYS:
        if PHONE.fullmatch(value):
            return f"139{salt % 10**8:08d}"
        if "@" in value:
            return f"fz{salt % 10**8:08d}@example.cn"
        return f"{value}-fz{salt % 10**8:08d}"
    return value


@st.composite
def hostile_request(draw: st.DrawFn) -> tuple[Route, bytes]:
    route = draw(st.sampled_from(ROUTES))
    sample = _fresh_ids(route.sample)
    path = draw(st.sampled_from(_paths(sample)))
    if draw(st.booleans()) and draw(st.integers(0, 5)) == 0:
        marker = "__hostile_constant__"
        body = json.dumps(_replace(sample, path, marker), ensure_ascii=False)
        body = body.replace(f'"{marker}"', draw(st.sampled_from(RAW_CONSTANTS)))
        return route, body.encode("utf-8", "surrogatepass")
    mutated = _replace(sample, path, draw(HOSTILE_VALUES))
    text = json.dumps(mutated, ensure_ascii=draw(st.booleans()))
    # json.loads also reads UTF-16/32: bodies in those encodings must be refused, not parsed around the checks
    encoding = draw(st.sampled_from(["utf-8"] * 8 + ["utf-16-le", "utf-16", "utf-32"]))
    return route, text.encode(encoding, "surrogatepass")


@settings(
    max_examples=60 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=os.environ.get("CDP_FUZZ_RANDOM") is None,  # fixed examples by default: a red CI run reproduces
)
@given(request=hostile_request())
def test_every_route_answers_4xx_or_2xx_and_what_it_accepts_is_stored(
    runtime: LocalRuntime, request: tuple[Route, bytes]
) -> None:
    route, body = request
    # When the hostile body is posted with valid credentials for its route
    path = route.path + (route.query() if route.query else "")
    status, _, payload = runtime.http("POST", path, body, route.headers(runtime, body))
    # Then the answer is never a 5xx, and what a 2xx accepted is processed with nothing dead-lettered
    assert status < 500, (route.path, status, payload[:500])
    report = runtime.drain()
    assert report.dead_lettered == 0, (route.path, body[:300])
    assert report.failed == 0, (route.path, body[:300])


# ---- claim links: a marketer's body, then a person's link, both hostile --------------------------------------------

CLAIM_OFFER = {
    "brand_id": "demo-brand",
    "offer_id": "fuzz-claim-coupon",
    "name": "Fuzz claim",
    "currency": "CNY",
    "coupon": {"amount_off_minor": 1000},
    "validity": {"days": 7},
    "per_person_limit": 1000,
}
TOKEN_CHARS = st.sampled_from([*"AZaz09-_.%/~+=!$&'()*,;:@ ", "\u00e9", "\u9886", "\U0001f9e7", "\x00"])


@pytest.fixture(scope="module")
def claimable(runtime: LocalRuntime) -> str:
    """A coupon and a person it can be claimed by: the person's id."""
    headers = {"content-type": "application/json", "x-api-key": runtime.admin_key}
    status = runtime.http("POST", "/v1/offers", json.dumps(CLAIM_OFFER).encode(), headers).status
    assert status in (201, 409)
    identify = {
        "event_id": "fuzz-claim-person",
        "event_type": "identify",
        "source": "app",
        "brand_id": "demo-brand",
        "occurred_at": "2026-11-01T10:00:00+08:00",
        "identifiers": [{"type": "phone", "value": "13766990199"}],
    }
    sent = {"content-type": "application/json", "x-api-key": runtime.api_key}
    assert runtime.http("POST", "/v1/events", json.dumps(identify).encode(), sent).status == 202
    runtime.drain()
    found = runtime.http("GET", "/v1/profiles/by-identifier/phone/13766990199?brand_id=demo-brand", b"", headers)
    return str(json.loads(found.body)["person_id"])


@settings(
    max_examples=40 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=os.environ.get("CDP_FUZZ_RANDOM") is None,
)
@given(data=st.data())
def test_claim_links_and_their_pages_answer_4xx_or_2xx_to_hostile_input(
    runtime: LocalRuntime, claimable: str, data: st.DataObject
) -> None:
    # Given a valid claim-link request, as it is or with one value replaced by something hostile
    sample = {"person_id": claimable, "ref": f"fuzz-{uuid.uuid4().hex[:8]}", "valid_days": 7}
    mutated = sample
    if data.draw(st.booleans()):
        mutated = _replace(sample, data.draw(st.sampled_from(_paths(sample))), data.draw(HOSTILE_VALUES))
    body = json.dumps(mutated, ensure_ascii=data.draw(st.booleans())).encode("utf-8", "surrogatepass")
    path = f"/v1/offers/{CLAIM_OFFER['offer_id']}/claim-links?brand_id=demo-brand"
    status, _, payload = runtime.http("POST", path, body, _admin_key(runtime, body))
    # Then never a 5xx
    assert status < 500, (status, body[:300], payload[:300])
    if status != 201:
        return
    # And when the minted link has one character changed, anywhere, its page is a 4xx for GET and POST
    token = json.loads(payload)["token"]
    at = data.draw(st.integers(0, len(token) - 1))
    char = data.draw(TOKEN_CHARS.filter(lambda c: c != token[at]))
    changed = quote(token[:at] + char + token[at + 1 :], safe="")
    for method in ("GET", "POST"):
        got, _, page = runtime.http(method, f"/v1/claim/{changed}", b"", {})
        assert 400 <= got < 500, (method, changed, got, page[:300])


# ---- the in-app inbox: a person's token, then the app's calls with it changed ---------------------------------------


@settings(
    max_examples=30 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=os.environ.get("CDP_FUZZ_RANDOM") is None,
)
@given(data=st.data())
def test_inbox_tokens_and_the_inbox_answer_4xx_or_2xx_to_hostile_input(
    runtime: LocalRuntime, claimable: str, data: st.DataObject
) -> None:
    # Given a valid token request for a known person, as it is or with one value replaced by something hostile
    sample = {"brand_id": "demo-brand", "person_id": claimable, "valid_hours": 1}
    mutated = sample
    if data.draw(st.booleans()):
        mutated = _replace(sample, data.draw(st.sampled_from(_paths(sample))), data.draw(HOSTILE_VALUES))
    body = json.dumps(mutated, ensure_ascii=data.draw(st.booleans())).encode("utf-8", "surrogatepass")
    status, _, payload = runtime.http("POST", "/v1/inbox/tokens", body, _admin_key(runtime, body))
    # Then never a 5xx
    assert status < 500, (status, body[:300], payload[:300])
    if status != 201:
        return
    token = json.loads(payload)["token"]
    assert runtime.http("GET", "/v1/inbox", b"", {"authorization": f"Bearer {token}"}).status == 200
    # And when the token has one character changed, anywhere, every inbox route answers 401
    at = data.draw(st.integers(0, len(token) - 1))
    char = data.draw(TOKEN_CHARS.filter(lambda c: c != token[at]))
    changed = token[:at] + char + token[at + 1 :]
    message_id = quote(data.draw(st.text(min_size=1, max_size=60)), safe="")
    for method, path in (
        ("GET", "/v1/inbox"),
        ("POST", f"/v1/inbox/{message_id}/read"),
        ("POST", f"/v1/inbox/{message_id}/dismiss"),
    ):
        got, _, answer = runtime.http(method, path, b"", {"authorization": f"Bearer {changed}"})
        assert 400 <= got < 500, (method, path, changed, got, answer[:300])
