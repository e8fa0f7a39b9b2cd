"""Remove a person from raw archive objects of every format the archive holds (pure; no AWS).

Raw bodies keep what the channel sent, before normalization: a phone may be `138-0013-8000` or `+86 138...`, an
e-mail in any case. So the person is recognised by patterns built from their normalized identifiers (`Needles`),
matched on token boundaries, inside every string of the parsed body (JSON, JSON-in-a-string such as an SNS
`Message`, JSONL and CSV rows, XML text), gzip bodies included (re-gzipped after the scrub).

What is removed depends on why the object was reached:
- `own`: it delivered one of the person's own events. The person's *items* go (elements of the body's outermost
  list of records: a Segment batch call, a pulled page's orders, a file row); a body that is one item about the
  person (a WeChat push, a Shopify order, a POS sale, an SNS notification, an encrypted or unreadable body) goes
  whole.
- `foreign`: it delivered another person's event that also carried the person's identifiers. That event stays;
  only the person's fields are redacted (an identifier entry naming them is dropped, other strings masked), so a
  replay maps it without them.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import phonenumbers

from cdp.errors import InvalidInputError
from cdp.identifiers.model import Identifier, IdentifierType
from cdp.privacy.scrub import ERASED, archived_json, prune, scrub_raw_body

Mode = Literal["own", "foreign"]
_MIN_NEEDLE = 3
_GZIP_MAGIC = b"\x1f\x8b"
_SEP = r"[\s\-.()]?"


@dataclass(frozen=True)
class Needles:
    """How the person shows up in raw text: one case-insensitive, token-bounded pattern."""

    pattern: re.Pattern[str] | None

    @classmethod
    def of(cls, identifier_keys: Iterable[str], extra: Iterable[str] = ()) -> Needles:
        """From identifier keys (`phone:+8613800138000`, `wechat_openid:wx-oa:o123`, ...) and extra strings (a
        name): phones also match in national form and with separators."""
        alternatives: set[str] = set()
        for key in identifier_keys:
            try:
                identifier = Identifier.from_key(key)
            except ValueError:
                continue
            if identifier.type is IdentifierType.PHONE:
                alternatives.add(_phone_pattern(identifier.value))
            elif len(identifier.value) >= _MIN_NEEDLE:
                alternatives.add(_word(identifier.value))
        alternatives |= {_word(s.strip()) for s in extra if s and len(s.strip()) >= _MIN_NEEDLE}
        if not alternatives:
            return cls(None)
        return cls(re.compile("|".join(sorted(alternatives)), re.IGNORECASE))

    def hit(self, text: str) -> bool:
        return self.pattern is not None and self.pattern.search(text) is not None

    def mask(self, text: str) -> str:
        return self.pattern.sub(ERASED, text) if self.pattern is not None else text


def _word(value: str) -> str:
    return rf"(?<![\w.@+\-]){re.escape(value)}(?![\w@+\-])"


def _phone_pattern(e164: str) -> str:
    """The phone's national digits, optionally after its country code, with optional separators between digits."""
    try:
        parsed = phonenumbers.parse(e164)
        national, country = str(parsed.national_number), str(parsed.country_code)
    except phonenumbers.NumberParseException:
        national, country = re.sub(r"\D", "", e164), ""
    digits = _SEP.join(national)
    prefix = rf"(?:(?:\+|00)?{country}{_SEP})?" if country else ""
    return rf"(?<!\d){prefix}{digits}(?!\d)"


@dataclass(frozen=True)
class RawScrub:
    """The outcome for one object: `body` None means delete it whole; `located` False means nothing of the person
    was recognised in it (the object is kept as it was)."""

    body: bytes | None
    removed: int = 0  # items (events, rows, records) removed
    redacted: int = 0  # fields masked or identifier entries dropped in items that were kept
    located: bool = True

    @property
    def changed(self) -> bool:
        return self.body is None or bool(self.removed or self.redacted)


def scrub_raw(body: bytes, needles: Needles, mode: Mode, dedupe_keys: Collection[str] = ()) -> RawScrub:
    """One raw archive object without the person (see the module docstring). `dedupe_keys`: the person's own
    events the object delivered, removed exactly from a canonical body (`{"batch": [...]}` or one event)."""
    gzipped = body[:2] == _GZIP_MAGIC
    try:
        text = (_gunzip(body) if gzipped else body).decode("utf-8")
    except (UnicodeDecodeError, OSError, EOFError, zlib.error):
        # unreadable (binary, broken gzip): it cannot be scrubbed, only deleted when it carried the person's event
        return RawScrub(None) if mode == "own" else RawScrub(body, located=False)
    out = _scrub_text(text, needles, mode, dedupe_keys)
    if out.body is None or not out.changed:
        return out if out.body is None else RawScrub(body, located=out.located)
    return RawScrub(gzip.compress(out.body, mtime=0) if gzipped else out.body, out.removed, out.redacted)


def _gunzip(body: bytes) -> bytes:
    return gzip.decompress(body)


def _scrub_text(text: str, needles: Needles, mode: Mode, dedupe_keys: Collection[str]) -> RawScrub:
    try:
        document = archived_json(text)
    except InvalidInputError:
        return _scrub_plain(text, needles, mode)
    removed = 0
    if dedupe_keys and _is_canonical(document):
        clean_bytes, removed = scrub_raw_body(text.encode(), dedupe_keys)
        if clean_bytes is None:
            return RawScrub(None, removed)
        document = json.loads(clean_bytes)
        mode = "foreign"  # the person's own events are gone; what is left is other persons' events
    elif mode == "own":
        document, removed, whole = _remove_items(document, needles)
        if whole:
            return RawScrub(None, removed)
    document, redacted = redact(document, needles)
    if not (removed or redacted):
        return RawScrub(text.encode(), located=False)
    return RawScrub(_dump(document), removed, redacted)


def _is_canonical(document: Any) -> bool:
    items = document.get("batch") if isinstance(document, dict) else None
    first = items[0] if isinstance(items, list) and items else document
    return isinstance(first, dict) and "event_id" in first and "source" in first


def _remove_items(document: Any, needles: Needles) -> tuple[Any, int, bool]:
    """(document without the person's items, items removed, whether the document must go whole)."""
    lists = _outermost_record_lists(document)
    removed = 0
    for records in lists:
        kept = [r for r in records if not needles.hit(_text(r))]
        removed += len(records) - len(kept)
        records[:] = kept
    if not removed:
        return document, 0, needles.hit(_text(document))  # one item: the person's when it names them
    left = any(lists)
    return document, removed, not left or needles.hit(_text(document))  # the envelope names them: theirs too


def _outermost_record_lists(document: Any) -> list[list[Any]]:
    """The shallowest lists of objects (a batch, a page of orders, the rows of a file): the body's items."""
    level: list[Any] = [document]
    while level:
        found = [v for v in level if isinstance(v, list) and any(isinstance(e, dict) for e in v)]
        if found:
            return found
        nxt: list[Any] = []
        for value in level:
            if isinstance(value, dict):
                nxt.extend(value.values())
            elif isinstance(value, list):
                nxt.extend(value)
        level = nxt
    return []


def redact(value: Any, needles: Needles) -> tuple[Any, int]:
    """`value` with the person's fields redacted: an object in a list that names them directly (an identifier
    entry `{"type", "value"}`, a recipient) is dropped, an entry keyed by them dropped, any other string masked;
    a string holding JSON (an SNS `Message`) is redacted inside and kept as JSON text."""
    return prune(
        value,
        drop_element=lambda e: isinstance(e, dict) and any(isinstance(v, str) and needles.hit(v) for v in e.values()),
        drop_entry=lambda key, _e: needles.hit(key),
        scrub_text=lambda text: _redact_string(text, needles),
    )


def _redact_string(text: str, needles: Needles) -> tuple[str, int]:
    if not needles.hit(text):
        return text, 0
    inner = _json_inside(text)
    if inner is not None:
        clean, n = redact(inner, needles)
        return json.dumps(clean, ensure_ascii=False), n
    return needles.mask(text), 1


def _json_inside(text: str) -> Any:
    """The object or array a string holds as JSON text (an SNS `Message`), else None."""
    if text.lstrip()[:1] not in ("{", "["):
        return None
    try:
        return archived_json(text)
    except InvalidInputError:
        return None


def _scrub_plain(text: str, needles: Needles, mode: Mode) -> RawScrub:
    """Not JSON: JSONL or CSV rows (import files), else one item (a WeChat XML push, an encrypted body)."""
    lines = text.splitlines(keepends=True)
    if len(lines) > 1 and all(_json_object(line) for line in lines if line.strip()):
        kept = [line for line in lines if not needles.hit(line)]
        removed = len(lines) - len(kept)
        return RawScrub("".join(kept).encode(), removed) if removed else RawScrub(text.encode(), located=False)
    rows = _csv_rows(text)
    if rows is not None and len(rows) > 1:
        return _scrub_csv(text, rows, needles)
    if mode == "own":
        # a single item that delivered the person's event: theirs, even when its text hides them (encrypted)
        return RawScrub(None)
    masked = needles.mask(text)
    return RawScrub(masked.encode(), redacted=1) if masked != text else RawScrub(text.encode(), located=False)


def _json_object(line: str) -> bool:
    try:
        return isinstance(archived_json(line), dict)
    except InvalidInputError:
        return False


def _csv_rows(text: str) -> list[list[str]] | None:
    if not text.lstrip("\ufeff").split("\n", 1)[0].count(","):
        return None
    try:
        return list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error:
        return None


def _scrub_csv(text: str, rows: list[list[str]], needles: Needles) -> RawScrub:
    """Rows naming the person go (the header row stays); the rest is written back as it was read."""
    header, body = rows[0], rows[1:]
    kept = [row for row in body if not any(needles.hit(cell) for cell in row)]
    removed = len(body) - len(kept)
    if not removed:
        return RawScrub(text.encode(), located=False)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n" if "\r\n" in text else "\n")
    writer.writerows([header, *kept])
    return RawScrub(out.getvalue().encode(), removed)


def scrub_rows(body: bytes, needles: Needles) -> RawScrub:
    """A file of rows (import files, rejects, reports): only rows (or records) naming the person go; the file stays
    even when no row is left (it is a record of the import)."""
    gzipped = body[:2] == _GZIP_MAGIC
    try:
        text = (_gunzip(body) if gzipped else body).decode("utf-8")
    except (UnicodeDecodeError, OSError, EOFError, zlib.error):
        return RawScrub(body, located=False)
    if not needles.hit(text):
        return RawScrub(body, located=False)
    try:
        document = archived_json(text)
    except InvalidInputError:
        out = _scrub_plain(text, needles, "foreign")
    else:
        removed = 0
        for records in _outermost_record_lists(document):
            kept = [r for r in records if not needles.hit(_text(r))]
            removed += len(records) - len(kept)
            records[:] = kept
        document, redacted = redact(document, needles)
        out = RawScrub(_dump(document), removed, redacted)
    if out.body is None or not out.changed:
        return RawScrub(body, located=False)
    return RawScrub(gzip.compress(out.body, mtime=0) if gzipped else out.body, out.removed, out.redacted)


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _dump(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
