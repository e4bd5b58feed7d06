"""DATA for --engine dask: a Parquet file, a folder of Parquet files, or a glob of CSV files
(.csv, .csv.gz), as partitions, each turned into a Frame as the in-memory reader would give it."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

import numpy as np

from mlmcli.errors import DataError
from mlmcli.io.frame import Factor, Frame, make_name, make_names
from mlmcli.rcompat.rsort import collation_key

# what a partition's column holds; "missing" (every value NA) agrees with any other kind
KINDS = ("integer", "double", "logical", "text", "missing")


@dataclass
class Source:
    """The files of DATA, their (make.names) columns and R's data name."""

    name: str
    kind: str  # "parquet" or "csv"
    files: list[str]
    columns: dict[str, str]  # make.names name -> the name in the files
    sep: str = ","  # the CSV files' separator (--sep)


def open_source(data: str, sep: str | None = None) -> Source:
    """The files behind DATA, after checking that they agree in their columns (and, for Parquet,
    in the columns' types); `sep`: the CSV files' separator, as --sep gives it to read.csv."""
    # absolute paths: the workers need not share the client's working directory
    path = os.path.abspath(data.rstrip("/")) if data.rstrip("/") else data
    if sep is not None and (os.path.isdir(path) or path.endswith(".parquet")):
        raise DataError(f"--sep applies to CSV files; '{data}' is Parquet data")
    if os.path.isdir(path):
        files = sorted(os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs if f.endswith(".parquet"))
        if not files:
            raise DataError(f"no .parquet files in the folder {data}")
        return _parquet(files, make_name(os.path.basename(path)))
    if path.endswith(".parquet"):
        if not os.path.exists(path):
            raise DataError(f"cannot open file '{data}': no such file")
        return _parquet([path], make_name(os.path.basename(path)[: -len(".parquet")]))
    files = sorted(os.path.abspath(f) for f in glob.glob(data))
    if not files:
        raise DataError(
            f"no files match {data} (--engine dask reads a Parquet file, a folder of Parquet "
            "files, or a quoted glob of .csv or .csv.gz files)"
        )
    bad = [f for f in files if not f.endswith((".csv", ".csv.gz"))]
    if bad:
        raise DataError(f"--engine dask reads .csv and .csv.gz files (and Parquet): {bad[0]} is neither")
    return _csv(files, _glob_name(data, files), sep)


def _glob_name(data: str, files: list[str]) -> str:
    """R's data name: the file's for one file, else the folder's."""
    if len(files) == 1 and not glob.has_magic(data):
        base = os.path.basename(files[0])
        return make_name(base[: -len(".csv.gz")] if base.endswith(".gz") else base[: -len(".csv")])
    folder = os.path.dirname(data) or "."
    return make_name(os.path.basename(os.path.abspath(folder)))


def _parquet(files: list[str], name: str) -> Source:
    import pyarrow.parquet as pq

    first = None
    for f in files:
        try:
            schema = pq.read_schema(f)
        except Exception as e:  # pyarrow raises several types for a file that is not Parquet
            raise DataError(f"cannot read {f} as Parquet: {e}") from None
        fields = {fld.name: str(fld.type) for fld in schema if not fld.name.startswith("__")}
        if first is None:
            first = (f, fields)
            continue
        f0, fields0 = first
        if list(fields) != list(fields0):
            raise DataError(
                f"partitions disagree in their columns: {f0} has {', '.join(fields0)}; {f} has {', '.join(fields)}"
            )
        for col, typ in fields.items():
            if _arrow_kind(typ) != _arrow_kind(fields0[col]):
                raise DataError(
                    f"partitions disagree in the type of column '{col}': {fields0[col]} in {f0}, {typ} in {f}"
                )
    assert first is not None
    names = list(first[1])
    return Source(name, "parquet", files, dict(zip(make_names(names), names, strict=True)))


def _arrow_kind(typ: str) -> str:
    if typ.startswith(("int", "uint")):
        return "integer"
    if typ.startswith(("float", "double", "decimal", "halffloat")):
        return "double"
    if typ == "bool":
        return "logical"
    return "text"


def _csv(files: list[str], name: str, sep: str | None) -> Source:
    from mlmcli.io.source import Source as CsvFile
    from mlmcli.io.source import choose_separator

    separator = choose_separator(CsvFile(files[0]), sep)
    first = None
    for f in files:
        header = csv_header(f, separator)
        if first is None:
            first = (f, header)
        elif header != first[1]:
            raise DataError(
                f"partitions disagree in their columns: {first[0]} has {', '.join(first[1])}; "
                f"{f} has {', '.join(header)}"
            )
    assert first is not None
    return Source(name, "csv", files, dict(zip(make_names(first[1]), first[1], strict=True)), separator)


def csv_header(path: str, sep: str = ",") -> list[str]:
    """A CSV file's header line as the in-memory reader finds it: binary data, text in UTF-16 without
    its byte-order mark or damaged compression refused, blank lines before it skipped."""
    import csv
    import io

    from mlmcli.io.source import HEAD_BYTES, decode
    from mlmcli.io.source import Source as CsvFile

    src = CsvFile.open(path)
    src.check_text()
    limit = HEAD_BYTES
    while True:
        head = src.read(limit)
        ended = len(head) < limit
        # whole lines only: a character cut at the end would make the text undecodable as UTF-8
        text = decode(head if ended else head[: head.rfind(b"\n") + 1])
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=False)
        try:
            header = next((row for row in reader if row), None)
        except csv.Error as exc:
            raise DataError(f"'{path}' line {reader.line_num}: {exc}") from None
        if header is not None:
            return header
        if ended:
            raise DataError(f"'{path}' is empty: no header line")
        limit *= 4


def read_partitions(source: Source, columns: list[str]) -> list:
    """One dask.delayed partition per file (CSV: a Frame made on the worker by read_csv_part) or per
    Parquet row group (a pandas DataFrame), holding the columns asked for (make.names)."""
    import dask

    if source.kind == "csv":
        read = dask.delayed(read_csv_part, pure=True)
        return [read(f, list(columns), source.sep) for f in source.files]
    import dask.dataframe as dd

    df = dd.read_parquet(source.files, columns=[source.columns[c] for c in columns])
    return list(df.to_delayed())


def read_csv_part(path: str, columns: list[str], sep: str = ",") -> Frame:
    """One CSV file of the data, read on a worker by the in-memory engine's CSV reader: the same
    checks (rows with another number of fields than the header, binary or damaged data, ...) and
    R's type.convert of the `columns`.  A file with a header line and no rows is a partition
    without rows (the data's other files hold them)."""
    from mlmcli.io.csv import read_csv
    from mlmcli.io.frame import NoDataRows

    try:
        frame = read_csv(path, columns=columns, sep=sep)
    except NoDataRows:
        return Frame("", {c: np.empty(0) for c in columns}, 0)
    for c in columns:
        if c not in frame.columns:  # the client read another header (a file changed since)
            raise DataError(f"'{path}' has no column '{c}' (its header changed while it was read?)")
    return frame


def partition_frame(
    part, columns: dict[str, str], name: str, csv: bool, kinds: dict[str, str] | None = None
) -> tuple[Frame, dict[str, str], set[str]]:
    """A partition as a Frame (columns under their make.names names), the kind of each column, and
    the columns R reads as integers.  `part`: a CSV file's Frame (read_csv_part) or a Parquet
    partition's pandas DataFrame.  `kinds`: the kinds over all partitions (a column that is all NA
    here takes the others' kind; integers become doubles where some partition has decimals)."""
    out: dict[str, np.ndarray | Factor] = {}
    found: dict[str, str] = {}
    ints: set[str] = set()
    n = part.n_rows if csv else len(part)
    for made, orig in columns.items():
        col, kind = _csv_column(part, made) if csv else _typed_column(part[orig])
        found[made] = kind
        if kinds is not None:
            col, kind = _as_kind(col, kinds[made], n)
        if kind == "integer":
            ints.add(made)
        out[made] = col
    return Frame(name, out, n, ints), found, ints


def _csv_column(frame: Frame, name: str) -> tuple[np.ndarray | Factor, str]:
    """A column read.csv's type.convert made of one file, and its kind."""
    col = frame.columns[name]
    if isinstance(col, Factor):
        if (col.codes < 0).all():
            return col, "missing"
        return col, "logical" if col.logical else "text"
    if np.isnan(col).all():
        return col, "missing"
    return col, "integer" if name in frame.int_columns else "double"


def _typed_column(series) -> tuple[np.ndarray | Factor, str]:
    """A Parquet column by its pandas dtype."""
    import pandas as pd

    if series.isna().all():
        return np.full(len(series), np.nan), "missing"
    if pd.api.types.is_bool_dtype(series.dtype):
        codes = np.where(series.isna(), -1, series.fillna(False).astype(bool)).astype(np.int64)
        return Factor(codes, ["FALSE", "TRUE"], logical=True), "logical"
    if pd.api.types.is_numeric_dtype(series.dtype):
        kind = "integer" if pd.api.types.is_integer_dtype(series.dtype) else "double"
        return series.astype("float64").to_numpy(na_value=np.nan), kind
    labels = series.astype(object)
    present = labels.notna().to_numpy()
    text = labels[present].astype(str)
    levels = sorted(set(text.tolist()), key=collation_key)
    index = {lev: i for i, lev in enumerate(levels)}
    codes = np.full(len(series), -1, dtype=np.int64)
    codes[present] = text.map(index).to_numpy(dtype=np.int64)
    return Factor(codes, levels), "text"


def _as_kind(col: np.ndarray | Factor, kind: str, n: int) -> tuple[np.ndarray | Factor, str]:
    """A partition's column as the kind all partitions agree on."""
    if kind in ("integer", "double"):
        if isinstance(col, Factor):  # all NA here
            return np.full(n, np.nan), kind
        return col, kind
    if kind == "logical" and not isinstance(col, Factor):
        return Factor(np.full(n, -1, dtype=np.int64), ["FALSE", "TRUE"], logical=True), kind
    if kind == "text" and (not isinstance(col, Factor) or col.logical):
        if isinstance(col, Factor) and (col.codes >= 0).any():
            return col, kind
        return Factor(np.full(n, -1, dtype=np.int64), []), kind
    return col, kind


def agree(
    kinds: list[dict[str, str]], where: list[str], not_numbers: list[dict[str, str]] | None = None
) -> dict[str, str]:
    """The kind of each column over all partitions, or the error naming two that disagree (with the
    values that are not numbers where one partition has numbers and another text among numbers)."""
    out: dict[str, str] = {}
    seen: dict[str, int] = {}
    for i, part in enumerate(kinds):
        for col, kind in part.items():
            if kind == "missing":
                continue
            have = out.get(col)
            if have is None or have == kind:
                out[col], seen[col] = kind, seen.get(col, i)
            elif {have, kind} == {"integer", "double"}:
                out[col] = "double"
            else:
                j = seen[col]
                text = [m for m in (i, j) if not_numbers and col in not_numbers[m]]
                detail = f" ({not_numbers[text[0]][col]})" if text and not_numbers else ""
                raise DataError(
                    f"partitions disagree in the type of column '{col}': {_kind_words(have)} in "
                    f"{where[j]}, {_kind_words(kind)} in {where[i]}{detail}"
                )
    for part in kinds:
        for col in part:
            out.setdefault(col, "double")
    return out


def _kind_words(kind: str) -> str:
    return {"integer": "numbers", "double": "numbers", "logical": "TRUE/FALSE values", "text": "text"}[kind]
