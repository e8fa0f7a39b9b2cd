"""Member and order files: reading CSV/JSONL rows, every reject reason, mapping rows to canonical events (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cdp.connectors.files import (
    BadFileError,
    FileFormat,
    FileKind,
    ImportContext,
    MappedRows,
    Row,
    check_columns,
    header_of,
    map_rows,
    parse_key,
    read_records,
    split_lines,
    to_row,
)
from cdp.imports.keys import INCOMING_PREFIX, incoming_key
from cdp.ingest.events import IdentifyEvent, OrderPlacedEvent, parse_event

SAMPLES = Path(__file__).resolve().parents[3] / "events" / "files"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
CTX = ImportContext("demo-brand", "CN", NOW)
MEMBER_HEADER = "member_card,phone,email,name,gender,birthday,city,store_id,level,joined_at"
ORDER_HEADER = "order_id,member_card,phone,store_id,occurred_at,sku,name,category,quantity,unit_price,currency,total"


def rows_of(data: bytes, file_format: FileFormat = FileFormat.CSV) -> list[Row]:
    records = read_records(split_lines([data]), file_format)
    header = header_of(next(records)) if file_format is FileFormat.CSV else None
    return [to_row(r, file_format, header) for r in records]


def mapped(kind: FileKind, text: str, file_format: FileFormat = FileFormat.CSV) -> MappedRows:
    return map_rows(kind, rows_of(text.encode(), file_format), CTX)


def only_reject(result: MappedRows) -> tuple[int, str, str]:
    assert not result.items
    (reject,) = result.rejects
    return reject.row, reject.field, reject.reason


# ---- keys and reading --------------------------------------------------------------------------------------------


def test_the_key_names_brand_kind_and_format() -> None:
    target = parse_key(incoming_key("demo-brand", "orders", "pos-2024-05.JSONL"), INCOMING_PREFIX)
    assert (target.brand_id, target.kind, target.format) == ("demo-brand", FileKind.ORDERS, FileFormat.JSONL)


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("raw/demo-brand/members/a.csv", "imports/incoming/"),
        (f"{INCOMING_PREFIX}demo-brand/coupons/a.csv", "kind must be one of"),
        (f"{INCOMING_PREFIX}demo-brand/members/a.xlsx", ".csv, .jsonl"),
        (f"{INCOMING_PREFIX}demo-brand/members/extra/a.csv", "expected"),
        (f"{INCOMING_PREFIX}bad brand/members/a.csv", "brand id"),
    ],
)
def test_a_key_outside_the_layout_fails_the_file(key: str, says: str) -> None:
    with pytest.raises(BadFileError, match=says):
        parse_key(key, INCOMING_PREFIX)


def test_csv_with_bom_and_crlf_reads_clean_columns_and_rows() -> None:
    # Given what Excel's "CSV UTF-8" writes: a BOM, CRLF, a quoted comma and a column we do not know
    data = b'\xef\xbb\xbfMember_Card , Phone,joined_at,remark\r\nM1,13800138000,2024-01-01,"a, b"\r\n'
    records = list(read_records(split_lines([data]), FileFormat.CSV))
    header = header_of(records[0])
    row = to_row(records[1], FileFormat.CSV, header)
    # Then the BOM is gone, names are normalized, the row is line 2 and its raw text has no line break
    assert header == ["member_card", "phone", "joined_at", "remark"]
    assert check_columns(FileKind.MEMBERS, header) == ["remark"]
    assert (row.number, row.raw) == (2, 'M1,13800138000,2024-01-01,"a, b"')
    assert row.values["remark"] == "a, b"
    # And the byte offsets cover the file exactly (the chunks are byte ranges)
    assert records[0].start == 0 and records[1].end == len(data)


def test_lines_split_across_stream_pieces_keep_their_offsets() -> None:
    data = b"a,b\n1,2\n\n3,4"
    pieces = [data[i : i + 3] for i in range(0, len(data), 3)]
    assert b"".join(split_lines(pieces)) == data
    records = list(read_records(split_lines(pieces), FileFormat.CSV))
    # the blank line is skipped and is not a row; the last row has no line break
    assert [(r.line, r.raw) for r in records] == [(1, "a,b"), (2, "1,2"), (4, "3,4")]


def test_a_quoted_field_over_two_lines_is_one_row_numbered_by_its_first_line() -> None:
    data = f'{MEMBER_HEADER}\nM1,13800138000,,"Li\nNa",,,,,,2024-01-01\nM2,13900139000,,,,,,,,2024-01-02\n'
    rows = rows_of(data.encode())
    assert [r.number for r in rows] == [2, 4]
    assert rows[0].values["name"] == "Li\nNa" and rows[0].raw.count("\n") == 1


def test_jsonl_rows_keep_their_line_numbers_and_bad_lines_are_row_problems() -> None:
    data = b'{"Member_Card": "M1", "joined_at": "2024-01-01"}\n\n{"member_card": "M2"\n[1, 2]\n'
    rows = rows_of(data, FileFormat.JSONL)
    assert [r.number for r in rows] == [1, 3, 4]
    assert rows[0].values == {"member_card": "M1", "joined_at": "2024-01-01"}
    assert rows[1].problem is not None and "not valid JSON" in rows[1].problem[1]
    assert rows[2].problem == ("row", "each line must be a JSON object")


def test_a_file_that_is_not_utf8_fails_at_its_line() -> None:
    data = f"{MEMBER_HEADER}\nM1,13800138000,,".encode() + "李娜".encode("gbk") + b",,,,,,2024-01-01\n"
    with pytest.raises(BadFileError, match="line 2 is not UTF-8"):
        rows_of(data)


@pytest.mark.parametrize(
    ("kind", "columns", "missing"),
    [
        (FileKind.MEMBERS, ["member_card", "name"], "joined_at"),
        (FileKind.MEMBERS, ["name", "joined_at"], "member_card or phone"),
        (FileKind.ORDERS, ["order_id", "phone", "occurred_at", "sku", "quantity"], "unit_price"),
    ],
)
def test_a_missing_required_column_fails_the_whole_file(kind: FileKind, columns: list[str], missing: str) -> None:
    with pytest.raises(BadFileError, match=f"missing required column.*{missing}") as raised:
        check_columns(kind, columns)
    assert raised.value.location in missing.split(" or ")


def test_a_column_named_twice_fails_the_file() -> None:
    with pytest.raises(BadFileError, match="named twice: phone"):
        check_columns(FileKind.MEMBERS, ["phone", "Phone ", "joined_at"])


# ---- members -----------------------------------------------------------------------------------------------------


def test_a_member_row_becomes_an_identify_event_with_normalized_identifiers() -> None:
    row = "M20240001,+86 138 0013 8000,Li.Na@Example.cn,李娜,女,1988/3/15,上海,sh01,gold,2023-01-15 10:20"
    text = f"{MEMBER_HEADER}\n{row}\n"
    result = mapped(FileKind.MEMBERS, text)
    (item,) = result.items
    event = parse_event(item)
    assert isinstance(event, IdentifyEvent)
    # Then the identifiers are normalized, a time without an offset is China time, and the id is stable
    assert [i.key for i in event.identifiers] == [
        "member_card:M20240001",
        "phone:+8613800138000",
        "email:li.na@example.cn",
    ]
    assert event.occurred_at == datetime(2023, 1, 15, 2, 20, tzinfo=UTC)
    assert event.event_id == "file-member-demo-brand-M20240001-20230115T022000Z"
    assert event.source.value == "batch" and event.store_id == "sh01"
    props = event.properties
    assert (props.name, props.gender, str(props.birthday), props.city, props.member_level) == (
        "李娜",
        "female",
        "1988-03-15",
        "上海",
        "gold",
    )
    assert mapped(FileKind.MEMBERS, text).items[0]["event_id"] == event.event_id


def test_a_member_known_only_by_phone_gets_an_id_from_the_phone() -> None:
    result = mapped(FileKind.MEMBERS, "phone,joined_at\n13800138000,2024-01-01T00:00:00Z\n")
    assert result.items[0]["event_id"] == "file-member-demo-brand-+8613800138000-20240101T000000Z"


@pytest.mark.parametrize(
    ("row", "field", "reason"),
    [
        ("M1,1860000,,,,,,,,2024-01-01", "phone", "bad phone '1860000'"),
        (",,a@example.cn,,,,,,,2024-01-01", "member_card", "missing identifier"),
        ("M1,,,,,1993-02-30,,,,2024-01-01", "birthday", "bad date"),
        ("M1,,,,,,,,,2023-13-01 10:00", "joined_at", "bad date"),
        ("M1,,,,,,,,,2099-01-01", "joined_at", "in the future"),
        ("M1,,,,,,,,,", "joined_at", "joined_at is required"),
        ("M1,,not-an-email,,,,,,,2024-01-01", "email", "bad email"),
        ("M1,,,,x,,,,,2024-01-01", "gender", "gender must be"),
        ("M 1,,,,,,,,,2024-01-01", "member_card", "bad member card"),
        ("M1,,,,,,,bad store!,,2024-01-01", "store_id", "store_id must be"),
        ("M1,,,,,,,,,2024-01-01,extra", "row", "the row has 11 values but the header has 10 columns"),
    ],
)
def test_each_bad_member_row_is_rejected_with_its_field_and_reason(row: str, field: str, reason: str) -> None:
    number, got_field, got_reason = only_reject(mapped(FileKind.MEMBERS, f"{MEMBER_HEADER}\n{row}\n"))
    assert (number, got_field) == (2, field)
    assert reason in got_reason


def test_jsonl_values_may_be_numbers_but_not_objects() -> None:
    text = '{"member_card": "M1", "phone": 13800138000, "joined_at": "2024-01-01"}\n'
    text += '{"member_card": {"id": 1}, "joined_at": "2024-01-01"}\n'
    result = mapped(FileKind.MEMBERS, text, FileFormat.JSONL)
    assert [i["value"] for i in result.items[0]["identifiers"]] == ["M1", "+8613800138000"]
    assert [(r.row, r.field, r.reason) for r in result.rejects] == [
        (2, "member_card", "member_card must be text or a number")
    ]


def test_the_same_member_twice_in_a_chunk_is_one_event_and_a_duplicate_row() -> None:
    row = "M1,13800138000,,,,,,,,2024-01-01"
    result = mapped(FileKind.MEMBERS, f"{MEMBER_HEADER}\n{row}\n{row}\n")
    assert len(result.items) == 1 and [r.number for r in result.duplicate_rows] == [3]
    assert result.duplicate_events == 1


# ---- orders ------------------------------------------------------------------------------------------------------


def order(*lines: str) -> str:
    return ORDER_HEADER + "\n" + "\n".join(lines) + "\n"


def test_the_lines_of_an_order_become_one_order_placed() -> None:
    text = order(
        "SO1,M1,13800138000,sh01,2024-05-01 10:15:00,CAKE,草莓蛋糕,cake,1,268.00,CNY,278.00",
        "SO1,M1,,sh01,,CANDLE,蜡烛,accessory,2,5.00,,",
        "SO2,,13900139000,,2024-05-02T08:00:00+08:00,BREAD,,bread,4,12.5,,",
    )
    result = mapped(FileKind.ORDERS, text)
    first, second = (parse_event(i) for i in result.items)
    assert isinstance(first, OrderPlacedEvent) and isinstance(second, OrderPlacedEvent)
    assert [[r.number for r in rows] for rows in result.item_rows] == [[2, 3], [4]]
    # Then the order-level columns come from any line, money is in fen, and a store makes it offline
    assert first.event_id == "file-order-demo-brand-SO1"
    assert [(line.sku, line.quantity, line.unit_price_minor) for line in first.properties.lines] == [
        ("CAKE", 1, 26800),
        ("CANDLE", 2, 500),
    ]
    assert (first.properties.total_minor, first.properties.currency, first.properties.fulfilment) == (
        27800,
        "CNY",
        "offline",
    )
    assert [i.key for i in first.identifiers] == ["member_card:M1", "phone:+8613800138000"]
    # And without a total, the total is the sum of the lines; without a store the order is online
    assert (second.properties.total_minor, second.properties.fulfilment) == (5000, "online")


def test_a_bad_line_rejects_its_whole_order_one_reject_per_row() -> None:
    text = order(
        "SO3,M2,,bj02,2024-05-03 16:40:00,BAGUETTE,法棍,bread,1,18.00,CNY,",
        "SO3,M2,,bj02,2024-05-03 16:40:00,LATTE,拿铁,drink,2,-28.00,CNY,",
        "SO4,M2,,bj02,2024-05-04 16:40:00,LATTE,拿铁,drink,1,28.00,CNY,",
    )
    result = mapped(FileKind.ORDERS, text)
    assert [i["properties"]["order_id"] for i in result.items] == ["SO4"]
    assert [(r.row, r.field) for r in result.rejects] == [(2, "order_id"), (3, "unit_price")]
    assert result.rejects[1].reason == "negative price: unit_price -28.00 must not be negative"
    assert result.rejects[0].reason.startswith("order SO3 rejected: row 3 unit_price: negative price")


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        ("SO1,M1,,,2024-02-31 10:00,SKU,,,1,1.00,,", "occurred_at", "bad date"),
        ("SO1,,,,2024-05-01,SKU,,,1,1.00,,", "member_card", "missing identifier"),
        ("SO1,M1,12345,,2024-05-01,SKU,,,1,1.00,,", "phone", "bad phone"),
        ("SO1,M1,,,2024-05-01,SKU,,,1,abc,,", "unit_price", "must be an amount"),
        ("SO1,M1,,,2024-05-01,SKU,,,0,1.00,,", "quantity", "from 1 to 10000"),
        ("SO1,M1,,,2024-05-01,SKU,,,1.5,1.00,,", "quantity", "whole number"),
        ("SO1,M1,,,2024-05-01,,,,1,1.00,,", "sku", "sku is required"),
        ("SO1,M1,,,2024-05-01,SKU,,,1,1.00,RMB1,", "currency", "ISO 4217"),
        ("SO1,M1,,,2024-05-01,SKU,,,1,1.00,,2.00", "total", "exceeds the sum of the lines"),
        ("SO1,M1,,,2024-05-01,SKU,,,1,1.00,,-1", "total", "negative price"),
        (",M1,,,2024-05-01,SKU,,,1,1.00,,", "order_id", "order_id is required"),
        ("SO 1,M1,,,2024-05-01,SKU,,,1,1.00,,", "order_id", "order_id must be"),
    ],
)
def test_each_bad_order_row_is_rejected_with_its_field_and_reason(line: str, field: str, reason: str) -> None:
    number, got_field, got_reason = only_reject(mapped(FileKind.ORDERS, order(line)))
    assert (number, got_field) == (2, field)
    assert reason in got_reason


def test_lines_that_disagree_on_the_customer_reject_the_order() -> None:
    result = mapped(
        FileKind.ORDERS,
        order("SO1,M1,,,2024-05-01,A,,,1,1.00,,", "SO1,M2,,,2024-05-01,B,,,1,1.00,,"),
    )
    assert not result.items
    assert [(r.row, r.field, r.reason) for r in result.rejects] == [
        (2, "order_id", "order SO1 rejected: row 3 member_card: member_card differs from row 2 of the same order"),
        (3, "member_card", "member_card differs from row 2 of the same order"),
    ]


def test_money_accepts_thousands_separators_and_the_yuan_sign() -> None:
    result = mapped(FileKind.ORDERS, order('SO1,M1,,,2024-05-01,A,,,1,"¥1,024.50",,'))
    assert result.items[0]["properties"]["lines"][0]["unit_price_minor"] == 102450


# ---- the samples under events/files are the contract -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "accepted_rows", "rejected_rows", "events"),
    [("members.csv", 6, 4, 6), ("members.jsonl", 4, 3, 4), ("orders.csv", 6, 6, 4), ("orders.jsonl", 4, 2, 3)],
)
def test_every_sample_row_maps_or_is_rejected_and_every_event_is_canonical(
    name: str, accepted_rows: int, rejected_rows: int, events: int
) -> None:
    path = SAMPLES / name
    kind = FileKind.MEMBERS if name.startswith("members") else FileKind.ORDERS
    file_format = parse_key(incoming_key("demo-brand", kind.value, name), INCOMING_PREFIX).format
    rows = rows_of(path.read_bytes(), file_format)
    result = map_rows(kind, rows, CTX)
    assert sum(len(r) for r in result.item_rows) == accepted_rows
    assert len(result.rejects) == rejected_rows == len({r.row for r in result.rejects})
    assert accepted_rows + rejected_rows == len(rows)
    parsed: list[Any] = [parse_event(item) for item in result.items]
    assert len(parsed) == events and all(e.brand_id == "demo-brand" for e in parsed)
