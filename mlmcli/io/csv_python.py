"""The pure-Python CSV reader: fast to start, so the command line answers small files quickly.
Splits the text (csv_text) and converts the wanted columns as R's type.convert does (frame)."""

from __future__ import annotations

import numpy as np

from mlmcli.io.csv_text import split_text
from mlmcli.io.frame import (
    INT32_MAX,
    Factor,
    Frame,
    convert_column,
    is_integer_text,
    make_names,
    no_data_rows,
    select_columns,
)


def frame_from_text(text: str, source: str, sep: str, columns: set[str] | None, name: str) -> Frame:
    """The pure-Python reader: split the text, then convert the wanted columns."""
    # all fields parsed at once pays when all columns are wanted; else the wanted ones, column by column
    header, raw_columns, n, whole = split_text(text, source, sep, numbers=columns is None)
    names = select_columns(header, columns, source, sep)
    if n == 0:
        raise no_data_rows(source)
    k = len(header)
    out: dict[str, np.ndarray | Factor] = {}
    int_columns: set[str] = set()
    for j, (col_name, values) in enumerate(zip(make_names(header), raw_columns, strict=True)):
        if col_name not in names:
            continue
        if whole is not None:
            col: np.ndarray | Factor = whole[j::k].copy()
            is_int = is_integer_text(values) and np.abs(col).max() <= INT32_MAX
        else:
            col, is_int = convert_column(values)
        out[col_name] = col
        if is_int:
            int_columns.add(col_name)
    return Frame(name=name, columns=out, n_rows=n, int_columns=int_columns)
