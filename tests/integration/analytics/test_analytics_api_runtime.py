"""The analytics API end to end on the local runtime (moto; the DuckDB engine, as `cdp serve` runs it): the routes
called as API Gateway calls them, over warehouse Parquet in the data bucket.

- the hand-computed export of `tests/unit/analytics/conftest.py` uploaded under warehouse/: the API's rows are the
  hand-computed tables and what `cdp results` (`WarehouseAnalytics`) computes over the same files;
- a real export: events posted through the API, resolved, exported by the warehouse function; the API's reports over
  them are what `WarehouseAnalytics` computes over the exported files for the same period;
- the engine's refusals (a brand's files over the copy limit, a file DuckDB cannot read) as 422s saying why;
- hostile input on both routes: a 4xx naming its field, never a 5xx; another brand's query id a 404.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from cdp import topology
from cdp.analytics.duckdb import WarehouseDuckDb
from cdp.analytics.models import Period
from cdp.analytics.programme import programme_lift
from cdp.analytics.reports import results_prefix
from cdp.warehouse.schema import EVENTS, PROFILES, brand_prefix
from cdp_local.analytics import WarehouseAnalytics
from cdp_local.cli_export import run_export
from cdp_local.runtime import LocalRuntime
from tests.integration.warehouse.helpers import event, post
from tests.unit.analytics.conftest import (
    BRAND,
    EVENT_ROWS,
    OTHER_BRAND,
    OTHER_EVENTS,
    OTHER_PROFILES,
    PROFILE_ROWS,
    write_export,
)
from tests.unit.analytics.test_reports import CHANNELS, COHORTS_BY_CHANNEL, COHORTS_BY_MONTH, PROGRAMME

pytestmark = pytest.mark.xdist_group("analytics")  # one runtime per process

BUCKET = topology.DATA_BUCKET_LOCAL_NAME
LIMIT_MB = 0.5  # the DuckDB engine's copy limit here: the test brands' files are a few KB, the "big" one is over
BIG_BRAND = "big-brand"
BROKEN_BRAND = "broken-brand"
LIVE_BRAND = "rt-analytics"
KEPT_BRAND = "rt-kept"
TAGS_BRAND = "rt-tags"
PERIOD = "from=2026-01-01&to=2026-04-30"
KEYS = {
    "it-outlet-analyst-key": {"client": "outlet-analyst", "scopes": ["analytics:read"], "scope": {"brand_id": BRAND}},
    "it-other-analyst-key": {
        "client": "other-analyst",
        "scopes": ["analytics:read"],
        "scope": {"brand_id": OTHER_BRAND},
    },
    "it-till-analyst-key": {
        "client": "till",
        "scopes": ["analytics:read"],
        "scope": {"brand_id": BRAND, "store_id": "sh01"},
    },
    "it-outlet-profiles-key": {"client": "crm", "scopes": ["profiles:read"], "scope": {"brand_id": BRAND}},
}
OUTLET = "it-outlet-analyst-key"
OTHER = "it-other-analyst-key"


def _upload(rt: LocalRuntime, root: Path) -> None:
    s3 = rt.client("s3")
    for path in sorted(root.rglob("*.parquet")):
        s3.upload_file(str(path), BUCKET, topology.WAREHOUSE_PREFIX + path.relative_to(root).as_posix())


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    keys_file = tmp_path_factory.mktemp("keys") / "api_keys.json"
    keys_file.write_text(json.dumps({"keys": KEYS}), encoding="utf-8")
    overrides = {topology.ANALYTICS_DUCKDB_LIMIT_ENV: str(LIMIT_MB)}
    with LocalRuntime(api_keys_file=str(keys_file), state_machines=set(), env_overrides=overrides) as runtime:
        # Given the hand-computed export of two brands under warehouse/, as the export function lays it out
        export = tmp_path_factory.mktemp("export")
        write_export(export, BRAND, PROFILE_ROWS, EVENT_ROWS)
        write_export(export, OTHER_BRAND, OTHER_PROFILES, OTHER_EVENTS)
        _upload(runtime, export)
        # And a brand with more Parquet than the DuckDB engine copies, and one whose file is not Parquet
        s3 = runtime.client("s3")
        big = f"{topology.WAREHOUSE_PREFIX}events/brand_id={BIG_BRAND}/dt=2026-01-01/part-0.parquet"
        s3.put_object(Bucket=BUCKET, Key=big, Body=os.urandom(int(LIMIT_MB * 2**20) + 1))
        broken = f"{topology.WAREHOUSE_PREFIX}profiles/brand_id={BROKEN_BRAND}/part-0.parquet"
        s3.put_object(Bucket=BUCKET, Key=broken, Body=b"PAR1 this is not a parquet file PAR1")
        yield runtime


def _get(rt: LocalRuntime, path: str, key: str | None = OUTLET) -> tuple[int, dict[str, str], Any]:
    headers = {} if key is None else {"x-api-key": rt.admin_key if key == "admin" else key}
    status, answer_headers, payload = rt.http("GET", path, b"", headers)
    return status, answer_headers, json.loads(payload or b"null")


def _cells(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    names = ("cohort", "cohort_size", "month_offset", "observed", "customers", "share")
    return [tuple(r[n] for n in names) for r in rows]


def _local(rt: LocalRuntime, into: Path, brand: str) -> WarehouseAnalytics:
    """`cdp results`' view of the brand's files in the bucket now (laid out as `cdp export warehouse` copies them)."""
    s3 = rt.client("s3")
    for table in (PROFILES, EVENTS):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=brand_prefix(table, brand)):
            for obj in page.get("Contents", []):
                target = into / obj["Key"].removeprefix(topology.WAREHOUSE_PREFIX)
                target.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(BUCKET, obj["Key"], str(target))
    return WarehouseAnalytics(into)


# ---- the hand-computed export ---------------------------------------------------------------------------------------


def test_cohorts_are_the_hand_computed_tables_and_what_cdp_results_computes(rt: LocalRuntime, tmp_path: Path) -> None:
    # When the outlet's analyst asks for cohorts by month and by channel over January to April 2026
    status, _, by_month = _get(rt, f"/v1/analytics/cohorts?{PERIOD}&max_offset=12")
    assert status == 200, by_month
    status, _, by_channel = _get(rt, f"/v1/analytics/cohorts?{PERIOD}&by=channel")
    assert status == 200, by_channel
    # Then the rows are the hand-computed tables (the other brand's orders never count), run by DuckDB
    assert _cells(by_month["rows"]) == COHORTS_BY_MONTH and _cells(by_channel["rows"]) == COHORTS_BY_CHANNEL
    assert (by_month["brand_id"], by_month["engine"], by_month["period"]) == (
        BRAND,
        "duckdb",
        {"start": "2026-01-01", "end": "2026-04-30"},
    )
    assert by_month["parameters"] == {"by": "month", "max_offset": 12, "max_orders": None, "window_days": None}
    # And the same as `cdp results` computes over the bucket's files for the same period
    period = Period(start=date(2026, 1, 1), end=date(2026, 4, 30))
    with _local(rt, tmp_path, BRAND) as local:
        assert by_month["rows"] == [r.model_dump(mode="json") for r in local.cohorts(BRAND, period, "month", 12)]
        assert by_channel["rows"] == [r.model_dump(mode="json") for r in local.cohorts(BRAND, period, "channel", 12)]
    # And the query's result and request are under the outlet's cohorts prefix; polled, it answers the same
    keys = {
        o["Key"]
        for o in rt.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=results_prefix(BRAND, "cohorts"))["Contents"]
    }
    query_id = by_month["query_id"]
    assert {f"analytics-results/outlet%3Ash/cohorts/{query_id}.{kind}.json" for kind in ("request", "rows")} <= keys
    status, _, polled = _get(rt, f"/v1/analytics/cohorts/queries/{query_id}")
    assert (status, polled) == (200, by_month)


def test_repeat_lifecycle_and_channels_are_what_cdp_results_computes(rt: LocalRuntime, tmp_path: Path) -> None:
    period = Period(start=date(2026, 1, 1), end=date(2026, 4, 30))
    status, _, repeat = _get(rt, f"/v1/analytics/repeat?{PERIOD}&max_orders=5")
    assert status == 200, repeat
    status, _, lifecycle = _get(rt, f"/v1/analytics/lifecycle?{PERIOD}")
    assert status == 200, lifecycle
    status, _, channels = _get(rt, f"/v1/analytics/channels?{PERIOD}&window_days=30")
    assert status == 200, channels
    # Then the channel outcomes are the hand-computed ones
    names = ("key", "reached", "acquired", "activated", "retained", "converted", "lost")
    assert [tuple(r[n] for n in names) for r in channels["rows"]] == CHANNELS
    # And every report is what `cdp results` computes over the same files
    with _local(rt, tmp_path, BRAND) as local:
        stages, flows = local.lifecycle(BRAND, period)
        assert repeat["rows"] == [r.model_dump(mode="json") for r in local.repeat(BRAND, period, 5)]
        assert lifecycle["rows"] == [r.model_dump(mode="json") for r in stages]
        assert lifecycle["flows"] == [r.model_dump(mode="json") for r in flows]
        assert channels["rows"] == [r.model_dump(mode="json") for r in local.channels(BRAND, period)]
    assert [r["customers"] for r in repeat["rows"]] == [5, 3, 2, 0, 0]


def test_the_programme_is_the_hand_computed_groups_and_their_lift(rt: LocalRuntime, tmp_path: Path) -> None:
    # When the outlet's analyst asks for the programme against the global control group over January to April
    status, _, answer = _get(rt, f"/v1/analytics/programme?{PERIOD}")
    assert status == 200, answer
    # Then the rows are the hand-computed groups, and the lift is what the domain computes from them
    names = ("group", "persons", "buyers", "orders", "revenue_minor", "revenue_squares")
    assert [tuple(r[n] for n in names) for r in answer["rows"]] == PROGRAMME
    period = Period(start=date(2026, 1, 1), end=date(2026, 4, 30))
    with _local(rt, tmp_path, BRAND) as local:
        rows = local.programme(BRAND, period)
    assert answer["rows"] == [r.model_dump(mode="json") for r in rows]
    assert answer["lift"] == programme_lift(rows).model_dump(mode="json")
    assert round(answer["lift"]["incremental_revenue_minor"], 2) == 33_333.33
    assert answer["lift"]["conversion"]["verdict"].startswith("too few persons to conclude (5 treated, 3")
    # And polled, it answers the same (the lift too); other reports carry no lift
    status, _, polled = _get(rt, f"/v1/analytics/programme/queries/{answer['query_id']}")
    assert (status, polled) == (200, answer)
    assert _get(rt, f"/v1/analytics/repeat?{PERIOD}")[2]["lift"] is None


def test_the_default_period_is_the_twelve_months_through_today(rt: LocalRuntime) -> None:
    status, _, answer = _get(rt, "/v1/analytics/repeat")
    assert status == 200, answer
    today = datetime.now(UTC).date()
    first = date(today.year - (1 if today.month < 12 else 0), today.month % 12 + 1, 1)
    assert answer["period"] == {"start": first.isoformat(), "end": today.isoformat()}


# ---- a real export ------------------------------------------------------------------------------------------------


def test_reports_over_a_real_export_are_what_cdp_results_computes_over_its_files(
    rt: LocalRuntime, tmp_path: Path
) -> None:
    # Given six customers' orders (and page views) over the last ten months, posted, resolved and exported
    today = datetime.now(UTC).date()
    posted = [
        event(f"rta-{person}-{n}", LIVE_BRAND, today - timedelta(days=days), f"1390000000{person}", kind)
        for person, schedule in enumerate(([280, 250, 30], [200], [150, 120, 90, 60], [40, 5], [300], [10]))
        for n, days in enumerate(schedule)
        for kind in ("order_placed", "page_view")
    ]
    post(rt, posted)
    report = run_export(rt, LIVE_BRAND)
    assert report["brands"][LIVE_BRAND]["profiles"] == 6
    # When the admin asks for the brand's cohorts and repeat curve (default period) and its lifecycle
    brand = quote(LIVE_BRAND)
    answers = {
        name: _get(rt, f"/v1/analytics/{name}?brand_id={brand}{extra}", "admin")
        for name, extra in (("cohorts", ""), ("repeat", "&max_orders=4"), ("lifecycle", ""))
    }
    assert all(status == 200 for status, _, _ in answers.values()), answers
    cohorts, repeat, lifecycle = (answers[n][2] for n in ("cohorts", "repeat", "lifecycle"))
    # Then each is what `cdp results` computes over the exported files for the same period
    period = Period.model_validate(cohorts["period"])
    with _local(rt, tmp_path, LIVE_BRAND) as local:
        expected = local.cohorts(LIVE_BRAND, period)
        assert cohorts["rows"] == [r.model_dump(mode="json") for r in expected]
        assert repeat["rows"] == [r.model_dump(mode="json") for r in local.repeat(LIVE_BRAND, period, 4)]
        stages, flows = local.lifecycle(LIVE_BRAND, period)
        assert (lifecycle["rows"], lifecycle["flows"]) == (
            [r.model_dump(mode="json") for r in stages],
            [r.model_dump(mode="json") for r in flows],
        )
    # And they count what was posted: six first orders ever in the period, customers with 1..4 orders
    assert sum(r["cohort_size"] for r in cohorts["rows"] if r["month_offset"] == 0) == 6
    assert [r["customers"] for r in repeat["rows"]] == [6, 3, 2, 1]


def test_a_report_over_the_same_export_runs_once_and_the_next_export_is_read_anew(
    rt: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a brand's customers exported by a run, and DuckDB's report queries counted
    today = datetime.now(UTC).date()
    phones = ("13900000201", "13900000202")
    post(
        rt,
        [event(f"kept-{n}", KEPT_BRAND, today - timedelta(days=40), p, "order_placed") for n, p in enumerate(phones)],
    )
    run_export(rt, KEPT_BRAND)
    ran: list[str] = []
    table = WarehouseDuckDb.table
    monkeypatch.setattr(WarehouseDuckDb, "table", lambda db, sql: ran.append(sql) or table(db, sql))
    lifecycle = f"/v1/analytics/lifecycle?brand_id={KEPT_BRAND}"
    # When its lifecycle is asked for, then again (the console's home on every visit)
    status, _, first = _get(rt, lifecycle, "admin")
    status_again, _, again = _get(rt, lifecycle, "admin")
    # Then the query ran once: the second answer is the first one, kept beside it under the brand's prefix
    assert (status, status_again) == (200, 200), (first, again)
    assert len(ran) == 1 and again == first
    kept = rt.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=results_prefix(KEPT_BRAND, "lifecycle") + "cache/")
    assert len(kept["Contents"]) == 1
    # And other parameters are their own query
    assert _get(rt, f"{lifecycle}&to={today - timedelta(days=1)}", "admin")[0] == 200 and len(ran) == 2

    # When a third customer orders and the next export runs
    post(rt, [event("kept-2", KEPT_BRAND, today - timedelta(days=40), "13900000203", "order_placed")])
    run_export(rt, KEPT_BRAND)
    status, _, after = _get(rt, lifecycle, "admin")
    # Then the report is read anew from the new files, and kept for the run after
    assert status == 200 and len(ran) == 3 and after["query_id"] != first["query_id"]
    last = max(r["month"] for r in first["rows"])
    persons = [sum(r["persons"] for r in a["rows"] if r["month"] == last) for a in (first, after)]
    assert persons == [2, 3]
    assert _get(rt, lifecycle, "admin")[2] == after and len(ran) == 3


# ---- the engine's refusals ------------------------------------------------------------------------------------------


def test_a_brand_over_the_duckdb_copy_limit_is_told_to_use_athena(rt: LocalRuntime) -> None:
    status, _, answer = _get(rt, f"/v1/analytics/cohorts?brand_id={BIG_BRAND}", "admin")
    assert (status, answer["error"]) == (422, "warehouse_too_large"), answer
    assert "ANALYTICS_ENGINE=athena" in answer["message"]
    # And nothing was started: no query files under the brand's prefix
    assert "Contents" not in rt.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=results_prefix(BIG_BRAND, "cohorts"))


def test_a_query_duckdb_cannot_run_is_a_422_with_its_reason_then_and_when_polled(rt: LocalRuntime) -> None:
    status, _, answer = _get(rt, f"/v1/analytics/repeat?brand_id={BROKEN_BRAND}", "admin")
    assert (status, answer["error"]) == (422, "query_failed"), answer
    assert "parquet" in answer["message"].lower()
    listed = rt.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=results_prefix(BROKEN_BRAND, "repeat"))
    (request_key,) = [o["Key"] for o in listed["Contents"] if o["Key"].endswith(".request.json")]
    query_id = request_key.rsplit("/", 1)[1].removesuffix(".request.json")
    status, _, polled = _get(rt, f"/v1/analytics/repeat/queries/{query_id}?brand_id={BROKEN_BRAND}", "admin")
    assert (status, polled) == (422, answer)


# ---- hostile input and isolation ------------------------------------------------------------------------------------

UNKNOWN_ID = "0b0e6f5c-1d1e-4c8e-9a65-7c1b2c3d4e5f"
HOSTILE: list[tuple[str, str | None, int, str | None]] = [
    # (path, key, status, field)
    ("/v1/analytics/cohorts", None, 401, None),
    ("/v1/analytics/cohorts", "it-unknown-key", 401, None),
    ("/v1/analytics/cohorts", "it-outlet-profiles-key", 403, None),  # no analytics:read
    ("/v1/analytics/cohorts", "it-till-analyst-key", 403, None),  # a store's key: not the whole brand
    (f"/v1/analytics/cohorts?brand_id={quote(BRAND)}", OTHER, 403, None),  # another brand's key
    ("/v1/analytics/cohorts", "admin", 400, "brand_id"),  # a key of no brand names one
    ("/v1/analytics/cohort", OUTLET, 400, "report"),
    ("/v1/analytics/%2E%2E%2Fwarehouse", OUTLET, 400, "report"),
    (f"/v1/analytics/{'x' * 3000}", OUTLET, 400, "report"),
    ("/v1/analytics/cohorts?from=2026-02-30", OUTLET, 400, "from"),
    ("/v1/analytics/cohorts?from=%00", OUTLET, 400, "from"),
    ("/v1/analytics/cohorts?to=yesterday", OUTLET, 400, "to"),
    ("/v1/analytics/cohorts?to=2026-01-01&to=2026-02-01", OUTLET, 400, "to"),  # repeated: comma-joined
    ("/v1/analytics/cohorts?from=2026-04-01&to=2026-03-31", OUTLET, 400, "from"),
    ("/v1/analytics/cohorts?from=1900-01-01", OUTLET, 400, "from"),
    ("/v1/analytics/cohorts?max_offset=121", OUTLET, 400, "max_offset"),
    ("/v1/analytics/repeat?max_orders=abc", OUTLET, 400, "max_orders"),
    ("/v1/analytics/channels?window_days=0", OUTLET, 400, "window_days"),
    ("/v1/analytics/channels?by=month", OUTLET, 400, "by"),
    ("/v1/analytics/lifecycle?by=month", OUTLET, 400, "by"),
    ("/v1/analytics/programme?by=month", OUTLET, 400, "by"),
    ("/v1/analytics/programme?window_days=30", OUTLET, 400, "window_days"),
    ("/v1/analytics/programme", "it-till-analyst-key", 403, None),  # a store's key: not the whole brand
    ("/v1/analytics/cohorts?brand=outlet", OUTLET, 400, "brand"),
    ("/v1/analytics/cohorts/queries/not-a-query-id", OUTLET, 400, "query_id"),
    (f"/v1/analytics/cohorts/queries/{UNKNOWN_ID}", OUTLET, 404, None),
    (f"/v1/analytics/cohorts/queries/{UNKNOWN_ID}?from=2026-01-01", OUTLET, 400, "from"),
    (f"/v1/analytics/nope/queries/{UNKNOWN_ID}", OUTLET, 400, "report"),
    (f"/v1/analytics/cohorts/queries/{UNKNOWN_ID}", "it-outlet-profiles-key", 403, None),
]


@pytest.mark.parametrize(("path", "key", "status", "field"), HOSTILE)
def test_hostile_input_on_the_analytics_routes_is_a_4xx_naming_its_field(
    rt: LocalRuntime, path: str, key: str | None, status: int, field: str | None
) -> None:
    got, _, answer = _get(rt, path, key)
    assert got == status, answer
    if field is not None:
        assert answer["field"] == field, answer


def test_another_brands_query_id_is_unknown_to_it(rt: LocalRuntime) -> None:
    # Given a query the outlet ran
    status, _, answer = _get(rt, f"/v1/analytics/channels?{PERIOD}")
    assert status == 200, answer
    query_id = answer["query_id"]
    # When the other brand polls it under its own brand, the admin under the other brand, or the outlet as another
    # report / Then 404, as for an id nobody started; and the other brand naming the outlet is a 403
    assert _get(rt, f"/v1/analytics/channels/queries/{query_id}", OTHER)[0] == 404
    assert _get(rt, f"/v1/analytics/channels/queries/{query_id}?brand_id={OTHER_BRAND}", "admin")[0] == 404
    assert _get(rt, f"/v1/analytics/cohorts/queries/{query_id}")[0] == 404
    assert _get(rt, f"/v1/analytics/channels/queries/{query_id}?brand_id={quote(BRAND)}", OTHER)[0] == 403
    # And the outlet itself reads it again
    assert _get(rt, f"/v1/analytics/channels/queries/{query_id}")[2] == answer


def test_a_warm_engine_reads_the_warehouse_as_it_is_now(rt: LocalRuntime) -> None:
    # Given the repeat curve read once (the engine keeps the brand's files for the next report)
    s3 = rt.client("s3")
    prefix = brand_prefix(EVENTS, BRAND)
    first = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"])[0]
    status, _, before = _get(rt, "/v1/analytics/lifecycle?from=2026-01-01&to=2026-06-30")
    assert status == 200
    # When one day's file goes (the nightly export rewriting a day), then comes back
    original = s3.get_object(Bucket=BUCKET, Key=first)["Body"].read()
    s3.delete_object(Bucket=BUCKET, Key=first)
    status, _, without = _get(rt, "/v1/analytics/lifecycle?from=2026-01-01&to=2026-06-30")
    s3.put_object(Bucket=BUCKET, Key=first, Body=original)
    status_again, _, again = _get(rt, "/v1/analytics/lifecycle?from=2026-01-01&to=2026-06-30")
    # Then each answer is the warehouse's at that moment: a day gone changes it, the day back restores it
    assert (status, status_again) == (200, 200)
    assert without["rows"] != before["rows"] and again["rows"] == before["rows"]


def test_the_tag_catalogs_distributions_are_the_tags_the_brands_persons_hold(rt: LocalRuntime) -> None:
    # Given four customers of a brand with orders at different times (their lifecycle and other tags follow), exported
    today = datetime.now(UTC).date()
    posted = [
        event(f"rtt-{person}-{n}", TAGS_BRAND, today - timedelta(days=days), f"1390000100{person}", "order_placed")
        for person, schedule in enumerate(([400], [20, 10], [200, 100, 50], [3]))
        for n, days in enumerate(schedule)
    ]
    post(rt, posted)
    assert run_export(rt, TAGS_BRAND)["brands"][TAGS_BRAND]["profiles"] == 4
    # When the brand's distributions are read
    status, _, answer = _get(rt, f"/v1/analytics/tags?brand_id={TAGS_BRAND}", "admin")
    assert status == 200, answer
    # Then each string or flag tag's values count the persons holding them, as their profiles show them
    held: Counter[tuple[str, str]] = Counter()
    for person in range(4):
        path = f"/v1/profiles/by-identifier/phone/1390000100{person}?brand_id={TAGS_BRAND}"
        status, _, profile = _get(rt, path, "admin")
        assert status == 200, profile
        for tag, held_value in profile["tags"].items():
            value = held_value["value"]
            if isinstance(value, bool):
                held[(tag, "true" if value else "false")] += 1
            elif isinstance(value, str):
                held[(tag, value)] += 1
    rows = {(r["tag"], r["value"]): (r["persons"], r["share"]) for r in answer["rows"]}
    for key, persons in held.items():
        assert rows[key] == (persons, persons / 4), key
    assert sum(p for (tag, _), (p, _) in rows.items() if tag == "lifecycle") == 4
