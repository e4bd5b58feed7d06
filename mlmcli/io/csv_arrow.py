"""Large CSV files through pyarrow's multi-threaded CSV reader, giving the same Frame as the
pure-Python reader.

pyarrow parses the wanted columns on every core. A column it reads as integers or as finite
doubles keeps its values (both readers round numbers correctly); where pyarrow's typing may
differ from R's type.convert, the column is read again as strings and R's rules run on its
distinct values. pyarrow's typing can differ only when the data hold a blank, a "+" or an "x"
("4 " is an integer to pyarrow and a double to R, "+5" the other way round, "0x1A" an integer
to pyarrow only), so integer columns are trusted when no data byte is one of these. Anything
pyarrow refuses (a row with too few or too many fields, a header spanning lines, bytes that are
not UTF-8) returns None: the caller then takes the next reader.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from mlmcli.io.csv_fast import SCAN_CHUNK, parse_sample, sample_bytes
from mlmcli.io.frame import INT32_MAX, Factor, Frame, from_distinct, make_names, no_data_rows, select_columns
from mlmcli.io.parquet import arrow_values
from mlmcli.io.source import Source, nul_in_field

# data bytes that can make pyarrow's integer/double typing differ from R's
_AMBIGUOUS = (b" ", b"\t", b"+", b"x", b"X")
_CONVERSION = re.compile(r"column #(\d+).*conversion error to (\w+)", re.S)
# what a column pyarrow could not convert is tried as next
_WIDER = {"int64": "float64", "double": "string", "float64": "string"}
# a table of this many bytes has its memory handed back column by column as it is copied out
_TRIM_BYTES = 1 << 26


def _holds_any(src: Source, data: bytes | None, needles: tuple[bytes, ...], start: int) -> list[bool]:
    """Which of `needles` occur in the data from byte `start` on, one pass in pieces (a memory
    map would count the whole file into the peak memory)."""
    found = [False] * len(needles)
    if data is not None:
        return [data.find(c, start) >= 0 for c in needles]
    skip = start
    for piece in src.chunks(SCAN_CHUNK):
        view = piece[skip:] if skip else piece
        skip = max(0, skip - len(piece))
        found = [f or view.find(c) >= 0 for f, c in zip(found, needles, strict=True)]
        if all(found):
            break
    return found


def _give_back_memory() -> None:
    """Return freed heap to the system. The parser's threads allocate in malloc arenas of their
    own, which glibc trims only when asked; without this the freed buffers (about twice the
    columns read) would stay in the process for the whole fit."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to ask


def _doubles(col: Any) -> np.ndarray:
    """A numeric column as doubles, nulls NaN, read from pyarrow's buffers (no cast, so no
    pyarrow.compute to import).  An integer column is converted chunk by chunk as it is copied out:
    pyarrow's cast would first make a whole column of doubles of its own.  Integers of 2^53 or more
    in size take pyarrow's cast, which refuses those a double cannot hold."""
    import pyarrow as pa

    source = np.int64 if pa.types.is_int64(col.type) else np.float64 if pa.types.is_float64(col.type) else None
    if source is None:
        return arrow_values(col, pa.float64(), np.float64, np.nan)
    out = np.empty(len(col))
    pos = 0
    for c in col.chunks:
        n = len(c)
        validity, data = c.buffers()[:2]
        piece = out[pos : pos + n]
        if data is None:
            piece[:] = np.nan
        else:
            piece[:] = np.frombuffer(data, dtype=source, count=n, offset=c.offset * 8)
            if validity is not None and c.null_count:
                bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
                piece[bits[c.offset : c.offset + n] == 0] = np.nan
        pos += n
    # (fmin and fmax skip NaN; all missing gives NaN, which is no size)
    if source is np.int64 and len(out) and max(-np.fmin.reduce(out), np.fmax.reduce(out)) >= 2.0**53:
        return arrow_values(col, pa.float64(), np.float64, np.nan)
    return out


def _line_end(raw: bytes) -> int:
    ends = [i for i in (raw.find(b"\n"), raw.find(b"\r")) if i >= 0]
    return min(ends) if ends else len(raw)


def read_arrow(src: Source, sep: str, columns: set[str] | None, name: str) -> Frame | None:
    """The Frame pyarrow's reader gives, or None where another reader must decide."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pc
    except ImportError:
        return None
    raw = sample_bytes(src)
    bom = 3 if raw and raw.startswith(b"\xef\xbb\xbf") else 0
    if not raw or len(raw) == bom or raw[bom : bom + 1] in (b"\n", b"\r", b" ", b"\t"):
        return None  # leading blank lines: R's header rules, not a skipped first row
    header_end = _line_end(raw)
    if raw.count(b'"', 0, header_end) % 2:
        return None  # a header field holding a line break
    parsed = parse_sample(raw, src, sep, "utf-8")
    if parsed is None:
        return None
    header = parsed[0]
    k = len(header)
    if k < 2:
        return None  # a line of blanks in a one-column file is a row to R and nothing to pyarrow
    wanted = select_columns(header, columns, src.name, sep)
    names = make_names(header)
    keep = [j for j in range(k) if names[j] in wanted]
    labels = [f"c{j}" for j in range(k)]

    # decompressed input is held in memory anyway; a plain file is read by pyarrow itself
    data = src.read() if src.data is not None or src.compression else None
    # the separator itself (a tab) is no blank inside a field
    needles = tuple(c for c in _AMBIGUOUS if c != sep.encode())
    nul, quoted, *ambiguous_bytes = _holds_any(src, data, (b"\x00", b'"', *needles), header_end)
    if nul:
        raise nul_in_field(src.name, src.nul_line() or 1)
    ambiguous = any(ambiguous_bytes)
    try:

        def read(cols: list[int], types: dict[str, str], null_values: list[str]):
            return pc.read_csv(
                src.name if data is None else pa.BufferReader(data),  # a fresh stream for each read
                # malloc's pool hands the parser's buffers back to the system once the columns
                # are copied out; arrow's default pool keeps them for the rest of the fit
                memory_pool=pa.system_memory_pool(),
                read_options=pc.ReadOptions(column_names=labels, skip_rows=1, use_threads=True),
                parse_options=pc.ParseOptions(
                    delimiter=sep,
                    quote_char='"',
                    double_quote=True,
                    escape_char=False,
                    newlines_in_values=quoted,
                    ignore_empty_lines=True,
                ),
                convert_options=pc.ConvertOptions(
                    include_columns=[labels[j] for j in cols],
                    column_types=types,
                    null_values=null_values,
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=True,
                    true_values=[],
                    false_values=[],
                    timestamp_parsers=[],
                ),
            )

        types: dict[str, str] = {}
        for _ in range(2 * len(keep) + 1):
            try:
                table = read(keep, types, ["NA", ""])
                break
            except pa.ArrowInvalid as exc:
                m = _CONVERSION.search(str(exc))
                if m is None or int(m.group(1)) >= k or m.group(2) not in _WIDER:
                    return None
                types[labels[int(m.group(1))]] = _WIDER[m.group(2)]
        else:
            return None
        n = table.num_rows
        if n == 0:
            raise no_data_rows(src.name)
        # the parser's buffers (about twice the columns) are free now: handed back before the
        # columns are copied out, and each column's own once it is copied, the peak memory is the
        # table and one column rather than the parser's buffers, the table and all columns (on
        # large data: a trim costs some milliseconds)
        big = table.nbytes >= _TRIM_BYTES
        if big:
            _give_back_memory()

        out: dict[str, np.ndarray | Factor] = {}
        int_columns: set[str] = set()
        again: list[int] = []
        for j in keep:
            col = table.column(labels[j])
            table = table.drop_columns([labels[j]])
            is_int = pa.types.is_integer(col.type)
            if not (is_int or pa.types.is_floating(col.type)):
                again.append(j)
                continue
            values = _doubles(col)
            nulls = col.null_count
            del col
            if big:
                _give_back_memory()
            present = values[~np.isnan(values)] if nulls else values
            if not np.all(np.isfinite(present)):
                again.append(j)  # Inf, NaN and overflow: R's spelling rules decide
                continue
            # the largest magnitude without an array of magnitudes
            small = present.size == 0 or max(-float(present.min()), float(present.max())) <= INT32_MAX
            if ambiguous and small and (is_int or bool(np.all(present == np.round(present)))):
                again.append(j)
                continue
            out[names[j]] = values
            if is_int and small:
                int_columns.add(names[j])
        if again:
            table = read(again, {labels[j]: "string" for j in again}, ["NA"])
            for j in again:
                col = table.column(labels[j]).combine_chunks().dictionary_encode()
                cats = [str(c) for c in col.dictionary.to_pylist()]
                codes = arrow_values(col.indices, pa.int64(), np.int64, -1)
                converted = from_distinct(cats, codes)
                if converted is None:
                    return None
                out[names[j]], text_int = converted
                if text_int:
                    int_columns.add(names[j])
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    finally:
        table = None
        _give_back_memory()
    ordered = {names[j]: out[names[j]] for j in keep}
    return Frame(name=name, columns=ordered, n_rows=n, int_columns=int_columns)
