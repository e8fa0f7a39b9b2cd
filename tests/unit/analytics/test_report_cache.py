"""Report results kept per warehouse export (cdp.analytics.cache through `ReportQueries`), on a scripted engine that
counts the queries it runs and in-memory objects holding the export's state: a repeat over the same export runs
nothing, a new export run is never answered from what was kept before, and requests (brands, reports, periods,
parameters, report definitions) never share an entry."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any, ClassVar

import pytest

from cdp.analytics.cache import CachedResult, ReportCache, cache_key, query_sha256
from cdp.analytics.models import Period
from cdp.analytics.ports import QueryState
from cdp.analytics.reports import (
    QueryPending,
    ReportParameters,
    ReportRequest,
    ReportResult,
    ResultTable,
    results_prefix,
)
from cdp.analytics.service import ReportQueries
from cdp.app.analytics_api import AnalyticsApi
from cdp.errors import StoreError
from cdp.ingest.auth import ANALYTICS_READ_SCOPE, SCOPES
from cdp.ingest.ports import ApiClient
from cdp.org import OrgDirectory, ScopeRef
from cdp.warehouse.schema import STATE_KEY
from cdp.warehouse.service import BrandState, ExportState
from tests.fakes.analytics import FakeClock, ScriptedEngine
from tests.fakes.objects import InMemoryObjectStore

BRAND = "outlet:sh"
OTHER_BRAND = "acme"
NOW = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)
ADMIN = ApiClient("ops-admin", frozenset(SCOPES))
ANALYST = ApiClient("outlet-analyst", frozenset({ANALYTICS_READ_SCOPE}), ScopeRef(brand_id=BRAND))
COLUMNS = ("cohort", "cohort_size", "month_offset", "observed", "customers", "share")
BEFORE = ResultTable(COLUMNS, [("2026-01", 2, 0, 2, 2, 1.0), ("2026-01", 2, 1, 2, 1, 0.5)])
AFTER = ResultTable(COLUMNS, [("2026-01", 3, 0, 3, 3, 1.0), ("2026-01", 3, 1, 3, 2, 0.6667)])


class World:
    """The API over a scripted engine; `export` runs the warehouse export as far as the reports see it (its state)."""

    def __init__(self, states: tuple[Any, ...] = ("SUCCEEDED",), wait: float = 20.0) -> None:
        self.engine = ScriptedEngine(BEFORE, states)
        self.store = InMemoryObjectStore()
        self.clock = FakeClock()
        self.state = ExportState()
        queries = ReportQueries(
            self.engine, self.store, wait, now=lambda: NOW, monotonic=self.clock.monotonic, sleep=self.clock.sleep
        )
        self.api = AnalyticsApi(queries, OrgDirectory(), now=lambda: NOW)

    def export(self, *brands: str, at: datetime = NOW) -> None:
        """An export run over the brands: their files rewritten, then their state moved (as the run writes it)."""
        for brand in brands:
            held = self.state.brands.get(brand)
            self.state.brands[brand] = BrandState(
                exported_through=at.date(), last_run_at=at, runs=(held.runs if held else 0) + 1
            )
        self.store.put_bytes(STATE_KEY, self.state.model_dump_json().encode())

    @property
    def runs(self) -> int:
        """Queries the engine ran."""
        return len(self.engine.queries)

    def cohorts(self, client: ApiClient = ANALYST, **params: str) -> ReportResult:
        answer = self.api.report(client, "cohorts", params or None)
        assert isinstance(answer, ReportResult), answer
        return answer


def _cells(answer: ReportResult) -> list[tuple[Any, ...]]:
    return [(r.cohort, r.month_offset, r.customers, r.share) for r in answer.rows]  # type: ignore[union-attr]


def _kept_keys(world: World, brand: str, report: str = "cohorts") -> list[str]:
    return world.store.list_keys(f"{results_prefix(brand, report)}cache/")  # type: ignore[arg-type]


# ---- the same report over the same export ----------------------------------------------------------------------------


def test_a_repeat_of_the_same_report_over_the_same_export_runs_no_query() -> None:
    # Given the brand's warehouse exported by a run, and its cohorts asked for once
    world = World()
    world.export(BRAND)
    first = world.cohorts()
    assert world.runs == 1
    # When the same report is asked for again (by another caller of the brand too)
    again = world.cohorts()
    by_admin = world.cohorts(ADMIN, brand_id=BRAND)
    # Then no query ran: both are the first answer, naming the query that computed it (a poll reads the same rows)
    assert world.runs == 1
    assert again == first and by_admin == first
    polled = world.api.query(ANALYST, "cohorts", first.query_id, None)
    assert polled == first
    # And the result is kept under the brand's report prefix, next to the query's own files
    (key,) = _kept_keys(world, BRAND)
    assert key.startswith("analytics-results/outlet%3Ash/cohorts/cache/")


def test_a_new_export_run_is_never_answered_from_what_was_kept_before() -> None:
    # Given cohorts kept for the brand's export
    world = World()
    world.export(BRAND)
    before = world.cohorts()
    # When the next night's run writes new files (the engine now answers other rows) and moves the brand's state
    world.engine.table = AFTER
    world.export(BRAND, at=NOW.replace(day=7))
    after = world.cohorts()
    # Then the query ran again over them, and the answer is the new files'
    assert world.runs == 2
    assert after.query_id != before.query_id
    assert _cells(after) == [("2026-01", 0, 3, 1.0), ("2026-01", 1, 2, 0.6667)]
    # And that answer is the one kept from now on
    assert world.cohorts() == after and world.runs == 2
    # And a run of another brand moves nothing of this one's
    world.export(OTHER_BRAND, at=NOW.replace(day=8))
    assert world.cohorts() == after and world.runs == 2


def test_a_brand_no_export_run_vouches_for_is_never_kept() -> None:
    # Given no export run yet (files put there by hand are not known to change only with a run)
    world = World()
    # When the same report is asked for twice / Then it runs twice, and nothing is kept
    world.cohorts()
    world.cohorts()
    assert world.runs == 2 and _kept_keys(world, BRAND) == []
    # And a run of another brand does not vouch for this one
    world.export(OTHER_BRAND)
    world.cohorts()
    assert world.runs == 3


# ---- what never shares an entry --------------------------------------------------------------------------------------


def test_other_parameters_periods_and_reports_are_kept_apart() -> None:
    # Given the brand exported
    world = World()
    world.export(BRAND)
    asks: list[tuple[str, dict[str, str]]] = [
        ("cohorts", {}),
        ("cohorts", {"by": "channel"}),
        ("cohorts", {"max_offset": "3"}),
        ("cohorts", {"from": "2026-02-01"}),
        ("cohorts", {"to": "2026-11-30"}),
    ]
    # When each is asked for, the engine answering different rows each time
    answers = []
    for n, (report, params) in enumerate(asks):
        world.engine.table = ResultTable(COLUMNS, [("2026-01", n + 1, 0, n + 1, n + 1, 1.0)])
        answers.append(world.api.report(ANALYST, report, params or None))
    # Then each ran its own query
    assert world.runs == len(asks)
    assert len(_kept_keys(world, BRAND)) == len(asks)
    # And asked again, each is answered with its own rows, running nothing
    for (report, params), first in zip(asks, answers, strict=True):
        assert world.api.report(ANALYST, report, params or None) == first
    assert world.runs == len(asks)
    # And another report of the same brand and period is its own entry too
    world.engine.table = ResultTable(
        ("orders_at_least", "customers", "buyers", "share", "median_days_to_second"), [(1, 5, 5, 1.0, None)]
    )
    repeat = world.api.report(ANALYST, "repeat", None)
    assert isinstance(repeat, ReportResult) and world.runs == len(asks) + 1


def test_a_brand_never_gets_another_brands_kept_result() -> None:
    # Given both brands exported by the same run, and the outlet's cohorts kept
    world = World()
    world.export(BRAND, OTHER_BRAND)
    outlet = world.cohorts()
    # When the other brand asks for the same report and period
    world.engine.table = AFTER
    acme = world.cohorts(ADMIN, brand_id=OTHER_BRAND)
    # Then its own query ran, and it reads its own rows
    assert world.runs == 2
    assert acme.brand_id == OTHER_BRAND and _cells(acme) != _cells(outlet)
    # When the outlet's entry is copied where the other brand's would lie (a later export: nothing kept for it yet)
    world.export(OTHER_BRAND, at=NOW.replace(day=7))
    request = ReportRequest(
        report="cohorts",
        brand_id=OTHER_BRAND,
        period=Period(start=date(2026, 1, 1), end=date(2026, 12, 6)),
        parameters=ReportParameters(by="month", max_offset=12),
    )
    version = ReportCache(world.store).export_version(OTHER_BRAND)
    assert version is not None
    sha = query_sha256(world.engine.query_text(request))
    (outlet_key,) = _kept_keys(world, BRAND)
    world.store.put_bytes(cache_key(request, "athena", sha, version), world.store.get_bytes(outlet_key))
    world.engine.table = ResultTable(COLUMNS, [("2026-02", 7, 0, 7, 7, 1.0)])
    copied = world.cohorts(ADMIN, brand_id=OTHER_BRAND)
    # Then it is refused on what it says: the other brand's query ran and answered its rows
    assert world.runs == 3
    assert copied.brand_id == OTHER_BRAND and _cells(copied) == [("2026-02", 0, 7, 1.0)]


def test_a_changed_report_query_is_not_answered_from_the_old_one() -> None:
    # Given cohorts kept for the brand's export
    world = World()
    world.export(BRAND)
    world.cohorts()

    class Redefined(ScriptedEngine):  # a deployment whose cohorts SQL changed
        name: ClassVar = "athena"

        def query_text(self, request: ReportRequest) -> str:
            return "-- fixed\n" + super().query_text(request)

    engine = Redefined(AFTER)
    queries = ReportQueries(engine, world.store, 20.0, now=lambda: NOW, monotonic=world.clock.monotonic)
    # When the same report is asked for through it / Then its query runs
    answer = AnalyticsApi(queries, OrgDirectory(), now=lambda: NOW).report(ANALYST, "cohorts", None)
    assert isinstance(answer, ReportResult) and _cells(answer)[0] == ("2026-01", 0, 3, 1.0)
    assert len(engine.queries) == 1


# ---- queries that take longer, fail, or are unreadable ---------------------------------------------------------------


def test_a_query_answered_when_polled_is_kept_for_the_next_caller() -> None:
    # Given a query that outlasts the wait, polled until it answers
    world = World(states=("RUNNING", "RUNNING", "RUNNING", "SUCCEEDED"), wait=0.5)
    world.export(BRAND)
    pending = world.api.report(ANALYST, "cohorts", None)
    assert isinstance(pending, QueryPending)
    while isinstance(polled := world.api.query(ANALYST, "cohorts", pending.query_id, None), QueryPending):
        pass
    # When the report is asked for again / Then its rows at once, with no new query
    assert world.cohorts() == polled and world.runs == 1


def test_a_failed_query_is_not_kept() -> None:
    world = World(states=(QueryState("FAILED", "HIVE_BAD_DATA: Malformed Parquet file"),))
    world.export(BRAND)
    for _ in range(2):
        with pytest.raises(Exception, match="Malformed Parquet"):
            world.cohorts()
    assert world.runs == 2 and _kept_keys(world, BRAND) == []


def test_an_unreadable_entry_or_state_runs_the_query_and_never_fails_the_report() -> None:
    # Given a kept result made unreadable
    world = World()
    world.export(BRAND)
    first = world.cohorts()
    (key,) = _kept_keys(world, BRAND)
    world.store.put_bytes(key, b'{"not": "an entry"}')
    # When asked again / Then the query runs and its result is kept again
    assert _cells(world.cohorts()) == _cells(first) and world.runs == 2
    assert CachedResult.model_validate_json(world.store.get_bytes(key)).query_id != first.query_id
    # And an unreadable export state answers every report uncached
    world.store.put_bytes(STATE_KEY, b"{")
    world.cohorts()
    world.cohorts()
    assert world.runs == 4
    assert json.loads(world.store.get_bytes(key))["export_version"].startswith("run 1 at ")


def test_a_store_that_fails_to_keep_a_result_still_answers() -> None:
    class Failing(InMemoryObjectStore):
        def put_bytes(self, key: str, body: bytes, content_type: str = "application/json") -> None:
            if "/cache/" in key:
                raise StoreError("s3 is down")
            super().put_bytes(key, body, content_type)

    world = World()
    world.store = Failing()
    world.export(BRAND)
    queries = ReportQueries(world.engine, world.store, 20.0, now=lambda: NOW, monotonic=world.clock.monotonic)
    api = AnalyticsApi(queries, OrgDirectory(), now=lambda: NOW)
    for _ in range(2):
        assert isinstance(api.report(ANALYST, "cohorts", None), ReportResult)
    assert world.runs == 2
