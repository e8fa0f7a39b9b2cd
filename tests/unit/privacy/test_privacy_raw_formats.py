"""The pure rules that remove a person from raw archive bodies of every format, and the receipt's retention words."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from cdp import topology
from cdp.privacy.raw import Needles, scrub_raw, scrub_rows
from cdp.privacy.service import _Erasure
from cdp.profile.models import Profile

SAMPLES = Path(__file__).resolve().parents[3] / "events"
ANN = Needles.of(
    ["phone:+8613800138000", "email:ann.lee@example.com", "device_id:dev-ann-1", "wechat_openid:wx-oa:oann123"],
    ["Ann Lee"],
)
BOB_PHONE = "13900139000"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _segment(items: list[dict[str, object]]) -> bytes:
    return json.dumps({"batch": items, "sentAt": "2026-03-02T09:00:02Z"}).encode()


ANN_CALL = {"type": "identify", "messageId": "m-ann", "traits": {"email": "Ann.Lee@EXAMPLE.com", "name": "Ann Lee"}}
BOB_CALL = {"type": "identify", "messageId": "m-bob", "traits": {"phone": BOB_PHONE, "name": "Bob"}}


def test_phones_match_as_channels_write_them_and_not_inside_longer_numbers() -> None:
    # Given Ann's normalized phone
    # When raw strings are matched against it
    hits = [ANN.hit(s) for s in ("138-0013-8000", "+86 138 0013 8000", "008613800138000", "tel:13800138000")]
    misses = [ANN.hit(s) for s in ("213800138000", "138001380001", "order 3813800138000", "dev-ann-10")]

    # Then every written form hits, and longer numbers or ids that merely contain it do not
    assert hits == [True] * 4 and misses == [False] * 4


def test_a_gzip_segment_batch_loses_her_call_and_stays_gzip() -> None:
    # Given a gzip-encoded Segment batch with Ann's and Bob's calls
    body = gzip.compress(_segment([ANN_CALL, BOB_CALL]))

    # When it is scrubbed as the raw body of her event
    out = scrub_raw(body, ANN, "own")

    # Then her call is gone, Bob's stays, and the body is still gzip
    assert out.body is not None and out.body[:2] == b"\x1f\x8b" and (out.removed, out.redacted) == (1, 0)
    assert [c["messageId"] for c in json.loads(gzip.decompress(out.body))["batch"]] == ["m-bob"]


def test_a_body_that_is_one_item_about_her_goes_whole() -> None:
    # Given single-item bodies: a WeChat XML push, an SES notification over SNS, a POS sale, an encrypted push
    xml = b"<xml><FromUserName><![CDATA[oANN123]]></FromUserName><Event><![CDATA[subscribe]]></Event></xml>"
    message = {"eventType": "Delivery", "mail": {"destination": ["ann.lee@example.com"]}}
    sns = json.dumps({"Type": "Notification", "Message": json.dumps(message)}).encode()
    sale = json.dumps({"member": {"phone": "13800138000"}, "items": [{"sku": "CAKE-1", "qty": 1}]}).encode()
    encrypted = b"<xml><Encrypt><![CDATA[Y2FjOGU5M2ItYjFh]]></Encrypt></xml>"

    # When each is scrubbed as the raw body of her event
    results = [scrub_raw(b, ANN, "own") for b in (xml, sns, sale, encrypted)]

    # Then each is deleted whole (an encrypted body cannot be read, but it delivered her event)
    assert [r.body for r in results] == [None] * 4


def test_a_pulled_page_loses_her_orders_only() -> None:
    # Given the sample Tmall orders page with one order's buyer made Ann's phone
    page = json.loads((SAMPLES / "tmall" / "taobao.trades.sold.increment.get.json").read_text())
    trades = page["trades_sold_increment_get_response"]["trades"]["trade"]
    trades[0]["receiver_mobile"] = "13800138000"
    tids = [t["tid"] for t in trades]

    # When the page is scrubbed
    out = scrub_raw(json.dumps(page).encode(), ANN, "own")

    # Then only her order is gone
    assert out.body is not None and out.removed == 1
    left = json.loads(out.body)["trades_sold_increment_get_response"]["trades"]["trade"]
    assert [t["tid"] for t in left] == tids[1:]


def test_another_persons_event_keeps_its_item_without_her_identifier() -> None:
    # Given a canonical batch where Bob's event also carried Ann's phone (it is filed under Bob)
    bob = {
        "event_id": "e-bob",
        "source": "app",
        "identifiers": [{"type": "phone", "value": BOB_PHONE}, {"type": "phone", "value": "13800138000"}],
    }
    body = json.dumps({"batch": [bob]}).encode()

    # When it is scrubbed for that foreign event
    out = scrub_raw(body, ANN, "foreign")

    # Then Bob's event stays with his identifier only
    assert out.body is not None and (out.removed, out.redacted) == (0, 1)
    assert json.loads(out.body)["batch"][0]["identifiers"] == [{"type": "phone", "value": BOB_PHONE}]


def test_a_canonical_batch_loses_her_events_by_dedupe_key() -> None:
    # Given a canonical batch with Ann's and Bob's events
    ann = {
        "brand_id": "b",
        "event_id": "e-ann",
        "source": "app",
        "identifiers": [{"type": "phone", "value": "13800138000"}],
    }
    bob = {
        "brand_id": "b",
        "event_id": "e-bob",
        "source": "app",
        "identifiers": [{"type": "phone", "value": BOB_PHONE}],
    }

    # When it is scrubbed for her event
    out = scrub_raw(json.dumps({"batch": [ann, bob]}).encode(), ANN, "own", {"b#app#e-ann"})

    # Then her event is gone and Bob's is kept
    assert out.body is not None and out.removed == 1
    assert [e["event_id"] for e in json.loads(out.body)["batch"]] == ["e-bob"]


def test_an_object_without_her_is_kept_and_reported_as_not_located() -> None:
    # Given a Segment batch in which nothing is Ann's (her call came in another form)
    body = _segment([BOB_CALL])

    # When it is scrubbed
    out = scrub_raw(body, ANN, "own")

    # Then it is kept unchanged and marked not located
    assert out.body == body and not out.located and not out.changed


def test_import_files_and_rejects_lose_her_rows_only() -> None:
    # Given the sample member CSV (with a BOM and quoted commas), the orders JSONL, and a rejects file, each with
    # one of Ann's rows
    members = (SAMPLES / "files" / "members.csv").read_text(encoding="utf-8")
    members += "M-ANN,138 0013 8000,,Ann,女,1990-01-01,上海,sh01,gold,2023-01-15 10:20:00,\n"
    orders = (SAMPLES / "files" / "orders.jsonl").read_text(encoding="utf-8")
    orders += json.dumps({"order_id": "o-ann", "phone": "+8613800138000", "sku": "CAKE-1"}) + "\n"
    rejects = 'row,field,reason,raw\n7,birthday,bad date,"M-ANN,13800138000,,Ann,,1990-13-01"\n9,phone,bad,"M-2,1"\n'

    # When each is scrubbed of her rows
    results = [scrub_rows(text.encode(), ANN) for text in (members, orders, rejects)]

    # Then exactly her row went from each, and the other rows (and the header, BOM included) are as they were
    assert [r.removed for r in results] == [1, 1, 1]
    assert [r.body.decode() for r in results if r.body] == [
        members.rsplit("M-ANN", 1)[0],
        orders.rsplit('{"order_id": "o-ann"', 1)[0],
        'row,field,reason,raw\n9,phone,bad,"M-2,1"\n',
    ]


def test_the_receipt_quotes_the_retention_constants() -> None:
    # Given the retention figures of the data bucket's lifecycle rules
    survivor = Profile(person_id="p1", brand_id="demo-brand", created_at=NOW, updated_at=NOW)
    erasure = _Erasure("p1", survivor, "g.demo-group", cast(Any, (None, None, None, None)), NOW)

    # When the receipt of an erasure is drawn up
    receipt = erasure.receipt("dpo", NOW)

    # Then the retained reasons quote each figure, from the constants
    reasons = {r.what.split(" (")[0]: r.reason for r in receipt.retained}
    raw_reason = reasons["raw bodies the dedupe ledger does not point to"]
    assert f"raw/ objects expire {topology.RAW_RETENTION_DAYS} days" in raw_reason
    assert f"(imports/) after {topology.IMPORTS_RETENTION_DAYS} days" in raw_reason
    assert f"(rejects/) after {topology.REJECTS_RETENTION_DAYS} days" in raw_reason
    versions = reasons["earlier versions of the rewritten and deleted objects"]
    assert f"expires {topology.NONCURRENT_VERSION_DAYS} days after" in versions


def test_a_body_archived_before_nesting_was_bounded_is_scrubbed_as_text_not_a_crash() -> None:
    # Given a body nested 5,000 levels deep (ingest archived such bodies before it bounded nesting) that names her
    deep = "[" * 5000 + json.dumps({"phone": "13800138000"}) + "]" * 5000
    message = json.dumps({"Message": "[" * 3000 + '"13800138000"' + "]" * 3000, "to": BOB_PHONE})
    # When it is scrubbed as another person's object, and an SNS-like envelope holds such a string
    out = scrub_raw(deep.encode(), ANN, "foreign")
    wrapped = scrub_raw(message.encode(), ANN, "foreign")
    # Then no RecursionError: her phone is masked out of the text, and the rest of the body is kept
    assert out.body is not None and b"13800138000" not in out.body and out.redacted == 1
    assert wrapped.body is not None and b"13800138000" not in wrapped.body and BOB_PHONE.encode() in wrapped.body
