"""Which reader reads a data file: CSV (plain or compressed) unless the file's name says Parquet,
Feather, SPSS, Stata or Excel.

Parquet and Feather are read by pyarrow (a dependency); SPSS, Stata and Excel need the optional
packages of `pip install 'mlm[formats]'` (pyreadstat, openpyxl). Each is imported only when such a file
is read, so CSV users pay nothing for them at start-up.
Every reader gives the Frame the CSV reader gives: numbers as float64, text as factors with levels in
R's sort order, column names made syntactic as make.names() makes them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from importlib import import_module

from mlmcli.errors import DataError
from mlmcli.io.csv import read_csv
from mlmcli.io.frame import Frame, text_among_numbers

EXTRA = "pip install 'mlm[formats]'"

# suffix -> (what the file is, "module:function" of its reader, the package it needs)
READERS: dict[str, tuple[str, str, str]] = {
    ".parquet": ("Parquet", "mlmcli.io.parquet:read_parquet", "pyarrow"),
    ".pq": ("Parquet", "mlmcli.io.parquet:read_parquet", "pyarrow"),
    ".feather": ("Feather", "mlmcli.io.parquet:read_feather", "pyarrow"),
    ".arrow": ("Feather", "mlmcli.io.parquet:read_feather", "pyarrow"),
    ".sav": ("SPSS", "mlmcli.io.labelled:read_spss", "pyreadstat"),
    ".zsav": ("SPSS", "mlmcli.io.labelled:read_spss", "pyreadstat"),
    ".dta": ("Stata", "mlmcli.io.labelled:read_stata", "pyreadstat"),
    ".xlsx": ("Excel", "mlmcli.io.excel:read_xlsx", "openpyxl"),
    ".xlsm": ("Excel", "mlmcli.io.excel:read_xlsx", "openpyxl"),
}
# formats people have that no reader here takes: say what to do instead of reading them as CSV
_REFUSED = {
    ".xls": "old Excel (.xls) files are not read: save the sheet as .xlsx or .csv",
    ".por": "SPSS portable (.por) files are not read: save the data as .sav",
    ".rds": "R's .rds files are not read: write the data with write.csv() or arrow::write_parquet()",
    ".rdata": "R's .RData files are not read: write the data with write.csv() or arrow::write_parquet()",
    ".sas7bdat": "SAS (.sas7bdat) files are not read: export the data as .csv",
}


def kind_of(path: str) -> str | None:
    """The suffix of a non-CSV format the file's name has (".parquet", ...), or None for CSV."""
    if path == "-":
        return None
    low = path.lower()
    suffix = os.path.splitext(low)[1]
    if suffix in _REFUSED:
        raise DataError(f"'{path}': {_REFUSED[suffix]}")
    return suffix if suffix in READERS else None


def reader(suffix: str) -> Callable[..., Frame]:
    """The reader of a format, or one line naming the pip install that brings its package."""
    what, target, package = READERS[suffix]
    module, name = target.split(":")
    try:
        import_module(package)
    except ImportError:
        # pyarrow is a dependency of mlm itself: missing, the install is broken, not short of an extra
        hint = f"pip install {package}" if package == "pyarrow" else EXTRA
        raise DataError(f"reading {what} files ({suffix}) needs the package {package}: {hint}") from None
    return getattr(import_module(module), name)


def read_data(
    path: str, columns: Iterable[str] | None = None, sep: str | None = None, sheet: str | None = None
) -> Frame:
    """Read DATA by its name's suffix: CSV (the default; also "-", stdin), or Parquet, Feather, SPSS,
    Stata, Excel. `columns`: make.names of the columns to convert (None: all; an unknown name makes every
    column read, so that the caller's error can list them). `sheet`: an Excel sheet's name or 1-based
    position (the first sheet by default)."""
    suffix = kind_of(path)
    columns = None if columns is None else list(columns)
    if suffix is None:
        if sheet is not None:
            raise DataError(f"--sheet applies to Excel files (.xlsx); '{path}' is read as CSV")
        frame = read_csv(path, columns=columns, sep=sep)
        frame.warnings += text_among_numbers(frame, columns or [])
        return frame
    if sep is not None:
        raise DataError(f"--sep applies to CSV files; '{path}' is a {READERS[suffix][0]} file")
    if sheet is not None and READERS[suffix][0] != "Excel":
        raise DataError(f"--sheet applies to Excel files (.xlsx); '{path}' is a {READERS[suffix][0]} file")
    if not os.path.exists(path):
        raise DataError(f"cannot open file '{path}': no such file")
    if os.path.isdir(path):
        raise DataError(f"cannot open file '{path}': it is a directory")
    wanted = None if columns is None else set(columns)
    read = reader(suffix)
    if READERS[suffix][0] != "Excel":
        return read(path, wanted)
    frame = read(path, wanted, sheet)
    frame.warnings += text_among_numbers(frame, columns or [])  # typed as a CSV file's columns are
    return frame
