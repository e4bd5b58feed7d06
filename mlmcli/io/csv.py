"""A CSV file as R's read.csv(file, stringsAsFactors = TRUE) sees it, read by one of three engines.
Small files are split in pure Python (csv_python), so the command line starts fast; large ones go
through pyarrow's reader (csv_arrow) or pandas' C parser (csv_fast), which give the same Frame.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from mlmcli.errors import DataError
from mlmcli.io.csv_python import frame_from_text
from mlmcli.io.frame import Frame, make_name
from mlmcli.io.source import Source, choose_separator, decode, line_of, nul_in_field

# files from this size (in bytes, uncompressed) up are read by a native parser (pyarrow's, on
# every core, else pandas' C parser); below it the pure-Python reader is faster, because
# importing either library takes longer than reading a small file
FAST_MIN_BYTES = 5_000_000
ENGINES = ("python", "pandas", "arrow")


def read_csv(
    source: str, columns: Iterable[str] | None = None, sep: str | None = None, engine: str | None = None
) -> Frame:
    """Read a CSV file ("-" for stdin) as R's read.csv(source, sep, stringsAsFactors = TRUE).

    `columns`: make.names of the columns to convert (None: all); unknown names make every
    column read. `sep`: None means a tab for a .tsv file and a comma otherwise. gzip, bzip2
    and xz files are decompressed. `engine`: "python", "pandas", "arrow", or None to choose by
    size (the environment variable MLM_CSV_ENGINE overrides the choice). A native reader that
    cannot vouch for R's result on a file hands it on: arrow to pandas, pandas to python.
    """
    src = Source.open(source)
    src.check_text()
    sep = choose_separator(src, sep)
    name = make_name(src.base_name()[:-4] if src.base_name().lower().endswith((".csv", ".tsv")) else src.base_name())
    wanted = None if columns is None else set(columns)
    engine = engine or os.environ.get("MLM_CSV_ENGINE") or "auto"
    if engine not in ("auto", *ENGINES):
        raise DataError(f"unknown CSV reader {engine!r} (MLM_CSV_ENGINE): use python, pandas or arrow")
    raw: bytes | None = None
    if engine == "auto":
        if src.compression:
            raw = src.read(FAST_MIN_BYTES)  # the size only shows after decompression
            big = len(raw) == FAST_MIN_BYTES
            raw = raw if not big else None
        else:
            big = src.size_on_disk() >= FAST_MIN_BYTES
        engine = "arrow" if big else "python"
    if engine == "arrow":
        from mlmcli.io.csv_arrow import read_arrow

        frame = read_arrow(src, sep, wanted, name)
        if frame is not None:
            return frame
        engine = "pandas"
    if engine == "pandas":
        from mlmcli.io.csv_fast import read_fast

        frame = read_fast(src, sep, wanted, name)
        if frame is not None:
            return frame
    text = decode(raw if raw is not None else src.read())
    if "\x00" in text:
        raise nul_in_field(source, line_of(text, text.index("\x00")))
    return frame_from_text(text, source, sep, wanted, name)
