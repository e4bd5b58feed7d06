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
from mlmcli.io.frame import Factor, Frame, data_name
from mlmcli.io.typed import fits_integer, pick, text_factor, unusable


def arrow_values(arr: Any, arrow_type: Any, dtype: Any, missing: float | int, safe: bool = True) -> np.ndarray:
    """A pyarrow array or chunked array cast to a fixed-width type, as one numpy array, nulls as
    `missing`, chunk by chunk into the result (no combined copy). Read through the buffers:
    pyarrow's own to_numpy imports pandas, which takes longer than reading the file."""
    arr = arr.cast(arrow_type, safe=safe)
    chunks = getattr(arr, "chunks", None) or [arr]
    out = np.empty(len(arr), dtype=dtype)
    pos = 0
    for c in chunks:
        n = len(c)
        validity, data = c.buffers()[:2]
        piece = out[pos : pos + n]
        if data is None:
            piece[:] = missing
        else:
            piece[:] = np.frombuffer(data, dtype=dtype, count=n, offset=c.offset * np.dtype(dtype).itemsize)
            if validity is not None and c.null_count:
                bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
                piece[bits[c.offset : c.offset + n] == 0] = missing
        pos += n
    return out


def _floats(arr: Any) -> np.ndarray:
    import pyarrow as pa

    # unsafe: an integer beyond 2^53 or a decimal becomes the nearest double, as R's as.numeric() makes it
    return arrow_values(arr, pa.float64(), np.float64, np.nan, safe=False)


def _indices(arr: Any) -> np.ndarray:
    import pyarrow as pa

    return arrow_values(arr, pa.int64(), np.int64, -1)


def arrow_column(column: str, chunked: Any) -> tuple[np.ndarray | Factor, bool]:
    """One pyarrow column as a Frame column, and whether R reads it as integer."""
    import pyarrow as pa

    arr = chunked.combine_chunks() if isinstance(chunked, pa.ChunkedArray) else chunked
    t = arr.type
    if pa.types.is_dictionary(t):
        levels = [str(v) for v in arr.dictionary.to_pylist()]
        return Factor(_indices(arr.indices), levels), False
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        encoded = arr.dictionary_encode()
        return text_factor(encoded.dictionary.to_pylist(), _indices(encoded.indices)), False
    if pa.types.is_boolean(t):
        codes = arrow_values(arr, pa.int8(), np.int8, -1).astype(np.int64)
        return Factor(codes, ["FALSE", "TRUE"], logical=True), False
    if pa.types.is_integer(t):
        values = _floats(arr)
        return values, fits_integer(values)
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return _floats(arr), False
    if pa.types.is_date(t):  # days since 1970, as.numeric() of R's Date
        return _floats(arr.cast(pa.date32()).cast(pa.int32())), False
    if pa.types.is_timestamp(t):  # seconds since 1970, as.numeric() of R's POSIXct
        return _floats(arr.cast(pa.timestamp("ns", tz=t.tz)).cast(pa.int64())) / 1e9, False
    if pa.types.is_null(t):  # a column of nothing but nulls: R's logical NA
        return Factor(np.full(len(arr), -1, dtype=np.int64), ["FALSE", "TRUE"], logical=True), False
    raise unusable(column, f"values of type {t}")


def _frame(table: Any, chosen: dict[str, int], name: str) -> Frame:
    """The Frame of `table`'s columns at the positions `chosen` gives under their make.names."""
    out: dict[str, np.ndarray | Factor] = {}
    int_columns: set[str] = set()
    for syntactic, j in chosen.items():
        out[syntactic], is_int = arrow_column(table.column_names[j], table.column(j))
        if is_int:
            int_columns.add(syntactic)
    if table.num_rows == 0:
        raise DataError(f"'{name}': no data rows")
    return Frame(name=name, columns=out, n_rows=table.num_rows, int_columns=int_columns)


def frame_from_arrow(table: Any, name: str, columns: set[str] | None = None) -> Frame:
    """A pyarrow Table as a Frame: the wanted columns (make.names of the table's) converted."""
    return _frame(table, pick(list(table.column_names), columns), name)


def _seekable(path: str) -> Any:
    """The path of a regular file; the bytes of a pipe or device, read once (the readers seek)."""
    import os
    import stat

    import pyarrow as pa

    with open(path, "rb") as fh:
        if stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return path
        return pa.BufferReader(fh.read())


def _read(path: str, columns: set[str] | None, open_table: Any, what: str) -> Frame:
    """`open_table(path)` gives the file's column names and a function reading the columns at some
    positions, in that order."""
    try:
        names, read = open_table(_seekable(path))
        chosen = pick(names, columns)
        table = read(list(chosen.values()))
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"cannot read '{path}' as a {what} file: {str(exc).splitlines()[0]}") from None
    return _frame(table, {s: k for k, s in enumerate(chosen)}, data_name(path))


def _by_position(names: list[str], read_names: Any, positions: list[int]) -> Any:
    """The columns at `positions` through a reader that takes names: a name the file holds more
    than once gives all of its columns, in the file's order, after the names asked for before it."""
    asked = list(dict.fromkeys(names[j] for j in positions))
    table = read_names(asked)
    start, where = 0, {}
    for name in asked:
        for j in (i for i, n in enumerate(names) if n == name):
            where[j] = start
            start += 1
    return table.select([where[j] for j in positions])


def read_parquet(path: str, columns: set[str] | None = None) -> Frame:
    """A Parquet file, as arrow::read_parquet() reads it."""
    import pyarrow.parquet as pq

    def open_table(p: str) -> tuple[list[str], Any]:
        # ParquetFile rather than read_table: the dataset layer behind read_table imports pandas (a second)
        f = pq.ParquetFile(p)
        names = list(f.schema_arrow.names)
        return names, lambda positions: _by_position(names, lambda cols: f.read(columns=cols), positions)

    return _read(path, columns, open_table, "Parquet")


def read_feather(path: str, columns: set[str] | None = None) -> Frame:
    """A Feather file, as arrow::read_feather() reads it: version 2 is the Arrow IPC file format."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    def open_table(p: str) -> tuple[list[str], Any]:
        try:
            reader = ipc.open_file(p)
        except pa.ArrowInvalid:  # Feather version 1, which pyarrow.feather still reads
            import pyarrow.feather as feather

            table = feather.read_table(p)
            return list(table.column_names), table.select
        return list(reader.schema.names), lambda cols: reader.read_all().select(cols)

    return _read(path, columns, open_table, "Feather")
