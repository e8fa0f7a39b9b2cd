"""The SQL compiler and the in-memory evaluator agree: random conditions and tag rules over random persons give the
same members and the same values in DuckDB (compiled SQL) as in `RuleEvaluator`.

The persons are built to hit the edges: events exactly on window edges and at `asof`, events after `asof`, ties in
time and in counts, missing fields, numbers as ints and floats, birthdays on 29 February evaluated on 28 February
and 1 March, values holding quotes. The conditions mix every subject, every operator (including ill-typed ones:
`eq: 1` on a flag) and every aggregate, with windows and `where` filters, nested in all/any/not.

`CDP_PROPERTY_SCALE=20` multiplies the example counts for a long search.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any, get_args

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from cdp.tags.catalog import TagCatalog, bundled_catalog
from cdp.tags.evaluate import RuleEvaluator, audience_tag
from cdp.tags.records import ATTRIBUTES, DAY, EVENT_FIELDS, EventRecord, PersonRecord, epoch
from cdp.tags.rules import AggName, Condition, Ref, TagRule
from cdp.tags.sql import SqlCompiler
from cdp_local.tags_batch import load_records

SCALE = int(os.environ.get("CDP_PROPERTY_SCALE", "1"))
CONDITION: TypeAdapter[Any] = TypeAdapter(Condition)
CATALOG = bundled_catalog()
CON = duckdb.connect()  # one in-memory database reused by every example (tables are replaced)

ASOFS = [
    epoch(datetime(2026, 11, 1, tzinfo=UTC)),
    epoch(datetime(2025, 2, 28, 12, 0, tzinfo=UTC)),  # the day before a 29 February birthday counts
    epoch(datetime(2025, 3, 1, tzinfo=UTC)),
    epoch(datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)),
]
EVENT_TYPES = ["order_placed", "order_line", "add_to_cart", "message_opened", "message_clicked", "page_view", "custom"]
STRINGS: dict[str, list[str | None]] = {
    "source": [None, "pos", "tmall", "jd"],
    "store_id": [None, "s1", "s2", "o'brien"],
    "channel": [None, "sms", "email", "push"],
    "category": [None, "beauty", "birthday_cake", "air_conditioner", "b'day"],
    "product_id": [None, "sku1", "sku2"],
    "name": [None, "douyin", "signup"],
    "campaign_id": [None, "c1", "c2"],
}
NUMBERS: dict[str, st.SearchStrategy[int | None]] = {
    "amount_minor": st.one_of(st.none(), st.integers(-500, 30_000)),
    "quantity": st.one_of(st.none(), st.integers(0, 4)),
    "rating": st.one_of(st.none(), st.integers(1, 5)),
    "points": st.one_of(st.none(), st.integers(-100, 100)),
}
# offsets from asof: window edges (7, 30, 365 days), the instant itself, one second either side, after asof
EDGES = [0, -1, 1, 2 * DAY, -DAY, -3 * DAY, -7 * DAY, -7 * DAY + 1, -30 * DAY, -30 * DAY + 1, -90 * DAY, -365 * DAY]
EDGES += [-365 * DAY + 1, -366 * DAY, -730 * DAY, -730 * DAY + 1, -2 * 365 * DAY - 40 * DAY, -3 * 365 * DAY]
TIES = [-DAY, -5 * DAY, -400 * DAY]
WINDOWS = [1, 3, 7, 30, 90, 365, 730]
STRING_ATTRS = {
    "gender": [None, "female", "male", "other"],
    "city": [None, "Shanghai", "Beijing", "Xi'an"],
    "country": [None, "CN", "US"],
    "member_level": [None, "gold", "silver"],
    "acquisition_platform": [None, "douyin", "baidu"],
    "brand_id": ["demo-brand", "demo-outlet", "b:o/1"],  # every person has one
}
AUDIENCE_IDS = ["vip", "seg", "ghost"]  # vip: a stored membership; seg: defined inline; ghost: stored by nobody
SCORES = ["response", "churn", "unscored"]


# ---- persons ----------------------------------------------------------------------------------------------------


@st.composite
def events(draw: st.DrawFn, asof: int) -> list[EventRecord]:
    out = []
    for i in range(draw(st.integers(0, 9))):
        offset = draw(  # a few shared instants make ties in time (last: the greatest event_id wins)
            st.one_of(st.sampled_from(EDGES), st.sampled_from(TIES), st.integers(-3 * 365 * DAY, 3 * DAY))
        )
        fields: dict[str, Any] = {f: draw(st.sampled_from(v)) for f, v in STRINGS.items()}
        fields |= {f: draw(s) for f, s in NUMBERS.items()}
        event_id = f"{draw(st.sampled_from('abc'))}{i}"  # unique, in an order unrelated to time
        out.append(EventRecord(event_id, draw(st.sampled_from(EVENT_TYPES)), asof + offset, **fields))
    return sorted(out, key=lambda e: (e.ts, e.event_id))


@st.composite
def birthday(draw: st.DrawFn) -> dict[str, int | None]:
    kind = draw(st.sampled_from(["none", "leap", "edge", "any", "partial"]))
    if kind == "none":
        return {"birth_year": None, "birth_month": None, "birth_day": None}
    year = draw(st.integers(1950, 2012))
    if kind == "leap":
        return {"birth_year": draw(st.sampled_from([1980, 1996, 2000, 2004])), "birth_month": 2, "birth_day": 29}
    if kind == "edge":
        month, day = draw(st.sampled_from([(2, 28), (3, 1), (11, 1), (11, 2), (10, 31), (12, 31), (1, 1)]))
    else:
        month, day = draw(st.integers(1, 12)), draw(st.integers(1, 28))
    out: dict[str, int | None] = {"birth_year": year, "birth_month": month, "birth_day": day}
    if kind == "partial":
        out[draw(st.sampled_from(list(out)))] = None
    return out


@st.composite
def person(draw: st.DrawFn, index: int, asof: int) -> PersonRecord:
    columns: dict[str, Any] = {a: draw(st.sampled_from(v)) for a, v in STRING_ATTRS.items()}
    for name, spec in ATTRIBUTES.items():
        if name == "age" or name in columns:
            continue
        if spec.type == "bool":
            columns[name] = draw(st.sampled_from([None, True, False]))
        elif name == "birth_month":
            continue
        else:
            columns[name] = draw(st.one_of(st.none(), st.integers(-5, 12), st.integers(0, 600_000)))
    columns |= draw(birthday())
    scores = {
        m: draw(st.sampled_from([0.3, 0.6, 0.0, 1.0]) | st.floats(0, 1))
        for m in draw(st.sets(st.sampled_from(SCORES[:2])))
    }
    tags: dict[str, Any] = {}
    if draw(st.booleans()):
        tags[audience_tag("vip")] = True
    return PersonRecord(f"p{index}", columns, tags=tags, scores=scores, events=draw(events(asof)))


@st.composite
def population(draw: st.DrawFn) -> tuple[int, list[PersonRecord]]:
    asof = draw(st.sampled_from(ASOFS))
    n = draw(st.integers(1, 6))
    return asof, [draw(person(i, asof)) for i in range(n)]


# ---- conditions ---------------------------------------------------------------------------------------------------

SCALARS = st.one_of(
    st.integers(-2, 12),
    st.sampled_from([0.5, 2.0, 1.0, 30000.0, 0.3]),
    st.booleans(),
    st.sampled_from(["female", "Xi'an", "beauty", "s1", "o'brien", "sms", "pos", "3", "2,3", "gold", "dormant"]),
    st.sampled_from(["growth", "mature", "introduction", "high", "b'day", "douyin", "tmall"]),
)
NUMBERS_OPERAND = st.one_of(st.integers(-40, 400), st.sampled_from([0.5, 1.5, 29.99, 365.0, 0.3, 0.6, -0.5]))


@st.composite
def subject(draw: st.DrawFn, audiences: bool = True) -> dict[str, Any]:
    kinds = ["attr", "tag", "score", "agg", "agg", "agg"] + (["audience"] if audiences else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "attr":
        return {"attr": draw(st.sampled_from(sorted(ATTRIBUTES)))}
    if kind == "tag":
        return {"tag": draw(st.sampled_from(CATALOG.order))}
    if kind == "score":
        return {"score": draw(st.sampled_from(SCORES))}
    if kind == "audience":
        return {"audience": draw(st.sampled_from(AUDIENCE_IDS))}
    return draw(aggregate())


@st.composite
def aggregate(draw: st.DrawFn) -> dict[str, Any]:
    agg = draw(st.sampled_from(get_args(AggName)))  # every aggregate of the language, new ones included
    ref: dict[str, Any] = {"agg": agg, "event": draw(st.lists(st.sampled_from(EVENT_TYPES), min_size=1, max_size=2))}
    numeric = [f for f, t in EVENT_FIELDS.items() if t == "number"]
    if agg in ("sum", "min", "max"):
        ref["field"] = draw(st.sampled_from(numeric))
    elif agg in ("last", "most_frequent", "distinct"):
        ref["field"] = draw(st.sampled_from(list(EVENT_FIELDS)))
    if draw(st.booleans()):
        ref["within_days"] = draw(st.sampled_from(WINDOWS) | st.integers(1, 1200))
    if agg == "usual_months" and draw(st.booleans()):
        ref["min_years"] = draw(st.integers(1, 3))
    if draw(st.integers(0, 3)) == 0:
        name = draw(st.sampled_from(list(EVENT_FIELDS)))
        if EVENT_FIELDS[name] == "number":
            pool = st.one_of(st.integers(-2, 5), st.sampled_from([1.0, 2.5]))
        else:
            pool = st.sampled_from([v for v in STRINGS[name] if v is not None])
        value = draw(st.one_of(pool, st.lists(pool, min_size=1, max_size=3)))
        ref["where"] = {name: value}
    return ref


@st.composite
def compare(draw: st.DrawFn, audiences: bool = True) -> dict[str, Any]:
    ref = draw(subject(audiences))
    op = draw(st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "between", "contains", "exists"]))
    if op in ("eq", "ne"):
        operand: Any = draw(SCALARS)
    elif op in ("in", "not_in"):
        operand = draw(st.lists(SCALARS, min_size=1, max_size=3))
    elif op == "between":
        low, high = sorted([draw(NUMBERS_OPERAND), draw(NUMBERS_OPERAND)])
        operand = [low, high]
    elif op == "contains":
        operand = draw(st.integers(1, 12))
    elif op == "exists":
        operand = draw(st.booleans())
    else:
        operand = draw(NUMBERS_OPERAND)
    return ref | {op: operand}


def conditions(audiences: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    return st.recursive(
        compare(audiences),
        lambda inner: st.one_of(
            st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda x: {"not": x}, inner),
        ),
        max_leaves=6,
    )


# ---- both evaluators ------------------------------------------------------------------------------------------------


def _python_members(
    persons: list[PersonRecord], asof: int, condition: Condition, seg: Condition, catalog: TagCatalog
) -> set[str]:
    out = set()
    for p in persons:
        evaluator = RuleEvaluator(p, asof)
        for name in catalog.order:
            evaluator.tag(name, catalog.definitions[name].rule)
        evaluator.audience("seg", seg)
        if evaluator.condition(condition).value:
            out.add(p.person_id)
    return out


def _same_value(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


def _sql_rows(sql: str) -> list[tuple[Any, ...]]:
    return CON.execute(sql).fetchall()


def examples(n: int) -> Any:
    # deadline off: one example plans a DuckDB query of up to ~60 ms
    return settings(
        max_examples=n * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
    )


@examples(200)
@given(population(), conditions(), conditions(audiences=False), st.sampled_from(["condition", "count"]))
def test_random_conditions_select_the_same_members_in_sql_and_in_memory(
    world: tuple[int, list[PersonRecord]], raw: dict[str, Any], raw_seg: dict[str, Any], query: str
) -> None:
    # Given random persons and a random condition (which may read the inline audience "seg")
    asof, persons = world
    condition, seg = CONDITION.validate_python(raw), CONDITION.validate_python(raw_seg)
    compiler = SqlCompiler(CATALOG, asof)
    audiences = {"seg": seg}
    load_records(CON, persons, compiler.required_profile_columns(condition=condition, audiences=audiences))
    # When both evaluators run
    expected = _python_members(persons, asof, condition, seg, CATALOG)
    if query == "count":
        (count,) = _sql_rows(compiler.count_query(condition, audiences))[0]
        # Then they agree on the size
        assert count == len(expected), compiler.condition_query(condition, audiences)
    else:
        got = {row[0] for row in _sql_rows(compiler.condition_query(condition, audiences))}
        # Then they agree on who
        assert got == expected, compiler.condition_query(condition, audiences)


@examples(60)
@given(population())
def test_every_bundled_tag_has_the_same_value_per_person_in_sql_and_in_memory(
    world: tuple[int, list[PersonRecord]],
) -> None:
    asof, persons = world
    compiler = SqlCompiler(CATALOG, asof)
    load_records(CON, persons, compiler.required_profile_columns())
    cursor = CON.execute(compiler.tags_query())
    names = [d[0] for d in cursor.description or []]
    rows = {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}
    assert set(rows) == {p.person_id for p in persons}
    for p in persons:
        evaluator = RuleEvaluator(p, asof)
        for name in CATALOG.order:
            expected = evaluator.tag(name, CATALOG.definitions[name].rule).value
            got = rows[p.person_id][name]
            assert _same_value(expected, got), f"{p.person_id} {name}: in memory {expected!r}, sql {got!r}"


def _value_catalog(refs: list[dict[str, Any]]) -> TagCatalog:
    tags = [
        {
            "name": f"v{i}",
            "description": "a random value",
            "category": "behavior",
            "kind": "rule",
            "freshness": "batch",
            "owner": "tests",
            "rule": {"value": ref},
        }
        for i, ref in enumerate(refs)
    ]
    return TagCatalog.from_documents({"random.json": json.dumps({"version": 1, "tags": tags})})


@examples(120)
@given(population(), st.lists(subject(), min_size=1, max_size=3))
def test_random_value_tags_copy_the_same_value_in_sql_and_in_memory(
    world: tuple[int, list[PersonRecord]], refs: list[dict[str, Any]]
) -> None:
    # Given tags that copy random values: attributes, aggregates, scores, stored audiences (catalog tags are out:
    # this catalog has none)
    refs = [r for r in refs if "tag" not in r] or [{"attr": "age"}]
    asof, persons = world
    catalog = _value_catalog(refs)
    compiler = SqlCompiler(catalog, asof)
    load_records(CON, persons, compiler.required_profile_columns())
    cursor = CON.execute(compiler.tags_query())
    names = [d[0] for d in cursor.description or []]
    rows = {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}
    for p in persons:
        evaluator = RuleEvaluator(p, asof)
        for name in catalog.order:
            rule: TagRule = catalog.definitions[name].rule
            expected = evaluator.tag(name, rule).value
            got = rows[p.person_id][name]
            ref = Ref.model_validate(refs[int(name[1:])])
            assert _same_value(expected, got), f"{p.person_id} {ref.describe()}: in memory {expected!r}, sql {got!r}"


@pytest.mark.parametrize("asof", ASOFS)
def test_a_29_february_birthday_counts_on_1_march_in_common_years(asof: int) -> None:
    # Given a person born on 29 February 2000 (a deterministic anchor for the property above)
    p = PersonRecord("p0", {"birth_year": 2000, "birth_month": 2, "birth_day": 29})
    compiler = SqlCompiler(_value_catalog([{"attr": "age"}]), asof)
    load_records(CON, [p])
    # When the age is read both ways, Then it agrees
    (row,) = CON.execute(compiler.tags_query()).fetchall()
    assert row[1] == RuleEvaluator(p, asof).tag("v0", TagRule(value=Ref(attr="age"))).value
