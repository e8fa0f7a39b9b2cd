"""A tiny warehouse export, laid out as `cdp export warehouse` leaves it, whose reports are computed by hand in the
tests: nine persons of the brand `outlet:sh` (a brand id that is percent-encoded in its path, as the writer does)
and one person of another brand, who must never count.

Orders (`order_placed`, with their source) and when each person was first seen:

    A  seen 2025-12-20  orders 2026-01-05 23:30 web, 2026-02-10 00:30 web, 2026-04-20 app; a return 2026-02-12
       acquisition: oceanengine ad click 2026-01-01 (before the first order)
    B  seen 2026-01-20  order  2026-01-20 tmall; acquisition: tencent-ads 2026-02-01 (after the first order)
    C  seen 2026-02-01 00:00 exactly  orders 2026-02-03 web, 2026-02-25 web, 2026-03-15 pos
    D  seen 2025-09-01  orders 2025-10-01 pos, 2026-03-02 pos
    E  seen 2025-12-15  no order
    F  seen 2026-03-31 23:00  orders 2026-03-31 23:00 app, 2026-05-03 app (after the period the tests read)
    G  seen 2025-01-10  order  2025-01-10 web
    H  seen 2026-03-10  orders 2026-03-10 web, 2026-04-02 web
    I  no first_seen_at; created 2026-04-15  no order
    (other brand) A  order 2026-03-05: the same person id in another brand

Every order's total is 100.00 (10_000 minor units) except A's of 2026-04-20 (250.00) and C's of 2026-03-15 (50.00).
The brand's global control group (profiles.global_control): C, E, G; marketed: A, B, D, F, I; H's row has no value
(NULL: not known, as in a file written before the column). The other brand's profiles have none.

Deliveries (`message_delivered`; every time 10:00 unless said):

    sms   c1  A 2026-01-02, D 2026-02-20, B 2026-03-25
    email c2  C 2026-02-20, E 2026-02-20, A 2026-04-15, D 2026-03-20, H 2025-12-31 23:00 (before the period)
    push  --  F 2026-04-10, G 2026-01-15, H 2026-03-05 (status bounced: not delivered)
    and a message_clicked (sms) of E on 2026-02-21, which is no delivery.

Times are UTC. Unless said, an event is at 10:00.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cdp.warehouse.parquet import literal
from cdp.warehouse.schema import EVENTS, PROFILES, WarehouseTable, brand_prefix

BRAND = "outlet:sh"
OTHER_BRAND = "other-brand"


def at(text: str) -> datetime:
    """'2026-01-05' (10:00) or '2026-01-05 23:30'."""
    return datetime.fromisoformat(text if " " in text else f"{text} 10:00")


def _write(con: duckdb.DuckDBPyConnection, table: WarehouseTable, rows: list[dict[str, Any]], target: Path) -> None:
    columns = ", ".join(f'"{c.name}" {c.sql}' for c in table.columns)
    con.execute(f"CREATE OR REPLACE TABLE staged ({columns})")
    names = table.column_names
    placeholders = ", ".join("?" for _ in names)
    con.executemany(f"INSERT INTO staged VALUES ({placeholders})", [[row.get(n) for n in names] for row in rows])  # noqa: S608
    target.parent.mkdir(parents=True, exist_ok=True)
    con.execute(f"COPY staged TO {literal(str(target))} (FORMAT PARQUET)")


def write_export(
    directory: Path, brand_id: str, profiles: list[dict[str, Any]], events: Iterable[dict[str, Any]]
) -> None:
    """The brand's profiles snapshot and its events, one file per UTC day, under the export's key layout."""
    by_day: dict[str, list[dict[str, Any]]] = {}
    for n, event in enumerate(events):
        row = {"event_id": f"{brand_id}-{n}", "source": "web", "received_at": event["occurred_at"], **event}
        by_day.setdefault(row["occurred_at"].date().isoformat(), []).append(row)
    with duckdb.connect() as con:
        _write(
            con, PROFILES, profiles, directory / brand_prefix(PROFILES, brand_id).split("/", 1)[1] / "part-0.parquet"
        )
        for day, rows in by_day.items():
            prefix = brand_prefix(EVENTS, brand_id).split("/", 1)[1]
            _write(con, EVENTS, rows, directory / prefix / f"dt={day}" / "part-0.parquet")


def _person(person_id: str, seen: str | None, created: str = "2025-01-01", **extra: Any) -> dict[str, Any]:
    return {
        "person_id": person_id,
        "first_seen_at": at(seen) if seen else None,
        "created_at": at(created),
        **extra,
    }


def _order(person_id: str, when: str, source: str, amount_minor: int = 10_000) -> dict[str, Any]:
    return {
        "person_id": person_id,
        "event_type": "order_placed",
        "occurred_at": at(when),
        "source": source,
        "amount_minor": amount_minor,
        "currency": "CNY",
        "channel": "online",
    }


def _delivery(
    person_id: str, when: str, channel: str, campaign: str | None, status: str = "delivered"
) -> dict[str, Any]:
    return {
        "person_id": person_id,
        "event_type": "message_delivered",
        "occurred_at": at(when),
        "source": "cdp",
        "channel": channel,
        "campaign_id": campaign,
        "status": status,
    }


PROFILE_ROWS = [
    _person(
        "A",
        "2025-12-20",
        acquisition_platform="oceanengine",
        acquisition_at=at("2026-01-01"),
        global_control=False,
    ),
    _person(
        "B",
        "2026-01-20",
        acquisition_platform="tencent-ads",
        acquisition_at=at("2026-02-01"),
        global_control=False,
    ),
    _person("C", "2026-02-01 00:00", global_control=True),
    _person("D", "2025-09-01", global_control=False),
    _person("E", "2025-12-15", global_control=True),
    _person("F", "2026-03-31 23:00", global_control=False),
    _person("G", "2025-01-10", global_control=True),
    _person("H", "2026-03-10"),
    _person("I", None, created="2026-04-15", global_control=False),
]
EVENT_ROWS = [
    _order("A", "2026-01-05 23:30", "web"),
    _order("A", "2026-02-10 00:30", "web"),
    {"person_id": "A", "event_type": "order_returned", "occurred_at": at("2026-02-12"), "amount_minor": 10_000},
    _order("A", "2026-04-20", "app", amount_minor=25_000),
    _order("B", "2026-01-20", "tmall"),
    _order("C", "2026-02-03", "web"),
    _order("C", "2026-02-25", "web"),
    _order("C", "2026-03-15", "pos", amount_minor=5_000),
    _order("D", "2025-10-01", "pos"),
    _order("D", "2026-03-02", "pos"),
    _order("F", "2026-03-31 23:00", "app"),
    _order("F", "2026-05-03", "app"),
    _order("G", "2025-01-10", "web"),
    _order("H", "2026-03-10", "web"),
    _order("H", "2026-04-02", "web"),
    _delivery("A", "2026-01-02", "sms", "c1"),
    _delivery("D", "2026-02-20", "sms", "c1"),
    _delivery("B", "2026-03-25", "sms", "c1"),
    _delivery("C", "2026-02-20", "email", "c2"),
    _delivery("E", "2026-02-20", "email", "c2"),
    _delivery("A", "2026-04-15", "email", "c2"),
    _delivery("D", "2026-03-20", "email", "c2"),
    _delivery("H", "2025-12-31 23:00", "email", "c2"),
    _delivery("F", "2026-04-10", "push", None),
    _delivery("G", "2026-01-15", "push", None),
    _delivery("H", "2026-03-05", "push", None, status="bounced"),
    {"person_id": "E", "event_type": "message_clicked", "occurred_at": at("2026-02-21"), "channel": "sms"},
]
OTHER_PROFILES = [_person("A", "2025-12-01"), _person("X", "2026-01-01")]
OTHER_EVENTS = [
    _order("A", "2026-03-05", "web"),
    _order("X", "2026-01-03", "web"),
    _delivery("X", "2026-01-02", "sms", "c1"),
]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("warehouse-output")
    write_export(directory, BRAND, PROFILE_ROWS, EVENT_ROWS)
    write_export(directory, OTHER_BRAND, OTHER_PROFILES, OTHER_EVENTS)
    return directory
