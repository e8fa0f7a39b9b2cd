"""The analytics API (cdp.app.analytics_api) on a scripted engine and in-memory objects: each parameter parsed and
bounded (a 400 naming it), the default period, who may ask, the wait for a query and the answer while it runs, and
polls that find only the brand's own report queries."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from cdp.analytics.models import Period
from cdp.analytics.ports import QueryState
from cdp.analytics.reports import (
    MAX_ROWS,
    AnalyticsQueryError,
    QueryPending,
    QueryTicket,
    ReportResult,
    ResultTable,
    ticket_key,
)
from cdp.analytics.service import ReportQueries
from cdp.app.analytics_api import AnalyticsApi, period_of
from cdp.errors import ForbiddenError, InvalidInputError, NotFoundError
from cdp.ingest.auth import ANALYTICS_READ_SCOPE, SCOPES
from cdp.ingest.ports import ApiClient
from cdp.org import OrgDirectory, ScopeRef
from tests.fakes.analytics import FakeClock, ScriptedEngine
from tests.fakes.objects import InMemoryObjectStore

BRAND = "outlet:sh"
NOW = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)
ADMIN = ApiClient("ops-admin", frozenset(SCOPES))
ANALYST = ApiClient("outlet-analyst", frozenset({ANALYTICS_READ_SCOPE}), ScopeRef(brand_id=BRAND))
OTHER_ANALYST = ApiClient("acme-analyst", frozenset({ANALYTICS_READ_SCOPE}), ScopeRef(brand_id="acme"))
STORE_ANALYST = ApiClient("till", frozenset({ANALYTICS_READ_SCOPE}), ScopeRef(brand_id=BRAND, store_id="sh01"))
NO_SCOPE = ApiClient("crm", frozenset({"profiles:read"}), ScopeRef(brand_id=BRAND))
COHORTS = ResultTable(
    ("cohort", "cohort_size", "month_offset", "observed", "customers", "share"),
    [("2026-01", 2, 0, 2, 2, 1.0), ("2026-01", 2, 1, 2, 1, 0.5)],
)


class World:
    def __init__(self, table: ResultTable = COHORTS, states: tuple[Any, ...] = ("SUCCEEDED",), wait: float = 20.0):
        self.engine = ScriptedEngine(table, states)
        self.store = InMemoryObjectStore()
        self.clock = FakeClock()
        queries = ReportQueries(
            self.engine, self.store, wait, now=lambda: NOW, monotonic=self.clock.monotonic, sleep=self.clock.sleep
        )
        self.api = AnalyticsApi(queries, OrgDirectory(), now=lambda: NOW)


def _result(answer: ReportResult | QueryPending) -> ReportResult:
    assert isinstance(answer, ReportResult), answer
    return answer


# ---- a report, answered at once --------------------------------------------------------------------------------------


def test_a_report_that_finishes_at_once_answers_its_rows_and_keeps_its_request() -> None:
    world = World()
    # When the brand's analyst asks for cohorts with no parameter
    answer = _result(world.api.report(ANALYST, "cohorts", None))
    # Then the rows are the engine's, as cohort rows, for the 12 months through today from the 1st
    assert answer.period == Period(start=date(2026, 1, 1), end=date(2026, 12, 6))
    assert [(r.cohort, r.month_offset, r.customers, r.share) for r in answer.rows] == [  # type: ignore[union-attr]
        ("2026-01", 0, 2, 1.0),
        ("2026-01", 1, 1, 0.5),
    ]
    assert (answer.brand_id, answer.engine, answer.flows) == (BRAND, "athena", None)
    assert answer.parameters.by == "month" and answer.parameters.max_offset == 12
    # And the query ran once with those parameters, its request kept beside its result under the brand's prefix
    (started,) = world.engine.started
    assert started.parameters == answer.parameters and started.period == answer.period
    key = ticket_key(BRAND, "cohorts", answer.query_id)
    assert key == f"analytics-results/outlet%3Ash/cohorts/{answer.query_id}.request.json"
    ticket = QueryTicket.model_validate_json(world.store.get_bytes(key))
    assert (ticket.request, ticket.client, ticket.started_at) == (started, "outlet-analyst", NOW)
    assert world.clock.pauses == []  # it was done at the first look


@pytest.mark.parametrize(
    ("report", "params", "expected"),
    [
        ("cohorts", {"by": "channel", "max_offset": "0"}, {"by": "channel", "max_offset": 0}),
        ("cohorts", {"max_offset": "120"}, {"by": "month", "max_offset": 120}),
        ("repeat", {}, {"max_orders": 5}),
        ("repeat", {"max_orders": "50"}, {"max_orders": 50}),
        ("lifecycle", {}, {}),
        ("channels", {}, {"by": "channel", "window_days": 30}),
        ("channels", {"by": "campaign", "window_days": "365"}, {"by": "campaign", "window_days": 365}),
    ],
)
def test_each_report_takes_its_own_parameters_with_their_defaults(
    report: str, params: dict[str, str], expected: dict[str, Any]
) -> None:
    table = ResultTable(("row_kind", "month", "from_stage", "to_stage", "persons"), [])
    world = World(table if report == "lifecycle" else ResultTable((), []))
    answer = _result(world.api.report(ANALYST, report, {**params, "brand_id": BRAND}))
    assert answer.parameters.model_dump(exclude_none=True) == expected
    assert world.engine.started[0].sql("duckdb")  # the parameters make a query


def test_the_lifecycle_answers_its_stages_as_rows_and_its_flows_apart() -> None:
    table = ResultTable(
        ("row_kind", "month", "from_stage", "to_stage", "persons"),
        [
            ("stage", "2026-01", None, "growth", 2),
            ("flow", "2026-01", None, "growth", 1),
            ("flow", "2026-01", "introduction", "growth", 1),
        ],
    )
    answer = _result(World(table).api.report(ANALYST, "lifecycle", {"from": "2026-01-01", "to": "2026-01-31"}))
    assert [(r.month, r.stage, r.persons) for r in answer.rows] == [("2026-01", "growth", 2)]  # type: ignore[union-attr]
    assert [(f.from_stage, f.to_stage, f.persons) for f in answer.flows or []] == [
        (None, "growth", 1),
        ("introduction", "growth", 1),
    ]


def test_more_rows_than_an_answer_holds_is_a_refusal_naming_the_period() -> None:
    table = ResultTable(COHORTS.columns, [COHORTS.rows[0]] * (MAX_ROWS + 1))
    with pytest.raises(AnalyticsQueryError, match="shorter period") as refused:
        World(table).api.report(ANALYST, "cohorts", None)
    assert refused.value.code == "too_many_rows"


# ---- the period ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (None, None, (date(2026, 1, 1), date(2026, 12, 6))),  # 12 calendar months through today
        (None, "2026-03-15", (date(2025, 4, 1), date(2026, 3, 15))),  # ... through `to`, over a year's end
        ("2026-11-20", None, (date(2026, 11, 20), date(2026, 12, 6))),  # through today
        ("2026-02-01", "2026-02-01", (date(2026, 2, 1), date(2026, 2, 1))),  # one day
        (None, "1970-06-30", (date(1970, 1, 1), date(1970, 6, 30))),  # not before the first day an event can have
        ("2007-01-01", "2026-12-31", (date(2007, 1, 1), date(2026, 12, 31))),  # 240 months
    ],
)
def test_the_period_defaults_to_the_twelve_months_through_today(
    start: str | None, end: str | None, expected: tuple[date, date]
) -> None:
    period = period_of(start, end, NOW.date())
    assert (period.start, period.end) == expected


# ---- hostile parameters: a 400 naming each ---------------------------------------------------------------------------

HOSTILE: list[tuple[str, dict[str, str], str]] = [
    ("cohort", {}, "report"),
    ("../warehouse", {}, "report"),
    ("", {}, "report"),
    ("COHORTS", {}, "report"),
    ("cohorts", {"from": "2026-13-01"}, "from"),
    ("cohorts", {"from": "2026-02-30"}, "from"),
    ("cohorts", {"from": "20260101"}, "from"),  # ISO, but not the day form asked for
    ("cohorts", {"to": "2026-W01-1"}, "to"),
    ("cohorts", {"to": ""}, "to"),
    ("cohorts", {"to": "2026-01-01T00:00:00Z"}, "to"),
    ("cohorts", {"from": "1969-12-31"}, "from"),
    ("cohorts", {"to": "2100-01-01"}, "to"),
    ("cohorts", {"from": "2026-03-01", "to": "2026-02-28"}, "from"),
    ("cohorts", {"from": "2000-01-01", "to": "2026-12-31"}, "from"),  # over 240 months
    ("cohorts", {"max_offset": "121"}, "max_offset"),
    ("cohorts", {"max_offset": "-1"}, "max_offset"),
    ("cohorts", {"max_offset": "1e2"}, "max_offset"),
    ("cohorts", {"max_offset": "99999999999999999999"}, "max_offset"),
    ("cohorts", {"by": "week"}, "by"),
    ("cohorts", {"by": "campaign"}, "by"),  # a channels grouping, not a cohorts one
    ("cohorts", {"max_orders": "5"}, "max_orders"),  # the repeat report's
    ("repeat", {"max_orders": "0"}, "max_orders"),
    ("repeat", {"max_orders": "51"}, "max_orders"),
    ("repeat", {"by": "month"}, "by"),
    ("lifecycle", {"window_days": "30"}, "window_days"),
    ("channels", {"window_days": "0"}, "window_days"),
    ("channels", {"window_days": "366"}, "window_days"),
    ("channels", {"by": "month"}, "by"),
    ("channels", {"brand": BRAND}, "brand"),  # a typo of brand_id is not ignored
    ("programme", {"by": "month"}, "by"),  # the programme takes no parameter of its own
    ("programme", {"window_days": "30"}, "window_days"),
    ("programme", {"from": "2026-02-30"}, "from"),
    ("cohorts", {"brand_id": "not a brand"}, "brand_id"),
]


@pytest.mark.parametrize(("report", "params", "field"), HOSTILE)
def test_a_bad_parameter_is_a_400_naming_it_and_starts_nothing(report: str, params: dict[str, str], field: str) -> None:
    world = World()
    with pytest.raises(InvalidInputError) as refused:
        world.api.report(ANALYST, report, params)
    assert refused.value.location == field, refused.value.message
    assert world.engine.started == [] and len(world.store) == 0


# ---- who may ask -----------------------------------------------------------------------------------------------------


def test_only_a_key_with_the_scope_that_holds_the_whole_brand_may_ask() -> None:
    world = World()
    # Given a key without analytics:read, a store's key, and another brand's key / Then 403, nothing started
    for client, params in ((NO_SCOPE, None), (STORE_ANALYST, None), (OTHER_ANALYST, {"brand_id": BRAND})):
        with pytest.raises(ForbiddenError):
            world.api.report(client, "cohorts", params)
    # And the scope is checked before the report's name, so a stranger learns nothing from it
    with pytest.raises(ForbiddenError):
        world.api.report(NO_SCOPE, "nonsense", None)
    # And a key limited to no brand names the brand
    with pytest.raises(InvalidInputError) as refused:
        world.api.report(ADMIN, "cohorts", None)
    assert refused.value.location == "brand_id"
    assert world.engine.started == []
    assert _result(world.api.report(ADMIN, "cohorts", {"brand_id": BRAND})).brand_id == BRAND


# ---- waiting, and polling --------------------------------------------------------------------------------------------


def test_a_report_waits_for_its_query_backing_off_up_to_a_second() -> None:
    world = World(states=("QUEUED", "RUNNING", "RUNNING", "RUNNING", "RUNNING", "SUCCEEDED"))
    answer = _result(world.api.report(ANALYST, "cohorts", None))
    assert len(answer.rows) == 2
    assert world.clock.pauses == [0.2, 0.4, 0.8, 1.0, 1.0]


def test_a_query_that_outlasts_the_wait_is_answered_pending_then_polled_to_its_rows() -> None:
    world = World(states=("RUNNING",) * 8 + ("SUCCEEDED",), wait=2.5)
    # When the report is asked for / Then after the wait (never past it) the query to poll, where to poll it
    pending = world.api.report(ANALYST, "cohorts", {"by": "channel", "from": "2026-01-01", "to": "2026-04-30"})
    assert isinstance(pending, QueryPending)
    assert sum(world.clock.pauses) == pytest.approx(2.5)
    assert (pending.status, pending.report, pending.brand_id) == ("running", "cohorts", BRAND)
    assert pending.location == f"/v1/analytics/cohorts/queries/{pending.query_id}?brand_id=outlet%3Ash"
    # When it is polled while it runs / Then still pending; once done / Then the rows, with the period and
    # parameters it started with
    while isinstance(
        polled := world.api.query(ANALYST, "cohorts", pending.query_id, {"brand_id": BRAND}), QueryPending
    ):
        assert polled.query_id == pending.query_id
    assert polled.period == Period(start=date(2026, 1, 1), end=date(2026, 4, 30))
    assert (polled.parameters.by, polled.query_id, len(polled.rows)) == ("channel", pending.query_id, 2)


def test_a_failed_or_cancelled_query_says_why() -> None:
    failed = World(states=(QueryState("FAILED", "HIVE_BAD_DATA: Malformed Parquet file"),))
    with pytest.raises(AnalyticsQueryError, match="Malformed Parquet") as refused:
        failed.api.report(ANALYST, "repeat", None)
    assert refused.value.code == "query_failed"
    # And polling it again says the same
    (query_id,) = failed.engine.queries
    with pytest.raises(AnalyticsQueryError, match="Malformed Parquet"):
        failed.api.query(ANALYST, "repeat", query_id, None)
    cancelled = World(states=(QueryState("CANCELLED", "Query exhausted resources at this scale factor"),))
    with pytest.raises(AnalyticsQueryError) as refused:
        cancelled.api.report(ANALYST, "repeat", None)
    assert refused.value.code == "query_cancelled" and "exhausted" in refused.value.message


def test_a_poll_finds_only_the_brands_own_query_of_that_report() -> None:
    world = World(states=("RUNNING",), wait=0.5)
    pending = world.api.report(ANALYST, "cohorts", None)
    assert isinstance(pending, QueryPending)
    query_id = pending.query_id
    # Given the outlet's running cohorts query / Then the outlet polls it
    assert isinstance(world.api.query(ANALYST, "cohorts", query_id, {"brand_id": BRAND}), QueryPending)
    # When another brand's analyst polls it under their brand (or an admin under theirs), or the outlet polls it as
    # another report / Then 404, as for an unknown id
    for client, report, params in (
        (OTHER_ANALYST, "cohorts", None),
        (ADMIN, "cohorts", {"brand_id": "acme"}),
        (ANALYST, "repeat", None),
    ):
        with pytest.raises(NotFoundError):
            world.api.query(client, report, query_id, params)
    with pytest.raises(NotFoundError):
        world.api.query(ANALYST, "cohorts", "0b0e6f5c-1d1e-4c8e-9a65-7c1b2c3d4e5f", None)
    # And another brand's key naming the outlet is a 403 before anything is looked up
    with pytest.raises(ForbiddenError):
        world.api.query(OTHER_ANALYST, "cohorts", query_id, {"brand_id": BRAND})


def test_a_ticket_moved_under_another_brand_is_still_not_theirs() -> None:
    world = World(states=("RUNNING",), wait=0.5)
    pending = world.api.report(ANALYST, "cohorts", None)
    assert isinstance(pending, QueryPending)
    # Given the outlet's request copied under acme's prefix (the engine's own check aside)
    body = world.store.get_bytes(ticket_key(BRAND, "cohorts", pending.query_id))
    world.store.put_bytes(ticket_key("acme", "cohorts", pending.query_id), body)
    # Then acme's poll is refused on what the request says
    with pytest.raises(NotFoundError):
        world.api.query(OTHER_ANALYST, "cohorts", pending.query_id, None)
    assert json.loads(body)["request"]["brand_id"] == BRAND


@pytest.mark.parametrize(
    ("query_id", "params", "field"),
    [
        ("not-a-query", None, "query_id"),
        ("0B0E6F5C-1D1E-4C8E-9A65-7C1B2C3D4E5F", None, "query_id"),
        ("../../warehouse/_state.json", None, "query_id"),
        ("0b0e6f5c-1d1e-4c8e-9a65-7c1b2c3d4e5f", {"from": "2026-01-01"}, "from"),
    ],
)
def test_a_bad_query_id_or_a_parameter_on_a_poll_is_a_400(
    query_id: str, params: dict[str, str] | None, field: str
) -> None:
    with pytest.raises(InvalidInputError) as refused:
        World().api.query(ANALYST, "cohorts", query_id, params)
    assert refused.value.location == field


# ---- the engine setting -------------------------------------------------------------------------------------------


def test_the_engine_is_chosen_explicitly_and_athena_needs_its_workgroup_and_database() -> None:
    from pydantic import ValidationError

    from cdp.settings import AnalyticsApiSettings

    base = {"POWERTOOLS_SERVICE_NAME": "cdp-analytics-api", "DATA_BUCKET": "cdp-data", "API_KEYS_SECRET_ID": "keys"}
    athena = {
        "ANALYTICS_ENGINE": "athena",
        "ANALYTICS_WORKGROUP": "cdp_analytics",
        "WAREHOUSE_DATABASE": "cdp_warehouse",
    }
    # Given no engine, an unknown one, Athena without its workgroup, or a wait past API Gateway's / Then refused
    for bad in (
        {},
        {"ANALYTICS_ENGINE": "presto"},
        {"ANALYTICS_ENGINE": "athena"},
        {**athena, "ANALYTICS_WAIT_SECONDS": "30"},
    ):
        with pytest.raises(ValidationError):
            AnalyticsApiSettings.model_validate({**base, **bad})
    # And Athena with both, or DuckDB alone, is read with the defaults
    settings = AnalyticsApiSettings.model_validate({**base, **athena})
    assert (settings.analytics_wait_seconds, settings.analytics_duckdb_max_mb) == (20.0, 512)
    local = AnalyticsApiSettings.model_validate(
        {**base, "ANALYTICS_ENGINE": "duckdb", "ANALYTICS_DUCKDB_MAX_MB": "0.5"}
    )
    assert (local.analytics_engine, local.analytics_duckdb_max_mb) == ("duckdb", 0.5)
