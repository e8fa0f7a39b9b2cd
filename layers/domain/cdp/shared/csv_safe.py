"""CSV files we write are opened in spreadsheet tools: a cell that starts with `=`, `+`, `-`, `@`, a tab or a
carriage return would run as a formula there (CSV/formula injection, OWASP). Every CSV writer goes through here."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# a plain number (-12.5, +8613800138000, 1e-3) is data, not a formula: left as written so that it stays a number
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")


def safe_cell(value: Any) -> Any:
    """The value, with a single quote in front when a spreadsheet would read it as a formula (OWASP's advice)."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) and not _NUMBER.match(value):
        return "'" + value
    return value


def safe_row(row: Iterable[Any]) -> list[Any]:
    return [safe_cell(v) for v in row]


class SafeWriter:
    """`csv.writer` whose every cell is neutralized (same arguments, same `writerow`/`writerows`)."""

    def __init__(self, handle: Any, **kwargs: Any) -> None:
        self._writer = csv.writer(handle, **kwargs)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow(safe_row(row))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)
