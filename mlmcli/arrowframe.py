"""Parquet and Feather files (pyarrow) as the Frame the CSV reader gives, read whole into memory.

As R's arrow package reads them, then lmer: strings are text (a factor with levels in R's sort order),
dictionary columns (pandas categoricals, R factors) are factors with the dictionary's levels in its
order, integers and floats are numbers (integers that fit R's integer range print as R's integers),
booleans are R's logicals, dates count days and timestamps seconds since 1970-01-01 (as.numeric of
R's Date and POSIXct). `frame_from_arrow` converts any pyarrow Table, so a reader that gets its
Table another way (a partition, bytes in memory) gives the same columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlmcli.errors import DataError
from mlmcli.formats import data_name
from mlmcli.frame import Factor, Frame
from mlmcli.typedcolumns import fits_integer, logical_factor, pick, text_factor, unusable


def _missing(arr: Any) -> np.ndarray:
    return arr.is_null().to_numpy(zero_copy_only=False)


def _indices(arr: Any) -> np.ndarray:
    return arr.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def arrow_column(column: str, chunked: Any) -> tuple[np.ndarray | Factor, bool]:
    """One pyarrow column as a Frame column, and whether R reads it as integer."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = chunked.combine_chunks() if isinstance(chunked, pa.ChunkedArray) else chunked
    t = arr.type
    if pa.types.is_dictionary(t):
        levels = [str(v) for v in arr.dictionary.to_pylist()]
        return Factor(_indices(arr.indices), levels), False
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        encoded = arr.dictionary_encode()
        return text_factor(encoded.dictionary.to_pylist(), _indices(encoded.indices)), False
    if pa.types.is_boolean(t):
        missing = _missing(arr)
        return logical_factor(arr.fill_null(False).to_numpy(zero_copy_only=False), missing), False
    if pa.types.is_integer(t):
        values = arr.cast(pa.float64()).to_numpy(zero_copy_only=False)
        return values, fits_integer(values)
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return arr.cast(pa.float64()).to_numpy(zero_copy_only=False), False
    if pa.types.is_date(t):
        days = pc.cast(arr.cast(pa.date32()), pa.int32()).cast(pa.float64())
        return days.to_numpy(zero_copy_only=False), False
    if pa.types.is_timestamp(t):
        seconds = pc.divide(arr.cast(pa.timestamp("ns", tz=t.tz)).cast(pa.int64()).cast(pa.float64()), 1e9)
        return seconds.to_numpy(zero_copy_only=False), False
    if pa.types.is_null(t):  # a column of nothing but nulls: R's logical NA
        return logical_factor(np.zeros(len(arr), dtype=bool), np.ones(len(arr), dtype=bool)), False
    raise unusable(column, f"values of type {t}")


def frame_from_arrow(table: Any, name: str, columns: set[str] | None = None) -> Frame:
    """A pyarrow Table as a Frame: the wanted columns (make.names of the table's) converted."""
    chosen = pick(list(table.column_names), columns)
    out: dict[str, np.ndarray | Factor] = {}
    int_columns: set[str] = set()
    for syntactic, original in chosen.items():
        out[syntactic], is_int = arrow_column(original, table.column(original))
        if is_int:
            int_columns.add(syntactic)
    if table.num_rows == 0:
        raise DataError(f"'{name}': no data rows")
    return Frame(name=name, columns=out, n_rows=table.num_rows, int_columns=int_columns)


def _read(path: str, columns: set[str] | None, schema: Any, read: Any, what: str) -> Frame:
    try:
        names = list(schema(path).names)
        chosen = pick(names, columns)
        table = read(path, list(chosen.values()))
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"cannot read '{path}' as a {what} file: {str(exc).splitlines()[0]}") from None
    return frame_from_arrow(table, data_name(path), columns)


def read_parquet(path: str, columns: set[str] | None = None) -> Frame:
    """A Parquet file, as arrow::read_parquet() reads it."""
    import pyarrow.parquet as pq

    return _read(path, columns, lambda p: pq.read_schema(p),
                 lambda p, cols: pq.read_table(p, columns=cols), "Parquet")


def read_feather(path: str, columns: set[str] | None = None) -> Frame:
    """A Feather (Arrow IPC) file, as arrow::read_feather() reads it."""
    import pyarrow.feather as feather
    import pyarrow.ipc as ipc

    def schema(p: str) -> Any:
        try:
            return ipc.open_file(p).schema
        except Exception:  # Feather version 1 has no IPC schema: read the table for its names
            return feather.read_table(p).schema

    return _read(path, columns, schema, lambda p, cols: feather.read_table(p, columns=cols), "Feather")
