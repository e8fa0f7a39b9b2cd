"""The warehouse export function on the local runtime (moto): events posted through the API become profiles, tags
and day partitions of Parquet; the next night's run rewrites only its window; a re-run replaces a day; an erasure
through the profile API takes the person out of every file at the next run."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cdp.warehouse.erasure import person_hash
from cdp.warehouse.schema import ERASURES_PREFIX, EVENTS, STATE_KEY, day_prefix
from cdp_local.runtime import LocalRuntime
from tests.integration.warehouse.helpers import download, event, objects, person_of, post, query

pytestmark = pytest.mark.xdist_group("warehouse")  # one runtime per process

TODAY = datetime.now(UTC).date()
D = {n: TODAY - timedelta(days=n) for n in (0, 1, 2, 5, 10, 20, 30, 40)}


@pytest.fixture(scope="module")
def rt() -> Iterator[LocalRuntime]:
    with LocalRuntime(state_machines=set()) as runtime:
        yield runtime


def test_full_then_incremental_runs_and_a_rerun_of_a_day(rt: LocalRuntime, tmp_path: Path) -> None:
    brand = "wh-brand"
    # Given three customers' events over 40 days, one of them telling her name, birthday and e-mail
    posted = [
        event("a-1", brand, D[40], "13700000001", "order_placed"),
        event("a-2", brand, D[1], "13700000001"),
        event("b-1", brand, D[10], "13700000002", "add_to_cart"),
        event("b-2", brand, D[0], "13700000002", "custom"),
        event("c-1", brand, D[1], "13700000003", "identify", identifiers=[{"type": "email", "value": "wf@example.cn"}]),
    ]
    post(rt, posted)
    persons = {person_of(rt, brand, f"1370000000{n}") for n in (1, 2, 3)}
    # When the first export runs (every brand, no watermark yet: every day)
    report = rt.invoke("warehouse_export", {})
    root = download(rt, tmp_path / "first")
    # Then the profiles are the persons, the events per type are what was posted, each in its day's partition
    assert report["scan_from"] is None and report["read_units"] > 0
    assert {r[0] for r in query(root, "SELECT person_id FROM profiles WHERE brand_id = ?", [brand])} == persons
    by_type = dict(query(root, "SELECT event_type, count(*) FROM events WHERE brand_id = ? GROUP BY 1", [brand]))
    assert by_type == dict(Counter(e["event_type"] for e in posted))
    days = query(root, "SELECT dt, count(*) FROM events WHERE brand_id = ? GROUP BY 1 ORDER BY 1", [brand])
    assert days == sorted(Counter(datetime.fromisoformat(e["occurred_at"]).date() for e in posted).items())
    assert query(root, "SELECT count(*) FROM tags WHERE brand_id = ?", [brand])[0][0] > 0
    # And no raw phone, e-mail, name or birthday is in any file; identifiers are hashed
    text = json.dumps(query(root, "SELECT * FROM profiles") + query(root, "SELECT * FROM events"), default=str)
    assert not [s for s in ("1370000000", "wf@example.cn", "Wang Fang", "1990-05-04", "utm=") if s in text]
    before = objects(rt)

    # Given new events: today's, one two days late, and one a month late (as a history import would bring)
    post(
        rt,
        [
            event("a-3", brand, D[0], "13700000001"),
            event("b-3", brand, D[2], "13700000002"),
            event("c-2", brand, D[30], "13700000003"),
        ],
    )
    # When the next run exports (from 3 days before the watermark)
    report = rt.invoke("warehouse_export", {})
    after = objects(rt)
    # Then it read and rewrote from that day only (the days 0-2 that have events: 3 files), the old days are kept
    assert report["scan_from"] == (TODAY - timedelta(days=3)).isoformat()
    assert (report["tables"]["events"]["files"], report["brands"][brand]["days_written"]) == (3, 3)
    for n in (40, 10):
        key = f"{day_prefix(brand, D[n])}part-0.parquet"
        assert after[key] == before[key], n
    root = download(rt, tmp_path / "second")
    counts = dict(query(root, "SELECT dt, count(*) FROM events WHERE brand_id = ? GROUP BY 1", [brand]))
    assert (counts[D[0]], counts[D[2]], D[30] in counts) == (2, 1, False)
    # When a day is exported again / Then it has the same one file and the same rows (replaced, not appended)
    rows = query(root, "SELECT * FROM events WHERE dt = ? ORDER BY event_id", [D[2]])
    rt.invoke("warehouse_export", {"since": D[2].isoformat(), "brand_id": brand})
    assert [k for k in objects(rt, day_prefix(brand, D[2]))] == [f"{day_prefix(brand, D[2])}part-0.parquet"]
    root = download(rt, tmp_path / "third")
    assert query(root, "SELECT * FROM events WHERE dt = ? ORDER BY event_id", [D[2]]) == rows
    # And a run from an earlier day picks the month-late event up
    rt.invoke("warehouse_export", {"since": D[30].isoformat(), "brand_id": brand})
    root = download(rt, tmp_path / "fourth")
    assert query(root, "SELECT event_id FROM events WHERE dt = ?", [D[30]]) == [("c-2",)]
    assert STATE_KEY in objects(rt)


def test_an_erasure_leaves_a_request_the_next_run_applies_to_every_file(rt: LocalRuntime, tmp_path: Path) -> None:
    brand = "wh-erase"
    # Given two customers with events on old days, exported
    post(
        rt,
        [
            event("e-1", brand, D[20], "13600000001", "order_placed"),
            event("e-2", brand, D[5], "13600000001"),
            event("f-1", brand, D[20], "13600000002"),
        ],
    )
    erased, kept = person_of(rt, brand, "13600000001"), person_of(rt, brand, "13600000002")
    rt.invoke("warehouse_export", {"brand_id": brand})
    assert sorted(objects(rt, f"{EVENTS.prefix}brand_id={brand}/")) == sorted(
        f"{day_prefix(brand, D[n])}part-0.parquet" for n in (20, 5)
    )
    # When one is erased through the profile API
    headers = {"content-type": "application/json", "x-api-key": rt.admin_key}
    response = rt.http("DELETE", f"/v1/profiles/{erased}", b"", headers)
    assert response.status == 200, response.body
    receipt = json.loads(response.body)
    # Then the receipt names the request the warehouse export will apply, which holds no person id in clear
    key = receipt["warehouse_request"]
    assert key == f"{ERASURES_PREFIX}{person_hash(erased)}.json" and key in objects(rt)
    body = rt.client("s3").get_object(Bucket="cdp-data", Key=key)["Body"].read().decode()
    assert erased not in body and sorted(json.loads(body)["days"][brand]) == sorted(str(D[n]) for n in (20, 5))
    # When the next run exports (its window does not reach those days)
    report = rt.invoke("warehouse_export", {"brand_id": brand})
    root = download(rt, tmp_path / "after")
    # Then the person is in no snapshot and no day, the other customer's rows stay, and the request is gone
    assert (report["erasures_applied"], report["erased_rows_removed"]) == (1, 2)
    every = query(root, "SELECT person_id FROM profiles WHERE brand_id = ?", [brand])
    every += query(root, "SELECT person_id FROM tags WHERE brand_id = ?", [brand])
    every += query(root, "SELECT person_id FROM events WHERE brand_id = ?", [brand])
    assert erased not in {r[0] for r in every} and kept in {r[0] for r in every}
    assert objects(rt, f"{day_prefix(brand, D[5])}") == {}  # the day held only their event
    assert objects(rt, ERASURES_PREFIX) == {}
