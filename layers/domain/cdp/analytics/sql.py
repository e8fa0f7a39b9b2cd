"""The SQL of each customer-analytics report, in the two dialects the warehouse is read with: DuckDB locally (views
named `events` and `profiles` over the Parquet `cdp export warehouse` copies, `cdp_local.analytics`) and Athena
(Trino) over the Glue tables (`"<stack>_warehouse"."events"`). Pure string generation: it ships in the Lambda layer.

The definitions are the field descriptions of `cdp.analytics.models`; the choices behind them:
- an order is an `order_placed` event, returned or not (as the profile's `order_count` counts);
- a "first order" is the first ever in the export (orders before the export's first day are not seen);
- a message reached a person when a `message_delivered` event with status `delivered` says so; opens and clicks are
  not needed for a message to count;
- lifecycle stages mirror the bundled `lifecycle` tag (`cdp/tags/catalog/lifecycle.yaml`) at each month's end: its
  `days_since_last >= N` is `last order <= end - N days`, and `order_count` is the orders in the export. It differs
  from the tag a profile holds where the export misses orders (before its first day), where a brand edited its
  catalog, and in that the tag is re-evaluated as events arrive while here the stage is taken at month ends only;
- the programme report's groups are the profiles' `global_control` as the last export computed it (the brand's share
  then); a profile row without it (NULL: an older file) is in neither group.

Every query reads the warehouse tables through CTEs that keep the brand's rows only (`brand_id = ...`) and name the
days read (`dt`, the events' partition key), so Athena prunes partitions. Both engines run the same text except for:
- where the tables are: DuckDB views `events`, `profiles`; Athena `"<database>"."events"`;
- the brand's partition value: DuckDB decodes a Hive path segment, so it compares the brand id itself; Athena's
  injected projection compares the path segment, `cdp.warehouse.schema.brand_segment` (a brand id holding `/`, `#`,
  `:`, `@` or `+` is percent-encoded there).
Everything else is SQL both run alike: CTEs, `(VALUES ...) AS t(...)`, TIMESTAMP literals, `INTERVAL 'n' DAY`,
`date_diff('day', DATE, DATE)`, `row_number()`/`lag()` windows, `count(DISTINCT ...)`, CAST to DOUBLE for shares.
No integer division (DuckDB's `/` gives a DOUBLE, Trino's truncates), no engine-specific median.
"""

# ruff: noqa: S608 - a SQL generator builds SQL text; every outside value goes through _literal() or _ident()

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from cdp.analytics.models import (
    CHURNED_DAYS,
    DORMANT_DAYS,
    MATURE_ORDERS,
    MAX_TAG_VALUES,
    AnalyticsError,
    ChannelBy,
    CohortBy,
    Period,
)
from cdp.warehouse.schema import EVENTS, PROFILES, TAGS, WarehouseTable, brand_segment

Dialect = Literal["duckdb", "athena"]
DIALECTS: tuple[str, ...] = ("duckdb", "athena")

MAX_OFFSET = 120
MAX_ORDERS = 50
MAX_WINDOW_DAYS = 365
ORDER_PLACED = "order_placed"
MESSAGE_DELIVERED = "message_delivered"
DELIVERED = "delivered"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _timestamp(at: datetime) -> str:
    return f"TIMESTAMP '{at:%Y-%m-%d %H:%M:%S}'"


def _days(n: int) -> str:
    return f"INTERVAL '{n}' DAY"


def _with(ctes: list[tuple[str, str]]) -> str:
    return "WITH " + ",\n".join(f"{name} AS (\n{body}\n)" for name, body in ctes) + "\n"


class AnalyticsQueries:
    """The reports' SQL for one brand and period. `database` is the Glue database Athena reads (the stack output
    `WarehouseDatabase`); DuckDB reads views of the table names."""

    def __init__(self, brand_id: str, period: Period, dialect: Dialect = "duckdb", database: str | None = None) -> None:
        if dialect not in DIALECTS:
            raise AnalyticsError(f"unknown SQL dialect {dialect!r}; known: {', '.join(DIALECTS)}", "dialect")
        if dialect == "athena" and not database:
            raise AnalyticsError("Athena reads the Glue database's tables: name the database", "database")
        if not brand_id:
            raise AnalyticsError("a report is about one brand: name it", "brand_id")
        self.brand_id, self.period, self.dialect, self.database = brand_id, period, dialect, database
        self.months = period.months()

    # ---- the tables ----------------------------------------------------------------------------------------------

    def table(self, table: WarehouseTable) -> str:
        if self.dialect == "athena":
            return f"{_ident(self.database or '')}.{_ident(table.name)}"
        return _ident(table.name)

    def _brand(self) -> str:
        value = brand_segment(self.brand_id) if self.dialect == "athena" else self.brand_id
        return f"brand_id = {_literal(value)}"

    def _orders(self, until: datetime, *, previous: bool = False) -> tuple[str, str]:
        """Every order of the brand's persons before `until` (the first one ever included), with the time of the
        person's previous order when asked."""
        last_day = (until - timedelta(days=1)).date()
        lag = (
            ",\n  lag(occurred_at) OVER (PARTITION BY person_id ORDER BY occurred_at, event_id) AS previous_at"
            if previous
            else ""
        )
        return "brand_orders", (
            f"SELECT person_id, event_id, occurred_at, source{lag}\nFROM {self.table(EVENTS)}\n"
            f"WHERE {self._brand()} AND dt <= {_literal(last_day.isoformat())}\n"
            f"  AND event_type = {_literal(ORDER_PLACED)} AND person_id IS NOT NULL\n"
            f"  AND occurred_at < {_timestamp(until)}"
        )

    def _months(self) -> tuple[str, str]:
        rows = ", ".join(
            f"({m.index}, {_literal(m.label)}, {_timestamp(m.start)}, {_timestamp(m.end)})" for m in self.months
        )
        return "months", f"SELECT * FROM (VALUES {rows}) AS m(month_index, month_label, month_from, month_to)"

    @staticmethod
    def _values(name: str, column: str, values: range) -> tuple[str, str]:
        rows = ", ".join(f"({v})" for v in values)
        return name, f"SELECT * FROM (VALUES {rows}) AS v({column})"

    def _ranked(self) -> tuple[str, str]:
        return "ranked_orders", (
            "SELECT person_id, occurred_at, source,\n"
            "  row_number() OVER (PARTITION BY person_id ORDER BY occurred_at, event_id) AS order_number\n"
            "FROM brand_orders"
        )

    # ---- reports -------------------------------------------------------------------------------------------------

    def cohort_retention(self, by: CohortBy = "month", max_offset: int = 12) -> str:
        """`CohortRow`s: per cohort (first-order month, or acquisition channel) and month offset 0..max_offset, the
        members who bought in that month. Only offsets some member is observed at are listed."""
        if not 0 <= max_offset <= MAX_OFFSET:
            raise AnalyticsError(f"max_offset must be between 0 and {MAX_OFFSET}", "max_offset")
        if by not in ("month", "channel"):
            raise AnalyticsError(f"cohorts are by month or by channel, not {by!r}", "by")
        last_index = self.months[-1].index
        ctes = [
            self._orders(self.period.until),
            self._months(),
            self._values("offsets", "month_offset", range(min(max_offset, last_index) + 1)),
            self._ranked(),
        ]
        if by == "month":
            cohort, joined = "m.month_label", ""
        else:
            ctes.append(
                (
                    "brand_profiles",
                    f"SELECT person_id, acquisition_platform, acquisition_at\nFROM {self.table(PROFILES)}\n"
                    f"WHERE {self._brand()}",
                )
            )
            cohort = (
                "CASE WHEN p.acquisition_platform IS NOT NULL AND p.acquisition_at <= r.occurred_at "
                "THEN p.acquisition_platform ELSE COALESCE(r.source, 'unknown') END"
            )
            joined = "\nLEFT JOIN brand_profiles p ON p.person_id = r.person_id"
        ctes += [
            (
                "members",  # first order ever, within the period
                f"SELECT r.person_id, m.month_index AS cohort_index, {cohort} AS cohort\n"
                "FROM ranked_orders r\nJOIN months m ON r.occurred_at >= m.month_from AND r.occurred_at < m.month_to"
                f"{joined}\nWHERE r.order_number = 1",
            ),
            (
                "bought",
                "SELECT DISTINCT b.cohort, b.person_id, m.month_index - b.cohort_index AS month_offset\n"
                "FROM members b\nJOIN brand_orders o ON o.person_id = b.person_id\n"
                "JOIN months m ON o.occurred_at >= m.month_from AND o.occurred_at < m.month_to",
            ),
            ("sizes", "SELECT cohort, count(*) AS cohort_size FROM members GROUP BY cohort"),
            (
                "observed",
                "SELECT b.cohort, k.month_offset, count(*) AS observed\n"
                f"FROM members b\nJOIN offsets k ON b.cohort_index + k.month_offset <= {last_index}\n"
                "GROUP BY b.cohort, k.month_offset",
            ),
            (
                "buyers",
                "SELECT cohort, month_offset, count(*) AS customers FROM bought GROUP BY cohort, month_offset",
            ),
        ]
        return _with(ctes) + (
            "SELECT v.cohort, s.cohort_size, v.month_offset, v.observed, COALESCE(c.customers, 0) AS customers,\n"
            "  CAST(COALESCE(c.customers, 0) AS DOUBLE) / v.observed AS share\n"
            "FROM observed v\nJOIN sizes s ON s.cohort = v.cohort\n"
            "LEFT JOIN buyers c ON c.cohort = v.cohort AND c.month_offset = v.month_offset\n"
            "ORDER BY v.cohort, v.month_offset"
        )

    def repeat_purchase(self, max_orders: int = 5) -> str:
        """`RepeatRow`s for k = 1..max_orders: the period's new customers with at least k orders by its end, and the
        median days from their first to second order."""
        if not 1 <= max_orders <= MAX_ORDERS:
            raise AnalyticsError(f"max_orders must be between 1 and {MAX_ORDERS}", "max_orders")
        since = _timestamp(self.period.since)
        ctes = [
            self._orders(self.period.until),
            self._ranked(),
            (
                "new_buyers",
                "SELECT person_id, count(*) AS orders FROM ranked_orders GROUP BY person_id\n"
                f"HAVING min(occurred_at) >= {since}",
            ),
            (
                "gaps",
                "SELECT date_diff('day', CAST(f.occurred_at AS DATE), CAST(s.occurred_at AS DATE)) AS gap_days\n"
                "FROM ranked_orders f\n"
                "JOIN ranked_orders s ON s.person_id = f.person_id AND s.order_number = 2\n"
                f"WHERE f.order_number = 1 AND f.occurred_at >= {since}",
            ),
            (
                "ordered_gaps",
                "SELECT gap_days, row_number() OVER (ORDER BY gap_days) AS gap_rank, count(*) OVER () AS gap_count\n"
                "FROM gaps",
            ),
            (
                "median_gap",  # the middle value, or the mean of the two middle ones: exact in both engines
                "SELECT avg(CAST(gap_days AS DOUBLE)) AS gap_days FROM ordered_gaps\n"
                "WHERE 2 * gap_rank BETWEEN gap_count AND gap_count + 2",
            ),
            ("totals", "SELECT count(*) AS buyers FROM new_buyers"),
            self._values("levels", "orders_at_least", range(1, max_orders + 1)),
        ]
        return _with(ctes) + (
            "SELECT k.orders_at_least, count(b.person_id) AS customers, t.buyers,\n"
            "  CASE WHEN t.buyers = 0 THEN CAST(0 AS DOUBLE) ELSE CAST(count(b.person_id) AS DOUBLE) / t.buyers END"
            " AS share,\n"
            "  g.gap_days AS median_days_to_second\n"
            "FROM levels k\nCROSS JOIN totals t\nCROSS JOIN median_gap g\n"
            "LEFT JOIN new_buyers b ON b.orders >= k.orders_at_least\n"
            "GROUP BY k.orders_at_least, t.buyers, g.gap_days\nORDER BY k.orders_at_least"
        )

    def _stages(self) -> list[tuple[str, str]]:
        """Each person's lifecycle stage at the period's start (instant 0) and at the end of each of its months."""
        instants = [(0, self.period.previous_month_label(), self.period.since)]
        instants += [(m.index + 1, m.label, m.end) for m in self.months]
        rows = ", ".join(f"({i}, {_literal(label)}, {_timestamp(at)})" for i, label, at in instants)
        return [
            self._orders(self.period.until),
            (
                "known_persons",
                f"SELECT person_id, COALESCE(first_seen_at, created_at) AS seen_at\nFROM {self.table(PROFILES)}\n"
                f"WHERE {self._brand()}",
            ),
            (
                "persons",
                "SELECT person_id, min(seen_at) AS seen_at FROM (\n"
                "  SELECT person_id, seen_at FROM known_persons\n"
                "  UNION ALL SELECT person_id, occurred_at FROM brand_orders\n"
                ") AS s\nGROUP BY person_id",
            ),
            ("instants", f"SELECT * FROM (VALUES {rows}) AS i(instant, month_label, at_time)"),
            (
                "states",
                "SELECT i.instant, i.month_label, i.at_time, p.person_id,\n"
                "  count(o.person_id) AS orders, max(o.occurred_at) AS last_order_at\n"
                "FROM instants i\nJOIN persons p ON p.seen_at < i.at_time\n"
                "LEFT JOIN brand_orders o ON o.person_id = p.person_id AND o.occurred_at < i.at_time\n"
                "GROUP BY i.instant, i.month_label, i.at_time, p.person_id",
            ),
            (
                "stages",
                "SELECT instant, month_label, person_id,\n"
                "  CASE WHEN orders = 0 THEN 'introduction'\n"
                f"    WHEN last_order_at <= at_time - {_days(CHURNED_DAYS)} THEN 'churned'\n"
                f"    WHEN last_order_at <= at_time - {_days(DORMANT_DAYS)} THEN 'dormant'\n"
                f"    WHEN orders >= {MATURE_ORDERS} THEN 'mature'\n"
                "    ELSE 'growth' END AS stage\n"
                "FROM states",
            ),
        ]

    def lifecycle_stages(self) -> str:
        """`LifecycleStageRow`s: persons per stage at the end of each month of the period."""
        return _with(self._stages()) + (
            "SELECT month_label AS month, stage, count(*) AS persons\nFROM stages\nWHERE instant > 0\n"
            "GROUP BY month_label, stage\nORDER BY month, stage"
        )

    def lifecycle_flows(self) -> str:
        """`LifecycleFlowRow`s: per month, persons by (stage at the previous month's end, stage at this one's)."""
        return _with(self._stages()) + (
            "SELECT c.month_label AS month, p.stage AS from_stage, c.stage AS to_stage, count(*) AS persons\n"
            "FROM stages c\nLEFT JOIN stages p ON p.person_id = c.person_id AND p.instant = c.instant - 1\n"
            "WHERE c.instant > 0\nGROUP BY c.month_label, p.stage, c.stage\n"
            "ORDER BY month, from_stage NULLS FIRST, to_stage"
        )

    def lifecycle(self) -> str:
        """The stages and the flows in one query (one Athena run, the stages computed once): `row_kind` 'stage' rows
        carry the stage in `to_stage` (no `from_stage`), 'flow' rows are `lifecycle_flows`' rows; each kind in the
        order of its own query."""
        return _with(self._stages()) + (
            "SELECT 'stage' AS row_kind, month_label AS month, CAST(NULL AS VARCHAR) AS from_stage, "
            "stage AS to_stage, count(*) AS persons\nFROM stages\nWHERE instant > 0\nGROUP BY month_label, stage\n"
            "UNION ALL\n"
            "SELECT 'flow' AS row_kind, c.month_label AS month, p.stage AS from_stage, c.stage AS to_stage, "
            "count(*) AS persons\n"
            "FROM stages c\nLEFT JOIN stages p ON p.person_id = c.person_id AND p.instant = c.instant - 1\n"
            "WHERE c.instant > 0\nGROUP BY c.month_label, p.stage, c.stage\n"
            "ORDER BY row_kind DESC, month, from_stage NULLS FIRST, to_stage"
        )

    def channel_outcomes(self, by: ChannelBy = "channel", window_days: int = 30) -> str:
        """`ChannelRow`s: per message channel (or campaign), the persons its deliveries in the period reached and
        what they did in the `window_days` after. Orders up to `window_days` past the period's end are read, so a
        period is final once that many days have passed."""
        if not 1 <= window_days <= MAX_WINDOW_DAYS:
            raise AnalyticsError(f"window_days must be between 1 and {MAX_WINDOW_DAYS}", "window_days")
        if by not in ("channel", "campaign"):
            raise AnalyticsError(f"channel outcomes are by channel or by campaign, not {by!r}", "by")
        key = "channel" if by == "channel" else "campaign_id"
        window = _days(window_days)
        in_window = f"o.occurred_at > t.touched_at AND o.occurred_at <= t.touched_at + {window}"
        ctes = [
            self._orders(self.period.until + timedelta(days=window_days), previous=True),
            (
                "touches",
                f"SELECT DISTINCT person_id, {key} AS group_key, occurred_at AS touched_at\n"
                f"FROM {self.table(EVENTS)}\n"
                f"WHERE {self._brand()} AND dt >= {_literal(self.period.start.isoformat())} "
                f"AND dt <= {_literal(self.period.end.isoformat())}\n"
                f"  AND event_type = {_literal(MESSAGE_DELIVERED)} AND COALESCE(status, {_literal(DELIVERED)}) = "
                f"{_literal(DELIVERED)}\n"
                f"  AND person_id IS NOT NULL AND occurred_at >= {_timestamp(self.period.since)} "
                f"AND occurred_at < {_timestamp(self.period.until)}",
            ),
            (
                "touch_outcomes",  # one row per delivery: the last order before it and the orders in its window
                "SELECT t.group_key, t.person_id, t.touched_at,\n"
                "  max(CASE WHEN o.occurred_at <= t.touched_at THEN o.occurred_at END) AS last_before,\n"
                f"  count(CASE WHEN {in_window} THEN 1 END) AS orders_after,\n"
                f"  count(CASE WHEN {in_window} AND o.previous_at IS NULL THEN 1 END) AS first_orders,\n"
                f"  count(CASE WHEN {in_window} AND o.previous_at <= o.occurred_at - {_days(DORMANT_DAYS)} THEN 1 END)"
                " AS win_backs,\n"
                f"  count(CASE WHEN {in_window} AND o.previous_at > o.occurred_at - {_days(DORMANT_DAYS)} THEN 1 END)"
                " AS repeats\n"
                "FROM touches t\nLEFT JOIN brand_orders o ON o.person_id = t.person_id\n"
                "GROUP BY t.group_key, t.person_id, t.touched_at",
            ),
        ]
        lost = (
            f"orders_after = 0 AND last_before > touched_at - {_days(DORMANT_DAYS)} "
            f"AND last_before <= touched_at + {window} - {_days(DORMANT_DAYS)}"
        )
        return _with(ctes) + (
            "SELECT group_key AS key,\n  count(DISTINCT person_id) AS reached,\n"
            "  count(DISTINCT CASE WHEN first_orders > 0 THEN person_id END) AS acquired,\n"
            "  count(DISTINCT CASE WHEN win_backs > 0 THEN person_id END) AS activated,\n"
            "  count(DISTINCT CASE WHEN repeats > 0 THEN person_id END) AS retained,\n"
            "  count(DISTINCT CASE WHEN orders_after > 0 THEN person_id END) AS converted,\n"
            f"  count(DISTINCT CASE WHEN {lost} THEN person_id END) AS lost\n"
            "FROM touch_outcomes\nGROUP BY group_key\nORDER BY key NULLS LAST"
        )

    def programme(self) -> str:
        """`ProgrammeRow`s: the global control group and everyone else (marketed), always both in that order: the
        brand's persons known by the period's end whose profile row says which group they are in, and their orders
        in the period. Per-person revenue is summed as a DOUBLE square (a BIGINT square overflows past 3e9 minor
        units)."""
        ctes = [
            (
                "members",
                f"SELECT person_id, global_control\nFROM {self.table(PROFILES)}\n"
                f"WHERE {self._brand()} AND global_control IS NOT NULL\n"
                f"  AND COALESCE(first_seen_at, created_at) < {_timestamp(self.period.until)}",
            ),
            (
                "period_orders",
                f"SELECT person_id, amount_minor\nFROM {self.table(EVENTS)}\n"
                f"WHERE {self._brand()} AND dt >= {_literal(self.period.start.isoformat())} "
                f"AND dt <= {_literal(self.period.end.isoformat())}\n"
                f"  AND event_type = {_literal(ORDER_PLACED)} AND person_id IS NOT NULL\n"
                f"  AND occurred_at >= {_timestamp(self.period.since)} "
                f"AND occurred_at < {_timestamp(self.period.until)}",
            ),
            (
                "spend",
                "SELECT m.person_id, m.global_control, count(o.person_id) AS orders,\n"
                "  COALESCE(sum(o.amount_minor), 0) AS revenue\n"
                "FROM members m\nLEFT JOIN period_orders o ON o.person_id = m.person_id\n"
                "GROUP BY m.person_id, m.global_control",
            ),
            (
                "programme_groups",
                "SELECT * FROM (VALUES (TRUE, 'global_control'), (FALSE, 'marketed')) AS g(in_control, group_name)",
            ),
        ]
        return _with(ctes) + (
            'SELECT g.group_name AS "group", count(s.person_id) AS persons,\n'
            "  count(CASE WHEN s.orders > 0 THEN 1 END) AS buyers,\n"
            "  COALESCE(sum(s.orders), 0) AS orders,\n"
            "  COALESCE(sum(s.revenue), 0) AS revenue_minor,\n"
            "  COALESCE(sum(CAST(s.revenue AS DOUBLE) * s.revenue), CAST(0 AS DOUBLE)) AS revenue_squares\n"
            "FROM programme_groups g\nLEFT JOIN spend s ON s.global_control = g.in_control\n"
            "GROUP BY g.group_name\nORDER BY g.group_name"
        )

    def tag_values(self) -> str:
        """`TagValueRow`s: per tag, how many of the brand's persons hold each value now (the last export's snapshot;
        the period does not apply: the tags table holds only the current values)."""
        ctes = [
            ("brand_persons", f"SELECT count(*) AS n FROM {self.table(PROFILES)} WHERE {self._brand()}"),
            (
                "held",
                f"SELECT tag, value, count(*) AS persons\nFROM {self.table(TAGS)}\n"
                f"WHERE {self._brand()} AND tag NOT LIKE 'audience:%' AND value IS NOT NULL\nGROUP BY tag, value",
            ),
            (
                "ranked",
                "SELECT tag, value, persons,\n"
                "  row_number() OVER (PARTITION BY tag ORDER BY persons DESC, value) AS place\nFROM held",
            ),
            (
                "shown",
                f"SELECT tag, CASE WHEN place <= {MAX_TAG_VALUES} THEN value ELSE 'other' END AS value,\n"
                f"  CASE WHEN place <= {MAX_TAG_VALUES} THEN place ELSE {MAX_TAG_VALUES + 1} END AS place, persons\n"
                "FROM ranked",
            ),
        ]
        return _with(ctes) + (
            "SELECT s.tag, s.value, sum(s.persons) AS persons,\n"
            "  CASE WHEN max(b.n) > 0 THEN CAST(sum(s.persons) AS DOUBLE) / max(b.n) ELSE 0.0 END AS share\n"
            "FROM shown s CROSS JOIN brand_persons b\nGROUP BY s.tag, s.value, s.place\nORDER BY s.tag, s.place"
        )

    def reports(self) -> dict[str, str]:
        """Every report's SQL with its default parameters (the dialect test parses each)."""
        return {
            "cohorts_by_month": self.cohort_retention("month"),
            "cohorts_by_channel": self.cohort_retention("channel"),
            "repeat_purchase": self.repeat_purchase(),
            "lifecycle_stages": self.lifecycle_stages(),
            "lifecycle_flows": self.lifecycle_flows(),
            "lifecycle": self.lifecycle(),
            "channels": self.channel_outcomes("channel"),
            "campaigns": self.channel_outcomes("campaign"),
            "programme": self.programme(),
            "tags": self.tag_values(),
        }
