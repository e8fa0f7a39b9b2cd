"""The tag catalog as a builder reads it (GET /v1/tags): every tag with its type and the values its rule can give,
and the attributes, event types and event fields a condition may name."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, Field

from cdp.tags.catalog import Category, TagCatalog
from cdp.tags.records import ATTRIBUTES, EVENT_FIELDS, EVENT_TYPES, ValueType
from cdp.tags.rules import COMPARE_OPS, AggName, rule_refs

Scalar = str | int | float | bool


class TagEntry(BaseModel):
    name: str
    description: str
    category: Category
    kind: Literal["fact", "rule", "predictive"]
    value_type: ValueType
    values: list[Scalar] = Field(
        description="the values its rule can give (its cases and `else`, true/false for a flag); empty when open "
        "(a copied attribute, a number, a category)"
    )
    freshness: Literal["real_time", "batch"]
    dynamic: bool
    valid_days: int | None
    owner: str
    emits: str | None
    reads: list[str] = Field(description="the tags it reads (a tag after these in evaluation order)")


class AttributeEntry(BaseModel):
    name: str
    value_type: ValueType
    description: str


class TagCatalogView(BaseModel):
    version: str
    tags: list[TagEntry] = Field(description="in evaluation order")
    attributes: list[AttributeEntry]
    event_types: list[str]
    event_fields: dict[str, ValueType]
    operators: list[str] = Field(description="the tests a condition may make (`eq`, `in`, `between`, ...)")
    aggregates: list[str] = Field(description="what an `agg` may compute over events")


def catalog_view(catalog: TagCatalog) -> TagCatalogView:
    tags = []
    for name in catalog.order:
        d = catalog.definitions[name]
        value_type = catalog.value_type(name)
        values: list[Scalar] = []
        if d.rule.when is not None:
            values = [True, False]
        elif d.rule.cases is not None:
            values = list(
                dict.fromkeys([*(c.value for c in d.rule.cases), *([d.rule.else_] if d.rule.else_ is not None else [])])
            )
        tags.append(
            TagEntry(
                name=name,
                description=d.description,
                category=d.category,
                kind=d.kind,
                value_type=value_type,
                values=values,
                freshness=d.freshness,
                dynamic=d.dynamic,
                valid_days=d.valid_days,
                owner=d.owner,
                emits=d.emits,
                reads=sorted({ref.tag for ref in rule_refs(d.rule) if ref.tag is not None}),
            )
        )
    return TagCatalogView(
        version=catalog.version,
        tags=tags,
        attributes=[
            AttributeEntry(name=n, value_type=a.type, description=a.description) for n, a in sorted(ATTRIBUTES.items())
        ],
        event_types=sorted(EVENT_TYPES),
        event_fields=dict(EVENT_FIELDS),
        operators=list(COMPARE_OPS),
        aggregates=list(get_args(AggName)),
    )
