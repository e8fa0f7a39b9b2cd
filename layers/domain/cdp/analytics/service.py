"""Report queries: started on the engine with their request stored beside the result, waited for up to a budget
(the answer then, or a pending query to poll), and polled by id under the caller's brand and report only."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from pydantic import ValidationError

from cdp.analytics.ports import QueryEngine, QueryState
from cdp.analytics.reports import (
    AnalyticsQueryError,
    QueryPending,
    QueryTicket,
    ReportName,
    ReportRequest,
    ReportResult,
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
    ) -> None:
        self._engine, self._store, self._wait = engine, store, wait_seconds
        self._now, self._monotonic, self._sleep = now, monotonic, sleep

    @property
    def engine(self) -> str:
        return self._engine.name

    def run(self, request: ReportRequest, client: str, locate: Locate) -> ReportResult | QueryPending:
        """Start the report's query and wait for it up to the budget."""
        began = self._monotonic()
        prefix = results_prefix(request.brand_id, request.report)
        query_id = self._engine.start(request, prefix)
        ticket = QueryTicket(
            query_id=query_id, engine=self._engine.name, request=request, started_at=self._now(), client=client
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
        rows, flows = report_rows(request.report, table)
        return ReportResult(
            report=request.report,
            brand_id=request.brand_id,
            period=request.period,
            parameters=request.parameters,
            query_id=ticket.query_id,
            engine=ticket.engine,
            rows=rows,
            flows=flows,
            lift=report_lift(request.report, rows),
        )
