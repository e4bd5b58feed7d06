"""The data frame every reader gives, and R's rules for it: read.csv's type.convert of a column
of strings (logical, integer, double or factor with levels in R's sort order) and make.names
(unique = TRUE) for column names, since formulas refer to those names.  TRUE/FALSE columns (R's
logicals) become factors with the two levels FALSE and TRUE."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from mlmcli.errors import DataError
from mlmcli.io.csv_text import try_numbers
from mlmcli.io.source import SEPARATORS
from mlmcli.rcompat.names import RESERVED
from mlmcli.rcompat.rsort import collation_key

INT32_MAX = 2147483647

# R_strtod's accepted forms (type.convert): decimal with optional exponent (a bare
# "1e" too), hexadecimal, Inf/infinity/NaN in any case; spaces around are allowed.
_NUMBER = (
    r"[ \t]*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d*)?|0[xX][0-9a-fA-F]+"
    r"|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN])[ \t]*"
)
_NUMBER_FIELD = re.compile(_NUMBER, re.ASCII)
# integers: type.convert's strtol accepts leading but not trailing blanks
_INTEGER_FIELD = re.compile(r"[ \t]*[+-]?\d+", re.ASCII)


def all_integers(values: list[str]) -> bool:
    """Every field is an integer as type.convert's strtol reads it (leading but no trailing blanks)."""
    return bool(values) and all(_INTEGER_FIELD.fullmatch(v) for v in set(values))


_PLAIN_FLOAT = re.compile(r"[ \t]*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[ \t]*", re.ASCII)
_LOGICALS = {"TRUE": 1, "T": 1, "FALSE": 0, "F": 0}


@dataclass
class Factor:
    """A categorical column: level index per row (-1 = missing) and the level labels."""

    codes: np.ndarray
    levels: list[str]
    logical: bool = False  # R logical (TRUE/FALSE): both levels stay even if unused
    labelled: bool = False  # SPSS/Stata value labels made a factor (haven::as_factor)

    def __len__(self) -> int:
        return len(self.codes)


@dataclass
class Frame:
    """The data: R's data name, the columns by (make.names) name, the number of rows."""

    name: str
    columns: dict[str, np.ndarray | Factor]
    n_rows: int
    # numeric columns R reads as integer: their values print without exponent ("100000")
    int_columns: set[str] = field(default_factory=set)
    # what the reader did beyond R's read.csv rules (labelled columns made factors), for --verbose
    notes: list[str] = field(default_factory=list)
    # what the user should hear whatever --verbose says (numbers read as text), printed as notes
    warnings: list[str] = field(default_factory=list)


def make_name(name: str) -> str:
    """R's make.names() of one string."""
    if name and (name[0].isalpha() or name[0] == "."):
        need_prefix = name[0] == "." and len(name) > 1 and name[1].isdigit()
    else:
        need_prefix = True
    if need_prefix:
        name = "X" + name
    name = "".join(c if (c.isalnum() or c in "._") else "." for c in name)
    if name in RESERVED or name == "..." or re.fullmatch(r"\.\.\d+", name):
        name += "."
    return name


def make_names(names: list[str]) -> list[str]:
    """R's make.names(names, unique = TRUE): syntactic, then make.unique's ".1", ".2".

    As in R, names that were already syntactic keep their spelling first: make.unique
    sees them before the names make.names had to change ("" and "X" give "X.1" and "X").
    """
    fixed = [make_name(n) for n in names]
    order = sorted(range(len(names)), key=lambda i: fixed[i] != names[i])
    out = [fixed[i] for i in order]
    taken = set(out)
    seen: set[str] = set()
    counters: dict[str, int] = {}
    for i, n in enumerate(out):
        if n in seen:
            k = counters.get(n, 0)
            while True:
                k += 1
                candidate = f"{n}.{k}"
                if candidate not in taken:
                    break
            counters[n] = k
            out[i] = candidate
            taken.add(candidate)
        seen.add(out[i])
    result = [""] * len(out)
    for i, name in zip(order, out, strict=True):
        result[i] = name
    return result


def _hex_or_odd_float(s: str) -> float:
    t = s.strip()
    low = t.lower().lstrip("+-")
    sign = -1.0 if t.startswith("-") else 1.0
    if low.startswith("0x"):
        return sign * float(int(low, 16))
    if low.endswith(("e", "e+", "e-")):  # R reads "1e" as 1
        return sign * float(low.rstrip("e+-"))
    return float(t)


def _numeric_column(values: list[str]) -> tuple[np.ndarray, bool] | None:
    """The column as float64 if R would read it as numbers; also whether R reads integers."""
    present = [v for v in values if v != "NA" and v.strip() != ""]
    if not present:
        return np.full(len(values), np.nan), False
    # field by field, over the distinct values: one regex over the joined column backtracks
    # exponentially on some inputs
    distinct = set(present)
    if not all(_NUMBER_FIELD.fullmatch(v) for v in distinct):
        return None
    is_int = all_integers(present)
    out = np.empty(len(values))
    for i, v in enumerate(values):
        if v == "NA" or v.strip() == "":
            out[i] = np.nan
        elif _PLAIN_FLOAT.fullmatch(v):
            out[i] = float(v)
        else:
            out[i] = _hex_or_odd_float(v)
    if is_int and np.nanmax(np.abs(out)) > INT32_MAX:
        is_int = False
    return out, is_int


def convert(values: list[str]) -> tuple[np.ndarray | Factor, bool]:
    """R's type.convert of one column: logical, integer, double or factor."""
    present = {v for v in values if v != "NA" and v.strip() != ""}
    if present <= _LOGICALS.keys():  # a column with no values at all is logical too, as in R
        codes = np.array([_LOGICALS.get(v, -1) if v.strip() else -1 for v in values], dtype=np.int64)
        return Factor(codes, ["FALSE", "TRUE"], logical=True), False
    numeric = _numeric_column(values)
    if numeric is not None:
        return numeric
    # text: "NA" is missing, an empty field is the level ""
    levels = sorted({v for v in values if v != "NA"}, key=collation_key)
    index = {lev: i for i, lev in enumerate(levels)}
    codes = np.array([index.get(v, -1) for v in values], dtype=np.int64)
    return Factor(codes, levels), False


def text_among_numbers(frame: Frame, columns: Iterable[str], shown: int = 3) -> list[str]:
    """A note for each of `columns` that read.csv makes a factor although most of its distinct
    values are numbers (one "n/a" is enough): the column and its first values that are not."""
    out = []
    for name in dict.fromkeys(columns):
        found = not_numbers(frame.columns.get(name), shown)
        if found:
            out.append(text_note(name, found))
    return out


def text_note(name: str, not_numbers: str) -> str:
    """The note on a column of numbers read as text, given not_numbers()'s phrase."""
    return f"column '{name}' is read as text (a factor): {not_numbers}"


def not_numbers(col: np.ndarray | Factor | None, shown: int = 3) -> str | None:
    """'values that are not numbers: "n/a", ...' (the first `shown`, in the order the file has them)
    for a factor most of whose distinct values are numbers; None for any other column."""
    if not isinstance(col, Factor) or col.logical or col.labelled:
        return None
    words = [v for v in col.levels if not _NUMBER_FIELD.fullmatch(v)]
    if not words or len(words) * 2 > len(col.levels):
        return None
    # in the order the file has them, as one finds them there
    used, first = np.unique(col.codes[col.codes >= 0], return_index=True)
    seen = [col.levels[c] for c in used[np.argsort(first)]]
    words = [v for v in seen if not _NUMBER_FIELD.fullmatch(v)]
    import json  # a rare message: keep the module off the start-up path

    listed = ", ".join(json.dumps(v, ensure_ascii=False) for v in words[:shown])
    more = f" and {len(words) - shown} more" if len(words) > shown else ""
    return f"values that are not numbers: {listed}{more}"


def from_distinct(cats: list[str], codes: np.ndarray) -> tuple[np.ndarray | Factor, bool] | None:
    """R's type.convert of a column given as its distinct strings and each row's index into them
    (-1: NA), spread back over the rows; None where a value holds a carriage return (the
    pure-Python reader turns \\r\\n into \\n inside quotes, so it must read the file)."""
    if any("\r" in c for c in cats):
        return None
    missing = codes < 0
    col, is_int = convert(cats)
    if isinstance(col, Factor):
        table = col.codes if cats else np.zeros(1, dtype=np.int64)
        return Factor(np.where(missing, -1, table[np.maximum(codes, 0)]), col.levels, col.logical), False
    values = np.where(missing, np.nan, col[np.maximum(codes, 0)] if cats else 0.0)
    return values, is_int


def convert_column(values: list[str]) -> tuple[np.ndarray | Factor, bool]:
    """R's type.convert of one column of strings: the column, and whether R reads integers."""
    numbers = try_numbers(",".join(values), ",", len(values)) if values else None
    if numbers is not None:
        return numbers, is_integer_text(values) and np.abs(numbers).max() <= INT32_MAX
    return convert(values)


def is_integer_text(values: list[str]) -> bool:
    """No field has a decimal point, an exponent, NaN or Inf: R would read the numbers as integers."""
    joined = "".join(values)
    return not any(c in joined for c in ".eEnNiI")


class NoDataRows(DataError):
    """A CSV file with a header line and no rows (a partition of data may be one)."""


def no_data_rows(source: str) -> DataError:
    return NoDataRows(f"'{source}': no data rows, only a header line")


def select_columns(header: list[str], columns: set[str] | None, source: str, sep: str) -> set[str]:
    """The make.names of the columns to convert: those asked for, or all of them when some
    asked-for name is not in the file (so that the caller's unknown-column message can list
    every column)."""
    names = make_names(header)
    if columns is not None and columns <= set(names):
        return set(columns)
    if columns is not None and len(header) == 1:
        others = [s for s in SEPARATORS.values() if s != sep and s in header[0]]
        if others:
            shown = "\\t" if others[0] == "\t" else others[0]
            first = header[0] if len(header[0]) <= 40 else header[0][:37] + "..."
            raise DataError(
                f"'{source}': the header line is a single column '{first}' when split at "
                f"{sep!r}; if the file is separated by {shown!r}, give --sep '{shown}'"
            )
    return set(names)


def data_name(path: str) -> str:
    """R's name of the data (what `Data:` prints): the file name without its suffix, made syntactic."""
    return make_name(os.path.splitext(os.path.basename(path))[0])
