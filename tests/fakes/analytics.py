"""An in-memory `QueryEngine` that answers from a script (how each query stands at each look, then its table), and a
clock whose sleeps move it: the report service's waiting, polling and brand isolation without any engine. And
results for moto's Athena, which runs no SQL, queued through its documented API in the shape Athena answers."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import requests

from cdp.analytics.ports import QueryEngine, QueryState, QueryStatus
from cdp.analytics.reports import EngineName, ReportRequest, ResultTable
from cdp.errors import NotFoundError


@dataclass
class _Query:
    request: ReportRequest
    prefix: str
    states: list[QueryState]
    table: ResultTable
    looks: int = 0


class ScriptedEngine(QueryEngine):
    """Each query passes through `states` (one per look; the last one stays) and answers `table`."""

    name: ClassVar[EngineName] = "athena"

    def __init__(self, table: ResultTable, states: Iterable[QueryStatus | QueryState] = ("SUCCEEDED",)) -> None:
        self.table = table
        self.script = [s if isinstance(s, QueryState) else QueryState(s) for s in states]
        self.queries: dict[str, _Query] = {}

    @property
    def started(self) -> list[ReportRequest]:
        return [q.request for q in self.queries.values()]

    def start(self, request: ReportRequest, prefix: str) -> str:
        query_id = str(uuid.uuid4())
        self.queries[query_id] = _Query(request, prefix, list(self.script), self.table)
        return query_id

    def _query(self, query_id: str, prefix: str) -> _Query:
        query = self.queries.get(query_id)
        if query is None or query.prefix != prefix:
            raise NotFoundError(f"no query {query_id}")
        return query

    def state(self, query_id: str, prefix: str) -> QueryState:
        query = self._query(query_id, prefix)
        state = query.states[min(query.looks, len(query.states) - 1)]
        query.looks += 1
        return state

    def result(self, query_id: str, prefix: str) -> ResultTable:
        return self._query(query_id, prefix).table


@dataclass
class FakeClock:
    """`monotonic` and `sleep` for the waits: sleeping moves the clock, and every pause is recorded."""

    now: float = 1000.0
    pauses: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


# ---- moto's Athena ---------------------------------------------------------------------------------------------------

MOTO_ATHENA_RESULTS = "http://motoapi.amazonaws.com/moto-api/static/athena/query-results"


def athena_column(name: str, athena_type: str) -> dict[str, Any]:
    return {"CatalogName": "hive", "SchemaName": "", "TableName": "", "Name": name, "Label": name, "Type": athena_type}


def athena_row(*values: str | None) -> dict[str, Any]:
    """A row as Athena answers it: every value as text, NULL as no value at all."""
    return {"Data": [{} if v is None else {"VarCharValue": v} for v in values]}


CHANNEL_COLUMNS = [
    athena_column("key", "varchar"),
    *(athena_column(n, "bigint") for n in ("reached", "acquired", "activated", "retained", "converted", "lost")),
]
# as Athena answers `channel_outcomes("campaign")`: the header, then c1, c2 and the messages of no campaign (NULL)
CHANNEL_ROWS = [
    athena_row("key", "reached", "acquired", "activated", "retained", "converted", "lost"),
    athena_row("c1", "3", "1", "1", "0", "2", "1"),
    athena_row("c2", "4", "0", "0", "2", "2", "0"),
    athena_row(None, "2", "0", "0", "1", "1", "0"),
]


def queue_athena_result(rows: list[dict[str, Any]], columns: list[dict[str, Any]]) -> None:
    """The next query moto's Athena starts answers these (inside `mock_aws`: moto intercepts the request)."""
    answer = requests.post(MOTO_ATHENA_RESULTS, json={"results": [{"rows": rows, "column_info": columns}]}, timeout=5)
    assert answer.status_code == 201
