"""`cdp bench --suite tags`: the tag system at scale.

1. Generates (seeded, with DuckDB's vectorized SQL, cached under bench-output/tags-data/) a brand of N profiles
   (default 1,000,000) and M events (default 10,000,000) over three years, in the Parquet shape `cdp.tags.sql`
   reads: orders with order lines (categories incl. birthday cakes and air conditioners), page views, carts,
   returns, message deliveries, opens and clicks; profile attributes (gender, city, birthday, consent) and order
   aggregates consistent with the events.
2. Batch: 20 tags of the bundled catalog evaluated for everyone as one DuckDB SQL query (target < 60 s on 2 cores),
   written to tags.parquet.
3. Audience size estimate: "women 40-60 in Shanghai whose top category is beauty, not churned, SMS opt-in" counted
   over the materialized tags (target < 2 s); the same count computed from the raw events is reported beside it.
4. Real time: `cdp_local.bench_tag_update.run_realtime_bench` (the tag_update handler in-process, p50/p95 per event).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
from pydantic import TypeAdapter

from cdp.tags.catalog import TagCatalog, bundled_catalog
from cdp.tags.evaluate import RuleEvaluator
from cdp.tags.records import DAY
from cdp.tags.rules import Condition
from cdp_local.bench import Metric
from cdp_local.tags_batch import (
    EVENTS_FILE,
    PROFILES_FILE,
    BatchTagEngine,
    TagBatchResult,
    read_person_records,
)

BATCH_TAGS = (
    "lifecycle",
    "rfm_recency",
    "rfm_frequency",
    "rfm_monetary",
    "rfm_segment",
    "spend_tier",
    "dormant_high_value",
    "purchased_last_7d",
    "frequent_buyer_30d",
    "cart_abandoner_3d",
    "message_engaged_30d",
    "top_category",
    "favourite_store",
    "preferred_channel",
    "cake_months",
    "repurchase_cycle_days",
    "repurchase_due_7d",
    "ac_cleaning_due",
    "age_band",
    "gender",
)
"""Twenty tags of every family that reads events (windows, most-frequent, timing) plus a tag reading tags."""

AUDIENCE: dict[str, Any] = {
    "all": [
        {"attr": "gender", "eq": "female"},
        {"attr": "age", "between": [40, 60]},
        {"attr": "city", "eq": "Shanghai"},
        {"tag": "top_category", "eq": "beauty"},
        {"not": {"tag": "lifecycle", "eq": "churned"}},
        {"attr": "consent_sms", "eq": True},
    ]
}
AUDIENCE_RAW: dict[str, Any] = {  # the same people, with the tag tests spelled as aggregates over the events
    "all": [
        {"attr": "gender", "eq": "female"},
        {"attr": "age", "between": [40, 60]},
        {"attr": "city", "eq": "Shanghai"},
        {"agg": "most_frequent", "event": "order_line", "field": "category", "within_days": 365, "eq": "beauty"},
        {"not": {"agg": "days_since_last", "event": "order_placed", "gte": 365}},
        {"attr": "consent_sms", "eq": True},
    ]
}
ASOF = 1_795_000_000  # 2026-11-17T08:26:40Z: a fixed instant, so cached data and figures stay comparable
CITIES = ("Shanghai", "Beijing", "Shenzhen", "Hangzhou", "Chengdu", "Wuhan", "Nanjing", "Xi'an")
CATEGORIES = ("pastry", "beauty", "apparel", "snacks", "small_appliance", "birthday_cake", "air_conditioner")
STORES = 300
SPOT_CHECK_PERSONS = 300
MIX = {  # share of events by type (order lines are ~1.5 per order on top of the orders' share)
    "page_view": 0.38,
    "add_to_cart": 0.09,
    "order_placed": 0.15,
    "order_line": 0.22,
    "order_returned": 0.01,
    "message_delivered": 0.08,
    "message_opened": 0.05,
    "message_clicked": 0.02,
}

Status = Callable[[str], None]


def _sql_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def generate(directory: Path, profiles: int, events: int, seed: int = 7, status: Status | None = None) -> float:
    """Write profiles.parquet and events.parquet (skipped when a matching set is cached); seconds spent."""
    meta = directory / "generated.json"
    wanted = {"profiles": profiles, "events": events, "seed": seed, "asof": ASOF, "version": 2}  # 2: brand_id
    if meta.exists() and json.loads(meta.read_text()) == wanted:
        return 0.0
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute(f"SELECT setseed({(seed % 1000) / 1000})")
        counts = {kind: int(events * share) for kind, share in MIX.items()}
        counts["page_view"] += events - sum(counts.values())
        span = 3 * 365 * DAY
        # persons' activity is skewed (a few heavy buyers, many light ones): person = floor(N * u^2)
        person = f"'p' || lpad(CAST(CAST(floor({profiles} * pow(random(), 2)) AS BIGINT) AS VARCHAR), 7, '0')"
        ts = f"CAST({ASOF} - floor(random() * {span}) AS BIGINT)"
        if status:
            status(f"tags bench: generating {events:,} events")
        con.execute(
            f"""CREATE TABLE orders AS SELECT 'o' || CAST(i AS VARCHAR) AS order_id, {person} AS person_id, {ts} AS ts,
                CAST(floor(random() * {STORES}) AS INTEGER) AS store, random() AS u
            FROM range({counts["order_placed"]}) t(i)"""
        )
        categories = _sql_list(CATEGORIES)
        parts = [
            """SELECT person_id, 'pos#' || order_id AS event_id, 'order_placed' AS event_type, ts,
                CASE WHEN u < 0.4 THEN 'pos' WHEN u < 0.7 THEN 'tmall' ELSE 'mini_program' END AS source,
                's' || CAST(store AS VARCHAR) AS store_id,
                CASE WHEN u < 0.4 THEN 'offline' ELSE 'online' END AS channel,
                NULL AS category, NULL AS product_id, NULL AS name, NULL AS campaign_id,
                CAST(2000 + floor(u * 60000) AS BIGINT) AS amount_minor, 1 AS quantity, NULL AS rating, NULL AS points
            FROM orders""",
            # order lines: the first lines of the first orders (about 1.5 per order)
            f"""SELECT o.person_id, 'pos#' || o.order_id || '#' || CAST(n AS VARCHAR), 'order_line', o.ts, NULL,
                NULL, NULL, {categories}[1 + CAST(floor(pow(random(), 1.6) * {len(CATEGORIES)}) AS INTEGER)],
                'sku-' || CAST(CAST(floor(random() * 500) AS INTEGER) AS VARCHAR), NULL, NULL,
                CAST(1000 + floor(random() * 30000) AS BIGINT), 1, NULL, NULL
            FROM orders o, range(2) r(n) WHERE n = 0 OR o.u < 0.5
            LIMIT {counts["order_line"]}""",
        ]
        for kind, extra in (
            # product_id, name, campaign_id
            ("page_view", "NULL, NULL, NULL"),
            ("add_to_cart", "'sku-1', NULL, NULL"),
            ("order_returned", "NULL, NULL, NULL"),
            ("message_delivered", "NULL, NULL, 'cmp-1'"),
            ("message_opened", "NULL, NULL, 'cmp-1'"),
            ("message_clicked", "NULL, NULL, 'cmp-1'"),
        ):
            channel = (
                "CASE WHEN random() < 0.5 THEN 'sms' WHEN random() < 0.6 THEN 'push' ELSE 'email' END"
                if kind.startswith("message")
                else "NULL"
            )
            parts.append(
                f"""SELECT {person}, 'app#{kind}-' || CAST(i AS VARCHAR), '{kind}', {ts}, 'app', NULL, {channel},
                    {categories}[1 + CAST(floor(random() * {len(CATEGORIES)}) AS INTEGER)], {extra},
                    CASE WHEN '{kind}' = 'order_returned' THEN CAST(1000 + floor(random() * 20000) AS BIGINT) END,
                    NULL, NULL, NULL
                FROM range({counts[kind]}) t(i)"""
            )
        columns = (
            "person_id, event_id, event_type, ts, source, store_id, channel, category, product_id, name, "
            "campaign_id, amount_minor, quantity, rating, points"
        )
        con.execute(f"CREATE TABLE raw ({_raw_schema()})")
        for part in parts:
            con.execute(f"INSERT INTO raw ({columns}) {part}")
        con.execute(
            f"""COPY (SELECT person_id, event_id, event_type, ts,
                    CAST(year(to_timestamp(ts) AT TIME ZONE 'UTC') AS INTEGER) AS year,
                    CAST(month(to_timestamp(ts) AT TIME ZONE 'UTC') AS INTEGER) AS month,
                    source, store_id, channel, category, product_id, name, campaign_id, amount_minor, quantity,
                    rating, points
                FROM raw ORDER BY person_id, ts) TO '{directory / EVENTS_FILE}' (FORMAT parquet)"""
        )
        if status:
            status(f"tags bench: generating {profiles:,} profiles")
        con.execute(
            f"""COPY (WITH agg AS (
                    SELECT person_id,
                        count(*) FILTER (WHERE event_type = 'order_placed') AS order_count,
                        count(*) FILTER (WHERE event_type = 'order_returned') AS return_count,
                        COALESCE(sum(amount_minor) FILTER (WHERE event_type = 'order_placed'), 0) AS spend_minor,
                        COALESCE(sum(amount_minor) FILTER (WHERE event_type = 'order_returned'), 0) AS refund_minor,
                        count(*) FILTER (WHERE event_type = 'page_view') AS page_views,
                        count(*) FILTER (WHERE event_type = 'add_to_cart') AS cart_adds,
                        count(*) FILTER (WHERE event_type <> 'order_line') AS event_count
                    FROM raw GROUP BY person_id)
                SELECT 'p' || lpad(CAST(i AS VARCHAR), 7, '0') AS person_id, 'bench-brand' AS brand_id,
                    CASE WHEN random() < 0.62 THEN 'female' WHEN random() < 0.9 THEN 'male' ELSE NULL END AS gender,
                    {_sql_list(CITIES)}[1 + CAST(floor(pow(random(), 1.3) * {len(CITIES)}) AS INTEGER)] AS city,
                    'CN' AS country,
                    CASE WHEN random() < 0.2 THEN 'gold' WHEN random() < 0.5 THEN 'silver' ELSE NULL END
                        AS member_level,
                    CAST(floor(1 + random() * 12) AS BIGINT) AS birth_month,
                    COALESCE(a.order_count, 0) AS order_count, COALESCE(a.return_count, 0) AS return_count,
                    COALESCE(a.spend_minor, 0) AS spend_minor,
                    COALESCE(a.spend_minor, 0) - COALESCE(a.refund_minor, 0) AS net_spend_minor,
                    CAST(floor(random() * 5000) AS BIGINT) AS points,
                    COALESCE(a.page_views, 0) AS page_views, COALESCE(a.cart_adds, 0) AS cart_adds,
                    COALESCE(a.event_count, 0) AS event_count,
                    CASE WHEN random() < 0.1 THEN 'oceanengine' END AS acquisition_platform,
                    random() < 0.55 AS consent_sms, random() < 0.4 AS consent_email,
                    random() < 0.3 AS consent_push, random() < 0.45 AS consent_wechat,
                    CAST(1950 + floor(random() * 55) AS BIGINT) AS birth_year,
                    CAST(floor(1 + random() * 28) AS BIGINT) AS birth_day
                FROM range({profiles}) t(i)
                LEFT JOIN agg a ON a.person_id = 'p' || lpad(CAST(i AS VARCHAR), 7, '0')
                ORDER BY person_id) TO '{directory / PROFILES_FILE}' (FORMAT parquet)"""
        )
    finally:
        con.close()
    meta.write_text(json.dumps(wanted))
    return time.perf_counter() - started


def _raw_schema() -> str:
    from cdp.tags.sql import EVENT_SQL_TYPES

    return ", ".join(
        f"{name} {sql_type}" for name, sql_type in EVENT_SQL_TYPES.items() if name not in ("year", "month")
    )


def tags_benchmark(
    directory: Path,
    profiles: int = 1_000_000,
    events: int = 10_000_000,
    realtime_events: int = 2000,
    status: Status | None = None,
) -> dict[str, Metric]:
    generated_s = generate(directory, profiles, events, status=status)
    catalog = bundled_catalog()
    condition = TypeAdapter(Condition).validate_python(AUDIENCE)
    raw_condition = TypeAdapter(Condition).validate_python(AUDIENCE_RAW)
    out: dict[str, Metric] = {
        "tags.profiles": {"value": profiles, "unit": "profiles"},
        "tags.events": {"value": _rows(directory / EVENTS_FILE), "unit": "event rows"},
        "tags.generate_seconds": {"value": round(generated_s, 1), "unit": "s (0: cached data reused)"},
    }
    with BatchTagEngine(directory) as engine:
        if status:
            status(f"tags bench: batch evaluation of {len(BATCH_TAGS)} tags over {profiles:,} profiles")
        result = engine.evaluate_tags(catalog, ASOF, list(BATCH_TAGS))
        out["tags.batch_20_tags_seconds"] = {"value": round(result.seconds, 2), "unit": "s (target < 60)"}
        out["tags.batch_profiles_per_second"] = {
            "value": round(result.persons / result.seconds) if result.seconds else 0,
            "unit": "profiles/s",
        }
        checked, agreeing = _spot_check(engine, result, catalog)
        out["tags.batch_spot_check_values"] = {"value": checked, "unit": "values re-evaluated in memory"}
        out["tags.batch_spot_check_agreeing"] = {"value": agreeing, "unit": "values equal to the batch's"}
        if status:
            status("tags bench: audience size estimate")
        started = time.perf_counter()
        size = engine.count(catalog, ASOF, condition)
        size_s = time.perf_counter() - started
        out["tags.audience_size"] = {"value": size, "unit": "persons"}
        out["tags.audience_size_seconds"] = {"value": round(size_s, 3), "unit": "s over tags.parquet (target < 2)"}
        started = time.perf_counter()
        size_raw = engine.count(catalog, ASOF, raw_condition)
        out["tags.audience_size_from_events_seconds"] = {
            "value": round(time.perf_counter() - started, 2),
            "unit": "s (the same audience computed from the raw events)",
        }
        out["tags.audience_size_agrees"] = {"value": int(size == size_raw), "unit": "1 = both counts equal"}
    if realtime_events:
        from cdp_local.bench_tag_update import run_realtime_bench

        if status:
            status(f"tags bench: {realtime_events} events through tag_update in-process")
        out |= run_realtime_bench(realtime_events)
    return out


def _spot_check(
    engine: BatchTagEngine, result: TagBatchResult, catalog: TagCatalog, persons: int = SPOT_CHECK_PERSONS
) -> tuple[int, int]:
    """Re-evaluate a seeded sample of persons with the in-memory evaluator and count equal values."""
    population = result.persons
    picks = sorted({f"p{i:07d}" for i in random.Random(11).sample(range(population), min(persons, population))})
    batch_rows = engine.tag_rows(result, picks)
    checked = agreeing = 0
    for record in read_person_records(engine.data_dir, picks):
        evaluator = RuleEvaluator(record, result.asof)
        for name in catalog.order:
            computed = evaluator.tag(name, catalog.definitions[name].rule)
            if name in result.tags:
                checked += 1
                agreeing += computed.value == batch_rows.get(record.person_id, {}).get(name)
    return checked, agreeing


def _rows(path: Path) -> int:
    con = duckdb.connect()
    try:
        row = con.execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchone()
        return int(row[0]) if row else 0
    finally:
        con.close()
