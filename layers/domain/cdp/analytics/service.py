"""Report queries: answered from the results kept for the brand's current warehouse export when the same request ran
over it before (`cdp.analytics.cache`), else started on the engine with their request stored beside the result,
waited for up to a budget (the answer then, or a pending query to poll), and polled by id under the caller's brand and
report only. A query that succeeds is kept for the next caller, whether it finished within the wait or when polled."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from pydantic import ValidationError

from cdp.analytics.cache import CachedResult, ReportCache, query_sha256
from cdp.analytics.ports import QueryEngine, QueryState
from cdp.analytics.reports import (
    AnalyticsQueryError,
    EngineName,
    QueryPending,
    QueryTicket,
    ReportName,
    ReportRequest,
    ReportResult,
    ResultTable,
    report_lift,
    report_rows,
    results_prefix,
    ticket_key,
)
from cdp.errors import NotFoundError, StoreError
from cdp.observability import logger
from cdp.shared.ports import ObjectStore
from cdp.shared.time import utc_now

FIRST_POLL_S = 0.2
MAX_POLL_S = 1.0  # Athena's GetQueryExecution is cheap, but a report takes seconds: no need to ask more often

Locate = Callable[[ReportName, str, str], str]  # (report, brand, query id) -> where to poll


class ReportQueries:
    def __init__(
        self,
        engine: QueryEngine,
        store: ObjectStore,
        wait_seconds: float,
        now: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        cache: ReportCache | None = None,
    ) -> None:
        self._engine, self._store, self._wait = engine, store, wait_seconds
        self._now, self._monotonic, self._sleep = now, monotonic, sleep
        self._cache = cache or ReportCache(store)  # beside the queries' files

    @property
    def engine(self) -> str:
        return self._engine.name

    def run(self, request: ReportRequest, client: str, locate: Locate) -> ReportResult | QueryPending:
        """The result kept for the brand's current export, else start the report's query and wait for it up to the
        budget."""
        began = self._monotonic()
        version = self._cache.export_version(request.brand_id)
        query_sha = query_sha256(self._engine.query_text(request))
        if version is not None:
            kept = self._cache.get(request, self._engine.name, query_sha, version)
            if kept is not None:
                logger.info("report answered from its kept result", report=request.report, query_id=kept.query_id)
                return self._result(request, kept.query_id, kept.engine, kept.table)
        prefix = results_prefix(request.brand_id, request.report)
        query_id = self._engine.start(request, prefix)
        ticket = QueryTicket(
            query_id=query_id,
            engine=self._engine.name,
            request=request,
            started_at=self._now(),
            client=client,
            export_version=version,
            query_sha256=query_sha if version is not None else None,
        )
        self._store.put_bytes(ticket_key(request.brand_id, request.report, query_id), ticket.model_dump_json().encode())
        logger.info("report query started", report=request.report, query_id=query_id, engine=self._engine.name)
        state = self._waited(query_id, prefix, began)
        return self._answer(ticket, state, locate)

    def poll(self, brand_id: str, report: ReportName, query_id: str, locate: Locate) -> ReportResult | QueryPending:
        """A query of the brand's report by its id: NotFoundError for any other (unknown, another brand's or
        report's)."""
        ticket = self._ticket(brand_id, report, query_id)
        state = self._engine.state(query_id, results_prefix(brand_id, report))
        return self._answer(ticket, state, locate)

    def _waited(self, query_id: str, prefix: str, began: float) -> QueryState:
        pause = FIRST_POLL_S
        while True:
            state = self._engine.state(query_id, prefix)
            left = self._wait - (self._monotonic() - began)
            if state.done or left <= 0:
                return state
            self._sleep(min(pause, left))
            pause = min(pause * 2, MAX_POLL_S)

    def _ticket(self, brand_id: str, report: ReportName, query_id: str) -> QueryTicket:
        key = ticket_key(brand_id, report, query_id)
        # listed first: a missing key read without a bucket-wide ListBucket right is a 403, not a 404
        if key not in self._store.list_keys(key):
            raise NotFoundError(f"no {report} query {query_id} of brand {brand_id}")
        try:
            ticket = QueryTicket.model_validate_json(self._store.get_bytes(key))
        except ValidationError as exc:
            raise StoreError(f"the request of query {query_id} is unreadable: {exc}") from exc
        if ticket.request.brand_id != brand_id or ticket.request.report != report:  # what it says, not only where
            raise NotFoundError(f"no {report} query {query_id} of brand {brand_id}")
        return ticket

    def _answer(self, ticket: QueryTicket, state: QueryState, locate: Locate) -> ReportResult | QueryPending:
        request = ticket.request
        if state.status == "FAILED":
            raise AnalyticsQueryError("query_failed", f"the {request.report} query failed: {state.reason or '?'}")
        if state.status == "CANCELLED":
            raise AnalyticsQueryError("query_cancelled", f"the {request.report} query was cancelled: {state.reason}")
        if state.status != "SUCCEEDED":
            return QueryPending(
                report=request.report,
                brand_id=request.brand_id,
                query_id=ticket.query_id,
                status="queued" if state.status == "QUEUED" else "running",
                location=locate(request.report, request.brand_id, ticket.query_id),
            )
        table = self._engine.result(ticket.query_id, results_prefix(request.brand_id, request.report))
        answer = self._result(request, ticket.query_id, ticket.engine, table)
        if ticket.export_version is not None and ticket.query_sha256 is not None:  # only what answers is kept
            self._cache.put(
                CachedResult(
                    request=request,
                    engine=ticket.engine,
                    query_sha256=ticket.query_sha256,
                    export_version=ticket.export_version,
                    query_id=ticket.query_id,
                    columns=list(table.columns),
                    rows=[list(row) for row in table.rows],
                    kept_at=self._now(),
                )
            )
        return answer

    @staticmethod
    def _result(request: ReportRequest, query_id: str, engine: EngineName, table: ResultTable) -> ReportResult:
        rows, flows = report_rows(request.report, table)
        return ReportResult(
            report=request.report,
            brand_id=request.brand_id,
            period=request.period,
            parameters=request.parameters,
            query_id=query_id,
            engine=engine,
            rows=rows,
            flows=flows,
            lift=report_lift(request.report, rows),
        )
