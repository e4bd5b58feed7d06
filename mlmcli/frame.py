"""A CSV file as R's read.csv(file, stringsAsFactors = TRUE) sees it.

Columns whose every non-missing field is a number become float64 (NaN for NA), text
columns become factors with levels in R's sort order, and TRUE/FALSE columns (R's
logicals) become factors with the two levels FALSE and TRUE. Column names are made
syntactic as make.names(unique = TRUE) does, since formulas refer to those names.
Plain csv module + numpy, so the command line starts fast.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
from dataclasses import dataclass, field

import numpy as np

from mlmcli.errors import DataError
from mlmcli.rsort import collation_key

_INT32_MAX = 2147483647

# R_strtod's accepted forms (type.convert): decimal with optional exponent (a bare
# "1e" too), hexadecimal, Inf/infinity/NaN in any case; spaces around are allowed.
_NUMBER = (
    r"[ \t]*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d*)?|0[xX][0-9a-fA-F]+"
    r"|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN])[ \t]*"
)
_NUMBERS = re.compile(rf"(?:{_NUMBER}\n)*{_NUMBER}")
# integers: type.convert's strtol accepts leading but not trailing blanks
_INTEGERS = re.compile(r"(?:[ \t]*[+-]?\d+\n)*[ \t]*[+-]?\d+")
_PLAIN_FLOAT = re.compile(r"[ \t]*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[ \t]*")
_LOGICALS = {"TRUE": 1, "T": 1, "FALSE": 0, "F": 0}

# R's reserved words: make.names appends a dot to them
_RESERVED = {
    "if", "else", "repeat", "while", "function", "for", "next", "break", "TRUE", "FALSE", "NULL",
    "Inf", "NaN", "NA", "NA_integer_", "NA_real_", "NA_character_", "NA_complex_", "in",
}


@dataclass
class Factor:
    """A categorical column: level index per row (-1 = missing) and the level labels."""

    codes: np.ndarray
    levels: list[str]
    logical: bool = False  # R logical (TRUE/FALSE): both levels stay even if unused

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


def make_name(name: str) -> str:
    """R's make.names() of one string."""
    if name and (name[0].isalpha() or name[0] == "."):
        need_prefix = name[0] == "." and len(name) > 1 and name[1].isdigit()
    else:
        need_prefix = True
    if need_prefix:
        name = "X" + name
    name = "".join(c if (c.isalnum() or c in "._") else "." for c in name)
    if name in _RESERVED or name == "..." or re.fullmatch(r"\.\.\d+", name):
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


def _data_name(source: str) -> str:
    if source == "-":
        return "stdin"
    base = os.path.basename(source)
    if base.lower().endswith(".csv"):
        base = base[:-4]
    return make_name(base)


def _read_text(source: str) -> str:
    try:
        if source == "-":
            raw = sys.stdin.buffer.read()
        else:
            with open(source, "rb") as fh:
                raw = fh.read()
    except FileNotFoundError:
        raise DataError(f"cannot open file '{source}': no such file") from None
    except IsADirectoryError:
        raise DataError(f"cannot open file '{source}': it is a directory") from None
    except OSError as exc:
        raise DataError(f"cannot open file '{source}': {exc.strerror}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


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
    joined = "\n".join(present)
    if not _NUMBERS.fullmatch(joined):
        return None
    is_int = _INTEGERS.fullmatch(joined) is not None
    out = np.empty(len(values))
    for i, v in enumerate(values):
        if v == "NA" or v.strip() == "":
            out[i] = np.nan
        elif _PLAIN_FLOAT.fullmatch(v):
            out[i] = float(v)
        else:
            out[i] = _hex_or_odd_float(v)
    if is_int and np.nanmax(np.abs(out)) > _INT32_MAX:
        is_int = False
    return out, is_int


def _convert(values: list[str]) -> tuple[np.ndarray | Factor, bool]:
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


def _try_numbers(text: str, count: int) -> np.ndarray | None:
    """numpy's parser for comma-separated plain numbers; None unless exactly `count` parse."""
    if " " in text or "\t" in text:  # numpy reads a blank field as -1
        return None
    try:
        arr = np.fromstring(text, sep=",")
    except ValueError:
        return None
    return arr if arr.size == count else None


def _is_integer_text(values: list[str]) -> bool:
    joined = "".join(values)
    return not any(c in joined for c in ".eEnNiI")


def _ragged(source: str, lineno: int, expected: int, found: int) -> DataError:
    return DataError(f"'{source}' line {lineno}: {found} fields, but the header has {expected}")


def _split_plain(lines: list[str], source: str) -> tuple[list[str], list[list[str]], int, str]:
    """Header and columns of a file without quotes: one split of the whole text."""
    first = 0
    while first < len(lines) and not lines[first]:
        first += 1
    if first == len(lines):
        raise DataError(f"'{source}' is empty: no header line")
    header = lines[first].split(",")
    k = len(header)
    numbered = [(i + 1, line) for i, line in enumerate(lines[first + 1 :], start=first + 1) if line]
    n = len(numbered)
    body = "\n".join(line for _, line in numbered)
    if body.count(",") != (k - 1) * n:
        for lineno, line in numbered:
            if line.count(",") != k - 1:
                raise _ragged(source, lineno, k, line.count(",") + 1)
    flat = body.replace("\n", ",").split(",") if n else []
    return header, [flat[j::k] for j in range(k)], n, body


def _split_quoted(text: str, source: str) -> tuple[list[str], list[list[str]], int]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=False)
    header: list[str] = []
    rows: list[list[str]] = []
    try:
        for row in reader:
            if not row:
                continue  # blank line, skipped as read.csv does
            if not header:
                header = row
            elif len(row) != len(header):
                raise _ragged(source, reader.line_num, len(header), len(row))
            else:
                rows.append(row)
    except csv.Error as exc:
        raise DataError(f"'{source}' line {reader.line_num}: {exc}") from None
    if not header:
        raise DataError(f"'{source}' is empty: no header line")
    columns = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in header]
    return header, columns, len(rows)


def read_csv(source: str) -> Frame:
    """Read a CSV file ("-" for stdin) as R's read.csv(source, stringsAsFactors = TRUE)."""
    text = _read_text(source)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    whole: np.ndarray | None = None
    if '"' in text:
        header, raw_columns, n = _split_quoted(text, source)
    else:
        header, raw_columns, n, body = _split_plain(text.split("\n"), source)
        if n:
            whole = _try_numbers(body.replace("\n", ","), n * len(header))
    names = make_names(header)
    columns: dict[str, np.ndarray | Factor] = {}
    int_columns: set[str] = set()
    for j, (name, values) in enumerate(zip(names, raw_columns, strict=True)):
        numbers = whole[j :: len(header)].copy() if whole is not None else None
        if numbers is None and values:
            numbers = _try_numbers(",".join(values), n)
        if numbers is not None:
            columns[name] = numbers
            if _is_integer_text(values) and np.abs(numbers).max() <= _INT32_MAX:
                int_columns.add(name)
            continue
        col, is_int = _convert(values)
        columns[name] = col
        if is_int:
            int_columns.add(name)
    return Frame(name=_data_name(source), columns=columns, n_rows=n, int_columns=int_columns)
