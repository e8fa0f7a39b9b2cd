"""The port the reports run through: a query engine that starts a report's query, says how it stands, and reads its
rows. Adapters: `cdp.analytics.athena` (Athena over the Glue tables) and `cdp.analytics.duckdb` (DuckDB over the
brand's Parquet in the data bucket, finished before `start` returns)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

from cdp.analytics.reports import EngineName, ReportRequest, ResultTable

QueryStatus = Literal["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]
DONE: frozenset[QueryStatus] = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})


@dataclass(frozen=True)
class QueryState:
    status: QueryStatus
    reason: str | None = None  # why it failed or was cancelled, as the engine says it

    @property
    def done(self) -> bool:
        return self.status in DONE


class QueryEngine(ABC):
    """Queries whose results go under a key prefix of the data bucket (`cdp.analytics.reports.results_prefix`)."""

    name: ClassVar[EngineName]

    def query_text(self, request: ReportRequest) -> str:
        """The query the engine runs for the request (its kept results are keyed on it, `cdp.analytics.cache`): the
        report's DuckDB SQL unless the engine speaks another dialect."""
        return request.sql("duckdb")

    @abstractmethod
    def start(self, request: ReportRequest, prefix: str) -> str:
        """Start the report's query with its result under `prefix`; its query id. AnalyticsQueryError when the
        engine will not run it."""

    @abstractmethod
    def state(self, query_id: str, prefix: str) -> QueryState:
        """How the query stands. NotFoundError for an id the engine does not know, or whose result is not under
        `prefix` (another brand's or report's query)."""

    @abstractmethod
    def result(self, query_id: str, prefix: str) -> ResultTable:
        """The rows of a query that SUCCEEDED (the same checks as `state`)."""
