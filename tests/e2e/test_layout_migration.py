"""An existing deployment's person items (every field in the clear, tags and scores on the person item) keep
working under the current code and move to the current layout through the operations API, page by page, resumably
and idempotently."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

from cdp import topology
from cdp.shared.dynamo import from_item, to_item
from cdp.shared.time import iso, utc_now
from cdp_local.runtime import LocalRuntime

ROUTE = "/v1/admin/migrations/person-layout"
TABLE = topology.PROFILES_TABLE.local_name
OUTLET_OPERATOR = "e2e-outlet-operator-key"  # operations:replay, but scoped to one brand


def _call(runtime: LocalRuntime, path: str, body: Any, key: str | None = None) -> tuple[int, Any]:
    headers = {"content-type": "application/json", "x-api-key": key or runtime.admin_key}
    status, _, payload = runtime.http("POST" if body is not None else "GET", path, json.dumps(body).encode(), headers)
    return status, json.loads(payload or b"null")


def _profile(runtime: LocalRuntime, person_id: str) -> dict[str, Any]:
    headers = {"x-api-key": runtime.admin_key}
    status, _, payload = runtime.http("GET", f"/v1/profiles/{person_id}", b"", headers)
    assert status == 200, payload
    return dict(json.loads(payload))


def _order(phone: str, at: str) -> dict[str, Any]:
    line = {"sku": "CAKE-1", "category": "cake", "quantity": 1, "unit_price_minor": 2000}
    return {
        "event_id": f"mig-{uuid.uuid4().hex[:10]}",
        "event_type": "order_placed",
        "source": "pos",
        "brand_id": "demo-brand",
        "store_id": "sh01",
        "occurred_at": at,
        "identifiers": [{"type": "phone", "value": phone}],
        "properties": {"order_id": uuid.uuid4().hex[:8], "lines": [line], "total_minor": 2000, "currency": "CNY"},
    }


def _to_earlier_layout(runtime: LocalRuntime, person_id: str) -> None:
    """Rewrite a person as the previous release stored them: one item with every field, no tags item."""
    db = runtime.client("dynamodb")
    key = {"pk": {"S": f"P#{person_id}"}}
    person = from_item(db.get_item(TableName=TABLE, Key={**key, "sk": {"S": "PROFILE"}})["Item"])
    tags = from_item(db.get_item(TableName=TABLE, Key={**key, "sk": {"S": "TAGS"}})["Item"])
    from cdp.profile.dynamodb import to_profile

    profile = to_profile(person, tags)
    earlier = {"pk": key["pk"]["S"], "sk": "PROFILE", **profile.model_dump(mode="json")}
    db.put_item(TableName=TABLE, Item=to_item({k: v for k, v in earlier.items() if v is not None}))
    db.delete_item(TableName=TABLE, Key={**key, "sk": {"S": "TAGS"}})


def _items(runtime: LocalRuntime, person_id: str) -> dict[str, dict[str, Any]]:
    db = runtime.client("dynamodb")
    found = db.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"P#{person_id}"}},
    )["Items"]
    return {item["sk"]["S"]: item for item in found}


def _person_ids(runtime: LocalRuntime, phones: list[str]) -> list[str]:
    out = []
    for phone in phones:
        status, _, payload = runtime.http(
            "GET",
            f"/v1/profiles/by-identifier/phone/{phone}?brand_id=demo-brand",
            b"",
            {"x-api-key": runtime.admin_key},
        )
        assert status == 200, payload
        out.append(json.loads(payload)["person_id"])
    return out


def test_earlier_layout_items_read_the_same_stay_whole_on_write_and_migrate_page_by_page(runtime: LocalRuntime) -> None:
    # Given four customers with orders (so they have tags) stored, then rewritten as the previous release kept them
    phones = [f"+86139{uuid.uuid4().int % 10**8:08d}" for _ in range(4)]
    at = iso(utc_now().replace(microsecond=0) - timedelta(days=2))
    headers = {"content-type": "application/json", "x-api-key": runtime.api_key}
    body = json.dumps({"batch": [_order(p, at) for p in phones]}).encode()
    assert runtime.http("POST", "/v1/events", body, headers)[0] == 202
    runtime.drain()
    persons = _person_ids(runtime, phones)
    before = {pid: _profile(runtime, pid) for pid in persons}
    assert all(view["tags"] for view in before.values()), before
    for pid in persons:
        _to_earlier_layout(runtime, pid)
    # When they are read, then they read as before (tags and all)
    for pid in persons:
        assert _profile(runtime, pid)["tags"] == before[pid]["tags"]
    # When one of them places another order before the migration runs
    assert runtime.http("POST", "/v1/events", json.dumps(_order(phones[0], at)).encode(), headers)[0] == 202
    runtime.drain()
    # Then their person item is in the new layout, their tags moved to their own item, and nothing was lost
    items = _items(runtime, persons[0])
    assert "B" in items["PROFILE"]["data"] and "tags" not in items["PROFILE"] and "TAGS" in items
    after = _profile(runtime, persons[0])
    assert after["activity"]["order_count"] == 2 and set(after["tags"]) >= set(before[persons[0]]["tags"])

    # When a brand-scoped operator asks for the migration, or sends a bad page size: refused, nothing moved
    status, refused = _call(runtime, ROUTE, {"limit": 50}, key=OUTLET_OPERATOR)
    assert status == 403 and "org scope" in refused["message"]
    status, bad = _call(runtime, ROUTE, {"limit": 0})
    assert status == 400 and bad["field"] == "limit"
    status, bad = _call(runtime, ROUTE, {"limit": 10, "dry": True})
    assert status == 400 and bad["field"] == "dry"
    assert "tags" in _items(runtime, persons[1])["PROFILE"]

    # When the administrator runs it in small pages from the start until done
    pages = []
    while not pages or not pages[-1]["done"]:
        status, page = _call(runtime, ROUTE, {"limit": 5, "restart": not pages})
        assert status == 200, page
        pages.append(page)
    # Then it took several pages and moved exactly the three persons still in the earlier layout
    assert len(pages) > 1 and sum(p["migrated"] for p in pages) == 3 and pages[-1]["total_migrated"] == 3
    for pid in persons[1:]:
        items = _items(runtime, pid)
        assert "B" in items["PROFILE"]["data"] and "tags" not in items["PROFILE"] and "TAGS" in items
        view = _profile(runtime, pid)
        assert view["tags"] == before[pid]["tags"] and view["activity"] == before[pid]["activity"]
    # And running it again changes nothing: done already, and a restart finds nothing left to move
    status, again = _call(runtime, ROUTE, {})
    assert status == 200 and again["done"] and again["migrated"] == 0 and again["total_migrated"] == 3
    status, restarted = _call(runtime, ROUTE, {"limit": 10_000, "restart": True})
    assert status == 200 and restarted["done"] and restarted["migrated"] == 0
