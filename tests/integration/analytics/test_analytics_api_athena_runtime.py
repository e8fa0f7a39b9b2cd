"""The analytics API's handler with the engine the stack deploys (ANALYTICS_ENGINE=athena), on the local runtime:
moto's Athena runs no SQL, so the query's result is queued through moto's documented API and its state held
QUEUED/RUNNING for a few looks (manual progression). The route answers 202 with a Location once its wait is up, the
Location answers 202 while the query runs and then the rows, typed from Athena's text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from moto.moto_api import state_manager

from cdp import topology
from cdp.analytics.reports import results_prefix
from cdp_local.cli_export import run_export
from cdp_local.runtime import LocalRuntime
from tests.fakes.analytics import CHANNEL_COLUMNS, CHANNEL_ROWS, queue_athena_result

pytestmark = pytest.mark.xdist_group("analytics")  # one runtime per process

BRAND = "outlet:sh"
WORKGROUP = "cdp_analytics"  # the local runtime's ANALYTICS_WORKGROUP


@pytest.fixture(scope="module")
def rt() -> Iterator[LocalRuntime]:
    overrides = {topology.ANALYTICS_ENGINE_ENV: "athena", topology.ANALYTICS_WAIT_ENV: "0.3"}
    with LocalRuntime(state_machines=set(), env_overrides=overrides) as runtime:
        assert runtime.environment[topology.ANALYTICS_WORKGROUP_ENV] == WORKGROUP
        runtime.client("athena").create_work_group(
            Name=WORKGROUP,
            Configuration={
                "ResultConfiguration": {"OutputLocation": f"s3://{topology.DATA_BUCKET_LOCAL_NAME}/analytics-results/"}
            },
        )
        yield runtime
        state_manager.unset_transition("athena::execution")


def _get(rt: LocalRuntime, path: str) -> tuple[int, dict[str, str], Any]:
    status, headers, payload = rt.http("GET", path, b"", {"x-api-key": rt.admin_key})
    return status, headers, json.loads(payload or b"null")


def test_a_slow_query_is_a_202_with_a_location_that_answers_the_rows_when_done(rt: LocalRuntime) -> None:
    # Given Athena holding each query QUEUED, then RUNNING, for 8 looks each, and the rows it will answer
    state_manager.set_transition("athena::execution", {"progression": "manual", "times": 8})
    queue_athena_result(CHANNEL_ROWS, CHANNEL_COLUMNS)
    # When the channels report is asked for, by campaign
    status, headers, pending = _get(
        rt, "/v1/analytics/channels?brand_id=outlet%3Ash&by=campaign&from=2026-01-01&to=2026-04-30"
    )
    # Then 202 once the wait is up, with the query to poll and where
    assert status == 202, pending
    location = f"/v1/analytics/channels/queries/{pending['query_id']}?brand_id=outlet%3Ash"
    assert headers["location"] == pending["location"] == location
    assert (pending["status"], pending["report"], pending["brand_id"]) == ("queued", "channels", BRAND)
    # And Athena was asked in the workgroup, the result under the brand's channels prefix
    execution = rt.client("athena").get_query_execution(QueryExecutionId=pending["query_id"])["QueryExecution"]
    assert execution["WorkGroup"] == WORKGROUP
    output = execution["ResultConfiguration"]["OutputLocation"]
    assert output.startswith(f"s3://{topology.DATA_BUCKET_LOCAL_NAME}/{results_prefix(BRAND, 'channels')}")
    # When the Location is polled / Then 202 while Athena runs it, then the rows with the period it started with
    statuses = []
    while (polled := _get(rt, location))[0] == 202:
        statuses.append(polled[2]["status"])
    status, _, answer = polled
    assert status == 200, answer
    assert "running" in statuses
    assert answer["engine"] == "athena" and answer["period"] == {"start": "2026-01-01", "end": "2026-04-30"}
    assert [(r["key"], r["reached"], r["lost"]) for r in answer["rows"]] == [("c1", 3, 1), ("c2", 4, 0), (None, 2, 0)]


def test_a_report_over_the_same_export_is_answered_without_a_new_athena_query(rt: LocalRuntime) -> None:
    # Given the brand exported by a run, Athena answering each query at once, and the rows its next query answers
    state_manager.unset_transition("athena::execution")
    run_export(rt, BRAND)
    athena = rt.client("athena")
    started = len(athena.list_query_executions()["QueryExecutionIds"])
    queue_athena_result(CHANNEL_ROWS, CHANNEL_COLUMNS)
    channels = "/v1/analytics/channels?brand_id=outlet%3Ash&by=campaign&from=2026-05-01&to=2026-08-31"
    # When the report is asked for twice
    first, again = _get(rt, channels), _get(rt, channels)
    # Then Athena ran one query: the second answer is the first, read from what was kept
    assert (first[0], again[0]) == (200, 200), (first, again)
    assert again[2] == first[2]
    assert len(athena.list_query_executions()["QueryExecutionIds"]) == started + 1
    # When the next export runs / Then the report is a new Athena query, answering the new rows
    run_export(rt, BRAND)
    queue_athena_result(CHANNEL_ROWS[:2], CHANNEL_COLUMNS)
    status, _, after = _get(rt, channels)
    assert status == 200 and after["query_id"] != first[2]["query_id"]
    assert [r["key"] for r in after["rows"]] == ["c1"]
    assert len(athena.list_query_executions()["QueryExecutionIds"]) == started + 2
