"""The rule language: a typed condition tree over profile attributes, tags, model scores, audiences and windowed
aggregates of events.

    {all: [c, ...]} | {any: [c, ...]} | {not: c}
    {attr: age, between: [40, 60]}
    {agg: count, event: order_placed, within_days: 30, gte: 2}
    {agg: most_frequent, event: order_line, field: category, eq: skin_care}
    {tag: lifecycle, in: [dormant, churned]}      {score: churn, gte: 0.7}      {audience: vip, eq: true}

A comparison names exactly one subject (attr, tag, score, audience or agg) and exactly one test. The same tree
compiles to an in-memory evaluator (`cdp.tags.evaluate`) and to SQL (`cdp.tags.sql`); both read the columns of
`cdp.tags.records`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    model_serializer,
    model_validator,
)

from cdp.tags.records import ATTRIBUTES, EVENT_FIELDS, EVENT_TYPES, ValueType

Scalar = StrictStr | StrictInt | StrictFloat | StrictBool
Number = StrictInt | StrictFloat

AggName = Literal[
    "count",
    "sum",
    "min",
    "max",
    "last",
    "most_frequent",
    "distinct",
    "days_since_last",
    "days_since_first",
    "months_since_last",
    "cycle_days",
    "days_until_expected",
    "usual_months",
]
FIELD_AGGS = frozenset({"sum", "min", "max", "last", "most_frequent", "distinct"})
NUMERIC_FIELD_AGGS = frozenset({"sum", "min", "max"})
TIME_MONOTONE_AGGS = frozenset({"days_since_last", "days_since_first", "months_since_last", "days_until_expected"})
MONTH_SECONDS = 2_629_800  # 30.4375 days: months_since_last counts these
MAX_DEPTH = 12

COMPARE_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "between", "contains", "exists")
SUBJECTS = ("attr", "tag", "score", "audience", "agg")
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
SCORE_PATTERN = r"^[a-z][a-z0-9_]{0,63}(\.[a-z][a-z0-9_]{0,31})?$"


_OUTPUT_NAMES = {"in_": "in", "not_": "not", "else_": "else"}


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> Any:
        """Dumped the way a rule is written: no unset keys, `in`/`not`/`else` under their own names."""
        data = handler(self)
        if not isinstance(data, dict):
            return data
        return {_OUTPUT_NAMES.get(k, k): v for k, v in data.items() if v is not None and not (k == "where" and not v)}


class Ref(_Node):
    """A value: a profile attribute, a tag, a model score, an audience membership, or an aggregate of events."""

    attr: str | None = Field(default=None, description="a profile attribute (GET /v1/tags lists them)")
    tag: str | None = Field(default=None, pattern=NAME_PATTERN)
    score: str | None = Field(
        default=None,
        pattern=SCORE_PATTERN,
        description="a model's score (a probability, an uplift, a value), or one of its outputs as <model>.<output>",
    )
    audience: str | None = Field(default=None, pattern=NAME_PATTERN, description="membership of a dynamic audience")
    agg: AggName | None = None
    event: list[str] | None = Field(default=None, min_length=1, max_length=20, description="event types aggregated")
    field: str | None = Field(default=None, description="the event field aggregated (sum, min, max, last, ...)")
    where: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict, description="event field -> value or list")
    within_days: int | None = Field(default=None, ge=1, le=3650, description="only events of the last N days")
    min_years: int | None = Field(default=None, ge=1, le=20, description="usual_months: distinct years a month needs")

    @model_validator(mode="before")
    @classmethod
    def _event_as_list(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("event"), str):
            return {**data, "event": [data["event"]]}
        return data

    @model_validator(mode="after")
    def _one_subject(self) -> Ref:
        named = [s for s in SUBJECTS if getattr(self, s) is not None]
        if len(named) != 1:
            raise ValueError(f"name exactly one subject of {', '.join(SUBJECTS)} (got {', '.join(named) or 'none'})")
        if self.agg is None:
            extra = [k for k in ("event", "field", "within_days", "min_years") if getattr(self, k) is not None]
            if extra or self.where:
                raise ValueError(f"{', '.join(extra or ['where'])} only go with agg")
            if self.attr is not None and self.attr not in ATTRIBUTES:
                raise ValueError(f"unknown attribute {self.attr!r}; known: {', '.join(sorted(ATTRIBUTES))}")
            return self
        return self._check_aggregate()

    def _check_aggregate(self) -> Ref:  # noqa: C901 - one check per rule of the grammar
        if not self.event:
            raise ValueError(f"agg {self.agg} needs the event type(s) it reads ('event')")
        unknown = [e for e in self.event if e not in EVENT_TYPES]
        if unknown:
            raise ValueError(f"unknown event type {unknown[0]!r}; known: {', '.join(sorted(EVENT_TYPES))}")
        if self.agg in FIELD_AGGS:
            if self.field is None:
                raise ValueError(f"agg {self.agg} needs a 'field'")
            if self.field not in EVENT_FIELDS:
                raise ValueError(f"unknown event field {self.field!r}; known: {', '.join(EVENT_FIELDS)}")
            if self.agg in NUMERIC_FIELD_AGGS and EVENT_FIELDS[self.field] != "number":
                raise ValueError(f"agg {self.agg} needs a numeric field; {self.field!r} is a string")
        elif self.field is not None:
            raise ValueError(f"agg {self.agg} takes no 'field'")
        if self.min_years is not None and self.agg != "usual_months":
            raise ValueError("min_years only goes with agg usual_months")
        for key, value in self.where.items():
            if key not in EVENT_FIELDS:
                raise ValueError(f"where: unknown event field {key!r}; known: {', '.join(EVENT_FIELDS)}")
            values = value if isinstance(value, list) else [value]
            if not values:
                raise ValueError(f"where.{key}: an empty list matches nothing")
            expected = EVENT_FIELDS[key]
            for v in values:
                if _scalar_type(v) != expected:
                    raise ValueError(f"where.{key}: {v!r} is not a {expected}")
        return self

    @property
    def subject(self) -> str:
        return next(s for s in SUBJECTS if getattr(self, s) is not None)

    @property
    def time_monotone(self) -> bool:
        """Grows with time alone (days since, age): its comparisons flip at computable instants."""
        return self.agg in TIME_MONOTONE_AGGS or self.attr == "age"

    def static_type(self) -> ValueType | None:
        """The value type when it does not depend on other definitions (tags resolve theirs in the catalog)."""
        if self.attr is not None:
            return ATTRIBUTES[self.attr].type
        if self.score is not None:
            return "number"
        if self.audience is not None:
            return "bool"
        if self.agg is None:
            return None
        if self.agg == "usual_months":
            return "months"
        if self.agg in ("min", "max", "last", "most_frequent"):
            return EVENT_FIELDS[self.field or ""]
        return "number"

    def describe(self) -> str:
        if self.agg is None:
            return f"{self.subject} {getattr(self, self.subject)}"
        field = f"({self.field})" if self.field else ""
        window = f" in the last {self.within_days} days" if self.within_days else ""
        return f"{self.agg}{field} of {'/'.join(self.event or [])}{window}"


_OP_FIELDS = {op: "in_" if op == "in" else op for op in COMPARE_OPS}  # operator -> its field on Compare


class Compare(Ref):
    """A test on one subject: exactly one of the operators."""

    eq: Scalar | None = None
    ne: Scalar | None = None
    gt: Number | None = None
    gte: Number | None = None
    lt: Number | None = None
    lte: Number | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in", min_length=1, max_length=500)
    not_in: list[Scalar] | None = Field(default=None, min_length=1, max_length=500)
    between: tuple[Number, Number] | None = Field(default=None, description="inclusive [low, high]")
    contains: int | None = Field(default=None, ge=1, le=12, description="usual_months: the month is one of them")
    exists: StrictBool | None = Field(default=None, description="true: has a value; false: has none")

    @model_validator(mode="after")
    def _one_test(self) -> Compare:
        named = [op for op in COMPARE_OPS if self.operand(op) is not None]
        if len(named) != 1:
            raise ValueError(f"name exactly one test of {', '.join(COMPARE_OPS)} (got {', '.join(named) or 'none'})")
        if self.between is not None and self.between[0] > self.between[1]:
            raise ValueError(f"between: low {self.between[0]} is above high {self.between[1]}")
        return self

    def operand(self, op: str) -> Any:
        return self.__dict__[_OP_FIELDS[op]]

    @property
    def op(self) -> str:
        # Read on every test of every evaluation (a history replay makes millions): plain dict reads, not cached
        # (a cache would survive `model_copy(update=...)` of the operands).
        fields = self.__dict__
        return next(op for op, name in _OP_FIELDS.items() if fields[name] is not None)


class AllOf(_Node):
    all: list[Condition] = Field(min_length=1, max_length=100)


class AnyOf(_Node):
    any: list[Condition] = Field(min_length=1, max_length=100)


class NotOf(_Node):
    not_: Condition = Field(alias="not")


def _condition_kind(value: Any) -> str:
    # Union tags are braced so error paths can drop them (`all[0].gte`, not `all.{all}.all[0].{compare}.gte`).
    if isinstance(value, dict):
        for key in ("all", "any", "not"):
            if key in value:
                return "{" + key + "}"
        return "{compare}"
    kinds: dict[type, str] = {AllOf: "{all}", AnyOf: "{any}", NotOf: "{not}"}
    return kinds.get(type(value), "{compare}")


Condition = Annotated[
    Annotated[AllOf, Tag("{all}")]
    | Annotated[AnyOf, Tag("{any}")]
    | Annotated[NotOf, Tag("{not}")]
    | Annotated[Compare, Tag("{compare}")],
    Discriminator(_condition_kind),
]

AllOf.model_rebuild()
AnyOf.model_rebuild()
NotOf.model_rebuild()


class Case(_Node):
    when: Condition
    value: Scalar


class TagRule(_Node):
    """Exactly one of: `when` (a flag, present while the condition holds), `value` (copies a value), `cases`."""

    when: Condition | None = None
    value: Ref | None = None
    cases: list[Case] | None = Field(default=None, min_length=1, max_length=50, description="first match wins")
    else_: Scalar | None = Field(default=None, alias="else", description="cases: the value when none matches")

    @model_validator(mode="after")
    def _one_form(self) -> TagRule:
        forms = [k for k in ("when", "value", "cases") if getattr(self, k) is not None]
        if len(forms) != 1:
            raise ValueError(f"a rule has exactly one of when, value, cases (got {', '.join(forms) or 'none'})")
        if self.else_ is not None and self.cases is None:
            raise ValueError("'else' only goes with 'cases'")
        if self.cases is not None:
            kinds = {_scalar_type(c.value) for c in self.cases} | (
                {_scalar_type(self.else_)} if self.else_ is not None else set()
            )
            if len(kinds) > 1:
                raise ValueError(f"every case value must be of one type (got {', '.join(sorted(kinds))})")
        return self

    def conditions(self) -> Iterator[Condition]:
        if self.when is not None:
            yield self.when
        for case in self.cases or []:
            yield case.when


def _scalar_type(value: Any) -> ValueType:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string"


scalar_type = _scalar_type


def walk_refs(condition: Condition, depth: int = 0) -> Iterator[tuple[Compare, int]]:
    """Every comparison in a tree with its depth."""
    if isinstance(condition, AllOf):
        for c in condition.all:
            yield from walk_refs(c, depth + 1)
    elif isinstance(condition, AnyOf):
        for c in condition.any:
            yield from walk_refs(c, depth + 1)
    elif isinstance(condition, NotOf):
        yield from walk_refs(condition.not_, depth + 1)
    else:
        yield condition, depth


def rule_refs(rule: TagRule) -> list[Ref]:
    refs: list[Ref] = [compare for condition in rule.conditions() for compare, _ in walk_refs(condition)]
    if rule.value is not None:
        refs.append(rule.value)
    return refs


def check_operand_types(compare: Compare, subject_type: ValueType) -> str | None:
    """Why a test does not fit its subject's type (None when it does)."""
    op, operand = compare.op, compare.operand(compare.op)
    if op == "exists":
        return None
    if op == "contains":
        return (
            None
            if subject_type == "months"
            else f"contains needs usual_months; {compare.describe()} is a {subject_type}"
        )
    if subject_type == "months":
        return f"{compare.describe()} is a set of months: test it with contains"
    if op in ("gt", "gte", "lt", "lte", "between"):
        return None if subject_type == "number" else f"{op} needs a number; {compare.describe()} is a {subject_type}"
    values = operand if isinstance(operand, list) else [operand]
    for v in values:
        if _scalar_type(v) != subject_type:
            return f"{op}: {v!r} is a {_scalar_type(v)} but {compare.describe()} is a {subject_type}"
    return None


def dump_condition(condition: Condition) -> dict[str, Any]:
    return condition.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)
