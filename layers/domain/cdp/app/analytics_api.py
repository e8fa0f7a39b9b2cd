"""The customer-analytics API (`functions/analytics_api`): the `cdp.analytics` reports of one brand, run on the
deployment's engine (Athena on AWS, DuckDB locally) over the warehouse export.

    GET /v1/analytics/{report}                    analytics:read   start the report's query and wait for it up to
                                                                   ANALYTICS_WAIT_SECONDS: 200 with its rows, else
                                                                   202 with the query id to poll (Location)
    GET /v1/analytics/{report}/queries/{query_id} analytics:read   the query's rows (200), still running (202), or
                                                                   why it failed (422)

`report` is cohorts | repeat | lifecycle | channels | programme (its answer adds `lift`: marketed persons against the
brand's global control group, `cdp.analytics.programme`). Query parameters, each checked (a 400 naming it):
`brand_id` (default: the key's brand), `from` and `to` (YYYY-MM-DD, both included; default: the 12 calendar months
through today, from the 1st of the first), and the report's own: cohorts `by` (month | channel) and `max_offset`
(0-120, default 12); repeat `max_orders` (1-50, default 5); channels `by` (channel | campaign) and `window_days`
(1-365, default 30). A parameter the report does not take is refused, so a typo is not silently a default.

Who may call. A report counts the whole brand's customers: the key must hold `analytics:read` and the whole brand
(`ScopeRef.holds_brand`, as offers and loyalty ask); a store's key is a 403. A poll finds only the queries of the
brand and report it names (their files lie under that brand's and report's prefix): another brand's query id is a
404, exactly like an unknown one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from urllib.parse import quote

from cdp.analytics.models import FIRST_DAY, LAST_DAY, MAX_MONTHS, Period
from cdp.analytics.reports import (
    QUERY_ID_PATTERN,
    REPORTS,
    QueryPending,
    ReportName,
    ReportParameters,
    ReportRequest,
    ReportResult,
)
from cdp.analytics.service import ReportQueries
from cdp.analytics.sql import MAX_OFFSET, MAX_ORDERS, MAX_WINDOW_DAYS
from cdp.app.campaign_api import brand_of
from cdp.errors import ForbiddenError, InvalidInputError
from cdp.ingest.auth import ANALYTICS_READ_SCOPE, authorize
from cdp.ingest.ports import ApiClient
from cdp.org import OrgDirectory
from cdp.shared.time import utc_now

DEFAULT_MONTHS = 12
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_NUMBER = re.compile(r"[0-9]{1,4}")
_QUERY_ID = re.compile(QUERY_ID_PATTERN)
_COMMON = ("brand_id", "from", "to")
_BY = {"cohorts": ("month", "channel"), "channels": ("channel", "campaign")}
# each report's own parameters: name -> (lowest, highest, default) for numbers
_NUMBERS: dict[str, dict[str, tuple[int, int, int]]] = {
    "cohorts": {"max_offset": (0, MAX_OFFSET, 12)},
    "repeat": {"max_orders": (1, MAX_ORDERS, 5)},
    "lifecycle": {},
    "channels": {"window_days": (1, MAX_WINDOW_DAYS, 30)},
    "programme": {},
    "tags": {},  # the last export's snapshot: the period does not change it
}


# ---- parsing ------------------------------------------------------------------------------------------------------


def report_of(text: str) -> ReportName:
    for report in REPORTS:
        if text == report:
            return report
    raise InvalidInputError(f"report {text[:40]!r} is not one of {', '.join(REPORTS)}", "report")


def query_id_of(text: str) -> str:
    if not _QUERY_ID.fullmatch(text):
        raise InvalidInputError(
            f"query id {text[:60]!r} is not a query id (a UUID, as the report answered)", "query_id"
        )
    return text


def _day(text: str, name: str) -> date:
    try:
        if not _DAY.fullmatch(text):
            raise ValueError(text)
        day = date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInputError(f"{name} {text[:40]!r} is not a day (YYYY-MM-DD)", name) from exc
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidInputError(f"{name} must lie between {FIRST_DAY} and {LAST_DAY}", name)
    return day


def _months_before(day: date, months: int) -> date:
    """The 1st of the month `months` calendar months before `day`'s."""
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def period_of(start: str | None, end: str | None, today: date) -> Period:
    """`from`..`to`, both included; by default the 12 calendar months through today (or through `to`)."""
    last = today if end is None else _day(end, "to")
    first = max(FIRST_DAY, _months_before(last, DEFAULT_MONTHS - 1)) if start is None else _day(start, "from")
    if first > last:
        raise InvalidInputError(f"from ({first}) is after to ({last})", "from")
    if (last.year - first.year) * 12 + last.month - first.month >= MAX_MONTHS:
        raise InvalidInputError(f"the period spans more than {MAX_MONTHS} months: narrow from..to", "from")
    return Period(start=first, end=last)


def _number(text: str, name: str, low: int, high: int) -> int:
    if not _NUMBER.fullmatch(text) or not low <= int(text) <= high:
        raise InvalidInputError(f"{name} must be an integer from {low} to {high}", name)
    return int(text)


def parameters_of(report: ReportName, params: Mapping[str, str]) -> ReportParameters:
    numbers = _NUMBERS[report]
    takes = (*_COMMON, *numbers, *(("by",) if report in _BY else ()))
    for name in params:
        if name not in takes:
            raise InvalidInputError(
                f"report {report} takes no parameter {name[:40]!r} (it takes {', '.join(takes)})", name[:64]
            )
    values: dict[str, str | int] = {}
    if report in _BY:
        choices = _BY[report]
        by = params.get("by", choices[0])
        if by not in choices:
            raise InvalidInputError(f"{report} are by {' or '.join(choices)}, not {by[:40]!r}", "by")
        values["by"] = by
    for name, (low, high, default) in numbers.items():
        values[name] = _number(params[name], name, low, high) if name in params else default
    return ReportParameters.model_validate(values)


def poll_location(report: ReportName, brand_id: str, query_id: str) -> str:
    return f"/v1/analytics/{report}/queries/{query_id}?brand_id={quote(brand_id, safe='')}"


# ---- the service --------------------------------------------------------------------------------------------------


class AnalyticsApi:
    """One method per route; each checks the permission scope, then the brand, then the request."""

    def __init__(self, queries: ReportQueries, org: OrgDirectory, now: Callable[[], datetime] = utc_now) -> None:
        self._queries, self._org, self._now = queries, org, now

    def _brand(self, client: ApiClient, params: Mapping[str, str]) -> str:
        authorize(client, ANALYTICS_READ_SCOPE)
        brand = brand_of(params.get("brand_id"), client)
        if not client.org_scope.holds_brand(self._org, brand):
            raise ForbiddenError(
                f"a report counts the whole brand's customers; the key of {client.name} is limited to "
                f"{client.org_scope.label}: use a key that holds brand {brand}"
            )
        return brand

    def report(self, client: ApiClient, report: str, params: Mapping[str, str] | None) -> ReportResult | QueryPending:
        given = params or {}
        brand = self._brand(client, given)
        name = report_of(report)
        request = ReportRequest(
            report=name,
            brand_id=brand,
            period=period_of(given.get("from"), given.get("to"), self._now().date()),
            parameters=parameters_of(name, given),
        )
        return self._queries.run(request, client.name, poll_location)

    def query(
        self, client: ApiClient, report: str, query_id: str, params: Mapping[str, str] | None
    ) -> ReportResult | QueryPending:
        given = params or {}
        brand = self._brand(client, given)
        name = report_of(report)
        for param in given:
            if param != "brand_id":
                raise InvalidInputError(
                    f"a query is polled as it started: no parameter but brand_id (not {param[:40]!r})", param[:64]
                )
        return self._queries.poll(brand, name, query_id_of(query_id), poll_location)
