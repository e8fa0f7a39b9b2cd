"""from_item reads the common attribute types directly: it must give exactly what boto3's deserializer and the
plain-value conversion give, for every type, nested, and for odd values (which go the general way)."""

from __future__ import annotations

import decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer
from hypothesis import given
from hypothesis import strategies as st

from cdp.shared.dynamo import _plain, from_item, to_item

_DES = TypeDeserializer()


def _expected(item: dict[str, Any]) -> Any:
    try:
        return {k: _plain(_DES.deserialize(v)) for k, v in item.items()}
    except Exception as exc:  # boto3's own refusal (a bad number, no type) is part of what must stay the same
        return type(exc)


def _read(item: dict[str, Any]) -> Any:
    try:
        return from_item(item)
    except Exception as exc:
        return type(exc)


numbers = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).map(str),
    st.sampled_from(
        ["1E+10", "-0", "0.0", "1.50", "123.4500", "1e-130", "9.9E+125", "12345678901234567890123456789012345678"]
    ),
)
scalars = st.one_of(
    st.text().map(lambda s: {"S": s}),
    numbers.map(lambda n: {"N": n}),
    st.binary().map(lambda b: {"B": b}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.lists(st.text(), unique=True, min_size=1).map(lambda v: {"SS": v}),
    st.lists(st.integers().map(str), unique=True, min_size=1).map(lambda v: {"NS": v}),
    st.lists(st.binary(), unique=True, min_size=1).map(lambda v: {"BS": v}),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda v: {"L": v}),
        st.dictionaries(st.text(max_size=5), inner, max_size=4).map(lambda v: {"M": v}),
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=8), values, max_size=6))
def test_an_item_reads_as_boto3_reads_it(item: dict[str, Any]) -> None:
    # Given any item of any attribute types, nested / When read / Then it is what boto3 + _plain give (repr: an int
    # is not a float, however equal)
    assert repr(_read(item)) == repr(_expected(item))


@pytest.mark.parametrize(
    "value",
    [
        {"S": "a", "N": "1"},
        {"NULL": False},
        {"N": "not a number"},
        {"N": "1" * 39},
        {"B": bytearray(b"x")},
        {"S": 5},
        {"BOOL": "true"},
        {"X": 1},
        {"M": [1]},
        {"L": {"a": {"S": "b"}}},
        {"M": {"a": {"N": "1.0"}, "b": {"L": [{"N": "2.5"}, {"NULL": True}]}}},
    ],
    ids=repr,
)
def test_odd_values_read_as_boto3_reads_them(value: dict[str, Any]) -> None:
    # Given an odd attribute value (two types, an unusual member, a number boto3 refuses)
    item = {"v": value}
    # When read / Then the value, or boto3's error, is the same (repr: a number that is not one reads as NaN)
    assert repr(_read(item)) == repr(_expected(item))


def test_numbers_keep_their_kind_and_written_values_read_back() -> None:
    # Given integers, integral decimals and fractions / When read / Then ints stay ints and fractions are floats
    item = {"i": {"N": "12"}, "z": {"N": "1.0"}, "f": {"N": "2.5"}, "big": {"N": "1E+3"}}
    assert from_item(item) == {"i": 12, "z": 1, "f": 2.5, "big": 1000}
    assert [type(v) for v in from_item(item).values()] == [int, int, float, int]
    # and what to_item writes reads back as it was
    values = {"s": "x", "n": 7, "b": True, "none": None, "m": {"k": [1, "two", {"x": 2.5}]}, "raw": b"\x00"}
    assert from_item(to_item(values)) == values
    assert decimal.getcontext().prec == 28  # the reads use boto3's own context, never the thread's
