"""One warehouse export run on in-memory ports with the real DuckDB writer: which days are written, how a re-run
replaces a day, how events find their person, and how an erasure request empties the person out of the files."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from cdp.channels.contact import in_global_control
from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.org import OrgDirectory
from cdp.profile import keys
from cdp.profile.models import Profile, TagValue
from cdp.warehouse.erasure import erasure_request
from cdp.warehouse.parquet import DuckDbTableWriter
from cdp.warehouse.ports import FiledEventItem, PersonItem
from cdp.warehouse.schema import EVENTS, PROFILES, STATE_KEY, TAGS, brand_prefix, day_prefix
from cdp.warehouse.service import (
    BrandState,
    ExportReport,
    ExportRequest,
    ExportState,
    export_warehouse,
    plan_export,
    read_state,
)
from tests.fakes.warehouse import InMemoryWarehouseObjects, InMemoryWarehouseSource

TODAY = date(2026, 12, 7)
NOW = datetime(2026, 12, 7, 1, 30, tzinfo=UTC)
BRAND = "demo-brand"
OTHER = "other-brand"


# ---- the plan --------------------------------------------------------------------------------------------------


def _state(**through: date) -> ExportState:
    return ExportState(
        brands={b.replace("_", "-"): BrandState(exported_through=d, last_run_at=NOW) for b, d in through.items()}
    )


def test_the_first_run_exports_every_day() -> None:
    plan = plan_export(ExportState(), ExportRequest(), TODAY)
    assert (plan.scan_from, plan.start("demo-brand"), plan.start("other")) == (None, None, None)


def test_later_runs_start_late_days_before_each_brands_watermark() -> None:
    # Given two brands exported through different days
    state = _state(demo_brand=date(2026, 12, 6), other=date(2026, 12, 1))
    plan = plan_export(state, ExportRequest(late_days=3), TODAY)
    # Then each rewrites from its watermark minus 3 days; a new brand and the scan take the earliest of them
    assert plan.start("demo-brand") == date(2026, 12, 3) and plan.start("other") == date(2026, 11, 28)
    assert plan.scan_from == plan.start("new-brand") == date(2026, 11, 28)


def test_since_overrides_the_watermarks_and_a_brand_run_reads_its_own_only() -> None:
    state = _state(demo_brand=date(2026, 12, 6), other=date(2026, 12, 1))
    since = plan_export(state, ExportRequest(since=date(2026, 1, 1)), TODAY)
    assert since.scan_from == since.start("demo-brand") == since.start("other") == date(2026, 1, 1)
    brand = plan_export(state, ExportRequest(brand_id="demo-brand", late_days=0), TODAY)
    assert brand.scan_from == brand.start("demo-brand") == date(2026, 12, 6)
    new = plan_export(state, ExportRequest(brand_id="new-brand"), TODAY)
    assert new.scan_from is None and new.start("new-brand") is None  # never exported: its whole history


# ---- runs --------------------------------------------------------------------------------------------------------


def _event(n: int, day: date, phone: str, event_type: str = "page_view", brand: str = BRAND) -> CanonicalEvent:
    properties = {"url": f"https://shop.example.cn/p/{n}?email=someone@example.cn"}
    if event_type == "custom":
        properties = {"name": "tapped_banner"}
    return parse_event(
        {
            "event_id": f"e-{n}",
            "source": "web",
            "brand_id": brand,
            "occurred_at": datetime(day.year, day.month, day.day, 10, tzinfo=UTC).isoformat(),
            "received_at": datetime(day.year, day.month, day.day, 10, 1, tzinfo=UTC).isoformat(),
            "event_type": event_type,
            "identifiers": [{"type": "phone", "value": phone}],
            "properties": properties,
        }
    )


def _anchor(phone_key: str, brand: str = BRAND) -> str:
    return keys.anchor_pk(OrgDirectory().brand(brand).namespace, phone_key)


class World:
    """Persons and their filed events, as the profile store would hold them."""

    def __init__(self) -> None:
        self.source = InMemoryWarehouseSource()
        self.objects = InMemoryWarehouseObjects()
        self.n = 0

    def person(self, person_id: str, phone: str, brand: str = BRAND) -> str:
        key = f"phone:+86{phone}"
        profile = Profile(person_id=person_id, brand_id=brand, created_at=NOW, updated_at=NOW, identifiers=[key])
        profile.tags = {"lifecycle": TagValue(value="growth", since=NOW)}
        self.source.persons[person_id] = PersonItem(profile, (_anchor(key, brand),))
        return key

    def file(self, phone: str, day: date, event_type: str = "page_view", brand: str = BRAND) -> CanonicalEvent:
        self.n += 1
        event = _event(self.n, day, phone, event_type, brand)
        self.source.events.append(FiledEventItem(_anchor(f"phone:+86{phone}", brand), event))
        return event

    def run(
        self, tmp: Path, request: ExportRequest | None = None, now: datetime = NOW, org: OrgDirectory | None = None
    ) -> ExportReport:
        work = tmp / f"run-{len(self.source.scans)}"
        work.mkdir()
        with DuckDbTableWriter(work) as writer:
            return export_warehouse(
                request or ExportRequest(), self.source, self.objects, writer, org or OrgDirectory(), now, work
            )

    def rows(self, tmp: Path, prefix: str) -> list[dict[str, object]]:
        out = tmp / f"read-{len(list(tmp.iterdir()))}"
        out.mkdir()
        paths = []
        for n, key in enumerate(self.objects.keys(prefix)):
            if key.endswith(".parquet"):
                paths.append(out / f"{n}.parquet")
                paths[-1].write_bytes(self.objects.objects[key])
        if not paths:
            return []
        with duckdb.connect() as con:
            cursor = con.execute("SELECT * FROM read_parquet(?)", [[str(p) for p in paths]])
            names = [d[0] for d in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.fixture
def world() -> Iterator[World]:
    yield World()


DAY1, DAY2, DAY3 = date(2026, 11, 1), date(2026, 12, 5), date(2026, 12, 6)


def test_a_full_run_writes_snapshots_and_one_partition_per_day(world: World, tmp_path: Path) -> None:
    # Given two persons with events on three days, an event filed under no one's identifier, and one event filed
    # twice under the same person's identifiers
    world.person("p-a", "13800000001")
    world.person("p-b", "13800000002")
    world.file("13800000001", DAY1)
    twice = world.file("13800000001", DAY2, "custom")
    world.source.events.append(FiledEventItem(_anchor("phone:+8613800000001"), twice))
    world.file("13800000002", DAY3)
    world.file("13999999999", DAY3)  # a quarantined or erased identifier: no current person holds it
    # When the first run exports
    report = world.run(tmp_path)
    # Then every person is in the profile and tag snapshots, and each day has its partition with its events
    assert report.scan_from is None and report.persons_scanned == 2
    assert sorted(r["person_id"] for r in world.rows(tmp_path, PROFILES.prefix)) == ["p-a", "p-b"]
    assert [r["tag"] for r in world.rows(tmp_path, TAGS.prefix)] == ["lifecycle", "lifecycle"]
    for day, expected in ((DAY1, ["p-a"]), (DAY2, ["p-a"]), (DAY3, ["p-b"])):
        rows = world.rows(tmp_path, day_prefix(BRAND, day))
        assert [r["person_id"] for r in rows] == expected, day
    assert report.tables["events"].rows == 3 and report.brands[BRAND].days_written == 3
    # And the URL lost its query string, and the watermark is today
    (page,) = world.rows(tmp_path, day_prefix(BRAND, DAY1))
    assert page["url"] == "https://shop.example.cn/p/1"
    assert read_state(world.objects).brands[BRAND].exported_through == TODAY


def test_an_incremental_run_rewrites_only_recent_days_and_a_rerun_replaces_them(world: World, tmp_path: Path) -> None:
    world.person("p-a", "13800000001")
    world.file("13800000001", DAY1)
    world.file("13800000001", DAY3)
    world.run(tmp_path)
    old_day = world.objects.keys(day_prefix(BRAND, DAY1))
    before = dict(world.objects.objects)
    # Given a new event today, one two days late, and one a month late (a history import)
    world.file("13800000001", TODAY)
    world.file("13800000001", DAY2)
    world.file("13800000001", DAY1 - timedelta(days=5))
    # When the next night's run exports (late_days 3: from 3 days before the watermark)
    report = world.run(tmp_path, now=NOW + timedelta(days=1))
    # Then it read from that day on, and wrote those days only; the old day was not touched
    assert report.scan_from == TODAY - timedelta(days=3) and world.source.scans[-1][0] == report.scan_from
    assert {k for k in world.objects.uploads[-report.tables["events"].files :]} == {
        f"{day_prefix(BRAND, d)}part-0.parquet" for d in (DAY2, DAY3, TODAY)
    }
    assert world.objects.keys(day_prefix(BRAND, DAY1)) == old_day
    assert world.objects.objects[old_day[0]] == before[old_day[0]]
    assert world.rows(tmp_path, day_prefix(BRAND, DAY1 - timedelta(days=5))) == []  # outside the window
    # When the same day is exported again / Then its partition is replaced (one file, the same rows), not added to
    rows = world.rows(tmp_path, day_prefix(BRAND, DAY3))
    world.run(tmp_path, ExportRequest(since=DAY3), now=NOW + timedelta(days=1))
    assert world.objects.keys(day_prefix(BRAND, DAY3)) == [f"{day_prefix(BRAND, DAY3)}part-0.parquet"]
    assert world.rows(tmp_path, day_prefix(BRAND, DAY3)) == rows
    # And a re-export from an earlier day picks the month-late event up
    world.run(tmp_path, ExportRequest(since=DAY1 - timedelta(days=5)), now=NOW + timedelta(days=1))
    assert len(world.rows(tmp_path, day_prefix(BRAND, DAY1 - timedelta(days=5)))) == 1


def test_a_day_whose_events_are_gone_loses_its_files_and_stale_parts_go(world: World, tmp_path: Path) -> None:
    world.person("p-a", "13800000001")
    world.file("13800000001", DAY3)
    world.run(tmp_path)
    # Given a stale extra part in a day the run rewrites, and the day's only event gone from the store
    world.objects.objects[f"{day_prefix(BRAND, DAY3)}part-7.parquet"] = b"stale"
    world.source.events.clear()
    # When it is rewritten / Then the day has no file left
    report = world.run(tmp_path, ExportRequest(since=DAY3))
    assert world.objects.keys(day_prefix(BRAND, DAY3)) == []
    assert report.brands[BRAND].days_emptied == 1 and report.objects_deleted == 2


def test_an_erasure_request_empties_the_person_out_of_every_file_and_is_dropped(world: World, tmp_path: Path) -> None:
    # Given two persons sharing an old day, exported
    world.person("p-a", "13800000001")
    world.person("p-b", "13800000002")
    world.file("13800000001", DAY1)
    world.file("13800000002", DAY1)
    world.file("13800000001", DAY3)
    world.run(tmp_path)
    # When p-a is erased (the store forgets them; privacy leaves a request with their days) and the next run exports
    del world.source.persons["p-a"]
    world.source.events = [e for e in world.source.events if "13800000001" not in e.anchor]
    request = erasure_request("p-a", ["p-a"], BRAND, NOW, [(BRAND, DAY1), (BRAND, DAY3)])
    world.objects.write(request.key, request.model_dump_json().encode())
    report = world.run(tmp_path, now=NOW + timedelta(days=1))
    # Then p-a is in no snapshot and no day, p-b's rows stay, and the request is gone
    assert report.erasures_applied == 1 and report.erasure_partitions_rewritten == 1 and report.erased_rows_removed == 1
    assert [r["person_id"] for r in world.rows(tmp_path, PROFILES.prefix)] == ["p-b"]
    assert [r["person_id"] for r in world.rows(tmp_path, day_prefix(BRAND, DAY1))] == ["p-b"]
    assert world.objects.keys(day_prefix(BRAND, DAY3)) == []  # in the run's window: rewritten from the store
    assert world.objects.keys(request.key) == []
    all_rows = world.rows(tmp_path, EVENTS.prefix) + world.rows(tmp_path, TAGS.prefix)
    assert "p-a" not in {r["person_id"] for r in all_rows}


def test_a_person_still_in_the_store_while_erased_is_left_out_of_what_the_run_writes(
    world: World, tmp_path: Path
) -> None:
    # Given an erasure request for a person the scan still saw (erased while the run was reading)
    world.person("p-a", "13800000001")
    world.file("13800000001", DAY3)
    request = erasure_request("p-a", ["p-a", "p-old"], BRAND, NOW, [(BRAND, DAY3)])
    world.objects.write(request.key, request.model_dump_json().encode())
    # When the run exports / Then nothing of theirs is written
    world.run(tmp_path)
    assert world.rows(tmp_path, PROFILES.prefix) == [] and world.rows(tmp_path, EVENTS.prefix) == []


def test_a_brand_run_leaves_other_brands_and_their_erasures_alone(world: World, tmp_path: Path) -> None:
    world.person("p-a", "13800000001")
    world.person("p-x", "13800000009", brand="other-brand")
    world.file("13800000001", DAY3)
    world.file("13800000009", DAY3, brand="other-brand")
    request = erasure_request("p-y", ["p-y"], "other-brand", NOW, [("other-brand", DAY1)])
    world.objects.write(request.key, request.model_dump_json().encode())
    # When only demo-brand is exported
    report = world.run(tmp_path, ExportRequest(brand_id=BRAND))
    # Then only its files and watermark are written, and the other brand's erasure waits for a run that covers it
    assert set(report.brands) == {BRAND} and world.source.scans == [(None, BRAND)]
    assert world.objects.keys("warehouse/profiles/brand_id=other-brand/") == []
    assert world.objects.keys(request.key) == [request.key]
    assert set(read_state(world.objects).brands) == {BRAND}
    assert STATE_KEY in world.objects.objects


def test_each_profile_row_says_whether_the_person_is_in_the_brands_global_control_group(
    world: World, tmp_path: Path
) -> None:
    # Given a brand holding 20% of its customers out of all marketing, and another brand holding none
    org = OrgDirectory.model_validate(
        {"brands": {BRAND: {"group_id": "g", "contact": {"global_control_share": 0.2}}, OTHER: {"group_id": "g"}}}
    )
    for n in range(20):
        world.person(f"p-{n}", f"138000000{n:02d}")
        world.person(f"q-{n}", f"139000000{n:02d}", brand=OTHER)
    # When the export runs
    world.run(tmp_path, org=org)
    held = {
        (brand, r["person_id"]): r["global_control"]
        for brand in (BRAND, OTHER)
        for r in world.rows(tmp_path, brand_prefix(PROFILES, brand))
    }
    # Then each row holds the contact policy's own answer for its brand and share (the stable hash the sends use)
    assert len(held) == 40
    for (brand, person), control in held.items():
        assert control is in_global_control(brand, person, 0.2 if brand == BRAND else 0.0), person
    # And the brand has persons on both sides (6 of these 20 ids hash under 0.2); the other brand none in control
    assert sum(1 for (b, _), c in held.items() if b == BRAND and c) == 6
    assert not any(c for (b, _), c in held.items() if b == OTHER)
