"""The SQL compiler: quoting and escaping of user values, dialects, the shape of the queries (only the aggregates the
chosen tags need; tags that read tags in layers), and clear errors. Fixed persons with ties pin the semantics the
property test (`test_sql_equivalence`) searches for at random."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import duckdb
import pytest
from pydantic import TypeAdapter

from cdp.tags.catalog import TagCatalog, bundled_catalog
from cdp.tags.evaluate import RuleEvaluator
from cdp.tags.records import DAY, EventRecord, PersonRecord, epoch
from cdp.tags.rules import Condition, Ref, TagRule
from cdp.tags.sql import SqlCompileError, SqlCompiler, literal, quote_ident, string_literal
from cdp_local.tags_batch import load_records

NOW = epoch(datetime(2026, 11, 1, tzinfo=UTC))
CONDITION: TypeAdapter[Any] = TypeAdapter(Condition)
CATALOG = bundled_catalog()


def cond(raw: dict[str, Any]) -> Condition:
    return CONDITION.validate_python(raw)


def members(persons: list[PersonRecord], raw: dict[str, Any], **kwargs: Any) -> set[str]:
    compiler = SqlCompiler(CATALOG, NOW)
    condition = cond(raw)
    con = duckdb.connect()
    load_records(
        con, persons, compiler.required_profile_columns(condition=condition, audiences=kwargs.get("audiences"))
    )
    return {row[0] for row in con.execute(compiler.condition_query(condition, **kwargs)).fetchall()}


def in_memory(persons: list[PersonRecord], raw: dict[str, Any]) -> set[str]:
    return {p.person_id for p in persons if RuleEvaluator(p, NOW).condition(cond(raw)).value}


def event(event_id: str, event_type: str, days_ago: float, **fields: Any) -> EventRecord:
    return EventRecord(event_id, event_type, NOW - int(days_ago * DAY), **fields)


# ---- quoting and escaping ---------------------------------------------------------------------------------------


def test_string_values_are_escaped_so_a_quote_matches_itself_and_injects_nothing() -> None:
    # Given a person in Xi'an and one in Shanghai
    persons = [
        PersonRecord("p1", {"city": "Xi'an"}),
        PersonRecord("p2", {"city": "Shanghai"}),
    ]
    # When a condition names the quoted city, Then it matches exactly that person
    assert members(persons, {"attr": "city", "eq": "Xi'an"}) == {"p1"}
    # When a value tries to break out of its literal, Then it is just a value that matches nobody
    attack = "x' OR TRUE OR 'x"
    assert members(persons, {"attr": "city", "eq": attack}) == set()
    assert members(persons, {"attr": "city", "in": [attack, "Shanghai"]}) == {"p2"}
    assert string_literal(attack) == "'x'' OR TRUE OR ''x'"


def test_where_filters_escape_their_values_too() -> None:
    persons = [
        PersonRecord("p1", {}, events=[event("e1", "order_placed", 1, store_id="o'brien")]),
        PersonRecord("p2", {}, events=[event("e2", "order_placed", 1, store_id="o")]),
    ]
    raw = {"agg": "count", "event": "order_placed", "where": {"store_id": "o'brien"}, "gte": 1}
    assert members(persons, raw) == in_memory(persons, raw) == {"p1"}


def test_identifiers_are_double_quoted_with_quotes_doubled() -> None:
    assert quote_ident("lifecycle") == '"lifecycle"'
    assert quote_ident('a"b') == '"a""b"'
    with pytest.raises(SqlCompileError):
        quote_ident("a\x00b")


def test_number_literals_are_doubles_not_decimals_and_must_be_exact() -> None:
    # DuckDB reads 86400.0 as DECIMAL: doubles carry an exponent
    assert literal(86400.0) == "86400.0E0"
    assert literal(1e-20) == "1e-20"
    assert literal(12) == "12"
    assert literal(True) == "TRUE"
    with pytest.raises(SqlCompileError, match="finite"):
        SqlCompiler(CATALOG, NOW).condition_query(cond({"score": "churn", "gt": float("inf")}))
    with pytest.raises(SqlCompileError, match="too large"):
        SqlCompiler(CATALOG, NOW).condition_query(cond({"score": "churn", "gt": 2**60}))


# ---- types and NULLs ----------------------------------------------------------------------------------------------


def test_a_flag_is_never_equal_to_a_number_and_the_check_happens_at_compile_time() -> None:
    compiler = SqlCompiler(CATALOG, NOW)
    sql = compiler.condition_query(cond({"attr": "consent_sms", "eq": 1}))
    assert sql.endswith("WHERE FALSE")
    sql = compiler.condition_query(cond({"attr": "consent_sms", "ne": 1}))
    assert sql.endswith('WHERE ("consent_sms" IS NOT NULL)')
    persons = [PersonRecord("p1", {"consent_sms": True}), PersonRecord("p2", {"consent_sms": None})]
    assert members(persons, {"attr": "consent_sms", "eq": 1}) == in_memory(persons, {"attr": "consent_sms", "eq": 1})
    assert members(persons, {"attr": "consent_sms", "ne": 1}) == {"p1"}


def test_a_test_on_a_missing_value_is_false_and_its_negation_true() -> None:
    persons = [PersonRecord("p1", {"order_count": None}), PersonRecord("p2", {"order_count": 3})]
    raw = {"not": {"attr": "order_count", "gte": 2}}
    assert members(persons, raw) == in_memory(persons, raw) == {"p1"}


def test_ties_go_to_the_greatest_event_id_for_last_and_the_smallest_value_for_most_frequent() -> None:
    # Given two events at the same instant, and two categories bought twice each
    p = PersonRecord(
        "p1",
        {},
        events=sorted(
            [
                event("a9", "order_line", 2, category="toys", quantity=1),
                event("b1", "order_line", 2, category="beauty", quantity=7),
                event("c1", "order_line", 5, category="toys", quantity=3),
                event("c2", "order_line", 6, category="beauty", quantity=3),
            ],
            key=lambda e: (e.ts, e.event_id),
        ),
    )
    refs = [
        {"agg": "last", "event": "order_line", "field": "quantity"},
        {"agg": "most_frequent", "event": "order_line", "field": "category"},
    ]
    catalog_doc = {
        "version": 1,
        "tags": [
            {
                "name": f"v{i}",
                "description": "x",
                "category": "behavior",
                "kind": "rule",
                "freshness": "batch",
                "owner": "tests",
                "rule": {"value": ref},
            }
            for i, ref in enumerate(refs)
        ],
    }
    catalog = TagCatalog.from_documents({"t.json": json.dumps(catalog_doc)})
    con = duckdb.connect()
    load_records(con, [p])
    (row,) = con.execute(SqlCompiler(catalog, NOW).tags_query()).fetchall()
    # Then: b1 > a9 at the same instant, and beauty < toys
    assert row == ("p1", 7, "beauty")
    evaluator = RuleEvaluator(p, NOW)
    assert [evaluator.tag(f"v{i}", TagRule(value=Ref.model_validate(r))).value for i, r in enumerate(refs)] == [
        7,
        "beauty",
    ]


def test_usual_months_is_a_comma_string_in_month_order_and_contains_reads_it() -> None:
    cakes = [
        event(f"e{y}{m}", "order_line", 365 * y + d, category="birthday_cake")
        for y, m, d in [(0, 3, 230), (1, 3, 230), (0, 10, 20), (1, 10, 21), (2, 10, 20)]
    ]
    p = PersonRecord("p1", {}, events=sorted(cakes, key=lambda e: (e.ts, e.event_id)))
    raw = {"agg": "usual_months", "event": "order_line", "where": {"category": "birthday_cake"}, "contains": 3}
    assert members([p], raw) == in_memory([p], raw) == {"p1"}
    raw_no = {**raw, "contains": 1}
    assert members([p], raw_no) == in_memory([p], raw_no) == set()


# ---- shape ----------------------------------------------------------------------------------------------------------


def test_only_the_aggregates_the_chosen_tags_need_are_computed() -> None:
    sql = SqlCompiler(CATALOG, NOW).tags_query(["purchased_last_7d"])
    assert sql.count("count(CASE WHEN") == 1
    assert "ROW_NUMBER" not in sql and "concat_ws" not in sql
    assert sql.rstrip().endswith('SELECT person_id, "t__purchased_last_7d" AS "purchased_last_7d" FROM tags_1')


def test_tags_that_read_tags_are_computed_in_later_layers_and_only_the_chosen_are_returned() -> None:
    sql = SqlCompiler(CATALOG, NOW).tags_query(["rfm_segment"])
    assert "tags_1 AS" in sql and "tags_2 AS" in sql
    assert '"t__rfm_recency"' in sql  # computed, since rfm_segment reads it
    assert sql.rstrip().endswith('SELECT person_id, "t__rfm_segment" AS "rfm_segment" FROM tags_2')


def test_tags_come_in_catalog_order() -> None:
    con = duckdb.connect()
    load_records(con, [PersonRecord("p1", {})], SqlCompiler(CATALOG, NOW).required_profile_columns())
    cursor = con.execute(SqlCompiler(CATALOG, NOW).tags_query())
    assert [d[0] for d in cursor.description or []] == ["person_id", *CATALOG.order]


def test_a_condition_over_materialized_tags_reads_the_tags_table() -> None:
    sql = SqlCompiler(CATALOG, NOW).count_query(cond({"tag": "lifecycle", "eq": "dormant"}), materialized_tags=True)
    assert "LEFT JOIN tags t ON t.person_id = p.person_id" in sql
    assert "tags_1" not in sql


def test_referenced_audiences_are_computed_inline_or_read_from_the_stored_membership() -> None:
    persons = [
        PersonRecord("p1", {"city": "Shanghai"}, tags={"audience:vip": True}),
        PersonRecord("p2", {"city": "Beijing"}),
    ]
    inline = {"sh": cond({"attr": "city", "eq": "Shanghai"})}
    assert members(persons, {"audience": "sh", "eq": False}, audiences=inline) == {"p2"}
    assert members(persons, {"audience": "vip", "eq": True}) == {"p1"}


# ---- dialects and errors ---------------------------------------------------------------------------------------


def test_the_dialects_differ_only_in_integer_division_and_the_sample_hash() -> None:
    condition = cond({"agg": "days_since_last", "event": "order_placed", "gte": 90})
    duck = SqlCompiler(CATALOG, NOW, "duckdb").sample_query(condition, 10)
    athena = SqlCompiler(CATALOG, NOW, "athena").sample_query(condition, 10)
    assert "// (86400)" in duck and "hash(person_id)" in duck
    assert "/ (86400)" in athena and "//" not in athena and "xxhash64(to_utf8(person_id))" in athena
    assert duck.replace("//", "/").replace("hash(person_id)", "xxhash64(to_utf8(person_id))") == athena


def test_unknown_names_and_dialects_are_clear_errors() -> None:
    with pytest.raises(SqlCompileError, match="unknown SQL dialect 'postgres'"):
        SqlCompiler(CATALOG, NOW, "postgres")  # type: ignore[arg-type]
    with pytest.raises(SqlCompileError, match="unknown tag 'nope'"):
        SqlCompiler(CATALOG, NOW).tags_query(["nope"])
    with pytest.raises(SqlCompileError, match="unknown tag 'nope'"):
        SqlCompiler(CATALOG, NOW).condition_query(cond({"tag": "nope", "exists": True}))
    loop = {"a": cond({"audience": "b", "eq": True}), "b": cond({"audience": "a", "eq": True})}
    with pytest.raises(SqlCompileError, match="reference each other: a -> b -> a"):
        SqlCompiler(CATALOG, NOW).condition_query(cond({"audience": "a", "eq": True}), audiences=loop)
    with pytest.raises(SqlCompileError, match="at least one row"):
        SqlCompiler(CATALOG, NOW).sample_query(cond({"attr": "age", "gt": 1}), 0)
