"""moto's TransactWriteItems deep-copies every table it touches to be able to roll back: O(table size) per call,
which makes a demo of 20,000 events quadratic. This replacement keeps DynamoDB's semantics (every condition is
checked against the state before the transaction; all writes or none) and snapshots only the items it writes.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend

from cdp_local.runtime.moto_guard import Reliance, check

# What each patch below replaces or calls in moto (see moto_guard): checked when the patch is installed.
TRANSACTIONS_RELY_ON = (
    Reliance("moto.dynamodb.models:DynamoDBBackend.transact_write_items", "d626cdaeef9eab8f"),
    Reliance("moto.dynamodb.models:DynamoDBBackend.get_item", "b69eebc50a9eef66"),
    Reliance("moto.dynamodb.models:DynamoDBBackend.put_item", "2b398e929810e06e"),
    Reliance("moto.dynamodb.models:DynamoDBBackend.delete_item", "fa2028e80529a748"),
    Reliance("moto.dynamodb.models:DynamoDBBackend.update_item", "df50cc3a2eec90bb"),
    Reliance("moto.dynamodb.models.table:Table.put_item", "8db9da1ed71a75e0"),  # stores a new Item object (see _before)
    Reliance("moto.dynamodb.models.table:Table.delete_item", "57203c07374b0264"),
    Reliance("moto.dynamodb.exceptions:TransactionCanceledException", "8aa8a3225ccea0d7"),
    Reliance("moto.dynamodb.comparisons:get_filter_expression", "443fb5181ad40759"),
)
RESPONSES_RELY_ON = (
    Reliance("moto.core.serialize:BaseJSONSerializer._serialize_type_structure", "f9c555c73d247f5e"),
    Reliance("moto.core.serialize:BaseJSONSerializer._serialize_type_map", "c5b803ab5a6e51f3"),
    Reliance("moto.dynamodb.models.dynamo_type:DynamoType.to_json", "730ad2ee3f4fa1d1"),
)
JSONPATH_RELIES_ON = (
    Reliance("moto.events.utils:EventTemplateParser.parse", "26da46228edb6d83"),
)  # imports parse per call
PARTITIONS_RELY_ON = (
    Reliance("moto.dynamodb.models.table:Table.query", "c6ba07f4085067a7"),  # index_name is its 7th positional argument
    Reliance("moto.dynamodb.models.table:Table.scan", "5a1a120bcfc39f54"),
    Reliance("moto.dynamodb.models.table:Table.all_items", "d21549e316ce8193"),
)


def _key_of(backend: DynamoDBBackend, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        return dict(op["Key"])
    table = backend.get_table(op["TableName"])
    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = op["Item"][table.range_key_attr]
    return key


def _check(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[Any]:
    seen: set[tuple[str, str]] = set()
    errors: list[Any] = []
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
            raise ValueError("Unsupported transaction operation")
        key = _key_of(backend, op_type, op)
        marker = (str(op["TableName"]), str(dict(sorted(key.items()))))
        if marker in seen:
            raise MultipleTransactionsException()
        seen.add(marker)
        condition = op.get("ConditionExpression")
        current = backend.get_item(op["TableName"], key)
        if condition is not None:
            expr = get_filter_expression(
                condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            )
            if not expr.expr(current):
                old = (
                    current.to_json()["Attributes"]
                    if current and op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
                    else None
                )
                errors.append(("ConditionalCheckFailed", "The conditional request failed", old))
                continue
        errors.append((None, None, None))
    return errors


def _before(backend: DynamoDBBackend, op_type: str, op: dict[str, Any]) -> Any:
    """The item as it was, to roll back to. moto's Put and Delete replace the stored Item object (the old one is left
    as it was), so only an Update, which changes the stored object in place, needs a copy."""
    item = backend.get_item(op["TableName"], _key_of(backend, op_type, op))
    return copy.deepcopy(item) if op_type == "Update" else item


def fast_transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    errors = _check(self, transact_items)
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)
    writes = [next(iter(i.items())) for i in transact_items if "ConditionCheck" not in i]
    snapshots = [(op["TableName"], _key_of(self, t, op), _before(self, t, op)) for t, op in writes]
    try:
        for op_type, op in writes:
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if op_type == "Put":
                self.put_item(
                    op["TableName"], op["Item"], expression_attribute_names=names, expression_attribute_values=values
                )
            elif op_type == "Delete":
                self.delete_item(
                    op["TableName"], op["Key"], expression_attribute_names=names, expression_attribute_values=values
                )
            else:
                self.update_item(
                    op["TableName"],
                    op["Key"],
                    update_expression=op["UpdateExpression"],
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
    except Exception:
        for table_name, key, before in snapshots:
            if before is None:
                self.delete_item(table_name, key)
            else:
                self.put_item(table_name, before.to_json()["Attributes"])
        raise


@contextmanager
def fast_transactions() -> Iterator[None]:
    check("fast_transactions", TRANSACTIONS_RELY_ON)
    original = DynamoDBBackend.transact_write_items
    DynamoDBBackend.transact_write_items = fast_transact_write_items  # type: ignore[method-assign]
    try:
        yield
    finally:
        DynamoDBBackend.transact_write_items = original  # type: ignore[method-assign]


def _passthrough_attribute_values() -> list[tuple[Any, str, Any, Any]]:
    """moto's generic response serializer walks every DynamoDB AttributeValue member by member (~3 ms for a
    40-attribute profile). moto already holds them in wire form, so they can be copied as they are."""
    from moto.core.serialize import BaseJSONSerializer

    original_structure = BaseJSONSerializer._serialize_type_structure
    original_map = BaseJSONSerializer._serialize_type_map

    def structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if shape.name == "AttributeValue" and (isinstance(value, dict) or hasattr(value, "to_json")):
            serialized[key] = _wire(value)
            return
        original_structure(self, serialized, value, shape, key)

    def mapping(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if shape.name == "AttributeMap" and isinstance(value, dict):
            serialized[key] = {name: _wire(attr) for name, attr in value.items()}
            return
        original_map(self, serialized, value, shape, key)

    return [
        (BaseJSONSerializer, "_serialize_type_structure", original_structure, structure),
        (BaseJSONSerializer, "_serialize_type_map", original_map, mapping),
    ]


def _wire(value: Any) -> dict[str, Any]:
    """An AttributeValue as it goes on the wire (binary members base64-encoded, as the real serializer does)."""
    if not isinstance(value, dict):  # moto's DynamoType
        value = value.to_json()
    kind, inner = next(iter(value.items())) if len(value) == 1 else ("", None)
    inner_value: Any = inner
    if kind == "M":
        return {"M": {k: _wire(v) for k, v in inner_value.items()}}
    if kind == "L":
        return {"L": [_wire(v) for v in inner_value]}
    if kind == "B":
        return {"B": _b64(inner)}
    if kind == "BS":
        return {"BS": [_b64(v) for v in inner_value]}
    return value


def _b64(value: Any) -> str:
    import base64

    return value if isinstance(value, str) else base64.b64encode(value).decode()


@contextmanager
def fast_dynamodb_responses() -> Iterator[None]:
    check("fast_dynamodb_responses", RESPONSES_RELY_ON)
    patches = _passthrough_attribute_values()
    for cls, name, _, patched in patches:
        setattr(cls, name, patched)
    try:
        yield
    finally:
        for cls, name, original, _ in patches:
            setattr(cls, name, original)


@contextmanager
def cached_jsonpath() -> Iterator[None]:
    """moto's EventBridge builds a new jsonpath parser (a PLY grammar) for every path of every event it delivers;
    the five paths it uses are always the same, so parse each once."""
    import functools

    import jsonpath_ng.ext

    check("cached_jsonpath", JSONPATH_RELIES_ON)
    original = jsonpath_ng.ext.parse
    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=256)(original)
    try:
        yield
    finally:
        jsonpath_ng.ext.parse = original


_partition = threading.local()


def _string_keys(table: Any) -> bool:
    types = {a["AttributeName"]: a["AttributeType"] for a in table.attr}
    return bool(table.range_key_attr) and types.get(table.hash_key_attr) == types.get(table.range_key_attr) == "S"


def _sorted_items(table: Any) -> list[Any]:
    """Every item in key order, sorted on the raw key values (C string comparisons) when both keys are strings:
    moto sorts on its own key objects, whose Python-level comparisons made a full scan take minutes."""
    items = [item for partition in table.items.values() for item in partition.values()]
    if _string_keys(table):
        items.sort(key=lambda item: (item.hash_key.value, item.range_key.value))
    else:
        items.sort(key=lambda item: (item.hash_key, item.range_key))
    return items


@contextmanager
def partition_queries() -> Iterator[None]:
    """moto answers a Query by sorting every item of the table and filtering on the partition key, so reading one
    person's timeline costs O(table); and it answers each Scan page by walking the table from the start up to the
    previous page's last key, so a full scan costs O(table x pages). A base-table Query only needs its partition,
    and a Scan page only what follows its start key."""
    from bisect import bisect_left

    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    check("partition_queries", PARTITIONS_RELY_ON)
    original_query, original_scan, original_all_items = Table.query, Table.scan, Table.all_items

    def all_items(self: Table) -> list[Any]:
        wanted = getattr(_partition, "key", None)
        if wanted is not None and wanted[0] is self:
            return sorted(self.items.get(wanted[1], {}).values(), key=lambda item: item.range_key)
        after = getattr(_partition, "after", None)
        items = _sorted_items(self) if self.range_key_attr else original_all_items(self)
        if after is not None and after[0] is self:
            start = bisect_left(items, after[1], key=lambda item: (item.hash_key.value, item.range_key.value))
            return items[start:]
        return items

    def query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name is None and hash_key is not None and self.range_key_attr:
            _partition.key = (self, hash_key)
            try:
                return original_query(self, hash_key, *args, **kwargs)
            finally:
                _partition.key = None
        return original_query(self, hash_key, *args, **kwargs)

    def scan(self: Table, filters: Any, limit: Any, exclusive_start_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[1] if len(args) > 1 else kwargs.get("index_name")
        if exclusive_start_key and index_name is None and _string_keys(self):
            start = (
                DynamoType(exclusive_start_key[self.hash_key_attr]).value,
                DynamoType(exclusive_start_key[self.range_key_attr]).value,
            )
            _partition.after = (self, start)  # moto still skips the start key itself, as before
            try:
                return original_scan(self, filters, limit, exclusive_start_key, *args, **kwargs)
            finally:
                _partition.after = None
        return original_scan(self, filters, limit, exclusive_start_key, *args, **kwargs)

    Table.query, Table.scan, Table.all_items = query, scan, all_items  # type: ignore[method-assign]
    try:
        yield
    finally:
        Table.query, Table.scan, Table.all_items = original_query, original_scan, original_all_items  # type: ignore[method-assign]
