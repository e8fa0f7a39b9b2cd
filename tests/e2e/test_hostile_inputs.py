"""What an outside trial did to `cdp serve`, replayed: tenant isolation, inputs that crashed (5xx) and inputs that
were answered 2xx and then lost. Each test is one finding of the trial; the keys come from tests/e2e/api_keys.json
(loaded the way `cdp serve` loads $CDP_API_KEYS_FILE)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cdp import topology
from cdp.ingest.security import sign_cdp
from cdp.shared.time import iso, utc_now
from cdp_local.runtime import LocalRuntime
from tests.e2e.conftest import put_on_bus

OUTLET_WRITER = "e2e-outlet-writer-key"  # events:write, brand demo-outlet
SH01_WRITER = "e2e-sh01-writer-key"  # events:write, brand demo-brand, store sh01
OUTLET_OPERATOR = "e2e-outlet-operator-key"  # operations:replay + profiles:read, brand demo-outlet
REPO = Path(__file__).resolve().parents[2]
POS_SECRET = "local-pos-secret"


def _uid() -> str:
    return uuid.uuid4().hex[:12]


def _identify(brand: str, phone: str, **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"hostile-{_uid()}",
        "event_type": "identify",
        "source": "app",
        "brand_id": brand,
        "occurred_at": iso(utc_now()),
        "identifiers": [{"type": "phone", "value": phone}],
        "properties": {"name": "Wang Fang", "member_level": "gold"},
    }
    for key, value in extra.items():
        event[key] = value
    return event


def _post(
    runtime: LocalRuntime, path: str, body: bytes, key: str | None, headers: Mapping[str, str] | None = None
) -> tuple[int, Any]:
    sent = {"content-type": "application/json", **({"x-api-key": key} if key else {}), **(headers or {})}
    status, _, payload = runtime.http("POST", path, body, sent)
    try:
        return status, json.loads(payload or b"null")
    except ValueError:
        return status, payload


def _events(runtime: LocalRuntime, body: Any, key: str | None = None) -> tuple[int, Any]:
    return _post(runtime, "/v1/events", json.dumps(body).encode(), key or runtime.api_key)


def _lookup(runtime: LocalRuntime, brand: str, phone: str) -> int:
    status, _, _ = runtime.http(
        "GET", f"/v1/profiles/by-identifier/phone/{phone}?brand_id={brand}", b"", {"x-api-key": runtime.admin_key}
    )
    return status


def _raw_objects(runtime: LocalRuntime) -> int:
    s3 = runtime.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=topology.DATA_BUCKET_LOCAL_NAME, Prefix=topology.RAW_PREFIX
    )
    return sum(len(page.get("Contents", [])) for page in pages)


def _phone() -> str:
    return f"139{uuid.uuid4().int % 10**8:08d}"


# ---- 1. tenant isolation ------------------------------------------------------------------------------------


def test_a_brand_scoped_key_cannot_write_another_brands_customer(runtime: LocalRuntime) -> None:
    # Given a key scoped to brand demo-outlet with events:write, and a customer phone no brand has seen
    phone = _phone()
    # When it posts an identify event whose body names brand demo-brand
    status, body = _events(runtime, _identify("demo-brand", phone), OUTLET_WRITER)
    runtime.drain()
    # Then the event is refused with the field and the reason, and demo-brand has no such customer
    assert status == 400
    assert body["rejected"][0]["errors"] == [
        {"field": "brand_id", "message": "brand demo-brand is outside the writer's scope brand:demo-outlet"}
    ]
    assert _lookup(runtime, "demo-brand", phone) == 404
    # And the same key still writes its own brand
    status, body = _events(runtime, _identify("demo-outlet", phone), OUTLET_WRITER)
    runtime.drain()
    assert (status, body["accepted"]) == (202, 1)
    assert _lookup(runtime, "demo-outlet", phone) == 200


def test_a_store_scoped_key_writes_only_for_its_store(runtime: LocalRuntime) -> None:
    # Given a till key of store sh01
    own, other, bare = (_identify("demo-brand", _phone(), store_id=s) for s in ("sh01", "bj02", None))
    bare.pop("store_id")
    # When it posts one event for its store, one for another store and one naming no store
    status, body = _events(runtime, {"batch": [own, other, bare]}, SH01_WRITER)
    runtime.drain()
    # Then only its own store's event is accepted; the others name store_id
    assert (status, body["accepted"]) == (207, 1)
    assert [(r["index"], r["errors"][0]["field"]) for r in body["rejected"]] == [
        (1, "batch.1.store_id"),
        (2, "batch.2.store_id"),
    ]


def test_no_ingest_key_may_write_the_platforms_own_source(runtime: LocalRuntime) -> None:
    # Given events claiming source cdp (which wins the source_priority trait rule and skips the edit audit)
    phone = _phone()
    event = _identify("demo-brand", phone, source="cdp")
    # When the ingest key and even the administrator key post them
    for key in (runtime.api_key, runtime.admin_key):
        status, body = _events(runtime, event, key)
        # Then they are refused: only the platform's own paths (profile edits, sends) emit source cdp
        assert status == 400
        assert body["rejected"][0]["errors"][0]["field"] == "source"
    runtime.drain()
    assert _lookup(runtime, "demo-brand", phone) == 404


def _park(runtime: LocalRuntime, brand: str) -> str:
    """A bus event no consumer can parse (no identifiers): identity_merge parks it at once, with its brand."""
    event_id = f"dlq-{brand}-{_uid()}"
    bad = {"event_id": event_id, "event_type": "page_view", "source": "web", "brand_id": brand}
    put_on_bus(runtime, bad, correlation_id="hostile")
    runtime.drain()
    return event_id


def _dead_letter_brands(runtime: LocalRuntime, key: str) -> list[str | None]:
    status, _, payload = runtime.http("GET", "/v1/admin/dead-letters?queue=identity-merge", b"", {"x-api-key": key})
    assert status == 200, payload
    return sorted((letter["brand_id"] or "") for letter in json.loads(payload)["listed"])


def test_a_brand_scoped_operator_sees_and_redrives_only_its_brands_dead_letters(runtime: LocalRuntime) -> None:
    dlq = runtime.queue_urls[topology.dlq_name(topology.IDENTITY_QUEUE)]
    sqs = runtime.client("sqs")
    while messages := sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", []):
        for m in messages:
            sqs.delete_message(QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"])
    # Given one dead letter of each brand in the shared identity-merge DLQ
    _park(runtime, "demo-brand")
    _park(runtime, "demo-outlet")
    # When the outlet's operator lists them, and the administrator does
    # Then the operator sees its brand's letter only; the administrator sees both
    assert _dead_letter_brands(runtime, OUTLET_OPERATOR) == ["demo-outlet"]
    assert _dead_letter_brands(runtime, runtime.admin_key) == ["demo-brand", "demo-outlet"]
    # And a redrive by the operator moves its brand's letter only (it fails again and is parked again)
    status, _, payload = runtime.http(
        "POST",
        "/v1/admin/dead-letters/redrive",
        json.dumps({"queue": "identity-merge"}).encode(),
        {"x-api-key": OUTLET_OPERATOR, "content-type": "application/json"},
    )
    assert (status, json.loads(payload)["redriven"]) == (200, 1)
    runtime.drain()
    assert _dead_letter_brands(runtime, runtime.admin_key) == ["demo-brand", "demo-outlet"]


def test_a_brand_scoped_operator_replays_only_its_brands_archive(runtime: LocalRuntime) -> None:
    # Given a Segment request of demo-brand (its write key is bound to it) and a canonical batch of both brands
    start = utc_now()  # no earlier: the tests before this one wrote demo-outlet events a moment ago
    auth = base64.b64encode(f"{runtime.write_key}:".encode()).decode()
    call = {"type": "identify", "userId": f"u-{_uid()}", "messageId": _uid(), "traits": {"name": "Li"}}
    status, _ = _post(runtime, "/v1/identify", json.dumps(call).encode(), None, {"authorization": f"Basic {auth}"})
    assert status == 200
    both = [_identify("demo-brand", _phone()), _identify("demo-outlet", _phone())]
    assert _events(runtime, {"batch": both}, runtime.admin_key)[0] == 202
    theirs = [_identify("demo-brand", _phone())]
    assert _events(runtime, {"batch": theirs}, runtime.admin_key)[0] == 202
    runtime.drain()
    end = utc_now() + timedelta(seconds=1)

    def replay(source: str) -> dict[str, Any]:
        request = {"source": source, "start": iso(start), "end": iso(end)}
        status, body = _post(runtime, "/v1/admin/replay", json.dumps(request).encode(), OUTLET_OPERATOR)
        assert status == 200, body
        return dict(body)

    # When the outlet's operator replays both sources over that range
    segment, canonical = replay("segment"), replay("events")
    # Then the other brand's Segment object is not even read; of the canonical batches only its brand's event is
    # republished, and the other brand's events are neither replayed nor counted (their volume is not its to see)
    assert (segment["objects"], segment["accepted"]) == (0, 0)
    assert canonical["failures"] == []
    assert (canonical["objects"], canonical["accepted"], canonical["rejected"]) == (1, 1, 0)


# ---- 2. inputs that gave 500 ---------------------------------------------------------------------------------

DEEP = b"[" * 5000 + b"]" * 5000
DEEP_OBJECT = b'{"a":' * 3000 + b"1" + b"}" * 3000


@pytest.mark.parametrize(
    "path",
    ["/v1/events", "/v1/batch", "/v1/track", "/v1/identify", "/v1/webhooks/pos/demo-pos", "/v1/feedback/ses"],
)
def test_deeply_nested_json_is_a_400_before_credentials_and_is_never_archived(runtime: LocalRuntime, path: str) -> None:
    before = _raw_objects(runtime)
    for body in (DEEP, DEEP_OBJECT):
        # When a body nests thousands of levels, with no credentials at all
        status, answer = _post(runtime, path, body, None)
        # Then it is a 400 naming the body (not a 500, not a 401: the depth is checked before any other work)
        assert status == 400, answer
        assert answer["field"] == "body" and "nests deeper" in answer["message"]
    # And nothing was archived (a later replay of the range cannot trip on it)
    assert _raw_objects(runtime) == before


@pytest.mark.parametrize(
    ("occurred_at", "field"),
    [
        ("0001-01-01T00:00:00+01:00", "occurred_at"),
        ("9999-12-31T23:59:59-01:00", "occurred_at"),
        ("1969-12-31T23:59:59Z", "occurred_at"),
    ],
)
def test_timestamps_without_a_storable_utc_instant_are_400_and_replay_survives_them(
    runtime: LocalRuntime, occurred_at: str, field: str
) -> None:
    start = utc_now() - timedelta(seconds=1)
    # When an event's offset takes it past year 1 or 9999 (or before the epoch)
    status, body = _events(runtime, _identify("demo-brand", _phone(), occurred_at=occurred_at))
    # Then it is refused with the field named
    assert status == 400
    assert body["rejected"][0]["errors"][0]["field"] == field
    # And a replay over the range that archived it answers (the event is refused again, nothing fails)
    request = {"source": "events", "start": iso(start), "end": iso(utc_now() + timedelta(seconds=1))}
    status, summary = _post(runtime, "/v1/admin/replay", json.dumps(request).encode(), runtime.admin_key)
    assert status == 200 and summary["failures"] == [] and summary["rejected"] >= 1


# ---- 3. accepted, then lost ------------------------------------------------------------------------------------


def _order(**properties: Any) -> dict[str, Any]:
    event = _identify("demo-brand", _phone())
    line = {"sku": "CAKE-1", "quantity": 1, "unit_price_minor": 100}
    event.update(
        event_type="order_placed",
        properties={
            "order_id": f"o-{_uid()}",
            "lines": [line],
            "total_minor": 100,
            "currency": "CNY",
            **properties,
        },
    )
    return event


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (_order(total_minor=10**40), "properties.total_minor"),
        (_order(lines=[{"sku": "X", "quantity": 1, "unit_price_minor": 10**16}], total_minor=1), "properties.lines"),
        (_order(tip=10**39), "properties.tip"),
        (_identify("demo-brand", "13900000000", properties={"program": "p" * 300_000}), "properties.program"),
        (_identify("demo-brand", "13900000000", context={"note": "x" * 200_000}), "context.note"),
        (_identify("demo-brand", "13900000000", properties={"bio": "x" * 140_000}), "body"),
        (_identify("demo-brand", "13900000000", properties={"name": "Li", "score": 1e200}), "properties.score"),
        (_identify("demo-brand", "13900000000", properties={"name": "Li\ud800"}), "properties.name"),
        (
            _identify(
                "demo-brand", "13900000000", properties={"family": [{"relation": "child", "birthday": "0001-01-01"}]}
            ),
            "properties.family.0.birthday",
        ),
    ],
)
def test_events_that_could_never_be_stored_are_refused_at_ingest_not_lost_later(
    runtime: LocalRuntime, event: dict[str, Any], field: str
) -> None:
    # When an event holds an amount past DynamoDB's 38 digits, text that cannot be stored, or is too big to publish
    body = json.dumps(event).encode()
    status, answer = _post(runtime, "/v1/events", body, runtime.api_key)
    report = runtime.drain()
    # Then it is a 400 naming the field (or the whole event), and nothing reaches a dead-letter queue
    assert status == 400, answer
    fields = [e["field"] for e in answer["rejected"][0]["errors"]]
    assert any(f.startswith(field) for f in fields), fields
    assert report.dead_lettered == 0


def test_nan_and_infinity_are_not_json(runtime: LocalRuntime) -> None:
    body = json.dumps(_identify("demo-brand", _phone(), properties={"x": 1})).replace('"x": 1', '"x": NaN')
    status, answer = _post(runtime, "/v1/events", body.encode(), runtime.api_key)
    assert status == 400 and answer["field"] == "body"


# ---- 7. sizes and content types ----------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_and_never_archived(runtime: LocalRuntime) -> None:
    before = _raw_objects(runtime)
    body = json.dumps({"batch": [_identify("demo-brand", _phone(), context={"pad": "x" * 2000})] * 600}).encode()
    assert len(body) > 1_100_000
    status, answer = _post(runtime, "/v1/events", body, runtime.api_key)
    assert status == 413 and answer["error"] == "payload_too_large"
    assert _raw_objects(runtime) == before


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/v1/events", "application/x-www-form-urlencoded"),
        ("/v1/events", "text/xml"),
        ("/v1/batch", "multipart/form-data; boundary=x"),
        ("/v1/webhooks/pos/demo-pos", "application/xml"),
        ("/v1/wechat/wx-local-oa", "application/json"),
    ],
)
def test_a_body_of_another_media_type_is_415(runtime: LocalRuntime, path: str, content_type: str) -> None:
    status, answer = _post(runtime, path, b'{"a": 1}', runtime.api_key, {"content-type": content_type})
    assert status == 415, answer
    assert answer["field"] == "content-type"


def test_a_signed_connector_body_with_a_charset_is_still_read(runtime: LocalRuntime) -> None:
    # Given a POS sale signed with the vendor's secret, sent as application/json; charset=utf-8
    sale = json.loads((REPO / "events/pos/sale.json").read_text())
    sale["receipt_no"] = f"R-{_uid()}"
    body = json.dumps(sale).encode()
    signature = sign_cdp(POS_SECRET, body, int(time.time()))
    headers = {"content-type": "application/json; charset=utf-8", "x-cdp-signature": signature}
    # When it is posted
    status, answer = _post(runtime, "/v1/webhooks/pos/demo-pos", body, None, headers)
    # Then it is accepted as before
    assert status == 202, answer
    assert answer["accepted"] >= 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", "/v1/profiles/p-unknown"),
        ("POST", "/v1/identity/merge"),
        ("POST", "/v1/identity/quarantine"),
        ("POST", "/v1/audiences"),
        ("POST", "/v1/audiences/validate"),
        ("POST", "/v1/audiences/estimate"),
        ("POST", "/v1/audiences/any_audience/activations"),
        ("POST", "/v1/admin/replay"),
        ("POST", "/v1/admin/dead-letters/redrive"),
        ("POST", "/v1/admin/migrations/person-layout"),
        ("POST", "/v1/admin/api-keys"),
        ("POST", "/v1/admin/console-users"),
        ("POST", "/v1/signals?brand_id=demo-brand"),
        ("POST", "/v1/campaigns"),
        ("POST", "/v1/campaigns/any_campaign/preview?brand_id=demo-brand"),
        ("POST", "/v1/campaigns/any_campaign/dry-run?brand_id=demo-brand"),
        ("POST", "/v1/offers/any-offer/claim-links?brand_id=demo-brand"),
        ("POST", "/v1/loyalty/club/burn"),
        ("POST", "/v1/loyalty/club/adjust"),
        ("POST", "/v1/loyalty/club/convert"),
        ("POST", "/v1/inbox/tokens"),
        ("POST", "/v1/models/any_model/rollback"),
        ("POST", "/v1/models/any_model/score"),
    ],
)
def test_deep_or_unstorable_json_on_the_operator_routes_is_a_4xx(runtime: LocalRuntime, method: str, path: str) -> None:
    # Given the administrator key (every scope), so the body is what is judged
    for body in (DEEP, DEEP_OBJECT, b'{"reason": NaN}', b'{"reason": "\\ud800"}', b'{"reason": 1' + b"0" * 5000 + b"}"):
        # When a hostile body is sent
        status, _, payload = runtime.http(
            method, path, body, {"x-api-key": runtime.admin_key, "content-type": "application/json"}
        )
        # Then it is refused with a 4xx that names the problem (validate answers 200 "not valid"), never a 5xx
        assert status < 500, (path, body[:40], payload[:300])
        assert status >= 400 or json.loads(payload)["valid"] is False, (path, body[:40], payload[:300])


# ---- found in review --------------------------------------------------------------------------------------------


def _utf16_sandwich(depth: int) -> bytes:
    """A body json.loads would read (it guesses UTF-16), where a character whose UTF-16 bytes hold a quote (丢 is
    22 4E) hides brackets from a byte-level scan."""
    nested = "[" * depth + '"s"' + "]" * depth
    text = '{"a":"丢","type":"track","event":"x","userId":"u","p":' + nested + ',"z":"丢"}'
    return text.encode("utf-16-le")


@pytest.mark.parametrize("path", ["/v1/track", "/v1/events", "/v1/webhooks/pos/demo-pos"])
def test_a_body_in_another_unicode_encoding_is_a_400_not_a_500(runtime: LocalRuntime, path: str) -> None:
    before = _raw_objects(runtime)
    for body in (_utf16_sandwich(5000), _utf16_sandwich(60), "{}".encode("utf-32")):
        status, answer = _post(runtime, path, body, None)
        assert status == 400, (path, answer)
        assert answer["field"] == "body"
    assert _raw_objects(runtime) == before


def test_one_brand_cannot_claim_another_brands_event_ids(runtime: LocalRuntime) -> None:
    # Given brand demo-outlet posts a POS event under an id demo-brand's tills will also use
    event_id = f"acme:sale:sh01:{_uid()}"
    outlet_phone, brand_phone = _phone(), _phone()
    first = _identify("demo-outlet", outlet_phone, event_id=event_id, source="pos")
    assert _events(runtime, first, OUTLET_WRITER)[1]["accepted"] == 1
    # When demo-brand posts its own event with that source and id
    status, body = _events(runtime, _identify("demo-brand", brand_phone, event_id=event_id, source="pos"))
    runtime.drain()
    # Then it is its own event (accepted, not a duplicate) and its customer exists
    assert (status, body["accepted"], body["duplicates"]) == (202, 1, 0)
    assert _lookup(runtime, "demo-brand", brand_phone) == 200


def test_a_wechat_push_with_a_time_past_the_platforms_range_is_refused_not_a_500(runtime: LocalRuntime) -> None:
    from urllib.parse import urlencode

    from cdp.connectors.wechat import oa_signature

    body = (REPO / "events/wechat/subscribe.xml").read_text()
    start, end = body.index("<CreateTime>") + len("<CreateTime>"), body.index("</CreateTime>")
    pushed = (body[:start] + "1000000000000000000" + body[end:]).encode()
    timestamp, nonce = str(int(time.time())), _uid()
    query = {"signature": oa_signature("local-wechat-token", timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
    status, _, payload = runtime.http(
        "POST", f"/v1/wechat/wx-local-oa?{urlencode(query)}", pushed, {"content-type": "text/xml"}
    )
    assert status < 500, payload


def test_a_key_whose_client_name_is_not_ascii_can_post(runtime: LocalRuntime) -> None:
    # Given a key named in Chinese (its name and scope are archived with every body, as S3 metadata, which is ASCII)
    status, body = _events(runtime, _identify("demo-brand", _phone()), "e2e-unicode-client-key")
    # Then its events are accepted (not a 503 from the archive)
    assert (status, body["accepted"]) == (202, 1)


# ---- the public claim page: its token is its only credential ------------------------------------------------------


def _signed_claim(body: dict[str, Any]) -> str:
    from cdp.connectors.redirect import sign_body
    from cdp.offers.claims import claim_key

    return sign_body(body, claim_key("local-redirect-secret"))


HOSTILE_TOKENS = [
    "x",
    "a.b",
    ".",
    "%00",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%E0%A4%A",  # a broken percent-escape
    "%F0%9F%A7%A7.%F0%9F%A7%A7",  # 🧧.🧧
    "<script>alert(1)</script>",
    "x" * 5000,
    "A" * 1400 + "." + "B" * 22,
    # genuine signatures over bodies that are not claims (they would need the key): still a 4xx page
    _signed_claim({"k": "claim", "b": "demo-brand", "o": "nope", "p": "p", "r": "r", "x": 4_000_000_000}),
    _signed_claim({"k": "claim", "b": "demo-brand", "o": "o" * 5000, "p": "p", "r": "r", "x": 4_000_000_000}),
    _signed_claim({"k": "claim", "b": {"$ne": 1}, "o": "o", "p": "p", "r": "r", "x": 4_000_000_000}),
    _signed_claim({"k": "claim", "b": "demo-brand", "o": "o", "p": "p", "r": "r", "x": -1}),
    _signed_claim({"k": "claim", "b": "demo-brand", "o": "o", "p": "p", "r": "r", "x": 10**30}),
    _signed_claim({"k": "claim", "b": "demo-brand", "o": "o", "p": "p", "r": "r", "x": 1e300}),
    _signed_claim({"k": "claim", "b": "ghost-brand", "o": "o", "p": "p", "r": "r", "x": 4_000_000_000}),
]


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("token", HOSTILE_TOKENS)
def test_hostile_claim_tokens_get_a_4xx_page_never_a_5xx_nor_an_issue(
    runtime: LocalRuntime, method: str, token: str
) -> None:
    # Given no key at all (the claim routes are public), a form body or a hostile one
    for body in (b"", b"x=1", DEEP, b"\xff\xfe"):
        status, headers, payload = runtime.http(
            method, f"/v1/claim/{token}", body, {"content-type": "application/x-www-form-urlencoded"}
        )
        # Then a 4xx (a page saying the link is not valid, expired or gone), never a 5xx, never a claim
        assert 400 <= status < 500, (token[:60], status, payload[:300])
        if headers.get("content-type", "").startswith("text/html"):
            assert b"<script>" not in payload


def test_the_claim_routes_take_no_key_and_the_other_offer_routes_still_need_one(runtime: LocalRuntime) -> None:
    assert {("GET", "/v1/claim/{token}"), ("POST", "/v1/claim/{token}")} <= topology.TOKEN_ROUTES
    for method, path in (("GET", "/v1/offers?brand_id=demo-brand"), ("POST", "/v1/offers/x/claim-links")):
        assert runtime.http(method, path, b"{}", {"content-type": "application/json"})[0] == 401
    # a claim page answers a bad token with its own 400 page, not a 401: no key was ever asked for
    status, headers, _ = runtime.http("GET", "/v1/claim/not-a-token", b"", {})
    assert status == 400 and headers["content-type"].startswith("text/html")


# ---- the in-app inbox: the person's token is the only credential of its routes --------------------------------------

INBOX_SECRET = "local-redirect-secret"  # the local sources' tracked-link secret: inbox-token keys derive from it


def _signed_inbox(body: dict[str, Any], brand: str = "demo-brand") -> str:
    """A body signed with the brand's genuine inbox-token key (only the platform could make it)."""
    from cdp.channels.inbox_tokens import brand_key
    from cdp.connectors.redirect import sign_body

    return sign_body(body, brand_key(INBOX_SECRET, brand))


HOSTILE_INBOX_TOKENS = [
    *HOSTILE_TOKENS[:10],
    "Bearer",
    "null",
    "\x00",
    "a" * 100_000,
    _signed_inbox({"k": "inbox", "b": "demo-brand", "p": "p", "x": -1}),
    _signed_inbox({"k": "inbox", "b": "demo-brand", "p": "p", "x": 10**30}),
    _signed_inbox({"k": "inbox", "b": "demo-brand", "p": "p", "x": 1e300}),
    _signed_inbox({"k": "inbox", "b": "demo-brand", "p": {"$ne": 1}, "x": 4_000_000_000}),
    _signed_inbox({"k": "inbox", "b": "demo-brand", "p": "p" * 5000, "x": 4_000_000_000}),
    _signed_inbox({"k": "claim", "b": "demo-brand", "p": "p", "x": 4_000_000_000}),
    _signed_inbox({"k": "inbox", "b": "demo-outlet", "p": "p", "x": 4_000_000_000}),  # signed with demo-brand's key
    _signed_claim({"k": "claim", "b": "demo-brand", "o": "o", "p": "p", "r": "r", "x": 4_000_000_000}),
]
INBOX_ROUTES = [("GET", "/v1/inbox"), ("POST", "/v1/inbox/any-message/read"), ("POST", "/v1/inbox/any-message/dismiss")]


@pytest.mark.parametrize("token", HOSTILE_INBOX_TOKENS)
def test_hostile_inbox_tokens_are_a_401_never_a_5xx(runtime: LocalRuntime, token: str) -> None:
    for method, path in INBOX_ROUTES:
        for authorization in (f"Bearer {token}", token, f"bearer  {token}"):
            # Given a hostile token (and a hostile body, which these routes never read)
            status, _, payload = runtime.http(method, path, DEEP, {"authorization": authorization})
            # Then a 401, never a 5xx, never a person's messages
            assert status == 401, (method, path, token[:60], status, payload[:300])


def test_a_genuinely_signed_token_of_a_person_nobody_knows_reads_nothing(runtime: LocalRuntime) -> None:
    from cdp.channels.inbox_tokens import InboxToken, mint_inbox_token

    token = mint_inbox_token(InboxToken("demo-brand", f"ghost-{_uid()}", utc_now() + timedelta(hours=1)), INBOX_SECRET)
    for method, path in INBOX_ROUTES:
        status, _, payload = runtime.http(method, path, b"", {"authorization": f"Bearer {token}"})
        assert status == 404, (path, payload[:300])


@pytest.fixture(scope="module")
def inbox_token(runtime: LocalRuntime) -> str:
    """A genuine inbox token of a member of demo-brand."""
    phone = _phone()
    status, _ = _events(runtime, _identify("demo-brand", phone))
    assert status == 202
    runtime.drain()
    body = json.dumps({"brand_id": "demo-brand", "identifier": {"type": "phone", "value": phone}}).encode()
    issued, answer = _post(runtime, "/v1/inbox/tokens", body, runtime.admin_key)
    assert issued == 201, answer
    return str(answer["token"])


@pytest.mark.parametrize(
    "message_id",
    ["%00", "..%2F..%2Fetc%2Fpasswd", "x" * 5000, "%3Cscript%3E", "%E0%A4%A", "%F0%9F%A7%A7", "a.b", "%20", "null"],
)
def test_hostile_message_ids_with_a_genuine_token_are_a_404_never_a_5xx(
    runtime: LocalRuntime, inbox_token: str, message_id: str
) -> None:
    for action in ("read", "dismiss"):
        status, _, payload = runtime.http(
            "POST", f"/v1/inbox/{message_id}/{action}", DEEP, {"authorization": f"Bearer {inbox_token}"}
        )
        assert status == 404, (message_id[:60], status, payload[:300])
    status, _, payload = runtime.http("GET", "/v1/inbox?limit=%00", b"", {"authorization": f"Bearer {inbox_token}"})
    assert status == 400, payload[:300]


def test_the_inbox_routes_take_no_key_and_issuing_a_token_needs_one(runtime: LocalRuntime) -> None:
    assert {(m, p.replace("any-message", "{message_id}")) for m, p in INBOX_ROUTES} <= topology.TOKEN_ROUTES
    assert ("POST", "/v1/inbox/tokens") not in topology.TOKEN_ROUTES
    body = json.dumps({"brand_id": "demo-brand", "person_id": "p1"}).encode()
    # no key, an inbox token instead of a key, a key of another brand without the scope
    assert _post(runtime, "/v1/inbox/tokens", body, None)[0] == 401
    assert _post(runtime, "/v1/inbox/tokens", body, None, {"authorization": "Bearer x.y"})[0] == 401
    assert _post(runtime, "/v1/inbox/tokens", body, OUTLET_OPERATOR)[0] == 403
    # and an API key is no inbox token: the inbox routes answer it 401
    for method, path in INBOX_ROUTES:
        assert runtime.http(method, path, b"", {"x-api-key": runtime.admin_key})[0] == 401


# ---- the preference centre: the link's token is its only credential ------------------------------------------------


def _signed_prefs(body: dict[str, Any], brand: str = "demo-brand") -> str:
    """A body signed with the brand's genuine preference-link key (only the platform could make it)."""
    from cdp.channels.person_tokens import brand_key
    from cdp.channels.preference_links import KEY_INFO
    from cdp.connectors.redirect import sign_body

    return sign_body(body, brand_key(INBOX_SECRET, KEY_INFO, brand))


HOSTILE_PREFERENCE_TOKENS = [
    *HOSTILE_TOKENS,
    _signed_prefs({"k": "prefs", "b": "demo-brand", "p": "p", "x": -1}),
    _signed_prefs({"k": "prefs", "b": "demo-brand", "p": "p", "x": 1e300}),
    _signed_prefs({"k": "prefs", "b": "demo-brand", "p": {"$ne": 1}, "x": 4_000_000_000}),
    _signed_prefs({"k": "prefs", "b": "demo-brand", "p": "p", "x": 4_000_000_000, "c": "fax"}),
    _signed_prefs({"k": "prefs", "b": "demo-brand", "p": "p", "x": 4_000_000_000, "m": ["m"]}),
    _signed_prefs({"k": "prefs", "b": "demo-outlet", "p": "p", "x": 4_000_000_000}),  # signed with demo-brand's key
    _signed_prefs({"k": "inbox", "b": "demo-brand", "p": "p", "x": 4_000_000_000}),
    _signed_inbox({"k": "inbox", "b": "demo-brand", "p": "p", "x": 4_000_000_000}),  # an inbox token
]
FORM = {"content-type": "application/x-www-form-urlencoded"}
HOSTILE_FORMS = [
    b"",
    DEEP,
    b"\xff\xfe",
    b"List-Unsubscribe=One-Click&List-Unsubscribe=One-Click",
    b"action=save&marketing.%00=on",
    b"action=save&marketing.email=on&" + b"&".join(b"x=1" for _ in range(500)),
    b"action=unsubscribe_all&person_id=someone-else",
    b"action=save&marketing.email=" + b"x" * 3000,
]


@pytest.mark.parametrize("token", HOSTILE_PREFERENCE_TOKENS)
def test_hostile_preference_tokens_get_a_4xx_page_never_a_5xx(runtime: LocalRuntime, token: str) -> None:
    for method in ("GET", "POST"):
        for body in (b"List-Unsubscribe=One-Click", b"action=unsubscribe_all", DEEP):
            status, headers, payload = runtime.http(method, f"/v1/preferences/{token}", body, FORM)
            assert 400 <= status < 500, (method, token[:60], status, payload[:300])
            if headers.get("content-type", "").startswith("text/html"):
                assert b"<script>" not in payload


@pytest.fixture(scope="module")
def preference_link(runtime: LocalRuntime) -> tuple[str, str]:
    """A genuine preference link path of a member of demo-brand, and their phone."""
    from cdp.channels.preference_links import PreferenceLink, mint_preference_token

    phone = _phone()
    status, _ = _events(runtime, _identify("demo-brand", phone))
    assert status == 202
    runtime.drain()
    found, _, payload = runtime.http(
        "GET", f"/v1/profiles/by-identifier/phone/{phone}?brand_id=demo-brand", b"", {"x-api-key": runtime.admin_key}
    )
    assert found == 200, payload[:300]
    person = json.loads(payload)["person_id"]
    link = PreferenceLink("demo-brand", person, utc_now() + timedelta(days=1), "sms", "m-1")
    return f"/v1/preferences/{mint_preference_token(link, INBOX_SECRET)}", person


@pytest.mark.parametrize("body", HOSTILE_FORMS)
def test_hostile_forms_with_a_genuine_link_are_a_400_page_and_change_nothing(
    runtime: LocalRuntime, preference_link: tuple[str, str], body: bytes
) -> None:
    path, person = preference_link
    status, headers, payload = runtime.http("POST", path, body, FORM)
    assert status == 400, (body[:60], status, payload[:300])
    assert headers["content-type"].startswith("text/html")
    runtime.drain()
    status, _, payload = runtime.http("GET", f"/v1/profiles/{person}", b"", {"x-api-key": runtime.admin_key})
    assert status == 200 and json.loads(payload)["consent"] == {}


def test_the_preference_routes_take_no_key_and_a_key_is_no_link(runtime: LocalRuntime) -> None:
    assert {("GET", "/v1/preferences/{token}"), ("POST", "/v1/preferences/{token}")} <= topology.TOKEN_ROUTES
    for method in ("GET", "POST"):
        status, headers, _ = runtime.http(method, "/v1/preferences/not-a-token", b"", {"x-api-key": runtime.admin_key})
        assert status == 400 and headers["content-type"].startswith("text/html")


# ---- a mini-program's message push: WeChat's signature on the query, the body in XML or JSON ----------------------

MP_PUSH_TOKEN = "local-mini-program-token"  # wx-local-mp's message push token (LOCAL_SOURCES)
_SENT_EVENT = {"FromUserName": "oHostileMp", "CreateTime": "1767240000", "MsgType": "event"}
_ENTRY = {"TemplateId": "tmpl-hostile", "MsgID": "9000000000000000001", "ErrorCode": "0", "ErrorStatus": "success"}
HOSTILE_MP_PUSHES = [
    (b'{"ToUserName": "gh_8c1d2e3f4a5b", "FromUserName": ', "application/json", 400),  # truncated
    (b"[]", "application/json", 400),  # JSON, not an object
    (b"{" * 40 + b"}" * 40, "application/json", 400),  # deeper than any push
    (b'{"CreateTime": NaN}', "application/json", 400),
    ('{"FromUserName": "丢", "MsgType": "event"}'.encode("utf-16-le"), "application/json", 400),
    (json.dumps({**_SENT_EVENT, "Event": "subscribe_msg_sent_event", "List": ["x"]}).encode(), "application/json", 400),
    (json.dumps({**_SENT_EVENT, "Event": "subscribe_msg_popup_event", "List": [{}] * 21}).encode(), "text/plain", 400),
    (
        json.dumps({**_SENT_EVENT, "Event": "subscribe_msg_sent_event", "CreateTime": 10**19, "List": _ENTRY}).encode(),
        None,
        200,
    ),
    (b"<xml><FromUserName>oHostileMp</FromUserName", "text/xml", 400),  # truncated
    (b'<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><Event>&x;</Event></xml>', "text/xml", 400),
    (json.dumps({"ToUserName": "gh_8c1d2e3f4a5b", "Encrypt": "bm90IGZvciB1cw=="}).encode(), None, 400),
    (json.dumps({**_SENT_EVENT, "Event": "wxa_media_check", "result": {"suggest": "risky"}}).encode(), None, 200),
    (json.dumps({**_SENT_EVENT, "Event": "subscribe_msg_sent_event", "List": {"MsgID": "=1+1"}}).encode(), None, 200),
]


def _mp_push(runtime: LocalRuntime, body: bytes, content_type: str | None, token: str = MP_PUSH_TOKEN) -> Any:
    from urllib.parse import urlencode

    from cdp.connectors.wechat import oa_signature

    timestamp, nonce = str(int(time.time())), _uid()
    query = {"signature": oa_signature(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
    headers = {"content-type": content_type} if content_type else {}
    return runtime.http("POST", f"/v1/wechat/wx-local-mp?{urlencode(query)}", body, headers)


@pytest.mark.parametrize(("body", "content_type", "expected"), HOSTILE_MP_PUSHES)
def test_hostile_mini_program_pushes_are_a_400_or_success_and_nothing_is_lost(
    runtime: LocalRuntime, body: bytes, content_type: str | None, expected: int
) -> None:
    # When a correctly signed push with a hostile body arrives
    status, _, payload = _mp_push(runtime, body, content_type)
    # Then it is refused with a 400 naming the problem, or answered "success" (a push WeChat need not retry: the
    # app's other events, an entry rejected alone), never a 5xx; and whatever was accepted is processed
    assert status == expected, (body[:80], status, payload[:300])
    if status == 200:
        assert payload == b"success"
    report = runtime.drain()
    assert (report.dead_lettered, report.failed) == (0, 0), body[:80]


def test_a_mini_program_push_with_a_wrong_signature_is_401_and_never_archived(runtime: LocalRuntime) -> None:
    body = (REPO / "events/wechat/subscribe_msg_sent.json").read_bytes()
    before = _raw_objects(runtime)
    for token in ("guessed-token", "local-wechat-token", "local-mini-program-secret"):  # the OA's, the relay's
        status, _, payload = _mp_push(runtime, body, "application/json", token=token)
        assert status == 401, payload[:300]
    assert _raw_objects(runtime) == before


# ---- customer analytics: whole-brand reports, polls confined to the brand ---------------------------------------

OUTLET_ANALYST = "e2e-outlet-analyst-key"  # analytics:read, brand demo-outlet
SH01_ANALYST = "e2e-sh01-analyst-key"  # analytics:read, brand demo-brand, store sh01
SOME_QUERY = "0b0e6f5c-1d1e-4c8e-9a65-7c1b2c3d4e5f"
HOSTILE_ANALYTICS: list[tuple[str, str | None, int, str | None]] = [
    # (path, key, status, field)
    ("/v1/analytics/cohorts", None, 401, None),
    ("/v1/analytics/cohorts", OUTLET_OPERATOR, 403, None),  # a brand key without analytics:read
    ("/v1/analytics/cohorts", SH01_ANALYST, 403, None),  # a store's key: a report counts the whole brand
    ("/v1/analytics/cohorts?brand_id=demo-brand", OUTLET_ANALYST, 403, None),  # another brand's key
    ("/v1/analytics/retention", OUTLET_ANALYST, 400, "report"),
    ("/v1/analytics/%2E%2E%2F%2E%2E%2Fwarehouse", OUTLET_ANALYST, 400, "report"),
    ("/v1/analytics/cohorts?from=2026-13-01", OUTLET_ANALYST, 400, "from"),
    ("/v1/analytics/cohorts?to=2026-02-29", OUTLET_ANALYST, 400, "to"),  # not a leap year
    ("/v1/analytics/cohorts?from=2026-05-01&to=2026-04-30", OUTLET_ANALYST, 400, "from"),
    ("/v1/analytics/cohorts?from=1970-01-01&to=2099-12-31", OUTLET_ANALYST, 400, "from"),  # past 240 months
    ("/v1/analytics/cohorts?max_offset=%F0%9F%98%80", OUTLET_ANALYST, 400, "max_offset"),
    ("/v1/analytics/channels?window_days=1e3", OUTLET_ANALYST, 400, "window_days"),
    ("/v1/analytics/repeat?window_days=30", OUTLET_ANALYST, 400, "window_days"),
    ("/v1/analytics/cohorts/queries/%27%3B--", OUTLET_ANALYST, 400, "query_id"),
    (f"/v1/analytics/cohorts/queries/{SOME_QUERY}", OUTLET_ANALYST, 404, None),
    (f"/v1/analytics/cohorts/queries/{SOME_QUERY}", SH01_ANALYST, 403, None),
]


@pytest.mark.parametrize(("path", "key", "status", "field"), HOSTILE_ANALYTICS)
def test_hostile_analytics_requests_are_a_4xx_naming_the_parameter(
    runtime: LocalRuntime, path: str, key: str | None, status: int, field: str | None
) -> None:
    got, _, payload = runtime.http("GET", path, b"", {"x-api-key": key} if key else {})
    answer = json.loads(payload)
    assert got == status, answer
    if field is not None:
        assert answer["field"] == field, answer


def test_a_report_query_of_one_brand_is_unknown_to_every_other(runtime: LocalRuntime) -> None:
    # Given a lifecycle report of demo-outlet (its warehouse may be empty: the report answers at once either way)
    status, _, payload = runtime.http("GET", "/v1/analytics/lifecycle", b"", {"x-api-key": OUTLET_ANALYST})
    answer = json.loads(payload)
    assert status == 200 and answer["brand_id"] == "demo-outlet", answer
    path = f"/v1/analytics/lifecycle/queries/{answer['query_id']}"
    # When it is polled by the brand / Then the same answer; under demo-brand (the admin), or as another report, 404
    assert runtime.http("GET", path, b"", {"x-api-key": OUTLET_ANALYST})[0] == 200
    admin = {"x-api-key": runtime.admin_key}
    assert runtime.http("GET", f"{path}?brand_id=demo-brand", b"", admin)[0] == 404
    assert runtime.http("GET", f"{path.replace('lifecycle', 'cohorts', 1)}?brand_id=demo-outlet", b"", admin)[0] == 404
    assert runtime.http("GET", f"{path}?brand_id=demo-outlet", b"", admin)[0] == 200
