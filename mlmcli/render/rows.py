"""Row-by-row output (predictions, augmented data) as CSV or as JSON records."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlmcli.io.frame import Factor

Cell = float | int | str | bool | None


def column_values(col: np.ndarray | Factor, integer: bool = False) -> list[list[Cell]]:
    """A column as plain values (one list per column: a poly() matrix gives several)."""
    if isinstance(col, Factor):
        if col.logical:
            return [[None if c < 0 else bool(c) for c in col.codes.tolist()]]
        return [[None if c < 0 else col.levels[c] for c in col.codes.tolist()]]
    arr = np.asarray(col, dtype=float)
    if arr.ndim == 2:
        return [_numbers(arr[:, j], False) for j in range(arr.shape[1])]
    return [_numbers(arr, integer)]


def _numbers(x: np.ndarray, integer: bool) -> list[Cell]:
    out: list[Cell] = []
    for v in x.tolist():
        if v != v or v in (float("inf"), float("-inf")):
            out.append(None)
        else:
            out.append(int(v) if integer and v == int(v) else v)
    return out


def named_columns(
    columns: dict[str, np.ndarray | Factor], int_columns: set[str] | frozenset[str] = frozenset()
) -> dict[str, list[Cell]]:
    """Name -> values; a matrix column "poly(x, 2)" becomes "poly(x, 2).1", "poly(x, 2).2" as R's
    data frames name them."""
    out: dict[str, list[Cell]] = {}
    for name, col in columns.items():
        parts = column_values(col, name in int_columns)
        if len(parts) == 1:
            out[name] = parts[0]
        else:
            for j, part in enumerate(parts):
                out[f"{name}.{j + 1}"] = part
    return out


def records(columns: dict[str, list[Cell]]) -> list[dict[str, Cell]]:
    names = list(columns)
    n = len(columns[names[0]]) if names else 0
    return [{name: columns[name][i] for name in names} for i in range(n)]


def _cell(v: Any) -> str:
    if v is None:
        return "NA"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, float):
        # whole numbers as R writes them (2, not 2.0); others in full (shortest round-trip)
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    return str(v)


def rows_csv(columns: dict[str, Sequence[Cell]]) -> str:
    """CSV with a header; NA for missing values, as write.csv writes them."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    names = list(columns)
    w.writerow(names)
    n = len(columns[names[0]]) if names else 0
    for i in range(n):
        w.writerow([_cell(columns[name][i]) for name in names])
    return buf.getvalue()


def columns_csv(report: dict, columns: dict[str, Sequence[Cell]]) -> str:
    """predict's and augment's CSV: the report's rows written from their columns, which keep every
    column's name (also with no rows) and its values as the fit read them."""
    return rows_csv(columns)
