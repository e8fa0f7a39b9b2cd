"""The warehouse tables: their columns (the DuckDB type the writer casts to, the Glue type the catalog declares),
partition keys, and where their files are. One source of truth: the writer (`cdp.warehouse.parquet`), the Glue
tables (`infra.components.warehouse`) and the tests read it.

Layout under the data bucket (partition values are Hive-style `key=value` path segments):

    warehouse/profiles/brand_id={brand}/part-{n}.parquet           the latest snapshot, replaced by every run
    warehouse/tags/brand_id={brand}/part-{n}.parquet               the latest snapshot, replaced by every run
    warehouse/events/brand_id={brand}/dt={YYYY-MM-DD}/part-{n}.parquet   one partition per UTC day of `occurred_at`
    warehouse/_state.json                                          each brand's watermark (the last day exported)
    warehouse/_erasures/{person_id}.json                           erasures the next run applies (`erasure`)

Times are UTC `timestamp` (Parquet INT64 microseconds, not adjusted: read them as UTC). Money is integer minor units
with its currency. No column holds a name, a birthday, free text or a raw identifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from urllib.parse import quote

from cdp import topology


@dataclass(frozen=True)
class Column:
    name: str
    sql: str  # DuckDB type the writer casts the row value to
    glue: str  # the Glue/Hive type Athena reads it as
    comment: str = ""


@dataclass(frozen=True)
class WarehouseTable:
    name: str
    columns: tuple[Column, ...]
    partition_keys: tuple[str, ...]
    description: str

    @property
    def prefix(self) -> str:
        return f"{topology.WAREHOUSE_PREFIX}{self.name}/"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def sql_types(self) -> dict[str, str]:
        return {c.name: c.sql for c in self.columns}


def _s(name: str, comment: str = "") -> Column:
    return Column(name, "VARCHAR", "string", comment)


def _i(name: str, comment: str = "") -> Column:
    return Column(name, "BIGINT", "bigint", comment)


def _t(name: str, comment: str = "") -> Column:
    return Column(name, "TIMESTAMP", "timestamp", comment)


def _b(name: str, comment: str = "") -> Column:
    return Column(name, "BOOLEAN", "boolean", comment)


IDENTIFIERS = Column(
    "identifiers",
    "STRUCT(type VARCHAR, sha256 VARCHAR)[]",
    "array<struct<type:string,sha256:string>>",
    "each identifier as its type and the SHA-256 of its key 'type:value' (the suppression list's hash)",
)
LINES = Column(
    "lines",
    "STRUCT(sku VARCHAR, category VARCHAR, quantity BIGINT, unit_price_minor BIGINT)[]",
    "array<struct<sku:string,category:string,quantity:bigint,unit_price_minor:bigint>>",
    "an order's lines; a return's skus",
)

PROFILES = WarehouseTable(
    name="profiles",
    description="One row per surviving person of the brand: traits, lifecycle and value facts, consent, hashed "
    "identifiers, model scores. The latest snapshot (every run replaces it).",
    partition_keys=("brand_id",),
    columns=(
        _s("person_id"),
        _t("created_at"),
        _t("updated_at"),
        Column("merged_from", "VARCHAR[]", "array<string>", "person ids merged into this one"),
        IDENTIFIERS,
        _s("gender"),
        _s("city"),
        _s("country"),
        _s("timezone"),
        _s("member_level"),
        Column("birth_year", "INTEGER", "int"),
        Column("birth_month", "INTEGER", "int"),
        _s("lifecycle", "the lifecycle tag: introduction, growth, mature, dormant, churned"),
        _s("rfm_segment", "the rfm_segment tag"),
        _i("event_count"),
        _i("page_views"),
        _i("cart_adds"),
        _i("order_count"),
        _i("return_count"),
        _i("review_count"),
        _i("spend_minor"),
        _i("refund_minor"),
        _i("net_spend_minor"),
        _s("currency"),
        _i("points_balance", "points over every programme, unconverted"),
        _i("brand_points", "points converted at each programme's rate (the brand's loyalty policy)"),
        _i("coupons_claimed"),
        _i("coupons_redeemed"),
        _i("messages_delivered"),
        _i("messages_opened"),
        _i("messages_clicked"),
        _t("first_seen_at"),
        _t("last_seen_at"),
        _t("first_order_at"),
        _t("last_order_at"),
        _s("acquisition_platform", "the ad platform of the first ad click or lead form"),
        _t("acquisition_at"),
        _b("consent_sms"),
        _b("consent_email"),
        _b("consent_push"),
        _b("consent_wechat"),
        _b(
            "global_control",
            "in the brand's persistent global control group (no marketing) at the export: the hash of "
            "cdp.channels.contact.in_global_control with the brand's share then; NULL in files written before the "
            "column existed (not known)",
        ),
        Column("scores", "MAP(VARCHAR, DOUBLE)", "map<string,double>", "model name -> score"),
        _t("exported_at"),
    ),
)

TAGS = WarehouseTable(
    name="tags",
    description="One row per (person, tag) the person holds now, audience memberships (audience:<id>) included. "
    "The latest snapshot (every run replaces it).",
    partition_keys=("brand_id",),
    columns=(
        _s("person_id"),
        _s("tag"),
        _s("value", "the value as text: true/false, a number, a string"),
        _s("value_type", "string, number or bool"),
        Column("value_number", "DOUBLE", "double", "the value of a number tag"),
        _t("since", "when it took this value"),
        _t("expires_at", "when it changes next with no new event (windows, thresholds), if ever"),
        _t("exported_at"),
    ),
)

EVENTS = WarehouseTable(
    name="events",
    description="One row per canonical event of a person (the events the profile store holds), partitioned by the "
    "UTC day it occurred. Identifiers are not repeated here: join profiles on person_id.",
    partition_keys=("brand_id", "dt"),
    columns=(
        _s("event_id", "unique per source within the brand"),
        _s("source"),
        _s("event_type"),
        _s("person_id", "the person the event belonged to when its day was exported"),
        _t("occurred_at"),
        _t("received_at"),
        _s("store_id"),
        _s("order_id"),
        _s("sku"),
        _s("category"),
        _i("quantity"),
        _i("amount_minor", "order total, line value, refund, discount, coupon value, card balance change"),
        _s("currency"),
        _s("campaign_id"),
        _s("coupon_id"),
        _s("message_id"),
        _s("channel", "message channel, consent channel, or an order's fulfilment (online / offline)"),
        _s("program", "the loyalty programme"),
        _i("points"),
        _s("level"),
        Column("rating", "INTEGER", "int"),
        _s("name", "custom action, ad platform, benefit id, consent purpose"),
        _s("status", "delivery status, points reason, level direction, grant or refusal, coupon kind"),
        _s("url", "page or link clicked: scheme, host and path only (no query string)"),
        LINES,
    ),
)

TABLES = (PROFILES, TAGS, EVENTS)
TABLES_BY_NAME = {t.name: t for t in TABLES}

STATE_KEY = f"{topology.WAREHOUSE_PREFIX}_state.json"
ERASURES_PREFIX = f"{topology.WAREHOUSE_PREFIX}_erasures/"
PROJECTION_FIRST_DAY = date(2000, 1, 1)
"""Where the Glue catalog's day projection starts: events that occurred earlier are written, but Athena only finds
them through a table of its own (`dt` is enumerated from here to today when a query does not name it)."""


def brand_segment(brand_id: str) -> str:
    """A brand id as a path segment: ids are `[A-Za-z0-9_.:@/#+-]` tokens, and `/`, `#`, `:`, `@`, `+` are
    percent-encoded (an Athena query names such a brand by its encoded form)."""
    return quote(brand_id, safe="-_.")


def brand_prefix(table: WarehouseTable, brand_id: str) -> str:
    return f"{table.prefix}brand_id={brand_segment(brand_id)}/"


def day_prefix(brand_id: str, day: date) -> str:
    return f"{brand_prefix(EVENTS, brand_id)}dt={day.isoformat()}/"


def day_of_key(key: str) -> date | None:
    """The day of an events partition key (`.../dt=YYYY-MM-DD/part-0.parquet`), None for any other key."""
    for segment in key.split("/"):
        if segment.startswith("dt="):
            try:
                return date.fromisoformat(segment[3:])
            except ValueError:
                return None
    return None
