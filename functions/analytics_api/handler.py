"""HTTP API: the customer-analytics reports of a brand (cdp.app.analytics_api): cohorts, repeat purchases, lifecycle
stages and flows, channel outcomes, the programme against the global control group, the tags' value distributions,
run on the deployment's engine (ANALYTICS_ENGINE: Athena over the Glue tables, or DuckDB in the function), answered
at once when the query finishes within the wait, else polled by query id."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from cdp.analytics.athena import AthenaQueryEngine
from cdp.analytics.ports import QueryEngine
from cdp.analytics.reports import AnalyticsQueryError, QueryPending, ReportName, ReportResult
from cdp.analytics.service import ReportQueries
from cdp.app.analytics_api import AnalyticsApi
from cdp.ingest.aws import SecretsManagerKeyring
from cdp.ingest.ports import ApiClient
from cdp.observability import logger, metrics, tracer
from cdp.org import load_org
from cdp.settings import AnalyticsApiSettings, get_settings
from cdp.shared.aws import S3ObjectStore
from cdp.shared.openapi import ErrorBody, query, responses
from functions.api_errors import error_response, json_response, map_common_errors
from functions.request_body import api_client

app = APIGatewayHttpResolver(enable_validation=False)


@dataclass(frozen=True)
class Dependencies:
    api: AnalyticsApi
    keyring: SecretsManagerKeyring


def _engine(s: AnalyticsApiSettings) -> QueryEngine:
    if s.analytics_engine == "athena":
        return AthenaQueryEngine(s.data_bucket, s.analytics_workgroup, s.warehouse_database)
    # imported only here: duckdb is in the warehouse layer, and the API docs load this module without it
    from cdp.analytics.duckdb import DuckDbQueryEngine

    return DuckDbQueryEngine(s.data_bucket, int(s.analytics_duckdb_max_mb * 2**20))


@cache
def dependencies() -> Dependencies:
    s = get_settings(AnalyticsApiSettings)
    queries = ReportQueries(_engine(s), S3ObjectStore(s.data_bucket), s.analytics_wait_seconds)
    return Dependencies(api=AnalyticsApi(queries, load_org()), keyring=SecretsManagerKeyring(s.api_keys_secret_id))


def _client() -> ApiClient:
    return api_client(app.current_event, dependencies().keyring)


def _answer(answer: ReportResult | QueryPending) -> Response[str]:
    if isinstance(answer, ReportResult):
        return json_response(200, answer.model_dump_json())
    return Response(
        status_code=202,
        content_type=content_types.APPLICATION_JSON,
        body=answer.model_dump_json(),
        headers={"Location": answer.location},
    )


def _docs() -> dict[int, Any]:
    out = responses(
        {200: (ReportResult, "the report's rows"), 202: (QueryPending, "still running: poll the Location")},
        (400, 401, 403, 404, 503),
    )
    out[404]["description"] = "no such query of the brand's report (another brand's query id is unknown here too)"
    out[422] = {
        "description": "the query failed (query_failed, query_cancelled, with the engine's reason), or the engine will "
        "not run it (warehouse_too_large: DuckDB's copy limit, use Athena; too_many_rows: narrow the period)",
        "content": {"application/json": {"model": ErrorBody}},
    }
    return out


_PARAMETERS = query(
    brand_id="the brand (default: the brand the key is limited to)",
    **{"from": "first day, YYYY-MM-DD (default: the 1st of the month 11 months before `to`)"},
    to="last day, YYYY-MM-DD, included (default: today, UTC)",
    by="cohorts: month (default) | channel; channels: channel (default) | campaign",
    max_offset="cohorts: 0-120 (default 12), the last month offset listed",
    max_orders="repeat: 1-50 (default 5), the curve runs from 1 to this many orders",
    window_days="channels: 1-365 (default 30), days after a delivery an order counts in",
)


@app.get(
    "/v1/analytics/<report>",
    summary="A report of the brand (cohorts | repeat | lifecycle | channels | programme | tags): its rows, or a query "
    "to poll",
    tags=["analytics"],
    responses=_docs(),
    openapi_extensions=_PARAMETERS,
)
def report(report: ReportName) -> Response[str]:  # the enum documents it; the API checks it
    client = _client()
    return _answer(dependencies().api.report(client, unquote(report), app.current_event.query_string_parameters))


@app.get(
    "/v1/analytics/<report>/queries/<query_id>",
    summary="A report query started earlier: its rows (200), still running (202), or why it failed (422)",
    tags=["analytics"],
    responses=_docs(),
    openapi_extensions=query(brand_id="the brand (default: the brand the key is limited to)"),
)
def poll(report: ReportName, query_id: str) -> Response[str]:
    client = _client()
    params = app.current_event.query_string_parameters
    return _answer(dependencies().api.query(client, unquote(report), unquote(query_id), params))


# ---- errors: typed, mapped in one place ---------------------------------------------------------------------------


@app.exception_handler(AnalyticsQueryError)
def _query_error(exc: AnalyticsQueryError) -> Response[str]:
    logger.warning("report query not answered", code=exc.code, error=exc.message)
    return error_response(422, exc.code, exc.message)


map_common_errors(app, logger, "analytics API")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
