"""DynamoDB (de)serialization helpers shared by the adapters: pydantic JSON <-> attribute values, no floats."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, cast

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_SER = TypeSerializer()
_DES = TypeDeserializer()


def to_attr(value: Any) -> dict[str, Any]:
    """A JSON-ready Python value -> a DynamoDB attribute value (floats become Decimal)."""
    clean = json.loads(json.dumps(value), parse_float=Decimal)
    return cast(dict[str, Any], _SER.serialize(clean))


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: to_attr(v) for k, v in values.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_plain(v) for v in value]
    return value


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item -> plain Python values (Decimal -> int/float)."""
    return {k: _plain(_DES.deserialize(v)) for k, v in item.items()}
