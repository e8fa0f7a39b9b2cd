"""Compiles the rule language to SQL for batch evaluation: DuckDB locally over Parquet exports, Athena (Trino) at
scale. Pure string generation (no database driver): it ships in the Lambda layer.

Tables the queries read (see `PROFILE_SQL_TYPES`, `EVENT_SQL_TYPES`):

    profiles(person_id VARCHAR, <every PROFILE_COLUMNS column>,
             score__<model> DOUBLE        -- one per model score a query reads (`score_column`)
             tag__audience__<id> BOOLEAN  -- one per stored dynamic-audience membership (`audience_column`):
                                          -- the tag `audience:<id>`; TRUE for members, NULL or FALSE otherwise)
    events(person_id VARCHAR, event_id VARCHAR, event_type VARCHAR, ts BIGINT (epoch seconds, UTC),
           year INTEGER, month INTEGER (UTC parts of ts), <every EVENT_FIELDS field>)
    tags(person_id VARCHAR, <tag> ...)   -- optional: the output of `tags_query`, materialized (tags.parquet);
                                          -- condition queries read it with `materialized_tags=True`

`SqlCompiler.required_profile_columns()` lists the score and audience columns a query reads, so an engine can add
missing ones as NULL. A `{tag: x}` always names a catalog tag (computed in the query, or read from `tags`); stored
tags outside the catalog are not readable except audience memberships.

Semantics equal `cdp.tags.evaluate` exactly (a property test runs both on random conditions):
- every test is wrapped so that NULL gives FALSE (`COALESCE(..., FALSE)`), so `not` of a test on a missing value is
  TRUE; `exists` tests NULL-ness; combinators never see NULL;
- types are checked at compile time, as `_same` does at run time: a bool is never equal to a number (`eq: 1` on a
  flag compiles to FALSE, `ne: 1` to "has a value"); numbers compare as DOUBLE (both sides cast; DuckDB reads
  `86400.0` as DECIMAL, so double literals are written `86400.0E0`) unless both sides are integers;
- windows: `asof - within_days*86400 < ts <= asof`; events after `asof` are ignored;
- count, distinct and sum of nothing are 0; the other aggregates of nothing are NULL;
- `most_frequent` ties go to the smallest value and `last` ties to the greatest event_id (ROW_NUMBER windows);
- `usual_months` is the comma string of months ascending (NULL when none), `contains` is
  `strpos(',' || v || ',', ',m,') > 0`.

Dialects (`duckdb` | `athena`) differ only in: integer division (DuckDB `a // b`; Trino `a / b` on BIGINT, which
truncates: every division here has a non-negative numerator, so both floor) and the hash used to order a stable
sample (`hash(person_id)` | `xxhash64(to_utf8(person_id))`). Everything else is SQL both engines run: CTEs, CASE,
COALESCE, NULLIF, count(DISTINCT ...), ROW_NUMBER() OVER, strpos, concat_ws, ||, CAST(... AS DOUBLE|BIGINT).

Identifiers are always double-quoted and string values single-quoted with quotes doubled: values come from users.
"""

# ruff: noqa: S608 - a SQL compiler builds SQL text; every user value goes through literal() or quote_ident()

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from cdp.errors import InvalidInputError
from cdp.tags.catalog import TagCatalog
from cdp.tags.records import ATTRIBUTES, DAY, EVENT_FIELDS, PROFILE_COLUMNS, ValueType
from cdp.tags.rules import MONTH_SECONDS, AllOf, AnyOf, Compare, Condition, NotOf, Ref, TagRule, scalar_type, walk_refs

Dialect = Literal["duckdb", "athena"]
DIALECTS: tuple[str, ...] = ("duckdb", "athena")

_SQL_TYPES: dict[ValueType, str] = {"string": "VARCHAR", "number": "BIGINT", "bool": "BOOLEAN", "months": "VARCHAR"}

PROFILE_SQL_TYPES: dict[str, str] = {
    "person_id": "VARCHAR",
    **{c: _SQL_TYPES[ATTRIBUTES[c].type] if c in ATTRIBUTES else "BIGINT" for c in PROFILE_COLUMNS},
}
"""The fixed columns of `profiles` (score and audience columns come on top)."""

EVENT_SQL_TYPES: dict[str, str] = {
    "person_id": "VARCHAR",
    "event_id": "VARCHAR",
    "event_type": "VARCHAR",
    "ts": "BIGINT",
    "year": "INTEGER",
    "month": "INTEGER",
    **{f: _SQL_TYPES[t] for f, t in EVENT_FIELDS.items()},
}
"""Every column of `events`."""

_MAX_EXACT_DOUBLE = 2**53
_MAX_BIGINT = 2**63 - 1


class SqlCompileError(InvalidInputError):
    """The rule or condition cannot be compiled (unknown tag, a value SQL cannot hold exactly, ...)."""


def score_column(model: str) -> str:
    return f"score__{model}"


def audience_column(audience_id: str) -> str:
    """The `profiles` column holding the stored membership tag `audience:<id>`."""
    return f"tag__audience__{audience_id}"


def quote_ident(name: str) -> str:
    if "\x00" in name:
        raise SqlCompileError(f"identifier {name!r} holds a NUL character")
    return '"' + name.replace('"', '""') + '"'


def string_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _double_literal(value: int | float, where: str) -> str:
    if isinstance(value, int) and abs(value) > _MAX_EXACT_DOUBLE:
        raise SqlCompileError(f"{where}: {value} is too large to compare exactly (limit 2**53)")
    as_float = float(value)
    if not math.isfinite(as_float):
        raise SqlCompileError(f"{where}: {value!r} is not a finite number")
    text = repr(as_float)
    return text if "e" in text else f"{text}E0"  # a DOUBLE literal in DuckDB and Trino alike (not DECIMAL)


def _int_literal(value: int, where: str) -> str:
    if abs(value) > _MAX_BIGINT:
        raise SqlCompileError(f"{where}: {value} does not fit a BIGINT")
    return str(value)


def literal(value: str | int | float | bool, where: str = "value") -> str:
    """A SQL literal of a rule value (bools as TRUE/FALSE, integers as BIGINT, other numbers as DOUBLE)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return _int_literal(value, where)
    if isinstance(value, float):
        return _double_literal(value, where)
    return string_literal(value)


# ---- values ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Expr:
    sql: str
    type: ValueType
    integral: bool = False  # a number column of an integer SQL type
    nullable: bool = True


@dataclass(frozen=True)
class _Filter:
    """The event rows one aggregate reads (besides ts <= asof)."""

    events: tuple[str, ...]
    where: tuple[tuple[str, tuple[Any, ...]], ...]
    within_days: int | None


@dataclass(frozen=True)
class _AggKey:
    agg: str
    filter: _Filter
    field: str | None
    min_years: int | None


def _agg_key(ref: Ref) -> _AggKey:
    where = tuple(
        sorted((k, tuple(v) if isinstance(v, list) else (v,)) for k, v in ref.where.items())  # order-free
    )
    return _AggKey(
        agg=ref.agg or "",
        filter=_Filter(tuple(sorted(set(ref.event or []))), where, ref.within_days),
        field=ref.field,
        min_years=(ref.min_years or 2) if ref.agg == "usual_months" else None,
    )


_INTEGRAL_AGGS = frozenset(
    {
        "count",
        "sum",
        "distinct",
        "min",
        "max",
        "days_since_last",
        "days_since_first",
        "months_since_last",
        "cycle_days",
        "days_until_expected",
    }
)
_ZERO_WHEN_EMPTY = frozenset({"count", "sum", "distinct"})
_OWN_CTE_AGGS = frozenset({"last", "most_frequent", "usual_months"})


@dataclass
class _Plan:
    """What one query reads: profile columns, aggregates, tags (computed or materialized) and audiences."""

    columns: set[str] = field(default_factory=set)  # plain profile columns (attributes)
    age: bool = False
    scores: set[str] = field(default_factory=set)
    stored_audiences: set[str] = field(default_factory=set)
    aggregates: dict[_AggKey, str] = field(default_factory=dict)  # key -> base column alias
    materialized_tags: set[str] = field(default_factory=set)

    def aggregate(self, key: _AggKey) -> str:
        if key not in self.aggregates:
            self.aggregates[key] = f"agg__{len(self.aggregates)}"
        return self.aggregates[key]


def _tag_column(name: str) -> str:
    return f"t__{name}"


def _audience_alias(audience_id: str) -> str:
    return f"au__{audience_id}"


def _stored_audience_alias(audience_id: str) -> str:
    return f"aud__{audience_id}"


class SqlCompiler:
    """Compiles a catalog's tags, and conditions over them, to SQL at one evaluation instant `asof`.

    - `tags_query(names)`: `person_id` and one column per tag (catalog order), for every person in `profiles`;
    - `condition_query(condition)`, `count_query(condition)`, `sample_query(condition, n)`: person ids matching, their
      number, a stable pseudo-random sample. `audiences` (id -> condition) computes referenced audiences on the spot
      (as the online evaluator does); otherwise `{audience: x}` reads the stored membership column.
    """

    def __init__(self, catalog: TagCatalog, asof: int | datetime, dialect: Dialect = "duckdb") -> None:
        if dialect not in DIALECTS:
            raise SqlCompileError(f"unknown SQL dialect {dialect!r}; known: {', '.join(DIALECTS)}", "dialect")
        self.catalog = catalog
        self.asof = asof if isinstance(asof, int) else int(asof.timestamp())
        self.dialect: Dialect = dialect
        self._types: dict[str, tuple[ValueType, bool]] = {}
        for name in catalog.order:
            self._types[name] = self._rule_type(catalog.definitions[name].rule)

    # ---- public API -----------------------------------------------------------------------------------------

    def tags_query(self, names: Sequence[str] | None = None) -> str:
        """SELECT person_id, <tag>... FROM profiles (with events aggregated per person), one row per person."""
        wanted = self._check_names(names)
        for name in wanted:
            if name == "person_id":
                raise SqlCompileError("a tag named 'person_id' cannot be a column beside person_id", name)
        plan = _Plan()
        ctes, last = self._render(plan, self._tag_exprs(plan, self._closure(wanted)))
        columns = ", ".join(f"{quote_ident(_tag_column(n))} AS {quote_ident(n)}" for n in wanted)
        return self._with(ctes) + f"SELECT person_id, {columns} FROM {last}"

    def condition_query(
        self,
        condition: Condition,
        audiences: Mapping[str, Condition] | None = None,
        materialized_tags: bool = False,
    ) -> str:
        """SELECT person_id of every person the condition holds for."""
        ctes, last, predicate, _ = self._condition(condition, audiences or {}, materialized_tags)
        return self._with(ctes) + f"SELECT person_id FROM {last} WHERE {predicate}"

    def count_query(
        self,
        condition: Condition,
        audiences: Mapping[str, Condition] | None = None,
        materialized_tags: bool = False,
    ) -> str:
        """SELECT count(*) AS members: how many persons the condition holds for."""
        ctes, last, predicate, _ = self._condition(condition, audiences or {}, materialized_tags)
        return self._with(ctes) + f"SELECT count(*) AS members FROM {last} WHERE {predicate}"

    def sample_query(
        self,
        condition: Condition,
        limit: int,
        audiences: Mapping[str, Condition] | None = None,
        materialized_tags: bool = False,
    ) -> str:
        """Up to `limit` members in a stable pseudo-random order (a hash of the person id)."""
        if limit < 1:
            raise SqlCompileError(f"a sample needs at least one row (got {limit})", "limit")
        ctes, last, predicate, _ = self._condition(condition, audiences or {}, materialized_tags)
        return (
            self._with(ctes)
            + f"SELECT person_id FROM {last} WHERE {predicate} ORDER BY {self._hash('person_id')}, person_id "
            + f"LIMIT {int(limit)}"
        )

    def required_profile_columns(
        self,
        names: Sequence[str] | None = None,
        condition: Condition | None = None,
        audiences: Mapping[str, Condition] | None = None,
    ) -> dict[str, str]:
        """The score and audience columns of `profiles` the query reads, with their SQL types."""
        plan = _Plan()
        if condition is not None:
            plan = self._condition(condition, audiences or {}, materialized_tags=False)[3]
        else:
            self._tag_exprs(plan, self._closure(self._check_names(names)))
        return {score_column(s): "DOUBLE" for s in sorted(plan.scores)} | {
            audience_column(a): "BOOLEAN" for a in sorted(plan.stored_audiences)
        }

    def tag_sql_type(self, name: str) -> str:
        value_type, integral = self._types[name]
        if value_type == "number":
            return "BIGINT" if integral else "DOUBLE"
        return _SQL_TYPES[value_type]

    # ---- planning ----------------------------------------------------------------------------------------------

    def _check_names(self, names: Sequence[str] | None) -> list[str]:
        if names is None:
            return list(self.catalog.order)
        unknown = [n for n in names if n not in self.catalog.definitions]
        if unknown:
            raise SqlCompileError(f"unknown tag {unknown[0]!r}", "names")
        chosen = set(names)
        return [n for n in self.catalog.order if n in chosen]

    def _closure(self, names: Iterable[str]) -> list[str]:
        """The tags and every tag they read, in catalog order."""
        needed: set[str] = set()
        stack = list(names)
        while stack:
            name = stack.pop()
            if name in needed:
                continue
            if name not in self.catalog.definitions:
                raise SqlCompileError(f"unknown tag {name!r}", "tag")
            needed.add(name)
            stack.extend(r.tag for r in _rule_refs(self.catalog.definitions[name].rule) if r.tag is not None)
        return [n for n in self.catalog.order if n in needed]

    def _condition(
        self, condition: Condition, audiences: Mapping[str, Condition], materialized_tags: bool
    ) -> tuple[list[str], str, str, _Plan]:
        """CTEs, the last CTE's name, the predicate over it, and what it reads."""
        plan = _Plan()
        inline = self._audience_order(condition, audiences)
        tag_names: set[str] = set()
        for tree in [condition, *(audiences[a] for a in inline)]:
            tag_names |= {c.tag for c, _ in walk_refs(tree) if c.tag is not None}
        unknown = sorted(t for t in tag_names if t not in self.catalog.definitions)
        if unknown:
            raise SqlCompileError(f"unknown tag {unknown[0]!r}", "tag")
        tags: list[str] = []
        if materialized_tags:
            plan.materialized_tags |= tag_names
        else:
            tags = self._closure(sorted(tag_names))
        exprs = self._tag_exprs(plan, tags)
        computed: dict[str, str] = {}
        audience_exprs: list[tuple[str, str]] = []
        for audience_id in inline:  # each after the audiences it reads
            audience_exprs.append((audience_id, self._predicate(plan, audiences[audience_id], computed)))
            computed[audience_id] = _audience_alias(audience_id)
        predicate = self._predicate(plan, condition, computed)
        ctes, last = self._render(plan, exprs)  # after every part is compiled: the plan is complete
        for i, (audience_id, expr) in enumerate(audience_exprs):
            alias = quote_ident(_audience_alias(audience_id))
            ctes.append(f"audience_{i} AS (SELECT prev.*, {expr} AS {alias} FROM {last} prev)")
            last = f"audience_{i}"
        return ctes, last, predicate, plan

    def _audience_order(self, condition: Condition, audiences: Mapping[str, Condition]) -> list[str]:
        """Referenced audiences defined in `audiences`, each after the ones it references."""
        order: list[str] = []
        visiting: list[str] = []

        def visit(tree: Condition) -> None:
            for compare, _ in walk_refs(tree):
                ref = compare.audience
                if ref is None or ref not in audiences or ref in order:
                    continue
                if ref in visiting:
                    raise SqlCompileError(f"audiences reference each other: {' -> '.join([*visiting, ref])}", ref)
                visiting.append(ref)
                visit(audiences[ref])
                visiting.pop()
                order.append(ref)

        visit(condition)
        return order

    def _tag_exprs(self, plan: _Plan, tags: list[str]) -> dict[str, tuple[int, str]]:
        """Per tag (catalog order): its layer (1 + the deepest layer it reads) and its expression."""
        out: dict[str, tuple[int, str]] = {}
        for name in tags:
            rule = self.catalog.definitions[name].rule
            reads = [r.tag for r in _rule_refs(rule) if r.tag is not None]
            out[name] = (1 + max((out[r][0] for r in reads), default=0), self._rule(plan, rule))
        return out

    def _render(self, plan: _Plan, exprs: Mapping[str, tuple[int, str]]) -> tuple[list[str], str]:
        """CTEs: the aggregates, `base` (profiles + aggregates), then one layer of tags per depth."""
        ctes = self._base(plan)
        last = "base"
        for level in range(1, max((d for d, _ in exprs.values()), default=0) + 1):
            columns = ", ".join(
                f"{sql} AS {quote_ident(_tag_column(n))}" for n, (d, sql) in exprs.items() if d == level
            )
            ctes.append(f"tags_{level} AS (SELECT prev.*, {columns} FROM {last} prev)")
            last = f"tags_{level}"
        return ctes, last

    # ---- rules and conditions ----------------------------------------------------------------------------------

    def _rule_type(self, rule: TagRule) -> tuple[ValueType, bool]:
        if rule.when is not None:
            return "bool", False
        if rule.cases is not None:
            values = [c.value for c in rule.cases] + ([rule.else_] if rule.else_ is not None else [])
            kind = scalar_type(values[0])
            integral = kind == "number" and all(isinstance(v, int) and not isinstance(v, bool) for v in values)
            return kind, integral
        assert rule.value is not None
        probe = self._value(_Plan(), rule.value, {})
        return probe.type, probe.integral

    def _rule(self, plan: _Plan, rule: TagRule) -> str:
        if rule.when is not None:
            return f"CASE WHEN {self._predicate(plan, rule.when, {})} THEN TRUE END"
        if rule.value is not None:
            return self._value(plan, rule.value, {}).sql
        where = "tag rule"
        whens = " ".join(
            f"WHEN {self._predicate(plan, c.when, {})} THEN {literal(c.value, where)}" for c in rule.cases or []
        )
        otherwise = f" ELSE {literal(rule.else_, where)}" if rule.else_ is not None else ""
        return f"CASE {whens}{otherwise} END"

    def _predicate(self, plan: _Plan, c: Condition, audiences: Mapping[str, str]) -> str:
        """A boolean expression that is never NULL."""
        if isinstance(c, AllOf):
            return "(" + " AND ".join(self._predicate(plan, x, audiences) for x in c.all) + ")"
        if isinstance(c, AnyOf):
            return "(" + " OR ".join(self._predicate(plan, x, audiences) for x in c.any) + ")"
        if isinstance(c, NotOf):
            return f"(NOT {self._predicate(plan, c.not_, audiences)})"
        return self._test(c, self._value(plan, c, audiences))

    def _value(self, plan: _Plan, ref: Ref, audiences: Mapping[str, str]) -> _Expr:
        if ref.attr is not None:
            value_type = ATTRIBUTES[ref.attr].type
            if ref.attr == "age":
                plan.age = True
            else:
                plan.columns.add(ref.attr)
            return _Expr(quote_ident(ref.attr), value_type, integral=value_type == "number")
        if ref.tag is not None:
            if ref.tag not in self._types:
                raise SqlCompileError(f"unknown tag {ref.tag!r}", "tag")
            value_type, integral = self._types[ref.tag]
            return _Expr(quote_ident(_tag_column(ref.tag)), value_type, integral)
        if ref.score is not None:
            plan.scores.add(ref.score)
            return _Expr(quote_ident(score_column(ref.score)), "number")
        if ref.audience is not None:
            if ref.audience in audiences:
                return _Expr(quote_ident(audiences[ref.audience]), "bool", nullable=False)
            plan.stored_audiences.add(ref.audience)
            return _Expr(quote_ident(_stored_audience_alias(ref.audience)), "bool", nullable=False)
        key = _agg_key(ref)
        alias = plan.aggregate(key)
        value_type = ref.static_type() or "number"
        integral = key.agg in _INTEGRAL_AGGS or (value_type == "number" and key.agg in ("last", "most_frequent"))
        return _Expr(quote_ident(alias), value_type, integral, nullable=key.agg not in _ZERO_WHEN_EMPTY)

    def _test(self, c: Compare, v: _Expr) -> str:
        op, operand = c.op, c.operand(c.op)
        where = f"{c.describe()} {op}"
        if op == "exists":
            if not v.nullable:
                return "TRUE" if operand else "FALSE"
            return f"({v.sql} IS {'NOT ' if operand else ''}NULL)"
        if op in ("eq", "ne", "in", "not_in"):
            values = operand if isinstance(operand, list) else [operand]
            kind = "string" if v.type == "months" else v.type  # a months value is a string at run time
            same = [x for x in values if scalar_type(x) == kind]  # bool is never a number: types stay apart
            positive = op in ("eq", "in")
            if not same:
                return "FALSE" if positive else self._not_null(v)
            lhs, rendered = self._operands(v, same, where)
            test = f"{lhs} {'IN' if positive else 'NOT IN'} ({', '.join(rendered)})"
            return self._never_null(test, v)
        if op == "contains":
            if v.type in ("months", "string"):
                return self._never_null(f"strpos(',' || {v.sql} || ',', ',{int(operand)},') > 0", v)
            if v.type == "number" and v.integral:  # str(int) has no comma: ",m," is in ",v," when v == m
                return self._never_null(f"{v.sql} = {int(operand)}", v)
            return "FALSE"  # str(True) or str(float) never reads as ",m,"
        if v.type != "number":
            return "FALSE"  # order tests hold only for numbers (never for bools)
        if op == "between":
            lhs, (low, high) = self._operands(v, list(operand), where)
            return self._never_null(f"{lhs} BETWEEN {low} AND {high}", v)
        symbol = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
        lhs, (rhs,) = self._operands(v, [operand], where)
        return self._never_null(f"{lhs} {symbol} {rhs}", v)

    def _operands(self, v: _Expr, values: list[Any], where: str) -> tuple[str, list[str]]:
        if v.type != "number":
            return v.sql, [literal(x, where) for x in values]
        if v.integral and all(isinstance(x, int) for x in values):
            return v.sql, [_int_literal(x, where) for x in values]
        return f"CAST({v.sql} AS DOUBLE)", [_double_literal(x, where) for x in values]

    @staticmethod
    def _never_null(test: str, v: _Expr) -> str:
        return f"COALESCE({test}, FALSE)" if v.nullable else f"({test})"

    @staticmethod
    def _not_null(v: _Expr) -> str:
        return "TRUE" if not v.nullable else f"({v.sql} IS NOT NULL)"

    # ---- the base: profiles joined with per-person aggregates --------------------------------------------------

    def _base(self, plan: _Plan) -> list[str]:
        selects = ["p.person_id AS person_id"]
        selects += [f"p.{quote_ident(c)} AS {quote_ident(c)}" for c in sorted(plan.columns)]
        if plan.age:
            selects.append(f"{self._age()} AS {quote_ident('age')}")
        selects += [f"p.{quote_ident(score_column(s))} AS {quote_ident(score_column(s))}" for s in sorted(plan.scores)]
        selects += [
            f"COALESCE(p.{quote_ident(audience_column(a))}, FALSE) AS {quote_ident(_stored_audience_alias(a))}"
            for a in sorted(plan.stored_audiences)
        ]
        selects += [f"t.{quote_ident(n)} AS {quote_ident(_tag_column(n))}" for n in sorted(plan.materialized_tags)]
        joins = ["profiles p"]
        if plan.materialized_tags:
            joins.append("LEFT JOIN tags t ON t.person_id = p.person_id")
        ctes: list[str] = []
        aggregates = _Aggregates(self)
        for key, alias in plan.aggregates.items():
            selects.append(f"{aggregates.add(key)} AS {quote_ident(alias)}")
        ctes += aggregates.ctes()
        joins += [f"LEFT JOIN {name} ON {name}.person_id = p.person_id" for name in aggregates.joined]
        ctes.append(f"base AS (SELECT {', '.join(selects)} FROM {' '.join(joins)})")
        return ctes

    def _age(self) -> str:
        now = datetime.fromtimestamp(self.asof, UTC)
        y, m, d = (quote_ident(c) for c in ("birth_year", "birth_month", "birth_day"))
        later = f"CASE WHEN p.{m} > {now.month} OR (p.{m} = {now.month} AND p.{d} > {now.day}) THEN 1 ELSE 0 END"
        return (
            f"CASE WHEN p.{y} IS NULL OR p.{m} IS NULL OR p.{d} IS NULL THEN NULL ELSE {now.year} - p.{y} - {later} END"
        )

    # ---- dialect -----------------------------------------------------------------------------------------------

    def intdiv(self, a: str, b: str) -> str:
        """Integer division of a non-negative BIGINT (floor and truncation agree)."""
        return f"(({a}) // ({b}))" if self.dialect == "duckdb" else f"(({a}) / ({b}))"

    def _hash(self, column: str) -> str:
        return f"hash({column})" if self.dialect == "duckdb" else f"xxhash64(to_utf8({column}))"

    @staticmethod
    def _with(ctes: list[str]) -> str:
        return "WITH " + ",\n".join(ctes) + "\n" if ctes else ""

    # ---- events ------------------------------------------------------------------------------------------------

    def filter_sql(self, f: _Filter, alias: str = "") -> str:
        col = (alias + ".") if alias else ""
        parts = [f"{col}event_type IN ({', '.join(string_literal(e) for e in f.events)})"]
        if f.within_days:
            parts.append(f"{col}ts > {self.asof - f.within_days * DAY}")
        for name, values in f.where:
            column = f"{col}{quote_ident(name)}"
            where = f"where.{name}"
            if EVENT_FIELDS[name] == "number":
                if all(isinstance(v, int) for v in values):
                    parts.append(f"{column} IN ({', '.join(_int_literal(v, where) for v in values)})")
                else:
                    parts.append(
                        f"CAST({column} AS DOUBLE) IN ({', '.join(_double_literal(v, where) for v in values)})"
                    )
            else:
                parts.append(f"{column} IN ({', '.join(string_literal(v) for v in values)})")
        return " AND ".join(parts)


def _rule_refs(rule: TagRule) -> list[Ref]:
    refs: list[Ref] = [c for cond in rule.conditions() for c, _ in walk_refs(cond)]
    if rule.value is not None:
        refs.append(rule.value)
    return refs


class _Aggregates:
    """Renders the aggregates of one query: the simple ones share one grouped scan of `events` (conditional
    aggregates); last, most_frequent and usual_months each get their own CTE."""

    def __init__(self, compiler: SqlCompiler) -> None:
        self.c = compiler
        self._stats: dict[tuple[str, _Filter, str | None], str] = {}
        self._own: list[tuple[str, str]] = []  # (cte name, body)
        self.joined: list[str] = []

    def _stat(self, kind: str, f: _Filter, field_name: str | None = None) -> str:
        key = (kind, f, field_name)
        if key not in self._stats:
            self._stats[key] = f"s{len(self._stats)}"
        return f"agg_events.{self._stats[key]}"

    def add(self, key: _AggKey) -> str:
        f, asof, c = key.filter, self.c.asof, self.c
        if key.agg in _OWN_CTE_AGGS:
            name = f"agg_{len(self._own)}"
            self._own.append((name, self._own_cte(key)))
            self.joined.append(name)
            return f"{name}.v"
        match key.agg:
            case "count":
                return f"COALESCE({self._stat('n', f)}, 0)"
            case "sum" | "distinct":
                return f"COALESCE({self._stat(key.agg, f, key.field)}, 0)"
            case "min" | "max":
                return self._stat(key.agg, f, key.field)
            case "days_since_last":
                return c.intdiv(f"{asof} - {self._stat('max_ts', f)}", str(DAY))
            case "days_since_first":
                return c.intdiv(f"{asof} - {self._stat('min_ts', f)}", str(DAY))
            case "months_since_last":
                return c.intdiv(f"{asof} - {self._stat('max_ts', f)}", str(MONTH_SECONDS))
            case "cycle_days" | "days_until_expected":
                days, last, first = self._stat("days", f), self._stat("max_ts", f), self._stat("min_ts", f)
                cycle = c.intdiv(f"{last} - {first}", f"{DAY} * ({days} - 1)")
                if key.agg == "days_until_expected":
                    cycle = f"{cycle} - {c.intdiv(f'{asof} - {last}', str(DAY))}"
                return f"CASE WHEN {days} >= 2 THEN {cycle} END"
        raise SqlCompileError(f"unhandled aggregate {key.agg}", "agg")

    def _own_cte(self, key: _AggKey) -> str:
        f, c = key.filter, self.c
        rows = f"FROM events WHERE ts <= {c.asof} AND {c.filter_sql(f)}"
        if key.agg == "usual_months":
            months = ", ".join(f"max(CASE WHEN month = {m} THEN '{m}' END)" for m in range(1, 13))
            return (
                f"SELECT person_id, NULLIF(concat_ws(',', {months}), '') AS v FROM ("
                f"SELECT person_id, month {rows} GROUP BY person_id, month "
                f"HAVING count(DISTINCT year) >= {int(key.min_years or 2)}) usual GROUP BY person_id"
            )
        column = quote_ident(key.field or "")
        if key.agg == "last":
            return (
                f"SELECT person_id, v FROM (SELECT person_id, {column} AS v, ROW_NUMBER() OVER "
                f"(PARTITION BY person_id ORDER BY ts DESC, event_id DESC) AS rn {rows} AND {column} IS NOT NULL"
                f") ranked WHERE rn = 1"
            )
        return (
            f"SELECT person_id, v FROM (SELECT person_id, v, ROW_NUMBER() OVER "
            f"(PARTITION BY person_id ORDER BY n DESC, v ASC) AS rn FROM ("
            f"SELECT person_id, {column} AS v, count(*) AS n {rows} AND {column} IS NOT NULL "
            f"GROUP BY person_id, {column}) counted) ranked WHERE rn = 1"
        )

    def ctes(self) -> list[str]:
        out: list[str] = []
        if self._stats:
            columns = []
            for (kind, f, field_name), alias in self._stats.items():
                columns.append(f"{self._stat_sql(kind, f, field_name)} AS {alias}")
            filters = {f for _, f, _ in self._stats}
            types = sorted({e for f in filters for e in f.events})
            where = f"ts <= {self.c.asof} AND event_type IN ({', '.join(string_literal(t) for t in types)})"
            starts = [f.within_days for f in filters]
            if all(starts):  # every aggregate is windowed: skip what is older than the widest window
                where += f" AND ts > {self.c.asof - max(d or 0 for d in starts) * DAY}"
            out.append(
                f"agg_events AS (SELECT person_id, {', '.join(columns)} FROM events WHERE {where} GROUP BY person_id)"
            )
            self.joined.insert(0, "agg_events")
        out += [f"{name} AS ({body})" for name, body in self._own]
        return out

    def _stat_sql(self, kind: str, f: _Filter, field_name: str | None) -> str:
        when = self.c.filter_sql(f)
        column = quote_ident(field_name) if field_name else ""
        match kind:
            case "n":
                return f"count(CASE WHEN {when} THEN 1 END)"
            case "max_ts":
                return f"max(CASE WHEN {when} THEN ts END)"
            case "min_ts":
                return f"min(CASE WHEN {when} THEN ts END)"
            case "days":
                return f"count(DISTINCT CASE WHEN {when} THEN {self.c.intdiv('ts', str(DAY))} END)"
            case "sum":
                return f"CAST(sum(CASE WHEN {when} THEN {column} END) AS BIGINT)"
            case "distinct":
                return f"count(DISTINCT CASE WHEN {when} THEN {column} END)"
            case "min" | "max":
                return f"{kind}(CASE WHEN {when} THEN {column} END)"
        raise SqlCompileError(f"unhandled statistic {kind}", "agg")
