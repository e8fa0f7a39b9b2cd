"""A report as an engine runs it: which report, for which brand and period, with which parameters (`ReportRequest`);
its SQL in the engine's dialect; the table the engine answers turned into the row models; what the API answers
(`ReportResult` when the query is done, `QueryPending` while it runs); where its query's files live.

Every query's files go under `analytics-results/{brand segment}/{report}/` in the data bucket: its request
(`{query_id}.request.json`, what a poll answers with), and its result (Athena's `{query_id}.csv`, DuckDB's
`{query_id}.rows.json`). A poll looks only under the caller's brand and report, so another brand's query id is
unknown to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from cdp import topology
from cdp.analytics.models import (
    ChannelBy,
    ChannelRow,
    CohortBy,
    CohortRow,
    LifecycleFlowRow,
    LifecycleStageRow,
    Period,
    ProgrammeRow,
    RepeatRow,
    TagValueRow,
)
from cdp.analytics.programme import ProgrammeLift, programme_lift
from cdp.analytics.sql import AnalyticsQueries, Dialect
from cdp.errors import CdpError
from cdp.warehouse.schema import brand_segment

ReportName = Literal["cohorts", "repeat", "lifecycle", "channels", "programme", "tags"]
REPORTS: tuple[ReportName, ...] = ("cohorts", "repeat", "lifecycle", "channels", "programme", "tags")
EngineName = Literal["athena", "duckdb"]
QUERY_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"  # Athena's ids; DuckDB's uuid4
MAX_ROWS = 20_000  # far above any report's rows over 20 years; keeps an answer inside Lambda's 6 MB


class AnalyticsQueryError(CdpError):
    """The engine would not run the query, or the query failed: `code` says which (the API answers 422 with it)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ReportParameters(BaseModel):
    """The report's own parameters (None: the report takes none of that name)."""

    model_config = ConfigDict(frozen=True)

    by: str | None = Field(default=None, description="cohorts: month | channel; channels: channel | campaign")
    max_offset: int | None = Field(default=None, description="cohorts: the last month offset listed")
    max_orders: int | None = Field(default=None, description="repeat: the curve runs from 1 to this many orders")
    window_days: int | None = Field(default=None, description="channels: days after a delivery an order counts in")


class ReportRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    report: ReportName
    brand_id: str
    period: Period
    parameters: ReportParameters = Field(default_factory=ReportParameters)

    def sql(self, dialect: Dialect, database: str | None = None) -> str:
        """The report's query (lifecycle: its stages and flows in one query, `AnalyticsQueries.lifecycle`)."""
        queries = AnalyticsQueries(self.brand_id, self.period, dialect, database)
        p = self.parameters
        if self.report == "cohorts":
            by = cast(CohortBy, p.by or "month")  # AnalyticsQueries checks it is one
            return queries.cohort_retention(by, 12 if p.max_offset is None else p.max_offset)
        if self.report == "repeat":
            return queries.repeat_purchase(p.max_orders or 5)
        if self.report == "lifecycle":
            return queries.lifecycle()
        if self.report == "programme":
            return queries.programme()
        if self.report == "tags":
            return queries.tag_values()
        return queries.channel_outcomes(cast(ChannelBy, p.by or "channel"), p.window_days or 30)


@dataclass(frozen=True)
class ResultTable:
    """What an engine answers: column names and the rows' values (None for NULL), in the query's order."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


ReportRows = (
    list[CohortRow]
    | list[RepeatRow]
    | list[LifecycleStageRow]
    | list[ChannelRow]
    | list[ProgrammeRow]
    | list[TagValueRow]
)


class ReportResult(BaseModel):
    report: ReportName
    brand_id: str
    period: Period
    parameters: ReportParameters
    query_id: str = Field(description="poll GET /v1/analytics/{report}/queries/{query_id} for this answer again")
    engine: EngineName = Field(description="athena (the Glue tables) or duckdb (the brand's Parquet, in the function)")
    rows: ReportRows = Field(
        description="cohorts: CohortRow; repeat: RepeatRow; lifecycle: LifecycleStageRow (persons per stage at each "
        "month's end); channels: ChannelRow; programme: ProgrammeRow, global_control then marketed; tags: TagValueRow, "
        "per tag its values most held first (definitions in each row's fields)"
    )
    flows: list[LifecycleFlowRow] | None = Field(
        default=None, description="lifecycle only: persons by (stage at the previous month's end, stage at this one's)"
    )
    lift: ProgrammeLift | None = Field(
        default=None,
        description="programme only: marketed persons against the global control group, conversion and revenue per "
        "person with intervals, incremental revenue and a plain-language verdict (cdp.analytics.programme)",
    )


class QueryPending(BaseModel):
    report: ReportName
    brand_id: str
    query_id: str
    status: Literal["queued", "running"]
    location: str = Field(description="where to poll (also the Location header)")


class QueryTicket(BaseModel):
    """A query's request as it started, stored beside its result: what a poll answers with."""

    query_id: str
    engine: EngineName
    request: ReportRequest
    started_at: datetime
    client: str
    # what its result is kept under once it succeeds (`cdp.analytics.cache`); None: not kept (no export run vouches
    # for the brand's files)
    export_version: str | None = None
    query_sha256: str | None = None


def results_prefix(brand_id: str, report: ReportName) -> str:
    """The key prefix of a brand's report queries (the brand id as its warehouse path segment: `/` cannot nest)."""
    return f"{topology.ANALYTICS_RESULTS_PREFIX}{brand_segment(brand_id)}/{report}/"


def ticket_key(brand_id: str, report: ReportName, query_id: str) -> str:
    return f"{results_prefix(brand_id, report)}{query_id}.request.json"


def _bounded(table: ResultTable) -> list[dict[str, Any]]:
    if len(table.rows) > MAX_ROWS:
        raise AnalyticsQueryError(
            "too_many_rows", f"the report has more than {MAX_ROWS} rows: ask for a shorter period"
        )
    return table.records()


def report_rows(report: ReportName, table: ResultTable) -> tuple[ReportRows, list[LifecycleFlowRow] | None]:
    """The engine's table as the report's rows (lifecycle: stages, then flows apart)."""
    records = _bounded(table)
    if report == "cohorts":
        return [CohortRow.model_validate(r) for r in records], None
    if report == "repeat":
        return [RepeatRow.model_validate(r) for r in records], None
    if report == "channels":
        return [ChannelRow.model_validate(r) for r in records], None
    if report == "programme":
        return [ProgrammeRow.model_validate(r) for r in records], None
    if report == "tags":
        return [TagValueRow.model_validate(r) for r in records], None
    stages: list[LifecycleStageRow] = []
    flows: list[LifecycleFlowRow] = []
    for r in records:
        kind = r.pop("row_kind")
        if kind == "stage":
            stages.append(LifecycleStageRow(month=r["month"], stage=r["to_stage"], persons=r["persons"]))
        elif kind == "flow":
            flows.append(LifecycleFlowRow.model_validate(r))
        else:
            raise AnalyticsQueryError("unexpected_result", f"the lifecycle query answered a row of kind {kind!r}")
    return stages, flows


def report_lift(report: ReportName, rows: ReportRows) -> ProgrammeLift | None:
    """The programme's lift from its rows (None for every other report)."""
    if report != "programme":
        return None
    groups = sorted(r.group for r in rows if isinstance(r, ProgrammeRow))
    if len(rows) != len(groups) or groups != ["global_control", "marketed"]:
        raise AnalyticsQueryError("unexpected_result", f"the programme query answered the groups {groups}")
    return programme_lift([r for r in rows if isinstance(r, ProgrammeRow)])
