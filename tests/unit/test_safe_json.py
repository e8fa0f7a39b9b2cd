"""The checks every untrusted JSON body passes before it is parsed or stored (`cdp.shared.safe_json`), the PutEvents
chunking by size, and the brand a dead letter is filed under."""

from __future__ import annotations

import json

import pytest

from cdp.errors import InvalidInputError
from cdp.shared.aws import entry_size, put_events_chunks
from cdp.shared.deadletter import brand_of_message
from cdp.shared.safe_json import MAX_JSON_DEPTH, exceeds_depth, loads, storable_problems


def _nested(depth: int, inner: str = "1") -> bytes:
    return ("[" * depth + inner + "]" * depth).encode()


@pytest.mark.parametrize("depth", [0, 1, MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH])
def test_a_body_at_or_under_the_depth_limit_passes(depth: int) -> None:
    assert not exceeds_depth(_nested(depth), MAX_JSON_DEPTH)
    assert loads(_nested(depth)) is not None


def test_one_level_more_is_refused_for_arrays_and_objects_alike() -> None:
    deep_object = ('{"a":' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1)).encode()
    for body in (_nested(MAX_JSON_DEPTH + 1), deep_object):
        with pytest.raises(InvalidInputError, match="nests deeper"):
            loads(body)


def test_brackets_inside_strings_do_not_count_and_escaped_quotes_do_not_end_a_string() -> None:
    # Given 100 brackets inside a string that also holds escaped quotes
    text = json.dumps({"note": 'he said "[[[[' + "[" * 100 + '" and left', "ok": [[1]]})
    # Then the depth is the document's own (3), not the string's
    assert not exceeds_depth(text.encode(), 3)
    assert exceeds_depth(text.encode(), 2)


def test_brackets_that_do_not_balance_count_as_too_deep() -> None:
    assert exceeds_depth(b"[" * (MAX_JSON_DEPTH + 5), MAX_JSON_DEPTH)


@pytest.mark.parametrize(
    "body",
    [
        "{}".encode("utf-16"),
        "{}".encode("utf-32"),
        '{"a":"丢"}'.encode("utf-16-le"),  # its bytes are "valid UTF-8" full of NULs
        b'{"a": "\xff"}',
    ],
)
def test_json_that_is_not_utf8_is_refused_rather_than_guessed(body: bytes) -> None:
    with pytest.raises(InvalidInputError) as caught:
        loads(body)
    assert caught.value.location == "body"


def test_nan_and_infinity_are_refused_or_read_as_null_when_asked() -> None:
    for constant in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(InvalidInputError, match="not a JSON number"):
            loads(f'{{"v": {constant}}}')
        assert loads(f'{{"v": {constant}}}', constants="null") == {"v": None}
        assert str(loads(f'{{"v": {constant}}}', constants="keep")["v"]) == str(float(constant))


def test_numbers_beyond_what_dynamodb_holds_and_unpaired_surrogates_are_named_by_path() -> None:
    value = {
        "ok": [1, 2.5, "text", None, True, 10**37],
        "props": {"big": 10**38, "tiny": 1e-131, "huge": 1e126, "bad": "a\ud800b", "nan": float("nan")},
    }
    assert storable_problems(value) == [
        ("props.bad", "holds an unpaired UTF-16 surrogate (not valid Unicode)"),
        ("props.big", "numbers are limited to 38 digits"),
        ("props.huge", "is outside the storable range (1E-130 to 9.9E+125)"),
        ("props.nan", "must be a finite number"),
        ("props.tiny", "is outside the storable range (1E-130 to 9.9E+125)"),
    ]


def test_put_events_calls_are_cut_at_ten_entries_and_at_256_kb() -> None:
    def entry(kb: int) -> dict[str, str]:
        return {"Source": "s", "DetailType": "d", "Detail": "x" * (kb * 1024 - 2)}

    small = [entry(1)] * 25
    assert [len(c) for c in put_events_chunks(small, 10, 256 * 1024)] == [10, 10, 5]
    big = [entry(100)] * 5  # 100 KB each: two fit under 256 KB, a third does not
    chunks = put_events_chunks(big, 10, 256 * 1024)
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert all(sum(entry_size(e) for e in c) <= 256 * 1024 for c in chunks)


def test_a_dead_letter_names_its_brand_even_when_its_event_nests_as_deep_as_ingest_allows() -> None:
    properties: object = 1
    for _ in range(MAX_JSON_DEPTH - 3):
        properties = [properties]
    event = {"brand_id": "demo-outlet", "properties": {"d": properties}}
    assert not exceeds_depth(json.dumps(event).encode(), MAX_JSON_DEPTH)
    body = json.dumps({"detail": {"data": {"event": event}}})
    assert brand_of_message(body) == "demo-outlet"
    assert brand_of_message(json.dumps({"detail": {"data": {"brand_id": "demo-brand"}}})) == "demo-brand"
    assert brand_of_message("not json") is None
