"""Splitting CSV text into a header and columns of strings, in pure Python (fast to start).

Blank lines are skipped as read.csv skips them; a row with another number of fields than the
header is an error naming its line.
"""

from __future__ import annotations

import csv
import io

import numpy as np

from mlmcli.errors import DataError


def ragged(source: str, lineno: int, expected: int, found: int) -> DataError:
    return DataError(f"'{source}' line {lineno}: {found} fields, but the header has {expected}")


def _no_header(source: str) -> DataError:
    return DataError(f"'{source}' is empty: no header line")


def _split_plain(lines: list[str], source: str, sep: str) -> tuple[list[str], list[list[str]], int, str]:
    """Header and columns of a file without quotes: one split of the whole text."""
    first = 0
    while first < len(lines) and not lines[first]:
        first += 1
    if first == len(lines):
        raise _no_header(source)
    header = lines[first].split(sep)
    k = len(header)
    numbered = [(i + 1, line) for i, line in enumerate(lines[first + 1 :], start=first + 1) if line]
    n = len(numbered)
    body = "\n".join(line for _, line in numbered)
    for lineno, line in numbered:  # each line: a long row and a short one can make up the total
        if line.count(sep) != k - 1:
            raise ragged(source, lineno, k, line.count(sep) + 1)
    flat = body.replace("\n", sep).split(sep) if n else []
    return header, [flat[j::k] for j in range(k)], n, body


def _split_quoted(text: str, source: str, sep: str) -> tuple[list[str], list[list[str]], int]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=False)
    header: list[str] = []
    rows: list[list[str]] = []
    try:
        for row in reader:
            if not row:
                continue  # blank line, skipped as read.csv does
            if not header:
                header = row
            elif len(row) != len(header):
                raise ragged(source, reader.line_num, len(header), len(row))
            else:
                rows.append(row)
    except csv.Error as exc:
        raise DataError(f"'{source}' line {reader.line_num}: {exc}") from None
    if not header:
        raise _no_header(source)
    columns = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in header]
    return header, columns, len(rows)


def _quoted_header_only(text: str, sep: str) -> list[str] | None:
    """The header's fields when quotes occur in the header line only (R's write.csv quotes the
    names and not the numbers), so that the rows can take the plain path; else None."""
    start = len(text) - len(text.lstrip("\n"))
    end = text.find("\n", start)
    end = len(text) if end < 0 else end
    line = text[start:end]
    if text.find('"', end) >= 0 or line.count('"') % 2:
        return None
    fields = next(csv.reader([line], delimiter=sep, strict=False), [])
    # a separator inside a quoted name would make the plain split's field count differ
    return fields if len(fields) == line.count(sep) + 1 else None


def try_numbers(text: str, sep: str, count: int) -> np.ndarray | None:
    """numpy's parser for separated plain numbers; None unless exactly `count` parse."""
    if " " in text or "\t" in text or "\n" in text or "\r" in text:  # numpy reads a blank field as -1
        return None
    try:
        arr = np.fromstring(text, sep=sep)
    except ValueError:
        return None
    return arr if arr.size == count else None


def split_text(
    text: str, source: str, sep: str, numbers: bool = True
) -> tuple[list[str], list[list[str]], int, np.ndarray | None]:
    """Header, columns of strings, number of rows, and (with `numbers`, when every field is a
    plain number) all fields as one float array in row order."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    quoted_header = None
    if '"' in text:
        quoted_header = _quoted_header_only(text, sep)
        if quoted_header is None:
            header, columns, n = _split_quoted(text, source, sep)
            return header, columns, n, None
    header, columns, n, body = _split_plain(text.split("\n"), source, sep)
    if quoted_header is not None:
        header = quoted_header
    whole = try_numbers(body.replace("\n", sep), sep, n * len(header)) if n and numbers else None
    return header, columns, n, whole
