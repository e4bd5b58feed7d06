"""Excel workbooks (.xlsx, openpyxl): one sheet, read as read.csv reads that sheet saved as CSV.

The first row with anything in it is the header; rows with nothing in them are skipped, as read.csv
skips blank lines. Each cell is written as the CSV field Excel would export (numbers in full, TRUE and
FALSE, dates as 2024-01-31 or 2024-01-31 12:00:00) and the columns are converted by R's
type.convert rules, as for a CSV file: numbers, logicals, text as factors. An empty cell is missing
(Excel has no empty string); so is a cell holding NA, as in a CSV file.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from typing import Any

from mlmcli.errors import DataError
from mlmcli.io.frame import Factor, Frame, convert_column, data_name, make_names
from mlmcli.io.typed import pick


def _field(v: Any) -> str:
    """A cell as Excel writes it to CSV (openpyxl gives ints for cells stored without a fraction)."""
    if v is None:
        return "NA"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)  # the shortest text that reads back as the same double
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d") if v.time() == dt.time() else v.isoformat(sep=" ")
    if isinstance(v, (dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, str):
        return v if v.strip() else "NA"
    return str(v)


def _sheet(book: Any, sheet: str | None, path: str) -> Any:
    """A sheet by name, else by 1-based position (readxl's `sheet =`); the first one by default."""
    names = list(book.sheetnames)
    if sheet is None:
        return book[names[0]]
    if sheet in names:
        return book[sheet]
    if sheet.strip().isdigit() and 1 <= int(sheet) <= len(names):
        return book[names[int(sheet) - 1]]
    shown = ", ".join(repr(n) for n in names)
    raise DataError(f"'{path}' has no sheet {sheet!r}: its sheets are {shown} (or give a position, 1 to {len(names)})")


def _rows(ws: Any) -> list[list[Any]]:
    """The sheet's rows that have something in them, blank text counted as nothing."""
    out = []
    for row in ws.iter_rows(values_only=True):
        cells = list(row)
        if any(c is not None and not (isinstance(c, str) and not c.strip()) for c in cells):
            out.append(cells)
    return out


def read_xlsx(path: str, columns: set[str] | None = None, sheet: str | None = None) -> Frame:
    """A sheet of an .xlsx workbook, as read.csv() reads it saved as CSV."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read '{path}' as an Excel file: {exc}") from None
    try:
        ws = _sheet(book, sheet, path)
        rows = _rows(ws)
    finally:
        book.close()
    if not rows:
        raise DataError(f"'{path}': the sheet '{ws.title}' is empty")
    width = max(len(r) for r in rows)
    # a column with neither a header nor a value (formatting only) is not there
    while width > 0 and all(len(r) < width or r[width - 1] is None for r in rows):
        width -= 1
    header = ["" if c is None else str(c) for c in rows[0][:width]] + [""] * (width - len(rows[0]))
    body = [r[:width] + [None] * (width - len(r)) for r in rows[1:]]
    if not body:
        raise DataError(f"'{path}': no data rows, only a header line (sheet '{ws.title}')")
    chosen = pick(header, columns)
    out: dict[str, Any] = {}
    int_columns: set[str] = set()
    for j, name in enumerate(make_names(header)):
        if name not in chosen:
            continue
        col, is_int = convert_column([_field(r[j]) for r in body])
        out[name] = col
        if is_int and not isinstance(col, Factor):
            int_columns.add(name)
    return Frame(name=data_name(path), columns=out, n_rows=len(body), int_columns=int_columns)
