"""Report results kept per warehouse export: a report is a function of its query and the warehouse files it reads,
and those change only when an export run writes them (the nightly schedule, `cdp export warehouse`). So the table
the engine answered for a query that succeeded is kept, and the same request over the same export is answered from
it without running anything (DuckDB copying and scanning the brand's Parquet, or an Athena query).

An entry is keyed on (SHA-256 of all four; it lies under the brand's and report's results prefix):

- the request: brand, report, period and parameters;
- the engine, and the query it runs (its SQL's SHA-256: a changed report definition is another query);
- the brand's export version: its entry in `warehouse/_state.json` (`cdp.warehouse.service.BrandState`: the run's
  time and count), which every run writes after all of its files. A new run moves it, so nothing kept before is read
  again; old entries expire with the queries' files (`topology.ANALYTICS_RESULTS_RETENTION_DAYS`).

An entry holds what it was kept for, and is used only when that is exactly what is asked (an entry copied under
another brand's prefix is not theirs). A brand no run has exported (files put there by hand) is never kept: nothing
says when its files change. What the reports make of the table (rows, flows, the programme's lift) is computed again
on every answer, so a change to that code needs no new export.

Limits: a query that read the files while a run was rewriting them is kept under the version before that run, until
the run ends (what an uncached query answered then too); a run that fails half way leaves the version, and so the
answers kept before it, as they were. Two callers missing at the same time both run the query.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from cdp.analytics.reports import EngineName, ReportRequest, ResultTable, results_prefix
from cdp.errors import NotFoundError, StoreError
from cdp.observability import logger
from cdp.shared.ports import ObjectStore
from cdp.warehouse.schema import STATE_KEY
from cdp.warehouse.service import ExportState

CACHE_FORMAT = 1  # bumped when an entry's layout changes: older entries are then never read


def query_sha256(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


class CachedResult(BaseModel):
    """A report query's table as the engine answered it, with what it answers."""

    request: ReportRequest
    engine: EngineName
    query_sha256: str
    export_version: str
    query_id: str  # the query that computed it (its answer names it: polling it reads the same rows)
    columns: list[str]
    rows: list[list[Any]]
    kept_at: datetime

    @property
    def table(self) -> ResultTable:
        return ResultTable(tuple(self.columns), [tuple(row) for row in self.rows])


def cache_key(request: ReportRequest, engine: EngineName, query_sha: str, export_version: str) -> str:
    slot = {
        "format": CACHE_FORMAT,
        "request": request.model_dump(mode="json"),
        "engine": engine,
        "query_sha256": query_sha,
        "export_version": export_version,
    }
    digest = hashlib.sha256(json.dumps(slot, sort_keys=True).encode()).hexdigest()
    return f"{results_prefix(request.brand_id, request.report)}cache/{digest}.json"


class ReportCache:
    """The entries in the object store beside the queries' files (the data bucket on AWS and locally). Failing to read
    or keep one is logged and answered by running the query: the cache never fails a report."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    def export_version(self, brand_id: str) -> str | None:
        """The brand's warehouse as the last export run left it; None when no run has exported it."""
        try:
            # listed first: a missing key read without a bucket-wide ListBucket right is a 403, not a 404
            if STATE_KEY not in self._store.list_keys(STATE_KEY):
                return None
            state = ExportState.model_validate_json(self._store.get_bytes(STATE_KEY))
        except (StoreError, NotFoundError, ValidationError) as exc:
            logger.warning("warehouse export state unreadable: reports run uncached", error=str(exc))
            return None
        held = state.brands.get(brand_id)
        return None if held is None else f"run {held.runs} at {held.last_run_at.isoformat()}"

    def get(
        self, request: ReportRequest, engine: EngineName, query_sha: str, export_version: str
    ) -> CachedResult | None:
        key = cache_key(request, engine, query_sha, export_version)
        try:
            if key not in self._store.list_keys(key):
                return None
            entry = CachedResult.model_validate_json(self._store.get_bytes(key))
        except (StoreError, NotFoundError, ValidationError) as exc:
            logger.warning("kept report result unreadable: the query runs", key=key, error=str(exc))
            return None
        kept_for = (entry.request, entry.engine, entry.query_sha256, entry.export_version)
        if kept_for != (request, engine, query_sha, export_version):  # what it says, not only where it lies
            logger.warning("kept report result is another request's: the query runs", key=key)
            return None
        return entry

    def put(self, entry: CachedResult) -> None:
        key = cache_key(entry.request, entry.engine, entry.query_sha256, entry.export_version)
        try:
            self._store.put_bytes(key, entry.model_dump_json().encode())
        except StoreError as exc:
            logger.warning("report result not kept", key=key, error=str(exc))
