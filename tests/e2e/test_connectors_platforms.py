"""The scheduled Tmall pull on the local runtime (recorded TOP answers): the 会员通 binding and the Tmall order of the
same shop member become ONE person holding the buyer id and the brand member's phone, with order, refund and review."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from cdp import topology
from cdp.shared.time import iso, utc_now
from cdp_local.runtime import LocalRuntime

BRAND = "demo-brand"
OUID = "AAF2xnOfAHYSGdyr1hq7iN6A"  # events/tmall: bound to 13700001111, buys order TID
TID = "3456789012345678901"


def by_identifier(runtime: LocalRuntime, kind: str, value: str, scope: str | None = None) -> tuple[int, Any]:
    extra = f"&identifier_scope={scope}" if scope else ""
    path = f"/v1/profiles/by-identifier/{kind}/{quote(value)}?brand_id={BRAND}{extra}"
    response = runtime.http("GET", path, b"", {"x-api-key": runtime.admin_key})
    return response.status, json.loads(response.body or b"{}")


def test_the_bound_tmall_member_is_one_person_with_the_tmall_order(runtime: LocalRuntime) -> None:
    # Given the tmall-demo shop of the local sources / When the scheduled function pulls it and the queues drain
    result = runtime.invoke("platform_pull", {"shops": ["tmall-demo"]})
    report = runtime.drain()
    # Then the shop's records were ingested (a rerun by another test would make them duplicates, never doubles)
    [summary] = result["shops"]
    assert summary["shop_id"] == "tmall-demo" and summary["accepted"] + summary["duplicates"] == 5
    assert summary["rejected"] == 3 and summary["rejects_key"].startswith("rejects/platforms/tmall-demo/")
    assert report.dead_lettered == 0
    # And the buyer id and the phone the brand bound find the same one person
    status, by_buyer = by_identifier(runtime, "platform_buyer_id", OUID, scope="tmall")
    phone_status, by_phone = by_identifier(runtime, "phone", "13700001111")
    assert (status, phone_status) == (200, 200)
    assert by_buyer["person_id"] == by_phone["person_id"]
    assert {i["key"] for i in by_phone["identifiers"]} == {f"platform_buyer_id:tmall:{OUID}", "phone:+8613700001111"}
    # And the profile holds the Tmall order (fen, online), its refund and the review
    assert [(o["order_id"], o["total_minor"]) for o in by_phone["orders"]["online"]] == [(TID, 45_800)]
    assert len(by_phone["returns"]) == 1 and by_phone["reviews"][0]["rating"] == 5
    timeline = runtime.http(
        "GET", f"/v1/profiles/{by_phone['person_id']}/timeline", b"", {"x-api-key": runtime.admin_key}
    )
    sources = {(e["event"]["event_type"], e["event"]["source"]) for e in json.loads(timeline.body)["entries"]}
    assert {("identify", "tmall"), ("order_placed", "tmall"), ("order_returned", "tmall")} <= sources


def test_a_second_pull_counts_nothing_twice(runtime: LocalRuntime) -> None:
    runtime.invoke("platform_pull", {"shops": ["tmall-demo"]})
    again = runtime.invoke("platform_pull", {"shops": ["tmall-demo"]})["shops"][0]
    runtime.drain()
    assert (again["accepted"], again["duplicates"]) == (0, 5)
    _, person = by_identifier(runtime, "phone", "13700001111")
    assert len(person["orders"]["online"]) == 1


def test_archived_platform_pages_replay_into_the_same_person(runtime: LocalRuntime) -> None:
    # Given pulled Tmall pages whose bus messages were lost before processing
    runtime.drain()
    start = utc_now() - timedelta(seconds=1)
    runtime.invoke("platform_pull", {"shops": ["tmall-demo"]})
    sqs, url = runtime.client("sqs"), runtime.queue_urls[topology.IDENTITY_QUEUE.local_name]
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for m in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    # When an operator replays the platform's archive for that time range
    body = {"source": "platform-tmall", "start": iso(start), "end": iso(utc_now() + timedelta(seconds=1))}
    headers = {"x-api-key": runtime.admin_key, "content-type": "application/json"}
    response = runtime.http("POST", "/v1/admin/replay", json.dumps(body).encode(), headers)
    summary = json.loads(response.body)
    # Then every archived page maps again (each order's buyer from the pull state) and is republished
    assert response.status == 200 and summary["failures"] == [], summary
    # (the recorded transport answers every window with the same records: republished again, applied once)
    assert summary["objects"] >= 4 and summary["accepted"] >= 5 and summary["rejected"] >= 3
    assert runtime.drain().dead_lettered == 0
    status, person = by_identifier(runtime, "phone", "13700001111")
    assert status == 200 and [o["order_id"] for o in person["orders"]["online"]] == [TID]
