"""The Athena adapter of `QueryEngine`: the reports' Athena SQL over the warehouse's Glue tables, in the stack's
workgroup, each query's result written under its brand's and report's prefix of the data bucket.

Athena answers every value as text (`VarCharValue`; no value at all for NULL) and a SELECT's first row is its
header; the column types it reports turn the text back into numbers before the row models read it."""

from __future__ import annotations

from typing import Any, ClassVar

from botocore.exceptions import BotoCoreError, ClientError

from cdp.analytics.ports import QueryEngine, QueryState, QueryStatus
from cdp.analytics.reports import MAX_ROWS, AnalyticsQueryError, EngineName, ReportRequest, ResultTable
from cdp.errors import NotFoundError, RetryableError, StoreError
from cdp.shared.aws import client as default_client

CATALOG = "AwsDataCatalog"
PAGE_SIZE = 1000  # GetQueryResults' largest page
_INTEGERS = frozenset({"tinyint", "smallint", "integer", "int", "bigint"})
_DECIMALS = frozenset({"double", "real", "float", "decimal"})
_THROTTLED = frozenset({"TooManyRequestsException", "ThrottlingException"})
_STATES: dict[str, QueryStatus] = {
    "QUEUED": "QUEUED",
    "RUNNING": "RUNNING",
    "SUCCEEDED": "SUCCEEDED",
    "FAILED": "FAILED",
    "CANCELLED": "CANCELLED",
}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def typed(value: str | None, athena_type: str) -> Any:
    """One Athena cell as its value: NULL is None, integers and decimals are numbers, the rest stays text."""
    if value is None:
        return None
    kind = athena_type.lower().split("(", 1)[0]
    if kind in _INTEGERS:
        return int(value)
    if kind in _DECIMALS:
        return float(value)
    if kind == "boolean":
        return value == "true"
    return value


class AthenaQueryEngine(QueryEngine):
    name: ClassVar[EngineName] = "athena"

    def __init__(self, bucket: str, workgroup: str, database: str, client: Any = None) -> None:
        self._bucket, self._workgroup, self._database = bucket, workgroup, database
        self._athena = client or default_client("athena")

    def _location(self, prefix: str) -> str:
        return f"s3://{self._bucket}/{prefix}"

    def query_text(self, request: ReportRequest) -> str:
        return request.sql("athena", self._database)

    def start(self, request: ReportRequest, prefix: str) -> str:
        sql = self.query_text(request)
        try:
            started = self._athena.start_query_execution(
                QueryString=sql,
                QueryExecutionContext={"Catalog": CATALOG, "Database": self._database},
                ResultConfiguration={
                    "OutputLocation": self._location(prefix),
                    "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
                },
                WorkGroup=self._workgroup,
            )
        except ClientError as exc:
            if _code(exc) in _THROTTLED:
                raise RetryableError(f"Athena is throttling query starts: {exc}") from exc
            if _code(exc) == "InvalidRequestException":  # the workgroup refuses it (disabled, over its limits)
                raise AnalyticsQueryError("query_refused", f"Athena refused the query: {exc}") from exc
            raise StoreError(f"start_query_execution failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"start_query_execution failed: {exc}") from exc
        return str(started["QueryExecutionId"])

    def _execution(self, query_id: str, prefix: str) -> dict[str, Any]:
        try:
            execution: dict[str, Any] = self._athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
        except ClientError as exc:
            if _code(exc) == "InvalidRequestException":  # Athena's answer for an id it does not know
                raise NotFoundError(f"no query {query_id}") from exc
            raise StoreError(f"get_query_execution failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"get_query_execution failed: {exc}") from exc
        output = str(execution.get("ResultConfiguration", {}).get("OutputLocation", ""))
        if execution.get("WorkGroup") != self._workgroup or not output.startswith(self._location(prefix)):
            raise NotFoundError(f"no query {query_id}")  # someone else's query: as unknown as a made-up id
        return execution

    def state(self, query_id: str, prefix: str) -> QueryState:
        status = self._execution(query_id, prefix).get("Status", {})
        state = _STATES.get(str(status.get("State")), "RUNNING")
        reason = status.get("AthenaError", {}).get("ErrorMessage") or status.get("StateChangeReason")
        return QueryState(state, str(reason) if reason and state in ("FAILED", "CANCELLED") else None)

    def result(self, query_id: str, prefix: str) -> ResultTable:
        self._execution(query_id, prefix)
        columns: tuple[str, ...] = ()
        types: tuple[str, ...] = ()
        rows: list[tuple[Any, ...]] = []
        header = True
        try:
            pages = self._athena.get_paginator("get_query_results").paginate(
                QueryExecutionId=query_id, PaginationConfig={"PageSize": PAGE_SIZE}
            )
            for page in pages:
                result_set = page["ResultSet"]
                if not columns:
                    info = result_set.get("ResultSetMetadata", {}).get("ColumnInfo", [])
                    columns = tuple(str(c["Name"]) for c in info)
                    types = tuple(str(c.get("Type", "varchar")) for c in info)
                for row in result_set.get("Rows", []):
                    if header:  # a SELECT's first row names the columns
                        header = False
                        continue
                    cells = [d.get("VarCharValue") for d in row.get("Data", [])]
                    rows.append(tuple(typed(v, t) for v, t in zip(cells, types, strict=True)))
                if len(rows) > MAX_ROWS:
                    break  # the reports refuse it with the count: no need to read the rest
        except ClientError as exc:
            if _code(exc) in _THROTTLED:
                raise RetryableError(f"Athena is throttling result reads: {exc}") from exc
            raise StoreError(f"get_query_results failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"get_query_results failed: {exc}") from exc
        return ResultTable(columns, rows)
