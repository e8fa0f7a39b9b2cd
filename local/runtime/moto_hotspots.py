"""Faster stand-ins for moto's hottest functions in the local loop, answering exactly what moto answers.

Profiled on the `cdp bench` pipeline with 1,000 events and moto 5.2.5 (figures beside each patch below). Each
patch lists the moto functions it replaces or relies on (`Reliance`); `moto_hotspots()` checks them all before it
installs anything and raises `MotoShapeChanged` naming the moto version and function when one has changed.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cdp_local.runtime.moto_guard import Reliance, check

Replacement = tuple[Any, str, Any]  # (owner: a module or class, attribute name, new value)


@dataclass(frozen=True)
class MotoPatch:
    name: str
    reliances: tuple[Reliance, ...]
    replacements: Callable[[], list[Replacement]]  # built on install (imports moto lazily)


# ---- SQS: a clock that is not 12 µs a read ---------------------------------------------------------------------
# moto.core.utils.unix_time() builds two datetimes (now and the epoch) per call: 12.5 µs. SQS reads it twice per
# queued message each time it lists a queue's visible messages (Message.visible / .delayed), which it does for every
# attribute read and, through the retention check, three times per received message: 1.76 M reads per 1,000 events
# (cProfile: 24 of 168 s). The same figure from time.time_ns():


def unix_time_from_ns(ns: int) -> float:
    """What moto's unix_time() computes for the clock reading `ns`: datetime.now() floors to the microsecond, and
    the sum runs in moto's order (days, then seconds + microseconds), so the float is bit-for-bit the same."""
    seconds_total, rest_ns = divmod(ns, 1_000_000_000)
    days, seconds = divmod(seconds_total, 86400)
    return (days * 86400) + (seconds + ((rest_ns // 1000) / 1e6))


def _sqs_clock() -> list[Replacement]:
    import moto.sqs.models as sqs_models

    original_unix_time = sqs_models.unix_time

    def unix_time(dt: Any = None) -> float:
        return original_unix_time(dt) if dt is not None else unix_time_from_ns(time.time_ns())

    def unix_time_millis(dt: Any = None) -> float:
        return unix_time(dt) * 1000.0

    return [(sqs_models, "unix_time", unix_time), (sqs_models, "unix_time_millis", unix_time_millis)]


SQS_CLOCK = MotoPatch(
    "sqs-clock",
    (
        Reliance("moto.core.utils:unix_time", "b210c9be418ef67b"),
        Reliance("moto.core.utils:unix_time_millis", "1c8a7e1a9c0d13bf"),
        Reliance("moto.core.utils:utcnow", "c6015edd12a84152"),
        Reliance("moto.core.utils:utcfromtimestamp", "cb86483db275cb55"),
    ),
    _sqs_clock,
)


# ---- SQS: build a queue's attributes once per request, not once per name (or three times per message) ---------
# GetQueueAttributes with named attributes rebuilds Queue.attributes (three scans of every message) 1 + 2 x names
# times; the retention check that ReceiveMessage runs for each message it hands out goes through it too (cProfile:
# Queue.attributes 33 of 168 s, 8,328 builds per 1,000 events).


def _sqs_attributes() -> list[Replacement]:
    import moto.sqs.models as sqs_models
    from moto.sqs.exceptions import InvalidAttributeName
    from moto.sqs.models import SQSBackend

    def get_queue_attributes(self: SQSBackend, queue_name: str, attribute_names: list[str]) -> dict[str, Any]:
        queue = self.get_queue(queue_name)
        if not attribute_names:
            return {}
        valid_names = ["All", *queue.BASE_ATTRIBUTES, *queue.FIFO_ATTRIBUTES, *queue.KMS_ATTRIBUTES]
        invalid_name = next((name for name in attribute_names if name not in valid_names), None)
        if invalid_name or invalid_name == "":
            raise InvalidAttributeName(invalid_name)
        attributes = queue.attributes
        if "All" in attribute_names:
            return attributes
        return {name: attributes[name] for name in attribute_names if attributes.get(name) is not None}

    def is_message_valid_based_on_retention_period(self: SQSBackend, queue_name: str, message: Any) -> bool:
        # set by Queue._set_attributes (setattr of each attribute's snake_case name), as Queue.attributes reads it
        retention_period = getattr(self.get_queue(queue_name), "message_retention_period", None)
        if retention_period is None:  # moto's lookup raised KeyError here (the attribute left out as None)
            raise KeyError("MessageRetentionPeriod")
        retain_until = retention_period + message.sent_timestamp / 1000
        return not retain_until <= sqs_models.unix_time()  # the module's clock, as moto reads it

    return [
        # Queue.attributes converts the same 14 names with a character-by-character loop on every build
        (sqs_models, "camelcase_to_underscores", functools.lru_cache(maxsize=256)(sqs_models.camelcase_to_underscores)),
        (SQSBackend, "get_queue_attributes", get_queue_attributes),
        (SQSBackend, "is_message_valid_based_on_retention_period", is_message_valid_based_on_retention_period),
    ]


SQS_ATTRIBUTES = MotoPatch(
    "sqs-attributes",
    (
        Reliance("moto.sqs.models:SQSBackend.get_queue_attributes", "1f50e83bd1bb3138"),
        Reliance("moto.sqs.models:SQSBackend.is_message_valid_based_on_retention_period", "2c66529a81cc8c51"),
        Reliance("moto.sqs.models:Queue.attributes", "17414497c6901270"),
        Reliance("moto.core.utils:camelcase_to_underscores", "07b5cfadfb5fd721"),  # a pure function of its string
        Reliance("moto.sqs.models:Queue._set_attributes", "0201a052ce85e80c"),
    ),
    _sqs_attributes,
)


# ---- DynamoDB: item sizes without rebuilding every nested value -------------------------------------------------
# DynamoType.size() wraps every nested value in a new DynamoType (which wraps its children again) to measure it, and
# LimitedSizeDict re-measures the whole item on each attribute set, so building an item is quadratic in its
# attributes: Item.__init__ took 15 of 168 profiled seconds (1.44 M size() calls per 1,000 events).


def _scalar_size(kind: str, value: Any) -> int:
    from moto.dynamodb.models.utilities import bytesize

    if kind == "N":
        return len(str(value))
    if isinstance(value, bool):
        return 1
    return bytesize(value)


def _value_size(kind: str, value: Any) -> int:
    """DynamoType.size() of a value of this type, its children measured as moto measures them (each re-wrapped)."""
    from moto.dynamodb.models.utilities import bytesize

    if kind in ("SS", "NS", "BS"):
        return sum(_scalar_size(kind[0], v) for v in value)
    if kind == "L":
        return sum(_wrapped_size(v) for v in value)
    if kind == "M":
        return sum(bytesize(k) + _wrapped_size(v) for k, v in value.items())
    return _scalar_size(kind, value)


def _wrapped_size(v: Any) -> int:
    """DynamoType(v).size(), without building the copy."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    if type(v) is DynamoType:
        return _value_size(v.type, v.value)
    return _value_size(list(v)[0], list(v.values())[0])  # noqa: RUF015 - moto's own lookup (same errors)


def _dynamodb_sizes() -> list[Replacement]:
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize

    def size(self: DynamoType) -> int:
        if self.type == "L":  # moto calls .size() on each element as it is (no re-wrapping at the top)
            return sum(_value_size(v.type, v.value) if type(v) is DynamoType else v.size() for v in self.value)
        return _value_size(self.type, self.value)

    def item_init(self: Item, hash_key: DynamoType, range_key: DynamoType | None, attrs: dict[str, Any]) -> None:
        # LimitedSizeDict checks, on each set, the size so far plus the new attribute against 405,000; keys here are
        # distinct, so the running total fails on the same attribute as moto's re-summing does.
        self.hash_key = hash_key
        self.range_key = range_key
        self.attrs = LimitedSizeDict()
        total = 0
        for key, value in attrs.items():
            typed = DynamoType(value)
            total += bytesize(str(key)) + _value_size(typed.type, typed.value)
            if total > 405000:
                raise ItemSizeTooLarge
            dict.__setitem__(self.attrs, key, typed)

    return [(DynamoType, "size", size), (Item, "__init__", item_init)]


DYNAMODB_SIZES = MotoPatch(
    "dynamodb-sizes",
    (
        Reliance("moto.dynamodb.models.dynamo_type:DynamoType.size", "a82aacf83a3b427f"),
        Reliance("moto.dynamodb.models.dynamo_type:DynamoType.__init__", "da4ee3cc7a8abbd0"),
        Reliance("moto.dynamodb.models.dynamo_type:LimitedSizeDict.__setitem__", "22915374b27fca06"),
        Reliance("moto.dynamodb.models.dynamo_type:Item.__init__", "6bbdb3642157a1d3"),
        Reliance("moto.dynamodb.models.utilities:bytesize", "e77356b749bb1914"),
    ),
    _dynamodb_sizes,
)


# ---- moto's request dispatch ----------------------------------------------------------------------------------
# call_action lists the response class's methods with inspect.getmembers on every request (2.5% of the loop), and
# the JSON request parser walks each DynamoDB AttributeValue through its ten-member shape (a profile item is a few
# hundred of them): the method names of a class do not change, and a one-type AttributeValue parses to itself.


def _dispatch() -> list[Replacement]:
    import moto.core.responses as responses
    from moto.core.parse import BaseJSONParser, JSONParser

    original_method_names = responses.method_names_from_class
    original_structure = BaseJSONParser._parse_structure
    names_by_class: dict[Any, list[str]] = {}

    def method_names_from_class(clazz: Any) -> list[str]:
        if clazz not in names_by_class:
            names_by_class[clazz] = original_method_names(clazz)
        return list(names_by_class[clazz])

    def parse_structure(self: Any, shape: Any, value: Any) -> Any:
        # Only the types whose members parse as they are (strings, booleans, lists and maps of them); blobs and
        # anything unusual (no type, two types, a null) go the general way.
        if shape.name == "AttributeValue" and type(self) is JSONParser and type(value) is dict and len(value) == 1:
            kind, inner = next(iter(value.items()))
            if inner is not None:
                if kind in ("S", "N", "BOOL", "NULL"):
                    return self.MAP_TYPE(((kind, inner),))
                if kind in ("SS", "NS"):
                    return self.MAP_TYPE(((kind, list(inner)),))
                if kind == "M" and type(inner) is dict:
                    parsed = self.MAP_TYPE()
                    for key, member in inner.items():
                        parsed[key] = parse_structure(self, shape, member)
                    return self.MAP_TYPE(((kind, parsed),))
                if kind == "L" and type(inner) is list:
                    return self.MAP_TYPE(((kind, [parse_structure(self, shape, member) for member in inner]),))
        return original_structure(self, shape, value)

    return [
        (responses, "method_names_from_class", method_names_from_class),
        (BaseJSONParser, "_parse_structure", parse_structure),
    ]


DISPATCH = MotoPatch(
    "dispatch",
    (
        Reliance("moto.core.utils:method_names_from_class", "b51da3df26ab9463"),
        Reliance("moto.core.responses:BaseResponse.call_action", "2f9681413b4ccdb8"),
        Reliance("moto.core.parse:BaseJSONParser._parse_structure", "c9de59710429ad04"),
        Reliance("moto.core.parse:RequestParser._parse_shape", "c61739f25bb722ce"),
        Reliance("moto.core.parse:RequestParser._parse_list", "61fbce6515d1a376"),
        Reliance("moto.core.parse:RequestParser._parse_map", "c951b7888e887dfa"),
        Reliance("moto.core.parse:RequestParser._default_handle", "1777e3321bcb9068"),
        Reliance("moto.core.parse:JSONParser", "b505e3003e213b4a"),  # no string or boolean handler of its own
    ),
    _dispatch,
)


# ---- DynamoDB: a Scan page reads its own segment once -------------------------------------------------------------
# For every page, moto's Table.scan sorts the whole table, md5-hashes every item's partition key to find its segment,
# measures each item's size twice, and deep-copies every scanned item before the FilterExpression drops most of
# them. A filtered parallel scan of the profiles (sk = PROFILE) over the demo's 2,000-customer table (~100k items,
# ~30 pages per segment) spent most of its seconds there (cProfile at 300 customers: 16.5 s for 8 pages, of which
# sizes 4.5 s, deep copies 3.9 s, sorting and segment hashes 1.5 s). This page walks only the partitions of its
# segment, in moto's key order from the start key on, measures each item once and copies only the items the filter
# keeps; the page boundaries (Limit, 1 MB of scanned items), LastEvaluatedKey, counts and items are moto's.
# Base-table scans of tables whose keys are both strings take this path; anything else (an index, legacy
# ScanFilter, other key types) goes to moto as before.

_MOTO_TABLE_SCAN: Any = None  # moto's own Table.scan, taken before any local patch wraps it (see _scan_reliances)


def _moto_table_scan() -> Any:
    global _MOTO_TABLE_SCAN
    if _MOTO_TABLE_SCAN is None:
        from moto.dynamodb.models.table import Table

        _MOTO_TABLE_SCAN = Table.scan
    return _MOTO_TABLE_SCAN


_moto_table_scan()  # at import: cdp_local.runtime.core imports this module before its runtime wraps Table.scan


@functools.lru_cache(maxsize=1 << 18)
def _segment_hash(hash_value: str) -> int:
    """Item.is_within_segment's number for a partition key (the first byte of its md5)."""
    from moto.utilities.utils import md5_hash

    return int(md5_hash(hash_value.encode("utf8")).digest()[0])


def _string_keyed(table: Any) -> bool:
    types = {a["AttributeName"]: a["AttributeType"] for a in table.attr}
    return bool(table.range_key_attr) and types.get(table.hash_key_attr) == types.get(table.range_key_attr) == "S"


def _segment_items(table: Any, segments: tuple[Any, Any], start: tuple[str, str] | None) -> Iterator[Any]:
    """The segment's items after `start`, in moto's scan order (partition key, then sort key)."""
    from bisect import bisect_right

    segment, total = segments
    partitions = [
        (hash_key.value, partition)
        for hash_key, partition in table.items.items()
        if segment is None or _segment_hash(hash_key.value) % total == segment
        if start is None or hash_key.value >= start[0]
    ]
    partitions.sort(key=lambda p: p[0])
    for hash_value, partition in partitions:
        items = sorted(partition.values(), key=lambda item: item.range_key.value)
        if start is not None and hash_value == start[0]:
            items = items[bisect_right(items, start[1], key=lambda item: item.range_key.value) :]
        yield from items


def _dynamodb_scan() -> list[Replacement]:
    import copy

    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import RESULT_SIZE_LIMIT

    original_scan = DynamoDBBackend.scan

    def scan(
        self: DynamoDBBackend,
        table_name: str,
        filters: dict[str, Any],
        limit: int,
        exclusive_start_key: dict[str, Any],
        filter_expression: str | None,
        expr_names: dict[str, Any],
        expr_values: dict[str, Any],
        index_name: str,
        consistent_read: bool,
        projection_expression: list[list[str]] | None,
        segments: tuple[None, None] | tuple[int, int],
    ) -> tuple[list[Any], int, dict[str, Any] | None]:
        table = self.get_table(table_name)
        if filters or index_name or not _string_keyed(table):
            return original_scan(
                self,
                table_name,
                filters,
                limit,
                exclusive_start_key,
                filter_expression,
                expr_names,
                expr_values,
                index_name,
                consistent_read,
                projection_expression,
                segments,
            )
        filter_op = get_filter_expression(filter_expression, expr_names, expr_values)
        start = None
        if exclusive_start_key:  # (string keys: _string_keyed checked that the table has a sort key)
            start = (
                DynamoType(exclusive_start_key[table.hash_key_attr]).value,
                DynamoType(exclusive_start_key[str(table.range_key_attr)]).value,
            )
        scanned: list[Any] = []
        result_size = 0
        last_evaluated_key = None
        for item in _segment_items(table, segments, start):
            size = item.size()
            if len(scanned) == limit or result_size + size > RESULT_SIZE_LIMIT:
                last_evaluated_key = table._get_last_evaluated_key(scanned[-1], None)
                break
            scanned.append(item)
            result_size += size
        # moto copies every scanned item, then filters the copies: the filter reads an item, it never changes one
        kept = [item for item in scanned if filter_op is None or filter_op.expr(item)]
        if projection_expression:  # a projection builds new items of its own
            return [copy.deepcopy(r).project(projection_expression) for r in kept], len(scanned), last_evaluated_key
        # The response serializes each item's attributes right away in this request (DynamoHandler.scan puts
        # item.attrs in the result and the serializer writes them out); nothing keeps or changes the copies moto made.
        return kept, len(scanned), last_evaluated_key

    return [(DynamoDBBackend, "scan", scan)]


def _scan_reliances() -> tuple[Reliance, ...]:
    return (
        Reliance("moto.dynamodb.models:DynamoDBBackend.scan", "f965e3066a84172c"),
        # moto's own Table.scan (the runtime wraps Table.scan later, so the copy taken at import is checked)
        Reliance("cdp_local.runtime.moto_hotspots:_MOTO_TABLE_SCAN", "5a1a120bcfc39f54"),
        Reliance("moto.dynamodb.models.table:Table._get_last_evaluated_key", "ced22f543ee9bf05"),
        Reliance("moto.dynamodb.models.table:Table._item_comes_before_dct", "09b58f42a47c4a65"),
        Reliance("moto.dynamodb.models.table:RESULT_SIZE_LIMIT", "6cce36d9f8a9e151"),
        Reliance("moto.dynamodb.models.dynamo_type:Item.is_within_segment", "27b776567009cd83"),
        Reliance("moto.utilities.utils:md5_hash", "43904208db8b2c0a"),
        Reliance("moto.dynamodb.models.dynamo_type:Item.size", "cb1578751c4eb75a"),
        Reliance("moto.dynamodb.models.dynamo_type:Item.__deepcopy__", "7ada637670cd090d"),
        Reliance("moto.dynamodb.models.dynamo_type:Item.project", "2c52ac8f1e968775"),
        Reliance("moto.dynamodb.comparisons:get_filter_expression", "443fb5181ad40759"),
        Reliance("moto.dynamodb.responses:DynamoHandler.scan", "63c3930eb926038f"),
    )


DYNAMODB_SCAN = MotoPatch("dynamodb-scan", _scan_reliances(), _dynamodb_scan)


# ---- DynamoDB: an item's size measured once, and no stream copy for a table without a stream -------------------
# Every Scan or Query page measures each item it reads (the 1 MB page limit): ~110 µs for a filed event or a profile,
# so a full pass over the demo's ~96k items spent ~10 s measuring the same unchanged items again. The size is kept on
# the item until something changes it in place; in moto only update_item does (the update expression executor and
# legacy AttributeUpdates); puts, deletes, transactions' puts and PartiQL writes store new Item objects, and
# Item.__deepcopy__ copies only the keys and attributes (a copy measures itself again). update_item also deep-copies
# the item before every update for the stream record, which it only uses when the table has a stream: a profile
# costs ~4 ms to copy, and the local tables have no streams.

_SIZE = "_cdp_size"  # the cached size, in the Item's instance dict
_no_stream_copy = threading.local()


class _CopyForStreams:
    """Stands in for the `copy` module inside moto.dynamodb.models: deepcopy hands back the item itself while an
    update of a table without a stream runs (update_item's only deep copy there is the stream's before-image)."""

    def __init__(self, module: Any) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        if getattr(_no_stream_copy, "active", False):
            return value
        return self._module.deepcopy(value, memo)


def _dynamodb_item_sizes() -> list[Replacement]:
    import copy

    import moto.dynamodb.models as ddb_models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.utilities import bytesize

    original_update = DynamoDBBackend.update_item

    def size(self: Item) -> int:
        cached = self.__dict__.get(_SIZE)
        if cached is None:
            cached = self.__dict__[_SIZE] = sum(bytesize(key) + value.size() for key, value in self.attrs.items())
        return int(cached)

    def update_item(self: DynamoDBBackend, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        table = self.get_table(table_name)
        _no_stream_copy.active = table.stream_shard is None
        try:
            return original_update(self, table_name, key, *args, **kwargs)
        finally:
            _no_stream_copy.active = False
            try:  # changed in place (also when the update failed half-way): measure it again when next read
                item = table.get_item(*self.get_keys_value(table, key))
            except Exception:  # a malformed key: moto raised for it already, and nothing was measured
                item = None
            if item is not None:
                item.__dict__.pop(_SIZE, None)

    return [
        (Item, "size", size),
        (DynamoDBBackend, "update_item", update_item),
        (ddb_models, "copy", _CopyForStreams(copy)),
    ]


DYNAMODB_ITEM_SIZES = MotoPatch(
    "dynamodb-item-sizes",
    (
        Reliance("moto.dynamodb.models.dynamo_type:Item.size", "cb1578751c4eb75a"),
        Reliance("moto.dynamodb.models.dynamo_type:Item.__deepcopy__", "7ada637670cd090d"),
        Reliance("moto.dynamodb.models.dynamo_type:Item.update_with_attribute_updates", "49cfa57efba9cff8"),
        Reliance("moto.dynamodb.models:DynamoDBBackend.update_item", "df50cc3a2eec90bb"),
        Reliance("moto.dynamodb.models:DynamoDBBackend.get_keys_value", "63b2201a691102a4"),
        Reliance("moto.dynamodb.models:DynamoDBBackend.put_item", "2b398e929810e06e"),
        Reliance("moto.dynamodb.models:DynamoDBBackend.execute_statement", "b45f307cd361c2ed"),
        Reliance("moto.dynamodb.models.table:Table.put_item", "8db9da1ed71a75e0"),
        Reliance("moto.dynamodb.parsing.executors:UpdateExpressionExecutor.execute", "579ae81ba1cd816c"),
    ),
    _dynamodb_item_sizes,
)


# ---- DynamoDB: results handed to the serializer in one walk ------------------------------------------------------
# Every DynamoDB answer goes through moto's dynamo_to_dict, which asks each nested value, one generic check after
# another (datetime, DynamoType, has it a to_json, dict, list), what it is: a Scan page of ~1,000 profiles and filed
# events is ~17,000 values walked so. This walk dispatches on the exact type and hands anything it does not know
# (datetimes, binaries, objects with to_json, subclasses) to moto's own function, so the answer is moto's.


def _dynamodb_results() -> list[Replacement]:
    import moto.dynamodb.models.utilities as utilities
    import moto.dynamodb.responses as responses
    from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict

    original = utilities.dynamo_to_dict
    plain = (str, int, float, bool, type(None))
    dicts = (dict, LimitedSizeDict)  # Item.attrs is a LimitedSizeDict: moto walks it as the dict it is

    def dynamo_to_dict(obj: Any) -> Any:
        kind = type(obj)
        if kind is DynamoType:
            value = obj.value
            if obj.type == "M" and type(value) is dict:
                return {"M": {k: dynamo_to_dict(v) for k, v in value.items()}}
            if obj.type == "L" and type(value) is list:
                return {"L": [dynamo_to_dict(v) for v in value]}
            if obj.type not in ("B", "BS") and type(value) in plain:  # S, N, BOOL, NULL: moto keeps the value
                return {obj.type: value}
            return original(obj)
        if kind in plain:
            return obj
        if kind in dicts:
            return {k: dynamo_to_dict(v) for k, v in obj.items()}
        if kind is list:
            return [dynamo_to_dict(v) for v in obj]
        return original(obj)

    # moto's function calls itself through the module's name: nested values come back to this walk too
    return [(utilities, "dynamo_to_dict", dynamo_to_dict), (responses, "dynamo_to_dict", dynamo_to_dict)]


DYNAMODB_RESULTS = MotoPatch(
    "dynamodb-results",
    (
        Reliance("moto.dynamodb.models.utilities:dynamo_to_dict", "b7d7f665a36672c2"),
        Reliance("moto.dynamodb.responses:DynamoResult.__init__", "6f2fa0d02c432fc7"),
        Reliance("moto.dynamodb.models.dynamo_type:DynamoType.__init__", "da4ee3cc7a8abbd0"),  # M, L values wrapped
        Reliance("moto.dynamodb.models.dynamo_type:LimitedSizeDict", "4d432d4471ed4760"),
    ),
    _dynamodb_results,
)


# ---- botocore: DynamoDB values parsed as they come ----------------------------------------------------------------
# The SDK parses every AttributeValue of an answer against its ten-member shape (one lookup per member, one handler
# call per present value): ~40% of reading a Scan page of profiles with their events. In the JSON protocol a string,
# a number (a string too), a boolean and a null parse to themselves, a binary is base64-decoded, sets and lists keep
# their members' order, a map its keys: that is what this walk does; anything else (an unknown or missing type, two
# types, a null value) goes the SDK's general way.


_GENERAL = object()  # a value the walk below leaves to the SDK's general parsing
_AS_IS = frozenset(("S", "N", "BOOL", "NULL"))


def _parsed_value(parser: Any, shape: Any, value: Any, general: Callable[..., Any]) -> Any:
    """One AttributeValue as the SDK's JSON parser parses it (`general`: the SDK's own structure handler)."""
    if type(value) is dict and len(value) == 1:
        kind, inner = next(iter(value.items()))
        parsed = _parsed_member(parser, shape, kind, inner, general)
        if parsed is not _GENERAL:
            return {kind: parsed}
    return general(parser, shape, value)


def _parsed_member(parser: Any, shape: Any, kind: str, inner: Any, general: Callable[..., Any]) -> Any:
    if inner is None:
        return _GENERAL
    if kind in _AS_IS:
        return inner
    if kind == "M" and type(inner) is dict:
        return {k: _parsed_value(parser, shape, v, general) for k, v in inner.items()}
    if kind == "L" and type(inner) is list:
        return [None if v is None else _parsed_value(parser, shape, v, general) for v in inner]
    if kind == "B":
        return parser._blob_parser(inner)
    if kind in ("SS", "NS") and type(inner) is list:
        return list(inner)
    if kind == "BS" and type(inner) is list:
        return [None if v is None else parser._blob_parser(v) for v in inner]
    return _GENERAL


def _botocore_attribute_values() -> list[Replacement]:
    from botocore.parsers import BaseJSONParser, JSONParser

    original_structure = BaseJSONParser._handle_structure  # type: ignore[attr-defined]
    original_map = BaseJSONParser._handle_map  # type: ignore[attr-defined]

    def handle_structure(self: Any, shape: Any, value: Any) -> Any:
        if shape.name == "AttributeValue" and type(self) is JSONParser:
            return _parsed_value(self, shape, value, original_structure)
        return original_structure(self, shape, value)

    def handle_map(self: Any, shape: Any, value: Any) -> Any:
        if shape.name == "AttributeMap" and type(self) is JSONParser and shape.value.name == "AttributeValue":
            member = shape.value
            return {k: _parsed_value(self, member, v, original_structure) for k, v in value.items()}
        return original_map(self, shape, value)

    return [(BaseJSONParser, "_handle_structure", handle_structure), (BaseJSONParser, "_handle_map", handle_map)]


BOTOCORE_ATTRIBUTE_VALUES = MotoPatch(
    "botocore-attribute-values",
    (
        Reliance("botocore.parsers:BaseJSONParser._handle_structure", "c5074413347a1dfe"),
        Reliance("botocore.parsers:BaseJSONParser._handle_map", "e74b25692569760f"),
        Reliance("botocore.parsers:ResponseParser._handle_list", "56ed880559d8c9e8"),
        Reliance("botocore.parsers:ResponseParser._parse_shape", "f8babca515596745"),
        Reliance("botocore.parsers:ResponseParser._default_handle", "1777e3321bcb9068"),
        Reliance("botocore.parsers:ResponseParser._has_unknown_tagged_union_member", "067f76dcb5048767"),
        Reliance("botocore.parsers:BaseJSONParser._handle_blob", "ecbf476a7a7146f3"),
        # no string, boolean or structure handler of its own
        Reliance("botocore.parsers:JSONParser", "4d9b946065769b31"),
    ),
    _botocore_attribute_values,
)


# ---- every answer: the XML request id put in only where there is one -------------------------------------------------
# moto puts each answer's request id into its body with a regular expression over the whole body (looking for an XML
# <RequestId> element), JSON answers included: 13 ms for a 1 MB Scan page, ~0.3 s of each full scan. A body without
# that tag cannot match it: it is left as it is, after the same request id header is made.


def _response_request_id() -> list[Replacement]:
    import moto.core.responses as responses
    from moto.core.responses import BaseResponse

    original = BaseResponse._enrich_response

    def enrich_response(headers: dict[str, str], body: Any) -> tuple[dict[str, str], Any]:
        if isinstance(body, str) and "<RequestId>" not in body:
            if "status" in headers:
                headers["status"] = str(headers["status"])
            responses.gen_amzn_requestid_long(headers)
            return headers, body
        return original(headers, body)

    return [(BaseResponse, "_enrich_response", staticmethod(enrich_response))]


RESPONSE_REQUEST_ID = MotoPatch(
    "response-request-id",
    (
        Reliance("moto.core.responses:BaseResponse._enrich_response", "92f1b54716353bcd"),
        Reliance("moto.utilities.aws_headers:gen_amzn_requestid_long", "2734ee57a653e068"),
    ),
    _response_request_id,
)


# ---- applying ----------------------------------------------------------------------------------------------------

HOTSPOT_PATCHES: tuple[MotoPatch, ...] = (
    SQS_CLOCK,
    SQS_ATTRIBUTES,
    DYNAMODB_SIZES,
    DISPATCH,
    DYNAMODB_SCAN,
    DYNAMODB_ITEM_SIZES,
    DYNAMODB_RESULTS,
    BOTOCORE_ATTRIBUTE_VALUES,
    RESPONSE_REQUEST_ID,
)
_MISSING = object()


@contextmanager
def moto_hotspots(patches: Sequence[MotoPatch] = HOTSPOT_PATCHES) -> Iterator[None]:
    """Install the patches (after checking every reliance of every patch), restore moto on exit."""
    for patch in patches:
        check(patch.name, patch.reliances)
    saved: list[tuple[Any, str, Any]] = []
    try:
        for patch in patches:
            for owner, attribute, new in patch.replacements():
                saved.append((owner, attribute, vars(owner).get(attribute, _MISSING)))
                setattr(owner, attribute, new)
        yield
    finally:
        for owner, attribute, old in reversed(saved):
            if old is _MISSING:
                delattr(owner, attribute)
            else:
                setattr(owner, attribute, old)


# moto's Lambda invoke, which local/runtime/lambdas.py replaces to route invocations in-process
ROUTING_RELIES_ON = (Reliance("moto.awslambda.models:LambdaFunction._invoke_lambda", "68152723d9fb570f"),)


def guarded() -> dict[str, tuple[Reliance, ...]]:
    """Every local patch of moto and what it relies on (a test checks them all against the installed moto)."""
    from cdp_local.runtime import moto_fixes, moto_speedups, waits

    return {patch.name: patch.reliances for patch in HOTSPOT_PATCHES} | {
        "fast_transactions": moto_speedups.TRANSACTIONS_RELY_ON,
        "fast_dynamodb_responses": moto_speedups.RESPONSES_RELY_ON,
        "cached_jsonpath": moto_speedups.JSONPATH_RELIES_ON,
        "partition_queries": moto_speedups.PARTITIONS_RELY_ON,
        "eventbridge_full_envelope": moto_fixes.ENVELOPE_RELIES_ON,
        "distributed_map_tolerance": moto_fixes.TOLERANCE_RELIES_ON,
        "lambda routing (lambdas.py)": ROUTING_RELIES_ON,
        "wait_states": waits.WAITS_RELY_ON + waits.STATUS_RELIES_ON,
    }
