"""CSV files we write are safe to open in a spreadsheet: no cell runs as a formula (issue 12, point 6)."""

from __future__ import annotations

import csv
import io

import pytest

from cdp.shared.csv_safe import SafeWriter, safe_cell


@pytest.mark.parametrize(
    "cell",
    [
        '=HYPERLINK("http://evil.example","click")',
        "=1+1",
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(A1:A9)",
        "\t=1+1",
        "\r=1+1",
        "+86 138 0013 8000",  # a space is Excel's intersection operator: not a plain number
        "-",
        "=",
    ],
)
def test_a_cell_a_spreadsheet_would_run_gets_a_leading_quote(cell: str) -> None:
    assert safe_cell(cell) == "'" + cell


@pytest.mark.parametrize(
    "cell", ["李娜", "SO-1", "a=b", "13800138000", "-12.50", "+8613800138000", "1e-3", "", 42, -3, None, 2.5]
)
def test_other_cells_and_plain_numbers_are_written_as_they_are(cell: object) -> None:
    assert safe_cell(cell) == cell


def test_the_safe_writer_neutralizes_every_cell_of_every_row() -> None:
    # Given rows with formula cells in any column
    out = io.StringIO()
    writer = SafeWriter(out, lineterminator="\n")
    writer.writerow(("row", "raw"))
    writer.writerows([(1, "=cmd"), (2, "@x")])
    # When the file is read back
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    # Then no cell starts with a formula prefix
    assert rows == [["row", "raw"], ["1", "'=cmd"], ["2", "'@x"]]
