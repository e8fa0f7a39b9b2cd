"""The 360-degree profile API through the local runtime's HTTP path: post events, drain, then read, edit and operate.

Keys are the ones the local runtime seeds: the ingest key (events:write), the administrator (every scope) and a
read-only key of store sh01 of the packaged demo brand.
"""

from __future__ import annotations

import itertools
import json
from typing import Any
from urllib.parse import quote

from cdp import topology
from cdp_local.runtime import HttpResponse, LocalRuntime
from cdp_local.runtime.environment import STORE_API_KEY
from tests.e2e.conftest import PostEvents

BRAND = "demo-brand"  # the packaged org directory: dealers dealer-sh01 (store sh01) and dealer-bj02 (store bj02)
_ids = itertools.count()


def _event(event_type: str, identifiers: list[dict[str, str]], day: int = 1, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"pa-{next(_ids)}",
        "event_type": event_type,
        "source": fields.pop("source", "app"),
        "brand_id": BRAND,
        "occurred_at": f"2026-03-{day:02d}T10:00:00+08:00",
        "identifiers": identifiers,
        **fields,
    }


def _order(identifiers: list[dict[str, str]], day: int, total: int, store: str | None = None) -> dict[str, Any]:
    props = {
        "order_id": f"O-{next(_ids)}",
        "lines": [{"sku": "CAKE", "category": "cake", "quantity": 1, "unit_price_minor": total}],
        "total_minor": total,
        "currency": "CNY",
        "fulfilment": "offline" if store else "online",
    }
    return _event("order_placed", identifiers, day, source="pos" if store else "app", store_id=store, properties=props)


def _call(
    runtime: LocalRuntime, method: str, path: str, key: str | None = None, body: Any = None
) -> tuple[int, dict[str, Any]]:
    headers = {"content-type": "application/json", "x-api-key": key or runtime.admin_key}
    raw = json.dumps(body).encode() if body is not None else b""
    response: HttpResponse = runtime.http(method, path, raw, headers)
    return response.status, json.loads(response.body or b"{}")


def _phone(value: str) -> dict[str, str]:
    return {"type": "phone", "value": value}


def _by(runtime: LocalRuntime, kind: str, value: str, key: str | None = None, extra: str = "") -> tuple[int, Any]:
    return _call(runtime, "GET", f"/v1/profiles/by-identifier/{kind}/{quote(value)}?brand_id={BRAND}{extra}", key)


def test_seed_scenario_person_is_one_360_profile_by_every_identifier(
    runtime: LocalRuntime, post_events: PostEvents
) -> None:
    # Given platform A knows a phone + device, B an e-mail + the same device, C the same e-mail + a WeChat OpenID,
    # and the person bought online and in store sh01, returned one order, reviewed, earned points, holds two cards
    phone, device = _phone("13920000001"), {"type": "device_id", "value": "pa-dev-1"}
    email = {"type": "email", "value": "Seed.Person@Example.cn"}
    openid = {"type": "wechat_openid", "value": "o-pa-1", "scope": "wx-oa"}
    events = [
        _event("identify", [phone, device], 1, properties={"name": "Li Lei", "member_level": "gold"}),
        _event("page_view", [email, device], 2, properties={"url": "https://shop.example/cake"}),
        _event("identify", [email, openid], 3, source="wechat_oa", properties={"city": "Shanghai"}),
        _order([phone], 4, 26_800, store="sh01"),
        _order([email], 5, 9_900),
        _event("order_returned", [email], 6, properties={"order_id": "O-x", "refund_minor": 9_900, "currency": "CNY"}),
        _event("review_posted", [phone], 7, properties={"sku": "CAKE", "rating": 5}),
        _event("points_changed", [phone], 8, store_id="sh01", source="pos",
               properties={"delta": 1_000, "program": "dealer-sh01", "reason": "purchase"}),
        _event("points_changed", [phone], 8, properties={"delta": 300, "program": "app", "reason": "purchase"}),
        _event("card_balance_changed", [phone], 9,
               properties={"card_id": "GC-PA-1", "kind": "gift_card", "delta_minor": 50_000, "currency": "CNY"}),
        _event("card_balance_changed", [phone], 9, store_id="sh01", source="pos",
               properties={"card_id": "SV-PA-1", "kind": "stored_value", "delta_minor": 20_000, "currency": "CNY"}),
        _event("benefit_changed", [phone], 10, properties={"benefit_id": "free-delivery", "granted": True}),
    ]  # fmt: skip
    response, report = post_events(events)
    assert response.status == 202, response.body
    assert report.dead_lettered == 0
    # When the person is looked up by each identifier (phone typed as a local number; e-mail in any case)
    found = {
        "phone": _by(runtime, "phone", "139 2000 0001"),
        "phone_e164": _by(runtime, "phone", "+8613920000001"),
        "device": _by(runtime, "device_id", "PA-DEV-1"),
        "email": _by(runtime, "email", "seed.person@example.cn"),
        "openid": _by(runtime, "wechat_openid", "o-pa-1", extra="&identifier_scope=wx-oa"),
    }
    # Then every identifier answers with the same one person
    assert {status for status, _ in found.values()} == {200}
    assert len({body["person_id"] for _, body in found.values()}) == 1
    _, view = found["phone"]
    status, by_id = _call(runtime, "GET", f"/v1/profiles/{view['person_id']}")
    assert status == 200 and by_id["person_id"] == view["person_id"] and by_id["merged_away"] is False
    # And the view holds the 360 degrees: identity, traits, loyalty, orders by fulfilment, returns, reviews
    assert {i["key"] for i in view["identifiers"]} == {
        "phone:+8613920000001",
        "device_id:pa-dev-1",
        "email:seed.person@example.cn",
        "wechat_openid:wx-oa:o-pa-1",
    }
    assert view["traits"]["name"] == "Li Lei" and view["traits"]["city"] == "Shanghai"
    loyalty = view["loyalty"]
    assert loyalty["member_level"] == "gold"
    # 1,000 dealer points at 10:1 + 300 app points + the club points the person's orders earned (1 a yuan)
    club = next(p["points"] for p in loyalty["points"] if p["program"] == "club")
    assert loyalty["brand_points"] == 400 + club and club > 0
    assert {c["card_id"]: c["balance_minor"] for c in loyalty["cards"]} == {"GC-PA-1": 50_000, "SV-PA-1": 20_000}
    assert loyalty["active_benefits"] == ["free-delivery"]
    assert [o["total_minor"] for o in view["orders"]["offline"]] == [26_800]
    assert [o["total_minor"] for o in view["orders"]["online"]] == [9_900]
    assert len(view["returns"]) == 1 and view["reviews"][0]["rating"] == 5
    assert view["activity"]["order_count"] == 2 and view["activity"]["net_spend_minor"] == 26_800
    assert "lifecycle" in view["tags"]


def _two_persons(post_events: PostEvents, tag: str) -> tuple[dict[str, str], dict[str, str]]:
    """A gold app member with 300 app points, and a silver member of dealer sh01 with 1,000 dealer points."""
    app_phone, card = _phone(f"1393000{tag}"), {"type": "member_card", "value": f"MC-PA-{tag}"}
    events = [
        _event("identify", [app_phone], 1, properties={"member_level": "gold", "name": "Han Mei"}),
        _event("points_changed", [app_phone], 2, properties={"delta": 300, "program": "app", "reason": "purchase"}),
        _event("benefit_changed", [app_phone], 2, properties={"benefit_id": "free-delivery", "granted": True}),
        _event("card_balance_changed", [app_phone], 3,
               properties={"card_id": f"GC-{tag}", "kind": "gift_card", "delta_minor": 50_000, "currency": "CNY"}),
        _event("identify", [card], 4, source="pos", store_id="sh01",
               properties={"member_level": "silver", "program": "dealer-sh01"}),
        _event("points_changed", [card], 5, source="pos", store_id="sh01",
               properties={"delta": 1_000, "program": "dealer-sh01", "reason": "purchase"}),
        _event("benefit_changed", [card], 5, source="pos", store_id="sh01",
               properties={"benefit_id": "birthday-gift", "granted": True}),
        _event("card_balance_changed", [card], 6, source="pos", store_id="sh01",
               properties={"card_id": f"SV-{tag}", "kind": "stored_value", "delta_minor": 20_000, "currency": "CNY"}),
    ]  # fmt: skip
    response, _ = post_events(events)
    assert response.status == 202, response.body
    return app_phone, card


def test_merge_preview_then_merge_then_unmerge_restores_both_persons_with_their_own_points(
    runtime: LocalRuntime, post_events: PostEvents
) -> None:
    # Given two persons the rules never linked
    app_phone, card = _two_persons(post_events, "0001")
    _, app = _by(runtime, "phone", app_phone["value"])
    _, dealer = _by(runtime, "member_card", card["value"])
    a, b = app["person_id"], dealer["person_id"]
    assert a != b and app["loyalty"]["brand_points"] == 300 and dealer["loyalty"]["brand_points"] == 100
    # When an administrator previews merging them
    body = {"person_ids": [a, b], "reason": "same customer confirmed at the counter", "dry_run": True}
    status, preview = _call(runtime, "POST", "/v1/identity/merge", body=body)
    # Then the preview shows the merged person (gold kept, points converted and summed, benefits unioned, cards apart)
    assert status == 200, preview
    assert preview["committed"] is False and preview["dry_run"] is True
    (merged,) = preview["persons"]
    assert merged["loyalty"]["member_level"] == "gold"
    assert merged["loyalty"]["brand_points"] == 400
    assert merged["loyalty"]["active_benefits"] == ["birthday-gift", "free-delivery"]
    assert sorted(c["balance_minor"] for c in merged["loyalty"]["cards"]) == [20_000, 50_000]
    # And nothing was written
    assert _call(runtime, "GET", f"/v1/profiles/{b}")[1]["merged_away"] is False
    # When the merge is applied
    status, done = _call(runtime, "POST", "/v1/identity/merge", body={**body, "dry_run": False})
    runtime.drain()
    assert status == 200 and done["committed"] is True
    survivor = done["persons"][0]["person_id"]
    loser = ({a, b} - {survivor}).pop()
    assert done["merged_ids"] == [loser]
    # Then the merged-away id answers with the survivor and says so, with the merge in its history
    status, old = _call(runtime, "GET", f"/v1/profiles/{loser}")
    assert status == 200 and old["person_id"] == survivor and old["merged_away"] is True
    assert old["loyalty"]["brand_points"] == 400
    (entry,) = [h for h in old["merge_history"] if h["kind"] == "merge"]
    assert entry["actor"] == "local-admin" and "confirmed at the counter" in entry["rule"]
    # When the undo is previewed first
    split = {"merged_person_id": loser, "reason": "two people"}
    status, preview = _call(runtime, "POST", f"/v1/profiles/{survivor}/unmerge", body={**split, "dry_run": True})
    # Then it shows the two persons the split leaves, and nothing was written
    assert status == 200, preview
    assert preview["committed"] is False and preview["dry_run"] is True and len(preview["persons"]) == 2
    assert sorted(p["loyalty"]["brand_points"] for p in preview["persons"]) == [100, 300]
    assert _call(runtime, "GET", f"/v1/profiles/{loser}")[1]["merged_away"] is True
    # When the merge is undone
    status, undone = _call(runtime, "POST", f"/v1/profiles/{survivor}/unmerge", body=split)
    runtime.drain()
    assert status == 200, undone
    # Then both persons are back under their own ids with their own points, levels and cards
    assert sorted(p["person_id"] for p in undone["persons"]) == sorted([a, b])
    _, app_after = _call(runtime, "GET", f"/v1/profiles/{a}")
    _, dealer_after = _call(runtime, "GET", f"/v1/profiles/{b}")
    assert (app_after["merged_away"], dealer_after["merged_away"]) == (False, False)
    assert app_after["loyalty"]["brand_points"] == 300 and app_after["loyalty"]["member_level"] == "gold"
    assert dealer_after["loyalty"]["brand_points"] == 100 and dealer_after["loyalty"]["member_level"] == "silver"
    assert [c["card_id"] for c in dealer_after["loyalty"]["cards"]] == ["SV-0001"]
    assert any(h["kind"] == "split" and h["actor"] == "local-admin" for h in dealer_after["merge_history"])
    # When an administrator merges them again (the counter was right after all)
    status, again = _call(runtime, "POST", "/v1/identity/merge", body={**body, "dry_run": False, "reason": "again"})
    runtime.drain()
    # Then they are one person again: the link the unmerge cut stays cut, the merge adds another between them
    assert status == 200 and again["committed"] is True and len(again["merged_ids"]) == 1, again
    (merged,) = again["persons"]
    assert merged["loyalty"]["brand_points"] == 400


def test_unbind_removes_one_identifier_from_a_person(runtime: LocalRuntime, post_events: PostEvents) -> None:
    # Given a person known by phone, e-mail and a device that turned out to be a store tablet
    phone, email = _phone("13940000001"), {"type": "email", "value": "unbind@example.cn"}
    tablet = {"type": "device_id", "value": "pa-tablet-1"}
    post_events([_event("identify", [phone, email, tablet], 1), _order([phone], 2, 5_000)])
    _, person = _by(runtime, "phone", phone["value"])
    pid = person["person_id"]
    # When the device is unbound
    status, result = _call(
        runtime, "DELETE", f"/v1/profiles/{pid}/identifiers/device_id/pa-tablet-1?reason=store%20tablet"
    )
    runtime.drain()
    # Then the person keeps the phone and e-mail (and the order), and the device is no longer theirs
    assert status == 200, result
    _, after = _call(runtime, "GET", f"/v1/profiles/{pid}")
    assert {i["key"] for i in after["identifiers"]} == {"phone:+8613940000001", "email:unbind@example.cn"}
    assert after["activity"]["order_count"] == 1
    status, device_owner = _by(runtime, "device_id", "pa-tablet-1")
    assert status == 404 or device_owner["person_id"] != pid
    assert any(h["kind"] == "split" and h["actor"] == "local-admin" for h in after["merge_history"])
    # And a reason is required
    status, error = _call(runtime, "DELETE", f"/v1/profiles/{pid}/identifiers/email/unbind@example.cn")
    assert (status, error["field"]) == (400, "reason")


def test_a_store_scoped_key_sees_only_its_store(runtime: LocalRuntime, post_events: PostEvents) -> None:
    # Given a person who bought at sh01, at bj02 and online, and one who only ever bought at bj02
    everywhere, elsewhere = _phone("13950000001"), _phone("13950000002")
    post_events(
        [
            _order([everywhere], 1, 1_000, store="sh01"),
            _order([everywhere], 2, 2_000, store="bj02"),
            _order([everywhere], 3, 4_000),
            _order([elsewhere], 4, 8_000, store="bj02"),
        ]
    )
    _, admin_view = _by(runtime, "phone", everywhere["value"])
    pid = admin_view["person_id"]
    # When the store's read key looks at them (its brand comes from the key)
    status, store_view = _call(runtime, "GET", f"/v1/profiles/{pid}", STORE_API_KEY)
    status_by_identifier, _ = _call(
        runtime, "GET", f"/v1/profiles/by-identifier/phone/{everywhere['value']}", STORE_API_KEY
    )
    # Then it sees only the store's order, facts and events
    assert (status, status_by_identifier) == (200, 200)
    assert store_view["view_scope"] == "brand:demo-brand/store:sh01"
    assert [o["total_minor"] for o in store_view["orders"]["offline"]] == [1_000]
    assert store_view["orders"]["online"] == []
    assert store_view["activity"]["order_count"] == 1 and store_view["activity"]["spend_minor"] == 1_000
    _, timeline = _call(runtime, "GET", f"/v1/profiles/{pid}/timeline", STORE_API_KEY)
    assert [e["event"]["store_id"] for e in timeline["entries"]] == ["sh01"]
    # And the person who never came to the store does not exist for it (404 as for nobody; the admin sees them)
    assert _by(runtime, "phone", elsewhere["value"], STORE_API_KEY)[0] == 404
    assert _by(runtime, "phone", elsewhere["value"])[0] == 200
    # And it cannot widen its view, while the administrator may narrow to any store
    status, error = _call(runtime, "GET", f"/v1/profiles/{pid}?scope=store:bj02", STORE_API_KEY)
    assert status == 403 and "outside this key's scope" in error["message"]
    _, narrowed = _call(runtime, "GET", f"/v1/profiles/{pid}?scope=store:bj02")
    assert [o["total_minor"] for o in narrowed["orders"]["offline"]] == [2_000]
    # And it may not edit, merge or erase
    assert _call(runtime, "PATCH", f"/v1/profiles/{pid}", STORE_API_KEY, {"traits": {"city": "X"}})[0] == 403
    assert _call(runtime, "DELETE", f"/v1/profiles/{pid}", STORE_API_KEY)[0] == 403


def test_bad_requests_get_a_clear_4xx(runtime: LocalRuntime, post_events: PostEvents) -> None:
    # Given a known person
    post_events([_event("identify", [_phone("13960000001")], 1)])
    # Then an unknown identifier type and a malformed phone are 400s naming the field
    status, error = _call(runtime, "GET", f"/v1/profiles/by-identifier/fax/123?brand_id={BRAND}")
    assert (status, error["field"]) == (400, "type") and "unknown identifier type" in error["message"]
    status, error = _call(runtime, "GET", f"/v1/profiles/by-identifier/phone/555?brand_id={BRAND}")
    assert (status, error["field"]) == (400, "value")
    # And the brand must be given when the key has none
    status, error = _call(runtime, "GET", "/v1/profiles/by-identifier/phone/13960000001")
    assert (status, error["field"]) == (400, "brand_id")
    # And an unknown person is a 404
    assert _call(runtime, "GET", "/v1/profiles/no-such-person")[0] == 404
    assert _by(runtime, "phone", "13960000009")[0] == 404
    # And a wrong key is a 401, a key without the scope a 403 naming it
    assert _call(runtime, "GET", "/v1/profiles/no-such-person", "not-a-key")[0] == 401
    status, error = _call(runtime, "GET", "/v1/profiles/no-such-person", runtime.api_key)
    assert status == 403 and "profiles:read" in error["message"]
    status, error = _call(runtime, "POST", "/v1/identity/merge", body={"person_ids": ["a"], "reason": "x"})
    assert (status, error["field"]) == (400, "person_ids")


def test_the_timeline_pages_newest_first_without_gaps(runtime: LocalRuntime, post_events: PostEvents) -> None:
    # Given a person with seven events
    phone = _phone("13970000001")
    post_events([_event("page_view", [phone], day, properties={"url": f"https://x/{day}"}) for day in range(1, 8)])
    pid = _by(runtime, "phone", phone["value"])[1]["person_id"]
    # When the timeline is read three at a time
    pages, cursor = [], ""
    while True:
        status, page = _call(runtime, "GET", f"/v1/profiles/{pid}/timeline?limit=3{cursor}")
        assert status == 200
        pages.append([e["event"]["occurred_at"][:10] for e in page["entries"]])
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    # Then the pages are 3, 3 and 1 events, newest first, each event once
    assert [len(p) for p in pages] == [3, 3, 1]
    flat = [d for p in pages for d in p]
    assert flat == sorted(flat, reverse=True) and len(set(flat)) == 7
    # And a forged cursor or page size is a 400
    assert _call(runtime, "GET", f"/v1/profiles/{pid}/timeline?cursor=bm9wZQ")[1]["field"] == "cursor"
    assert _call(runtime, "GET", f"/v1/profiles/{pid}/timeline?limit=0")[1]["field"] == "limit"


def test_an_edit_is_an_event_on_the_timeline_and_an_audit_entry_with_its_actor(
    runtime: LocalRuntime, post_events: PostEvents
) -> None:
    # Given a person who agreed to SMS marketing, with a name from the app
    phone = _phone("13980000001")
    post_events(
        [
            _event("identify", [phone], 1, properties={"city": "Beijing", "name": "Han"}),
            _event("consent_changed", [phone], 2, properties={"channel": "sms", "granted": True}),
        ]
    )
    pid = _by(runtime, "phone", phone["value"])[1]["person_id"]
    # When the administrator edits the city and the name and withdraws SMS consent
    body = {"traits": {"city": "Shanghai", "name": "Han Mei"}, "consent": {"sms": False}, "reason": "customer called"}
    status, result = _call(runtime, "PATCH", f"/v1/profiles/{pid}", body=body)
    runtime.drain()
    # Then the profile shows the new values and the edit with who made it
    assert status == 200, result
    profile = result["profile"]
    assert profile["traits"]["city"] == "Shanghai" and profile["trait_values"]["city"] == ["Shanghai", "Beijing"]
    assert profile["consent"]["sms"]["granted"] is False and profile["consent"]["sms"]["source"] == "cdp"
    (edit,) = profile["edits"]
    assert (edit["actor"], edit["reason"], edit["traits"], edit["consent"]) == (
        "local-admin",
        "customer called",
        {"city": "Shanghai", "name": "Han Mei"},
        {"sms": False},
    )
    # And the demo brand's name rule (source priority: cdp edits first, then crm, pos, app) takes the edited name
    assert result["superseded"] == [] and profile["traits"]["name"] == "Han Mei"
    assert profile["trait_values"]["name"] == ["Han Mei", "Han"]
    # And the edit's events are on the timeline as source cdp, carrying the actor
    _, timeline = _call(runtime, "GET", f"/v1/profiles/{pid}/timeline?limit=10")
    mine = [e["event"] for e in timeline["entries"] if e["event"]["source"] == "cdp"]
    assert {e["event_type"] for e in mine} == {"identify", "consent_changed"}
    assert {e["context"]["actor"] for e in mine} == {"local-admin"}
    # And a bad edit names its field
    status, error = _call(runtime, "PATCH", f"/v1/profiles/{pid}", body={"traits": {"country": "China"}})
    assert (status, error["field"]) == (400, "traits.country")


def test_quarantine_sends_an_identifier_to_the_review_queue(runtime: LocalRuntime, post_events: PostEvents) -> None:
    # Given a person whose device is in fact a shared family iPad
    phone, ipad = _phone("13990000001"), {"type": "device_id", "value": "pa-ipad-1"}
    post_events([_event("identify", [phone, ipad], 1)])
    # When the administrator quarantines it
    body = {"brand_id": BRAND, "identifier": {"type": "device_id", "value": "PA-IPAD-1"}, "reason": "family iPad"}
    status, result = _call(runtime, "POST", "/v1/identity/quarantine", body=body)
    runtime.drain()
    # Then it left the person and waits in the brand's review queue
    assert status == 200, result
    assert "device_id:pa-ipad-1" not in {i["key"] for i in _by(runtime, "phone", phone["value"])[1]["identifiers"]}
    status, queue = _call(runtime, "GET", f"/v1/identity/review?brand_id={BRAND}")
    assert status == 200 and "device_id:pa-ipad-1" in {i["identifier"] for i in queue["items"]}
    # And a store key may not read the namespace-wide queue
    assert _call(runtime, "GET", f"/v1/identity/review?brand_id={BRAND}", STORE_API_KEY)[0] == 403


def test_export_then_erase_returns_a_receipt_and_the_person_is_gone(
    runtime: LocalRuntime, post_events: PostEvents
) -> None:
    # Given a person with an order
    phone = _phone("13990000002")
    post_events([_event("identify", [phone], 1, properties={"name": "Erase Me"}), _order([phone], 2, 3_000)])
    pid = _by(runtime, "phone", phone["value"])[1]["person_id"]
    # When their data is exported
    status, export = _call(runtime, "GET", f"/v1/profiles/{pid}/export")
    # Then it holds their events
    assert status == 200, export
    assert export["person_id"] == pid and len(export["events"]) == 3  # and the club points the order earned
    # When they are erased
    status, receipt = _call(runtime, "DELETE", f"/v1/profiles/{pid}")
    runtime.drain()
    # Then the receipt names what went, and the person is unknown by id and by identifier
    assert status == 200, receipt
    assert receipt["person_id"] == pid and receipt["actor"] == "local-admin"
    assert receipt["counts"]["identifiers_suppressed"] == 1
    assert _call(runtime, "GET", f"/v1/profiles/{pid}")[0] == 404
    assert _by(runtime, "phone", phone["value"])[0] == 404
    # And the club account the order earned into, its operation and timer left the offers table with them
    counts = receipt["counts"]
    assert (counts["loyalty_accounts"], counts["loyalty_operations"]) == (1, 1) and counts["loyalty_timers"] >= 1
    pages = runtime.client("dynamodb").get_paginator("scan").paginate(TableName=topology.OFFERS_TABLE.local_name)
    assert [i["pk"]["S"] for page in pages for i in page["Items"] if pid in json.dumps(i)] == []
    # And erasing again returns the same receipt
    status, again = _call(runtime, "DELETE", f"/v1/profiles/{pid}")
    assert status == 200 and again["erased_at"] == receipt["erased_at"]


def test_the_brands_a_caller_may_pick_are_those_its_scope_covers(runtime: LocalRuntime) -> None:
    # When an unscoped administrator lists the brands, Then every brand of the org is there with its dealers and stores
    status, listed = _call(runtime, "GET", "/v1/org/brands")
    assert status == 200, listed
    brands = {b["brand_id"]: b for b in listed["brands"]}
    assert set(brands) == {"demo-brand", "demo-outlet"}
    assert brands["demo-brand"]["dealers"]["dealer-sh01"] == ["sh01"] and "bj02" in brands["demo-brand"]["stores"]
    # When a key of one store of demo-brand lists them, Then it sees its brand with its own store only
    answer = runtime.http("GET", "/v1/org/brands", b"", {"x-api-key": "e2e-sh01-till-offers-key"})
    assert answer.status == 200
    (only,) = json.loads(answer.body)["brands"]
    assert (only["brand_id"], only["stores"], only["dealers"]) == ("demo-brand", ["sh01"], {"dealer-sh01": ["sh01"]})
    # And without a key it is a 401
    assert runtime.http("GET", "/v1/org/brands", b"", {}).status == 401
