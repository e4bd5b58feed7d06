"""SPSS (.sav, .zsav) and Stata (.dta) files (pyreadstat), as haven reads them and as_factor() codes them.

haven::read_sav()/read_dta() give numbers, text and labelled columns; haven::as_factor() on the data
turns each labelled column into a factor (levels = "default"): a value with a label shows as the
label, one without as the value itself, and the levels are the labels and the values that occur,
sorted by value (labels no row uses are levels too; rows of one label share a level). SPSS user-missing
values are missing, as read_sav() makes them by default. Text columns become factors with levels in
R's sort order, as lmer makes them; dates count days and date-times seconds since 1970-01-01.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from mlmcli.errors import DataError
from mlmcli.io.frame import Factor, Frame, data_name
from mlmcli.io.typed import pick, text_factor, unusable
from mlmcli.rcompat.rsort import collation_key, format_number

_EPOCH = dt.datetime(1970, 1, 1)


def _value_text(v: Any) -> str:
    """as.character() of an unlabelled value (5 -> "5", 2.5 -> "2.5")."""
    return v if isinstance(v, str) else format_number(float(v))


def as_factor(values: list[Any], labels: dict[Any, str]) -> Factor:
    """haven::as_factor(x, levels = "default") of a labelled column (None: missing)."""
    present = {v for v in values if v is not None}
    numeric = all(not isinstance(v, str) for v in present | set(labels))
    if numeric:
        key = float
        labels = {float(k): lab for k, lab in labels.items()}
    else:
        key = collation_key  # a labelled text column sorts as R sorts text
        labels = {str(k): lab for k, lab in labels.items()}
    named = {
        (float(v) if numeric else str(v)): labels.get(float(v) if numeric else str(v), _value_text(v)) for v in present
    }
    named.update(labels)
    levels = list(dict.fromkeys(named[v] for v in sorted(named, key=key)))
    index = {lev: i for i, lev in enumerate(levels)}
    codes = np.array(
        [-1 if v is None else index[named[float(v) if numeric else str(v)]] for v in values], dtype=np.int64
    )
    return Factor(codes, levels, labelled=True)


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def _objects(column: str, series: Any) -> np.ndarray | Factor:
    """An object column: text, or dates (pyreadstat gives SPSS and Stata dates as datetime.date)."""
    values = [None if _is_missing(v) else v for v in series.tolist()]
    present = [v for v in values if v is not None]
    if all(isinstance(v, str) for v in present):
        uniques = list(dict.fromkeys(present))
        index = {u: i for i, u in enumerate(uniques)}
        return text_factor(uniques, np.array([-1 if v is None else index[v] for v in values], dtype=np.int64))
    if all(isinstance(v, dt.datetime) for v in present):
        return np.array([np.nan if v is None else (v - _EPOCH).total_seconds() for v in values])
    if all(isinstance(v, dt.date) and not isinstance(v, dt.datetime) for v in present):
        return np.array([np.nan if v is None else float((v - _EPOCH.date()).days) for v in values])
    raise unusable(column, "values of mixed types")


def _column(column: str, series: Any, labels: dict[Any, str] | None) -> np.ndarray | Factor:
    """One column as haven gives it (numbers are doubles, whatever the file's storage type)."""
    kind = series.dtype.kind
    if labels:
        raw = [None if _is_missing(v) else v for v in series.tolist()]
        return as_factor(raw, labels)
    if kind in "iufb":
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    if kind == "M":  # datetime64: seconds since 1970, as POSIXct
        ns = series.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.float64)
        return np.where(series.isna().to_numpy(), np.nan, ns / 1e9)
    if kind in "OUST" or str(series.dtype) in ("string", "str"):
        return _objects(column, series)
    raise unusable(column, f"values of type {series.dtype}")


def _read(path: str, columns: set[str] | None, read: Any, what: str) -> Frame:
    import pyreadstat

    try:
        _, meta = read(path, metadataonly=True)
        names = list(meta.column_names)
        chosen = {syntactic: names[j] for syntactic, j in pick(names, columns).items()}
        df, meta = read(path, usecols=list(chosen.values()))
    except (pyreadstat.ReadstatError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read '{path}' as a {what} file: {exc}") from None
    out: dict[str, np.ndarray | Factor] = {}
    notes: list[str] = []
    for syntactic, original in chosen.items():
        labels = meta.variable_value_labels.get(original)
        col = out[syntactic] = _column(original, df[original], labels)
        if labels and isinstance(col, Factor):
            shown = ", ".join(col.levels[:6]) + (", ..." if len(col.levels) > 6 else "")
            notes.append(
                f"column '{syntactic}' has {what} value labels: read as a factor with levels {shown} (haven::as_factor)"
            )
    n = len(df)
    if n == 0:
        raise DataError(f"'{path}': no data rows")
    return Frame(name=data_name(path), columns=out, n_rows=n, notes=notes)


def read_spss(path: str, columns: set[str] | None = None) -> Frame:
    """An SPSS .sav or .zsav file, as haven::as_factor(haven::read_sav(path)) gives it."""
    import pyreadstat

    return _read(path, columns, pyreadstat.read_sav, "SPSS")


def read_stata(path: str, columns: set[str] | None = None) -> Frame:
    """A Stata .dta file, as haven::as_factor(haven::read_dta(path)) gives it."""
    import pyreadstat

    return _read(path, columns, pyreadstat.read_dta, "Stata")
