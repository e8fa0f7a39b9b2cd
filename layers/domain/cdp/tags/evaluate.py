"""The in-memory evaluator: one person's tags (and dynamic audience memberships) at one instant.

Besides each value it finds the next instant the value can change with no new event: when the oldest event in a
window leaves it, when "days since" or an age crosses a threshold a test uses. The sweep re-evaluates a person then,
so windowed tags expire on time. NULL semantics match the SQL compiler: a test on a missing value is false (and
`not` of it true); count, distinct and sum of nothing are 0; the others are missing.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cdp.tags.records import DAY, EventRecord, PersonRecord, epoch, next_birthday_ts
from cdp.tags.rules import MONTH_SECONDS, AllOf, AnyOf, Compare, Condition, NotOf, Ref, TagRule

Value = str | int | float | bool | None


@dataclass(frozen=True)
class Computed:
    value: Value
    next_change: int | None  # epoch seconds; None: never changes by itself


@dataclass
class _Val:
    value: Value
    next_change: int | None = None  # window edges (an event entering or leaving)
    # time-monotone values: when the value crosses between k-1 and k (upwards for "days since", down for "until")
    crossing: Callable[[int], int | None] | None = None
    falling: bool = False


@dataclass
class _Context:
    person: PersonRecord
    asof: int
    tags: dict[str, Computed] = field(default_factory=dict)
    audiences: dict[str, Computed] = field(default_factory=dict)
    boundaries: list[int] = field(default_factory=list)

    def boundary(self, at: int | None) -> None:
        if at is not None and at > self.asof:
            self.boundaries.append(at)


class RuleEvaluator:
    """Evaluates rules in the order given (a tag's rule may read tags evaluated before it)."""

    def __init__(self, person: PersonRecord, asof: int | datetime) -> None:
        self._ctx = _Context(person=person, asof=asof if isinstance(asof, int) else epoch(asof))

    @property
    def tags(self) -> Mapping[str, Computed]:
        return self._ctx.tags

    @property
    def audiences(self) -> Mapping[str, Computed]:
        return self._ctx.audiences

    def tag(self, name: str, rule: TagRule) -> Computed:
        computed = self._rule(rule)
        self._ctx.tags[name] = computed
        return computed

    def audience(self, name: str, condition: Condition) -> Computed:
        computed = self._scoped(lambda: self._condition(condition))
        self._ctx.audiences[name] = computed
        return computed

    def condition(self, condition: Condition) -> Computed:
        return self._scoped(lambda: self._condition(condition))

    # ---- rules --------------------------------------------------------------------------------------------

    def _rule(self, rule: TagRule) -> Computed:
        if rule.when is not None:
            when = rule.when
            result = self._scoped(lambda: self._condition(when))
            return Computed(True if result.value else None, result.next_change)
        if rule.value is not None:
            ref = rule.value
            return self._scoped(lambda: _value_of(self._ref(ref), self._ctx))

        def first_case() -> Value:
            for case in rule.cases or []:
                if self._condition(case.when):
                    return case.value
            return rule.else_

        return self._scoped(first_case)

    def _scoped(self, fn: Callable[[], Value]) -> Computed:
        outer, self._ctx.boundaries = self._ctx.boundaries, []
        try:
            value = fn()
            return Computed(value, min(self._ctx.boundaries, default=None))
        finally:
            outer.extend(self._ctx.boundaries)
            self._ctx.boundaries = outer

    # ---- conditions (short-circuit: a result changes only when a part that decided it changes) -------------

    def _condition(self, c: Condition) -> bool:
        if isinstance(c, AllOf):
            return all(self._condition(x) for x in c.all)
        if isinstance(c, AnyOf):
            return any(self._condition(x) for x in c.any)
        if isinstance(c, NotOf):
            return not self._condition(c.not_)
        return self._compare(c)

    def _compare(self, c: Compare) -> bool:
        v = self._ref(c)
        self._ctx.boundary(v.next_change)
        if v.crossing is not None:
            for k in _thresholds(c):
                self._ctx.boundary(v.crossing(k))
        return test(c, v.value)

    # ---- values -------------------------------------------------------------------------------------------

    def _ref(self, ref: Ref) -> _Val:
        ctx = self._ctx
        if ref.attr is not None:
            value = ctx.person.attribute(ref.attr, ctx.asof)
            if ref.attr == "age" and value is not None:
                return _Val(value, crossing=_age_crossing(ctx.person))
            return _Val(value)
        if ref.tag is not None:
            if ref.tag in ctx.tags:
                computed = ctx.tags[ref.tag]
                return _Val(computed.value, computed.next_change)
            return _Val(ctx.person.tags.get(ref.tag))
        if ref.audience is not None:
            if ref.audience in ctx.audiences:
                computed = ctx.audiences[ref.audience]
                return _Val(computed.value, computed.next_change)
            return _Val(bool(ctx.person.tags.get(audience_tag(ref.audience))))
        if ref.score is not None:
            return _Val(ctx.person.scores.get(ref.score))
        return aggregate(ref, ctx.person.events, ctx.asof)


def audience_tag(audience_id: str) -> str:
    """Dynamic audience memberships are kept among the tags (history and as-of reads come with them)."""
    return f"audience:{audience_id}"


def _value_of(v: _Val, ctx: _Context) -> Value:
    ctx.boundary(v.next_change)
    if v.crossing is not None and isinstance(v.value, int):
        ctx.boundary(v.crossing(v.value if v.falling else v.value + 1))
    return v.value


def _age_crossing(person: PersonRecord) -> Callable[[int], int | None]:
    year: int = person.columns["birth_year"]
    month: int = person.columns["birth_month"]
    day: int = person.columns["birth_day"]

    def reaches(k: int) -> int | None:
        # Age k is reached on the birthday in year + k (29 February on 1 March in common years).
        start = epoch(datetime(year + k - 1, 12, 31, tzinfo=UTC))
        return next_birthday_ts(month, day, start) if year + k <= 9999 else None

    return reaches


def _thresholds(c: Compare) -> list[int]:
    """The integer values at which a test on a time-monotone integer subject can flip."""
    op, operand = c.op, c.operand(c.op)
    if op in ("gte", "lt"):
        return [math.ceil(operand)]
    if op in ("gt", "lte"):
        return [math.floor(operand) + 1]
    if op == "between":
        return [math.ceil(operand[0]), math.floor(operand[1]) + 1]
    if op in ("eq", "ne", "in", "not_in"):
        values = operand if isinstance(operand, list) else [operand]
        return [k + d for k in values if isinstance(k, int) and not isinstance(k, bool) for d in (0, 1)]
    return []


def test(c: Compare, value: Value) -> bool:  # noqa: C901 - one branch per operator
    op, operand = c.op, c.operand(c.op)
    if op == "exists":
        return (value is not None) == operand
    if value is None:
        return False
    match op:
        case "eq":
            return _same(value, operand)
        case "ne":
            return not _same(value, operand)
        case "in":
            return any(_same(value, x) for x in operand)
        case "not_in":
            return not any(_same(value, x) for x in operand)
        case "contains":
            return f",{operand}," in f",{value},"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    match op:
        case "gt":
            return value > operand
        case "gte":
            return value >= operand
        case "lt":
            return value < operand
        case "lte":
            return value <= operand
        case "between":
            return bool(operand[0] <= value <= operand[1])
    raise AssertionError(f"unhandled operator {op}")


def _same(a: Value, b: Any) -> bool:
    # bool is an int in Python: `eq: 1` must not match a true flag (SQL keeps the types apart too)
    return isinstance(a, bool) == isinstance(b, bool) and a == b


# ---- aggregates ---------------------------------------------------------------------------------------------


def _matches(ref: Ref, e: EventRecord) -> bool:
    if e.event_type not in (ref.event or ()):
        return False
    for key, wanted in ref.where.items():
        got = e.get(key)
        if got is None:
            return False
        if not any(_same(got, w) for w in (wanted if isinstance(wanted, list) else [wanted])):
            return False
    return True


def aggregate(ref: Ref, events: Iterable[EventRecord], asof: int) -> _Val:  # noqa: C901 - one branch per aggregate
    start = asof - ref.within_days * DAY if ref.within_days else None
    rows: list[EventRecord] = []
    upcoming: int | None = None  # an event stamped after `asof` enters the window then
    for e in events:
        if not _matches(ref, e):
            continue
        if e.ts > asof:
            upcoming = e.ts if upcoming is None else min(upcoming, e.ts)
        elif start is None or e.ts > start:
            rows.append(e)
    edges = [upcoming] if upcoming is not None else []
    if ref.within_days and rows:
        edges.append(min(e.ts for e in rows) + ref.within_days * DAY)  # the oldest leaves the window then
    next_change = min(edges, default=None)
    agg = ref.agg
    if agg == "count":
        return _Val(len(rows), next_change)
    if agg in ("days_since_last", "days_since_first", "months_since_last"):
        if not rows:
            return _Val(None, next_change)
        at = max(e.ts for e in rows) if agg != "days_since_first" else min(e.ts for e in rows)
        unit = MONTH_SECONDS if agg == "months_since_last" else DAY
        return _Val((asof - at) // unit, next_change, crossing=lambda k: at + k * unit)
    if agg in ("cycle_days", "days_until_expected"):
        days = {e.ts // DAY for e in rows}
        if len(days) < 2:
            return _Val(None, next_change)
        last = max(e.ts for e in rows)
        cycle = (last - min(e.ts for e in rows)) // (DAY * (len(days) - 1))
        if agg == "cycle_days":
            return _Val(cycle, next_change)
        # cycle minus days since the last one: falls by one a day, negative once overdue
        return _Val(cycle - (asof - last) // DAY, next_change, lambda k: last + (cycle - k + 1) * DAY, falling=True)
    if agg == "usual_months":
        years: dict[int, set[int]] = {}
        for e in rows:
            years.setdefault(e.month, set()).add(e.year)
        needed = ref.min_years or 2
        months = sorted(m for m, ys in years.items() if len(ys) >= needed)
        return _Val(",".join(str(m) for m in months) or None, next_change)
    name = ref.field or ""
    present = [e for e in rows if e.get(name) is not None]
    values = [e.get(name) for e in present]
    if agg == "sum":
        return _Val(sum(values), next_change)
    if agg == "distinct":
        return _Val(len(set(values)), next_change)
    if not values:
        return _Val(None, next_change)
    if agg == "min":
        return _Val(min(values), next_change)
    if agg == "max":
        return _Val(max(values), next_change)
    if agg == "last":
        return _Val(max(present, key=lambda e: (e.ts, e.event_id)).get(name), next_change)
    if agg == "most_frequent":
        counts = Counter(values)
        return _Val(min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0], next_change)
    raise AssertionError(f"unhandled aggregate {agg}")
