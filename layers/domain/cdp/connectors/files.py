"""Member and order files dropped into S3: parse, validate every row, map to canonical events (pure, no AWS).

Where a file goes: `imports/incoming/{brand_id}/{kind}/{file}`; the brand comes from the key (whoever may write
under a brand's prefix speaks for that brand), never from the rows. `kind` is `members` or `orders`. The format
comes from the file name: `.csv` (UTF-8 with a header row; a UTF-8 BOM, as Excel writes it, is fine) or `.jsonl`
/ `.ndjson` (one JSON object a line). Column (or key) names are matched case-insensitively; unknown columns are
ignored. Blank lines are skipped and are not rows.

members  member_card, phone, email, name, gender, birthday, city, store_id, level, joined_at
         required columns: joined_at and at least one of member_card / phone; each row needs a member card or a
         phone -> one `identify` event, event id "file-member-{brand}-{member_card or phone}-{joined_at UTC}".
orders   order_id, member_card, phone, store_id, occurred_at, sku, name, category, quantity, unit_price, currency,
         total; one row per order line, the lines of one order on consecutive rows
         required columns: order_id, occurred_at, sku, quantity, unit_price and one of member_card / phone
         -> one `order_placed` per order_id, event id "file-order-{brand}-{order_id}".
         unit_price and total are major units (25.50 yuan); currency defaults to CNY; total (the amount paid, on
         any line of the order) defaults to the sum of the lines and may not exceed it; store_id makes the order
         offline (a store sale). A bad line rejects its whole order: the other lines are rejected naming it.

Times: ISO-8601 (`2024-05-01T10:00:00+08:00`, `...Z`), `2024-05-01 10:00[:00]`, `2024/5/1 10:00`, or a date; a time
without an offset is China Standard Time (UTC+08:00). Dates (birthday): `1990-05-01`, `1990/5/1`, `19900501`.
Gender: male/female/m/f/男/女 (unknown/未知/blank: not given). Phones without a country code are in the brand's
phone region (org directory, default CN).

The brand id is part of every event id: dedupe is on (source, event id) across brands, and two brands' POS systems
happily reuse order numbers like SO1001. The source channel is `batch`.

Every row ends as exactly one of accepted, duplicate or rejected; a rejected row carries the row number (the line
where it starts, header = 1: what a spreadsheet shows), the field, the reason and the raw row. A file that cannot be
read as a whole (not UTF-8, no header, a required column missing, an order's lines scattered) raises
`BadFileError` before any row is ingested.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from cdp.connectors.base import MappingError
from cdp.connectors.money import to_minor
from cdp.errors import InvalidInputError
from cdp.identifiers.model import IdentifierType, normalize_email, normalize_phone, normalize_value
from cdp.shared.safe_json import loads as safe_loads

SOURCE = "batch"
LOCAL_TZ = timezone(timedelta(hours=8), "CST")  # what a time without an offset means (Chinese retail exports)
DEFAULT_CURRENCY = "CNY"
MAX_ORDER_LINES = 500  # the canonical order's limit
BOM = b"\xef\xbb\xbf"

_TOKEN = re.compile(r"^[A-Za-z0-9_.:@/#+\-]{1,128}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_GENDERS = {
    "male": "male",
    "m": "male",
    "man": "male",
    "男": "male",
    "female": "female",
    "f": "female",
    "woman": "female",
    "女": "female",
    "unknown": None,
    "u": None,
    "未知": None,
}
_DATETIME_FORMATS = ("%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d")


class FileKind(StrEnum):
    MEMBERS = "members"
    ORDERS = "orders"


class FileFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


_EXTENSIONS = {".csv": FileFormat.CSV, ".jsonl": FileFormat.JSONL, ".ndjson": FileFormat.JSONL}

# Each inner tuple is satisfied by any one of its columns.
REQUIRED_COLUMNS: dict[FileKind, tuple[tuple[str, ...], ...]] = {
    FileKind.MEMBERS: (("member_card", "phone"), ("joined_at",)),
    FileKind.ORDERS: (
        ("order_id",),
        ("member_card", "phone"),
        ("occurred_at",),
        ("sku",),
        ("quantity",),
        ("unit_price",),
    ),
}
KNOWN_COLUMNS: dict[FileKind, tuple[str, ...]] = {
    FileKind.MEMBERS: (
        "member_card",
        "phone",
        "email",
        "name",
        "gender",
        "birthday",
        "city",
        "store_id",
        "level",
        "joined_at",
    ),
    FileKind.ORDERS: (
        "order_id",
        "member_card",
        "phone",
        "store_id",
        "occurred_at",
        "sku",
        "name",
        "category",
        "quantity",
        "unit_price",
        "currency",
        "total",
    ),
}


class BadFileError(InvalidInputError):
    """The file as a whole cannot be imported (nothing of it is ingested); the message says what to fix."""


@dataclass(frozen=True)
class FileTarget:
    """What the S3 key says: whose file it is, what it holds and how it is written."""

    key: str
    brand_id: str
    kind: FileKind
    format: FileFormat
    file_name: str


def parse_key(key: str, incoming_prefix: str) -> FileTarget:
    """`{incoming_prefix}{brand_id}/{kind}/{file}` -> FileTarget; BadFileError names what is wrong."""
    if not key.startswith(incoming_prefix):
        raise BadFileError(f"{key}: files are imported from {incoming_prefix}{{brand_id}}/{{kind}}/{{file}}", "key")
    parts = key[len(incoming_prefix) :].split("/")
    if len(parts) != 3 or not all(parts):
        raise BadFileError(f"{key}: expected {incoming_prefix}{{brand_id}}/{{kind}}/{{file}}", "key")
    brand_id, kind, file_name = parts
    if not _TOKEN.match(brand_id):
        raise BadFileError(f"{key}: {brand_id!r} is not a valid brand id", "key")
    if kind not in FileKind.__members__.values():
        raise BadFileError(f"{key}: kind must be one of {', '.join(FileKind)}, not {kind!r}", "key")
    suffix = file_name[file_name.rfind(".") :].lower() if "." in file_name else ""
    if suffix not in _EXTENSIONS:
        raise BadFileError(f"{key}: the file name must end in .csv, .jsonl or .ndjson", "key")
    return FileTarget(key, brand_id, FileKind(kind), _EXTENSIONS[suffix], file_name)


# ---- reading records ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One row as written: where it starts (line and byte offset), where it ends, its text and its CSV fields."""

    line: int
    start: int
    end: int
    raw: str
    fields: list[str] | None = None  # CSV only
    error: str | None = None  # malformed CSV


def split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Lines with their line breaks (so byte offsets add up), from a stream of arbitrary byte chunks."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line + b"\n"
    if pending:
        yield pending


def _decoded(lines: Iterable[bytes], first_line: int, offset: int) -> Iterator[tuple[int, int, int, str]]:
    """(line number, start, end, text) for each line; BadFileError at the first line that is not UTF-8."""
    number, position = first_line, offset
    for raw in lines:
        text_bytes = raw[len(BOM) :] if position == 0 and raw.startswith(BOM) else raw
        try:
            text = text_bytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadFileError(
                f"line {number} is not UTF-8 ({exc.reason} at byte {exc.start}): save the file as UTF-8 "
                "(Excel: 'CSV UTF-8'); GBK/GB18030 exports are not read",
                f"line {number}",
            ) from exc
        yield number, position, position + len(raw), text
        number += 1
        position += len(raw)


def _strip_break(text: str) -> str:
    return text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith(("\n", "\r")) else text


def read_records(
    lines: Iterable[bytes], file_format: FileFormat, *, first_line: int = 1, offset: int = 0
) -> Iterator[Record]:
    """The records of a file or of a byte range of it; blank lines are skipped. A CSV record may span lines."""
    decoded = _decoded(lines, first_line, offset)
    if file_format is FileFormat.JSONL:
        for number, start, end, text in decoded:
            if text.strip():
                yield Record(number, start, end, _strip_break(text))
        return
    yield from _csv_records(decoded)


def _csv_records(decoded: Iterator[tuple[int, int, int, str]]) -> Iterator[Record]:
    taken: list[tuple[int, int, int, str]] = []

    def feed() -> Iterator[str]:
        for item in decoded:
            taken.append(item)
            yield item[3]

    reader = csv.reader(feed())
    while True:
        error = None
        try:
            fields: list[str] | None = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. an unclosed quote swallowing the rest of the file into one huge field
            fields, error = None, f"malformed CSV: {exc}"
        if not taken:
            break
        consumed = taken[:]
        taken.clear()
        raw = _strip_break("".join(t[3] for t in consumed))
        if fields is not None and not any(f.strip() for f in fields):
            continue  # a blank line (or only separators)
        yield Record(consumed[0][0], consumed[0][1], consumed[-1][2], raw, fields, error)


def normalize_column(name: str) -> str:
    return name.strip().lower()


def check_columns(kind: FileKind, columns: Iterable[str]) -> list[str]:
    """The columns the file has that an import of `kind` ignores; BadFileError when a required one is missing."""
    present = [normalize_column(c) for c in columns]
    missing = [group for group in REQUIRED_COLUMNS[kind] if not set(group) & set(present)]
    if missing:
        names = "; ".join(" or ".join(group) for group in missing)
        raise BadFileError(
            f"{kind} file is missing required column(s): {names} (it has: {', '.join(present) or 'nothing'})",
            missing[0][0],
        )
    duplicated = sorted({c for c in present if present.count(c) > 1})
    if duplicated:
        raise BadFileError(f"column(s) named twice: {', '.join(duplicated)}", duplicated[0])
    return [c for c in present if c and c not in KNOWN_COLUMNS[kind]]


def header_of(record: Record) -> list[str]:
    if record.fields is None:
        raise BadFileError(f"line {record.line}: the header row cannot be read ({record.error})", "header")
    return [normalize_column(f) for f in record.fields]


# ---- rows --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """A record with its values by (normalized) column name, or the reason it has none."""

    number: int
    raw: str
    values: dict[str, Any] = field(default_factory=dict)
    problem: tuple[str, str] | None = None  # (field, reason): the row cannot even be read


def to_row(record: Record, file_format: FileFormat, header: list[str] | None) -> Row:
    if file_format is FileFormat.JSONL:
        try:
            value = safe_loads(record.raw, "row")
        except InvalidInputError as exc:
            return Row(record.line, record.raw, problem=("row", exc.message))
        if not isinstance(value, dict):
            return Row(record.line, record.raw, problem=("row", "each line must be a JSON object"))
        return Row(record.line, record.raw, {normalize_column(str(k)): v for k, v in value.items()})
    if record.fields is None:
        return Row(record.line, record.raw, problem=("row", record.error or "malformed CSV"))
    columns = header or []
    extra = [f for f in record.fields[len(columns) :] if f.strip()]
    if extra:
        reason = f"the row has {len(record.fields)} values but the header has {len(columns)} columns"
        return Row(record.line, record.raw, problem=("row", reason))
    return Row(record.line, record.raw, dict(zip(columns, record.fields, strict=False)))


def row_key(row: Row, name: str) -> str | None:
    """A row's value for grouping (the order id) without validating it."""
    value = row.values.get(name)
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value).strip() or None


# ---- validation and mapping --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportContext:
    brand_id: str
    phone_region: str
    now: datetime
    tz: timezone = LOCAL_TZ


@dataclass(frozen=True)
class Reject:
    row: int
    field: str
    reason: str
    raw: str


@dataclass
class MappedRows:
    """Canonical event dicts with the rows each came from, rows rejected here, and rows repeating an event of this
    chunk (counted as duplicates: the ledger would only see them once the first copy is confirmed)."""

    items: list[dict[str, Any]] = field(default_factory=list)
    item_rows: list[list[Row]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    duplicate_rows: list[Row] = field(default_factory=list)
    duplicate_events: int = 0


def map_rows(kind: FileKind, rows: list[Row], ctx: ImportContext) -> MappedRows:
    out = MappedRows()
    readable = []
    for row in rows:
        if row.problem:
            out.rejects.append(Reject(row.number, row.problem[0], row.problem[1], row.raw))
        else:
            readable.append(row)
    groups = [[r] for r in readable] if kind is FileKind.MEMBERS else _orders(readable, out)
    seen: set[str] = set()
    for group in groups:
        try:
            item = member_event(group[0], ctx) if kind is FileKind.MEMBERS else order_event(group, ctx)
        except RowRejected as exc:
            out.rejects.extend(exc.rejects)
            continue
        if item["event_id"] in seen:
            out.duplicate_rows.extend(group)
            out.duplicate_events += 1
            continue
        seen.add(item["event_id"])
        out.items.append(item)
        out.item_rows.append(group)
    out.rejects.sort(key=lambda r: r.row)
    return out


def _orders(rows: list[Row], out: MappedRows) -> list[list[Row]]:
    groups: dict[str, list[Row]] = {}
    for row in rows:
        order_id = row_key(row, "order_id")
        if order_id is None:
            out.rejects.append(Reject(row.number, "order_id", "order_id is required", row.raw))
            continue
        groups.setdefault(order_id, []).append(row)
    return list(groups.values())


class RowRejected(Exception):
    def __init__(self, rejects: list[Reject]) -> None:
        super().__init__("; ".join(f"row {r.row} {r.field}: {r.reason}" for r in rejects))
        self.rejects = rejects


def _reject(row: Row, exc: MappingError) -> RowRejected:
    return RowRejected([Reject(row.number, exc.field, exc.message, row.raw)])


def member_event(row: Row, ctx: ImportContext) -> dict[str, Any]:
    try:
        return _member(row.values, ctx)
    except MappingError as exc:
        raise _reject(row, exc) from exc


def _member(values: dict[str, Any], ctx: ImportContext) -> dict[str, Any]:
    card = _member_card(values)
    phone = _phone(values, ctx)
    email = _email(values)
    if not card and not phone:
        raise MappingError("member_card", "missing identifier: a member needs a member_card or a phone")
    joined = _timestamp(values, "joined_at", ctx, required=True)
    assert joined is not None
    properties = _clean(
        {
            "name": _text(values, "name", 200),
            "gender": _gender(values),
            "birthday": _birthday(values, ctx),
            "city": _text(values, "city", 100),
            "member_level": _text(values, "level", 32),
        }
    )
    identifiers = [{"type": "member_card", "value": card}, {"type": "phone", "value": phone}]
    identifiers.append({"type": "email", "value": email})
    return _event(
        "identify",
        _event_id("member", ctx.brand_id, card or phone or "", f"{joined:%Y%m%dT%H%M%SZ}"),
        ctx,
        joined,
        [i for i in identifiers if i["value"]],
        properties,
        _token(values, "store_id"),
    )


# Order-level columns: each line may repeat them; the first non-empty value wins and the others must agree.
_ORDER_FIELDS = ("member_card", "phone", "occurred_at", "store_id", "currency", "total")


def order_event(rows: list[Row], ctx: ImportContext) -> dict[str, Any]:
    order_id = row_key(rows[0], "order_id") or ""
    problems: list[Reject] = []
    if not _TOKEN.match(order_id):
        problems.append(Reject(rows[0].number, "order_id", "order_id must be 1-128 letters, digits or _.:@/#+-", ""))
    if len(rows) > MAX_ORDER_LINES:
        problems.append(Reject(rows[0].number, "order_id", f"an order holds at most {MAX_ORDER_LINES} lines", ""))
    header: dict[str, tuple[Any, int]] = {}  # order-level field -> (value, row it came from)
    lines: list[dict[str, Any]] = []
    for row in rows:
        try:
            currency = _currency(row.values) or (header.get("currency") or (DEFAULT_CURRENCY, 0))[0]
            fields = {
                "member_card": _member_card(row.values),
                "phone": _phone(row.values, ctx),
                "occurred_at": _timestamp(row.values, "occurred_at", ctx),
                "store_id": _token(row.values, "store_id"),
                "currency": _currency(row.values),
                "total": _money(row.values, "total", currency),
            }
            for name, value in fields.items():
                _agree(header, name, value, row.number)
            lines.append(_line(row.values, currency))
        except MappingError as exc:
            problems.append(Reject(row.number, exc.field, exc.message, row.raw))
    if not problems:
        try:
            return _order(order_id, header, lines, ctx)
        except MappingError as exc:
            problems.append(Reject(rows[0].number, exc.field, exc.message, rows[0].raw))
    raise RowRejected(_whole_order(order_id, rows, problems))


def _whole_order(order_id: str, rows: list[Row], problems: list[Reject]) -> list[Reject]:
    """Every row of the order is rejected: the bad ones with their reason, the others naming the first problem."""
    first = problems[0]
    by_row = {r.number: r for r in rows}
    out: list[Reject] = []
    for p in problems:  # one reject per row: its first problem
        if p.row not in {r.row for r in out}:
            out.append(Reject(p.row, p.field, p.reason, p.raw or by_row[p.row].raw))
    bad = {r.row for r in out}
    reason = f"order {order_id} rejected: row {first.row} {first.field}: {first.reason}"
    out.extend(Reject(r.number, "order_id", reason, r.raw) for r in rows if r.number not in bad)
    return out


def _agree(header: dict[str, tuple[Any, int]], name: str, value: Any, row: int) -> None:
    if value is None:
        return
    if name not in header:
        header[name] = (value, row)
    elif header[name][0] != value:
        raise MappingError(name, f"{name} differs from row {header[name][1]} of the same order")


def _line(values: dict[str, Any], currency: str) -> dict[str, Any]:
    sku = _token(values, "sku")
    if sku is None:
        raise MappingError("sku", "sku is required")
    return _clean(
        {
            "sku": sku,
            "name": _text(values, "name", 256),
            "category": _text(values, "category", 100),
            "quantity": _quantity(values),
            "unit_price_minor": _money(values, "unit_price", currency, required=True),
        }
    )


def _order(
    order_id: str, header: dict[str, tuple[Any, int]], lines: list[dict[str, Any]], ctx: ImportContext
) -> dict[str, Any]:
    def get(name: str) -> Any:
        return header[name][0] if name in header else None

    card, phone = get("member_card"), get("phone")
    if not card and not phone:
        raise MappingError("member_card", "missing identifier: an order needs a member_card or a phone")
    occurred = get("occurred_at")
    if occurred is None:
        raise MappingError("occurred_at", "occurred_at is required")
    lines_total = sum(line["quantity"] * line["unit_price_minor"] for line in lines)
    total = get("total")
    if total is not None and total > lines_total:
        raise MappingError("total", f"total {total} (minor units) exceeds the sum of the lines {lines_total}")
    store = get("store_id")
    properties = {
        "order_id": order_id,
        "lines": lines,
        "total_minor": lines_total if total is None else total,
        "currency": get("currency") or DEFAULT_CURRENCY,
        "fulfilment": "offline" if store else "online",
    }
    identifiers = [{"type": "member_card", "value": card}, {"type": "phone", "value": phone}]
    return _event(
        "order_placed",
        _event_id("order", ctx.brand_id, order_id),
        ctx,
        occurred,
        [i for i in identifiers if i["value"]],
        properties,
        store,
    )


def _event(
    event_type: str,
    event_id: str,
    ctx: ImportContext,
    occurred_at: datetime,
    identifiers: list[dict[str, Any]],
    properties: dict[str, Any],
    store_id: str | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "schema_version": "1",
        "event_id": event_id,
        "event_type": event_type,
        "source": SOURCE,
        "brand_id": ctx.brand_id,
        "occurred_at": occurred_at.isoformat(),
        "identifiers": identifiers,
        "properties": properties,
    }
    if store_id:
        out["store_id"] = store_id
    return out


def _event_id(kind: str, *parts: str) -> str:
    """Stable for the same row content; hashed when the natural id would pass the 128-character limit."""
    natural = "-".join(("file", kind, *parts))
    if len(natural) <= 128 and _TOKEN.match(natural):
        return natural
    return f"file-{kind}-{parts[0][:40]}-{hashlib.sha256(natural.encode()).hexdigest()[:40]}"


# ---- field parsers: each raises MappingError(column, reason) -------------------------------------------------------


def _value(values: dict[str, Any], name: str) -> str | None:
    value = values.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise MappingError(name, f"{name} must be text or a number")
    text = str(value).strip()
    return text or None


def _text(values: dict[str, Any], name: str, max_length: int) -> str | None:
    text = _value(values, name)
    if text is not None and len(text) > max_length:
        raise MappingError(name, f"{name} is longer than {max_length} characters")
    return text


def _token(values: dict[str, Any], name: str) -> str | None:
    text = _value(values, name)
    if text is not None and not _TOKEN.match(text):
        raise MappingError(name, f"{name} must be 1-128 letters, digits or _.:@/#+- (got {text[:40]!r})")
    return text


def _member_card(values: dict[str, Any]) -> str | None:
    text = _value(values, "member_card")
    if text is None:
        return None
    try:
        return normalize_value(IdentifierType.MEMBER_CARD, text)
    except ValueError as exc:
        raise MappingError("member_card", f"bad member card {text[:40]!r}: {exc}") from exc


def _phone(values: dict[str, Any], ctx: ImportContext) -> str | None:
    text = _value(values, "phone")
    if text is None:
        return None
    try:
        return normalize_phone(text, ctx.phone_region)
    except ValueError as exc:
        raise MappingError("phone", f"bad phone {text[:40]!r}: {exc}") from exc


def _email(values: dict[str, Any]) -> str | None:
    text = _value(values, "email")
    if text is None:
        return None
    try:
        return normalize_email(text)
    except ValueError as exc:
        raise MappingError("email", f"bad email {text[:60]!r}: {exc}") from exc


def _gender(values: dict[str, Any]) -> str | None:
    text = _value(values, "gender")
    if text is None:
        return None
    if text.lower() not in _GENDERS:
        raise MappingError("gender", f"gender must be male, female, m, f, 男, 女 or unknown (got {text[:20]!r})")
    return _GENDERS[text.lower()]


def parse_timestamp(text: str, tz: timezone) -> datetime:
    """ISO-8601 or the common spreadsheet spellings; a time without an offset is in `tz`. ValueError otherwise."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        for pattern in _DATETIME_FORMATS:
            try:
                parsed = datetime.strptime(text, pattern)  # noqa: DTZ007 - the zone is added just below
                break
            except ValueError:
                continue
        else:
            raise ValueError(f"not a date or time: {text[:40]!r}") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).astimezone(UTC)


def _timestamp(values: dict[str, Any], name: str, ctx: ImportContext, required: bool = False) -> datetime | None:
    text = _value(values, name)
    if text is None:
        if required:
            raise MappingError(name, f"{name} is required")
        return None
    try:
        moment = parse_timestamp(text, ctx.tz)
    except ValueError as exc:
        raise MappingError(name, f"bad date: {exc}") from exc
    if moment > ctx.now + timedelta(days=1):
        raise MappingError(name, f"bad date: {text[:40]!r} is in the future")
    if moment.year < 1900:
        raise MappingError(name, f"bad date: {text[:40]!r} is before 1900")
    return moment


def _birthday(values: dict[str, Any], ctx: ImportContext) -> str | None:
    text = _value(values, "birthday")
    if text is None:
        return None
    try:
        day = parse_timestamp(text, ctx.tz).astimezone(ctx.tz).date() if len(text) > 10 else _date(text)
    except ValueError as exc:
        raise MappingError("birthday", f"bad date: {exc}") from exc
    if not date(1900, 1, 1) <= day <= ctx.now.date():
        raise MappingError("birthday", f"bad date: birthday {day.isoformat()} is not between 1900 and today")
    return day.isoformat()


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        for pattern in ("%Y/%m/%d", "%Y.%m.%d", "%Y%m%d"):
            try:
                return datetime.strptime(text, pattern).date()  # noqa: DTZ007 - a calendar date, no zone
            except ValueError:
                continue
    raise ValueError(f"not a date: {text[:40]!r} (write 1990-05-01)")


def _currency(values: dict[str, Any]) -> str | None:
    text = _value(values, "currency")
    if text is None:
        return None
    if not _CURRENCY.match(text.upper()):
        raise MappingError("currency", f"currency must be an ISO 4217 code such as CNY (got {text[:10]!r})")
    return text.upper()


def _money(values: dict[str, Any], name: str, currency: str, required: bool = False) -> int | None:
    text = _value(values, name)
    if text is None:
        if required:
            raise MappingError(name, f"{name} is required")
        return None
    cleaned = text.replace(",", "").removeprefix("¥").removeprefix("￥").strip()
    if cleaned.startswith("-"):
        raise MappingError(name, f"negative price: {name} {text[:20]} must not be negative")
    try:
        return to_minor(cleaned, currency)
    except ValueError as exc:
        raise MappingError(name, f"{name} must be an amount such as 25.50 (got {text[:20]!r})") from exc


def _quantity(values: dict[str, Any]) -> int:
    text = _value(values, "quantity")
    if text is None:
        raise MappingError("quantity", "quantity is required")
    try:
        number = float(text)
    except ValueError as exc:
        raise MappingError("quantity", f"quantity must be a whole number (got {text[:20]!r})") from exc
    if not number.is_integer() or not 1 <= number <= 10_000:
        raise MappingError("quantity", f"quantity must be a whole number from 1 to 10000 (got {text[:20]!r})")
    return int(number)


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
