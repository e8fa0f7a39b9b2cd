"""The Athena engine (cdp.analytics.athena) on moto, whose Athena runs no SQL: its results are queued through moto's
documented API (`POST /moto-api/static/athena/query-results`), in the shape Athena answers (every value as text, NULL
as no value, the header as the first row). What is checked is ours: the SQL sent, the workgroup, database and
result location under the brand's and report's prefix, the rows parsed into the report's models, the wait while
Athena says QUEUED/RUNNING (moto's manual state progression), polls confined to the brand's prefix. A failed query
and results over several pages (which moto does not produce) go through botocore's Stubber."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from moto.moto_api import state_manager

from cdp import topology
from cdp.analytics.athena import AthenaQueryEngine
from cdp.analytics.models import Period
from cdp.analytics.reports import AnalyticsQueryError, QueryPending, ReportRequest, ReportResult, results_prefix
from cdp.analytics.service import ReportQueries
from cdp.app.analytics_api import AnalyticsApi
from cdp.errors import NotFoundError
from cdp.ingest.auth import ANALYTICS_READ_SCOPE
from cdp.ingest.ports import ApiClient
from cdp.org import OrgDirectory, ScopeRef
from cdp.shared.aws import S3ObjectStore
from tests.fakes.analytics import (
    CHANNEL_COLUMNS,
    CHANNEL_ROWS,
    FakeClock,
    athena_column,
    athena_row,
    queue_athena_result,
)

BUCKET = topology.DATA_BUCKET_LOCAL_NAME
WORKGROUP = "cdp_analytics"
DATABASE = "cdp_warehouse"
BRAND = "outlet:sh"
NOW = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)
ANALYST = ApiClient("outlet-analyst", frozenset({ANALYTICS_READ_SCOPE}), ScopeRef(brand_id=BRAND))
ACME = ApiClient("acme-analyst", frozenset({ANALYTICS_READ_SCOPE}), ScopeRef(brand_id="acme"))


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any]]:
    with mock_aws():
        s3, athena = boto3.client("s3"), boto3.client("athena")
        s3.create_bucket(Bucket=BUCKET)
        athena.create_work_group(
            Name=WORKGROUP,
            Configuration={"ResultConfiguration": {"OutputLocation": f"s3://{BUCKET}/analytics-results/"}},
        )
        yield s3, athena
        state_manager.unset_transition("athena::execution")


def _api(s3: Any, athena: Any, clock: FakeClock | None = None, wait: float = 20.0) -> AnalyticsApi:
    clock = clock or FakeClock()
    engine = AthenaQueryEngine(BUCKET, WORKGROUP, DATABASE, client=athena)
    queries = ReportQueries(
        engine, S3ObjectStore(BUCKET, s3), wait, now=lambda: NOW, monotonic=clock.monotonic, sleep=clock.sleep
    )
    return AnalyticsApi(queries, OrgDirectory(), now=lambda: NOW)


def test_a_report_runs_the_athena_sql_in_the_workgroup_and_parses_athenas_text(aws: tuple[Any, Any]) -> None:
    s3, athena = aws
    queue_athena_result(CHANNEL_ROWS, CHANNEL_COLUMNS)
    params = {"by": "campaign", "window_days": "30", "from": "2026-01-01", "to": "2026-04-30"}
    # When the channels report is asked for by campaign
    answer = _api(s3, athena).report(ANALYST, "channels", params)
    # Then the rows are Athena's, typed: numbers as numbers, the NULL key as None, the header row left out
    assert isinstance(answer, ReportResult) and answer.engine == "athena"
    assert [(r.key, r.reached, r.converted, r.lost) for r in answer.rows] == [  # type: ignore[union-attr]
        ("c1", 3, 2, 1),
        ("c2", 4, 2, 0),
        (None, 2, 1, 0),
    ]
    # And Athena ran exactly the report's Athena SQL, in the workgroup and database, its result under the brand's and
    # the report's prefix of the data bucket, encrypted
    execution = athena.get_query_execution(QueryExecutionId=answer.query_id)["QueryExecution"]
    request = ReportRequest(
        report="channels",
        brand_id=BRAND,
        period=Period(start=date(2026, 1, 1), end=date(2026, 4, 30)),
        parameters=answer.parameters,
    )
    assert execution["Query"] == request.sql("athena", DATABASE)
    assert '"cdp_warehouse"."events"' in execution["Query"] and "brand_id = 'outlet%3Ash'" in execution["Query"]
    assert execution["WorkGroup"] == WORKGROUP
    assert execution["QueryExecutionContext"] == {"Catalog": "AwsDataCatalog", "Database": DATABASE}
    prefix = f"s3://{BUCKET}/{results_prefix(BRAND, 'channels')}"
    assert prefix == f"s3://{BUCKET}/analytics-results/outlet%3Ash/channels/"
    assert execution["ResultConfiguration"]["OutputLocation"] == f"{prefix}{answer.query_id}.csv"
    assert execution["ResultConfiguration"]["EncryptionConfiguration"] == {"EncryptionOption": "SSE_S3"}
    # And the query's request sits beside Athena's result (moto writes the CSV where Athena would)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=results_prefix(BRAND, "channels"))["Contents"]}
    assert keys == {
        f"{results_prefix(BRAND, 'channels')}{answer.query_id}.request.json",
        f"{results_prefix(BRAND, 'channels')}{answer.query_id}.csv",
    }


def test_a_query_still_running_after_the_wait_is_pending_and_polled_until_done(aws: tuple[Any, Any]) -> None:
    s3, athena = aws
    # Given Athena that keeps a query QUEUED, then RUNNING, for a few looks each
    state_manager.set_transition("athena::execution", {"progression": "manual", "times": 3})
    queue_athena_result(
        [
            athena_row("orders_at_least", "customers", "buyers", "share", "median_days_to_second"),
            athena_row("1", "5", "5", "1.0", None),
        ],
        [
            athena_column("orders_at_least", "integer"),
            athena_column("customers", "bigint"),
            athena_column("buyers", "bigint"),
            athena_column("share", "double"),
            athena_column("median_days_to_second", "double"),
        ],
    )
    clock = FakeClock()
    api = _api(s3, athena, clock, wait=0.1)
    # When the report is asked for with a tenth of a second to wait / Then a pending query, after waiting no longer
    pending = api.report(ANALYST, "repeat", {"max_orders": "1"})
    assert isinstance(pending, QueryPending) and pending.status == "queued"
    assert clock.pauses == [0.1]
    # When it is polled / Then running, then its rows (the NULL median as None)
    seen = []
    while isinstance(polled := api.query(ANALYST, "repeat", pending.query_id, None), QueryPending):
        seen.append(polled.status)
    assert "running" in seen
    assert [(r.orders_at_least, r.customers, r.share, r.median_days_to_second) for r in polled.rows] == [  # type: ignore[union-attr]
        (1, 5, 1.0, None)
    ]
    # And another brand polling the same id under their brand finds nothing
    with pytest.raises(NotFoundError):
        api.query(ACME, "repeat", pending.query_id, None)


def test_the_engine_knows_only_its_workgroups_queries_under_the_prefix(aws: tuple[Any, Any]) -> None:
    _, athena = aws
    engine = AthenaQueryEngine(BUCKET, WORKGROUP, DATABASE, client=athena)
    mine = results_prefix(BRAND, "cohorts")
    # Given a query some other tool ran in the primary workgroup, and one of ours under the outlet's prefix
    other = athena.start_query_execution(
        QueryString="SELECT 1", ResultConfiguration={"OutputLocation": f"s3://{BUCKET}/{mine}"}
    )["QueryExecutionId"]
    request = ReportRequest(
        report="cohorts", brand_id=BRAND, period=Period(start=date(2026, 1, 1), end=date(2026, 1, 31))
    )
    ours = engine.start(request, mine)
    # Then ours is found under its prefix only; the other tool's query is unknown even under that prefix
    assert engine.state(ours, mine).status == "SUCCEEDED"
    for query_id, prefix in ((ours, results_prefix("acme", "cohorts")), (ours, results_prefix(BRAND, "repeat"))):
        with pytest.raises(NotFoundError):
            engine.state(query_id, prefix)
    with pytest.raises(NotFoundError):
        engine.state(other, mine)


# ---- what moto does not do: a failed query, results over pages ------------------------------------------------


def _execution(query_id: str, state: str, prefix: str, **status: Any) -> dict[str, Any]:
    return {
        "QueryExecution": {
            "QueryExecutionId": query_id,
            "WorkGroup": WORKGROUP,
            "ResultConfiguration": {"OutputLocation": f"s3://{BUCKET}/{prefix}{query_id}.csv"},
            "Status": {"State": state, **status},
        }
    }


def test_a_failed_query_says_athenas_reason_and_an_unknown_id_is_not_found() -> None:
    athena = boto3.client("athena", region_name="us-east-1")
    engine = AthenaQueryEngine(BUCKET, WORKGROUP, DATABASE, client=athena)
    prefix = results_prefix(BRAND, "cohorts")
    query_id = "0b0e6f5c-1d1e-4c8e-9a65-7c1b2c3d4e5f"
    failed = _execution(
        query_id,
        "FAILED",
        prefix,
        StateChangeReason="HIVE_CANNOT_OPEN_SPLIT",
        AthenaError={"ErrorCategory": 2, "ErrorMessage": "HIVE_CANNOT_OPEN_SPLIT: Error opening Hive split"},
    )
    with Stubber(athena) as stub:
        stub.add_response("get_query_execution", failed, {"QueryExecutionId": query_id})
        stub.add_client_error(
            "get_query_execution",
            "InvalidRequestException",
            "QueryExecution 1b0e6f5c-1d1e-4c8e-9a65-7c1b2c3d4e5f was not found",
            400,
        )
        state = engine.state(query_id, prefix)
        assert (state.status, state.reason) == ("FAILED", "HIVE_CANNOT_OPEN_SPLIT: Error opening Hive split")
        with pytest.raises(NotFoundError):
            engine.state("1b0e6f5c-1d1e-4c8e-9a65-7c1b2c3d4e5f", prefix)


def test_a_workgroup_that_refuses_the_query_is_a_refusal_not_an_outage() -> None:
    athena = boto3.client("athena", region_name="us-east-1")
    engine = AthenaQueryEngine(BUCKET, WORKGROUP, DATABASE, client=athena)
    request = ReportRequest(
        report="repeat", brand_id=BRAND, period=Period(start=date(2026, 1, 1), end=date(2026, 1, 31))
    )
    with Stubber(athena) as stub:
        stub.add_client_error("start_query_execution", "InvalidRequestException", "WorkGroup cdp_analytics is disabled")
        with pytest.raises(AnalyticsQueryError, match="disabled") as refused:
            engine.start(request, results_prefix(BRAND, "repeat"))
    assert refused.value.code == "query_refused"


def test_results_are_read_page_by_page_with_the_header_only_on_the_first() -> None:
    athena = boto3.client("athena", region_name="us-east-1")
    engine = AthenaQueryEngine(BUCKET, WORKGROUP, DATABASE, client=athena)
    prefix = results_prefix(BRAND, "channels")
    query_id = "0b0e6f5c-1d1e-4c8e-9a65-7c1b2c3d4e5f"
    metadata = {"ColumnInfo": CHANNEL_COLUMNS}
    first = {"ResultSet": {"Rows": CHANNEL_ROWS[:2], "ResultSetMetadata": metadata}, "NextToken": "page-2"}
    second = {"ResultSet": {"Rows": CHANNEL_ROWS[2:], "ResultSetMetadata": metadata}}
    with Stubber(athena) as stub:
        stub.add_response("get_query_execution", _execution(query_id, "SUCCEEDED", prefix))
        stub.add_response("get_query_results", first, {"QueryExecutionId": query_id, "MaxResults": 1000})
        stub.add_response(
            "get_query_results", second, {"QueryExecutionId": query_id, "MaxResults": 1000, "NextToken": "page-2"}
        )
        table = engine.result(query_id, prefix)
    assert table.columns == ("key", "reached", "acquired", "activated", "retained", "converted", "lost")
    assert table.rows == [("c1", 3, 1, 1, 0, 2, 1), ("c2", 4, 0, 0, 2, 2, 0), (None, 2, 0, 0, 1, 1, 0)]
