"""A pandas DataFrame as R's data.frame the model is fitted to (what lmer(data = df) sees).

A Categorical column is a factor with its categories, in their order, as the levels; text columns
become factors with levels in R's sort order (as data.frame(stringsAsFactors = TRUE) and lmer's
model frame make them); bool columns are R's logicals; numbers stay numbers, integers within R's
integer range printing as integers. NaN, None and pandas' NA are NA. Column names are made
syntactic as data.frame(check.names = TRUE) does, since formulas refer to those names.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from mlmcli.errors import DataError
from mlmcli.io.frame import Factor, Frame, make_names
from mlmcli.rcompat.rsort import collation_key, format_number

_INT32_MAX = 2147483647


def frame_from_pandas(df: Any, columns: Iterable[str] | None = None, name: str = "data") -> Frame:
    """The Frame of a pandas DataFrame. `columns`: the (syntactic) names to convert, None for all;
    a name the data lack makes every column converted, so that the model's error can list them."""
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame or a path, not {type(df).__name__}")
    if len(df) == 0:
        raise DataError("the data frame has no rows")
    names = make_names([str(c) for c in df.columns])
    wanted = None if columns is None else set(columns)
    if wanted is not None and not wanted <= set(names):
        wanted = None
    out: dict[str, np.ndarray | Factor] = {}
    int_columns: set[str] = set()
    for j, col_name in enumerate(names):
        if wanted is not None and col_name not in wanted:
            continue
        col, is_int = _column(df.iloc[:, j], col_name)
        out[col_name] = col
        if is_int:
            int_columns.add(col_name)
    return Frame(name=name, columns=out, n_rows=len(df), int_columns=int_columns)


def _column(s: Any, name: str) -> tuple[np.ndarray | Factor, bool]:
    """One column as R holds it in a data.frame: a factor, a logical, or numbers."""
    import pandas as pd
    from pandas.api import types as pt

    missing = np.asarray(s.isna(), dtype=bool)
    if isinstance(s.dtype, pd.CategoricalDtype):
        codes = np.asarray(s.cat.codes, dtype=np.int64)
        levels = [_label(v) for v in s.cat.categories]
        if len(set(levels)) != len(levels):
            raise DataError(f"column '{name}': its categories print alike ({', '.join(levels)})")
        return Factor(codes, levels), False
    if pt.is_bool_dtype(s.dtype):
        values = np.asarray(s.astype("boolean").fillna(False), dtype=bool)
        return Factor(np.where(missing, -1, values.astype(np.int64)), ["FALSE", "TRUE"], logical=True), False
    if pt.is_numeric_dtype(s.dtype) and not pt.is_complex_dtype(s.dtype):
        x = np.asarray(s.astype("float64").to_numpy(na_value=np.nan), dtype=float)
        present = x[~np.isnan(x)]
        is_int = pt.is_integer_dtype(s.dtype) and (present.size == 0 or np.abs(present).max() <= _INT32_MAX)
        return x, bool(is_int)
    if pt.is_string_dtype(s.dtype) or s.dtype == object:
        values = s.to_numpy(dtype=object)
        present = values[~missing]
        if present.size and all(isinstance(v, (bool, np.bool_)) for v in present):
            codes = np.where(
                missing,
                -1,
                np.array([bool(v) if not m else False for v, m in zip(values, missing, strict=True)], dtype=np.int64),
            )
            return Factor(codes, ["FALSE", "TRUE"], logical=True), False
        labels = [_label(v) for v in present]
        levels = sorted(set(labels), key=collation_key)
        index = {lev: i for i, lev in enumerate(levels)}
        codes = np.full(len(values), -1, dtype=np.int64)
        codes[~missing] = [index[v] for v in labels]
        return Factor(codes, levels), False
    raise DataError(
        f"column '{name}' has the type {s.dtype}, which a model cannot use: convert it to numbers, "
        "text or a Categorical"
    )


def _label(v: Any) -> str:
    """A value as R's as.character prints it (a level's label)."""
    if isinstance(v, (bool, np.bool_)):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (float, np.floating)):
        return format_number(float(v))
    return str(v)
