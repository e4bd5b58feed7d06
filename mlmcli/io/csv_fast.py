"""Large CSV files through pandas' C parser, giving the same Frame as the pure-Python reader.

pandas parses the wanted columns only, numbers correctly rounded as Python's float() does. What
pandas might read otherwise than R's type.convert goes through R's rules instead: a column pandas
does not read as plain numbers is read again as strings, and R's rules run on its distinct values.
pandas reads "3" and "3.0" alike, so a whole-valued column with missing values is told integer or
double by a scan of its bytes for a decimal point or an exponent. What pandas silently accepts and
R's reader refuses or reads otherwise (a row with too few or too many fields, a line of blanks, a
carriage return inside quotes) sends the whole file to the pure-Python reader, which gives R's
result or the error.
"""

from __future__ import annotations

import codecs
import io
import re
import warnings
from dataclasses import dataclass

import numpy as np

from mlmcli.errors import DataError
from mlmcli.io.csv_text import split_text
from mlmcli.io.frame import (
    INT32_MAX,
    Factor,
    Frame,
    all_integers,
    convert,
    from_distinct,
    make_names,
    no_data_rows,
    select_columns,
)
from mlmcli.io.source import Source, nul_in_field

_SAMPLE_BYTES = 1 << 18
SCAN_CHUNK = 1 << 23
# a field ending in a blank: R reads " 4 " as a double, pandas as an integer
_BLANK_ENDS = (b" \n", b"\t\n", b" \r", b"\t\r", b' "', b'\t"')
# a line of blanks only: pandas skips it, R reads it as a (short) row
_BLANK_LINE = re.compile(rb"[\r\n][ \t]+[\r\n]")
_LINE_BLANKS = (b"\n ", b"\n\t", b"\r ", b"\r\t")


@dataclass
class _Scan:
    lines: int = 0  # lines with something on them, the header included
    fields_ok: bool = True  # every such line has as many fields as the header
    blank_ends: bool = False
    blank_line: bool = False
    utf8: bool = True
    nul: bool = False  # a NUL byte somewhere


def _has_blank(data: bytes) -> bool:
    return data.find(b" ") >= 0 or data.find(b"\t") >= 0  # memchr: fast


def _blank_line(data: bytes) -> bool:
    """A line of blanks only in `data`, which starts at a line start."""
    if data[:1] in (b" ", b"\t") and re.match(rb"[ \t]+[\r\n]", data):
        return True
    return any(p in data for p in _LINE_BLANKS) and _BLANK_LINE.search(data) is not None


def _positions(chunk: bytes, sep_code: int, in_quote: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Separators and line ends outside quotes, and whether the piece ends inside quotes."""
    b = np.frombuffer(chunk, dtype=np.uint8)
    seps = np.flatnonzero(b == sep_code)
    # bytes.find is a memchr: far cheaper than a comparison over the array
    ends = np.flatnonzero(((b == 10) | (b == 13)) if chunk.find(b"\r") >= 0 else b == 10)
    if in_quote or chunk.find(b'"') >= 0:
        parity = (np.cumsum(b == 34, dtype=np.int32) + in_quote) & 1
        in_quote = int(parity[-1])
        seps = seps[parity[seps] == 0]
        ends = ends[parity[ends] == 0]
    return seps, ends, in_quote


def _scan(src: Source, sep: str, k: int) -> _Scan:
    """One pass over the bytes for what pandas does not report: with `usecols` it fills a short
    row with NA and drops the extra fields of a long one, where read.csv's rule here is an error."""
    sep_code = ord(sep)
    ends_blank = (b" " + sep.encode(), b"\t" + sep.encode(), *_BLANK_ENDS)
    out = _Scan()
    decoder = codecs.getincrementaldecoder("utf-8")()
    in_quote = 0
    carry_len = carry_seps = 0  # the line the previous piece ended in
    tail = b""  # its bytes (up to 4 kB), for the blank checks
    for chunk in src.chunks(SCAN_CHUNK):
        out.nul = out.nul or chunk.find(b"\x00") >= 0
        if out.utf8 and not chunk.isascii():
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                out.utf8 = False
        seps, ends, in_quote = _positions(chunk, sep_code, in_quote)
        if ends.size:
            before = np.searchsorted(seps, ends)
            counts = np.diff(before, prepend=0)
            counts[0] += carry_seps
            lengths = np.diff(ends, prepend=-1) - 1
            lengths[0] += carry_len
            filled = lengths > 0
            out.lines += int(np.count_nonzero(filled))
            if out.fields_ok and np.any(filled & (counts != k - 1)):
                out.fields_ok = False
            carry_seps = len(seps) - int(before[-1])
            carry_len = len(chunk) - int(ends[-1]) - 1
        else:
            carry_seps += len(seps)
            carry_len += len(chunk)
        if not (out.blank_ends and out.blank_line) and (_has_blank(chunk) or _has_blank(tail)):
            probe = tail + chunk
            out.blank_ends = out.blank_ends or any(p in probe for p in ends_blank)
            out.blank_line = out.blank_line or _blank_line(probe)
        start = max(chunk.rfind(b"\n"), chunk.rfind(b"\r")) + 1
        tail = chunk[start:] if start > 0 else (tail + chunk)[-4096:]
    if carry_len:
        out.lines += 1
        out.fields_ok = out.fields_ok and carry_seps == k - 1
    if out.utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            out.utf8 = False
    out.blank_ends = out.blank_ends or tail.endswith((b" ", b"\t"))
    out.blank_line = out.blank_line or (tail != b"" and tail.strip(b" \t") == b"")
    return out


def sample_bytes(src: Source) -> bytes | None:
    """The first whole lines of the file (not ending inside quotes)."""
    raw = src.read(_SAMPLE_BYTES)
    if len(raw) == _SAMPLE_BYTES:
        cut = len(raw)
        for _ in range(64):
            cut = max(raw.rfind(b"\n", 0, cut), raw.rfind(b"\r", 0, cut))
            if cut <= 0:
                return None
            if raw.count(b'"', 0, cut) % 2 == 0:
                break
        else:
            return None
        raw = raw[:cut]
    return raw


def parse_sample(raw: bytes, src: Source, sep: str, encoding: str):
    """The sample split as the pure-Python reader splits it; None if that reader would refuse it."""
    text = raw.decode("utf-8-sig" if encoding == "utf-8" else "latin-1", errors="replace")
    try:
        return split_text(text, src.name, sep)
    except DataError:
        return None


def _distinct(series) -> tuple[list[str], np.ndarray]:
    """A text column's distinct strings and each row's index into them (-1 for NA)."""
    import pandas as pd

    codes, uniques = pd.factorize(series.to_numpy(dtype=object), use_na_sentinel=True)
    return [str(u) for u in uniques], codes.astype(np.int64)


def _from_text(series) -> tuple[np.ndarray | Factor, bool] | None:
    """R's type.convert run on a text column's distinct values, spread back over the rows."""
    return from_distinct(*_distinct(series))


def _integer_text(series) -> bool:
    """Whether R reads a whole-valued column as integer: every field looks like one."""
    present = [c for c in _distinct(series)[0] if c.strip() != ""]
    return all_integers(present)


def _columns_writing(src: Source, sep: str, k: int, chars: bytes, targets: set[int]) -> set[int] | None:
    """Of the target columns, those with a data field that holds one of `chars` (None: unknown).

    Tells R's integers ("3") from doubles ("3.0", "1e3") without a string per field. The scan has
    made sure every line has k - 1 separators, so the i-th separators of the lines bound field i.
    """
    table = np.zeros(256, dtype=bool)
    table[list(chars)] = True
    sep_code = ord(sep)
    found: set[int] = set()
    rest = b""
    header_seen = False
    pieces = src.chunks(SCAN_CHUNK)
    while found != targets:
        piece = next(pieces, None)
        chunk = rest + piece if piece is not None else rest
        if not chunk:
            break
        seps, ends, in_quote = _positions(chunk, sep_code, 0)
        if piece is not None:
            if ends.size == 0:
                rest = chunk  # a line longer than the piece
                continue
            cut = int(ends[-1]) + 1  # whole lines only: the rest goes with the next piece
            rest, chunk, seps = chunk[cut:], chunk[:cut], seps[seps < cut]
        else:
            rest = b""
            ends = np.append(ends, len(chunk))  # the last line has no line end
        starts = np.concatenate(([0], ends[:-1] + 1))
        filled = ends > starts
        line_start, line_end = starts[filled], ends[filled]
        if len(seps) != (k - 1) * len(line_start):
            return None
        bounds = np.column_stack([line_start - 1, seps.reshape(len(line_start), k - 1), line_end])
        if not header_seen and len(bounds):
            bounds = bounds[1:]  # the header: the first line with something on it
            header_seen = True
        hits = np.flatnonzero(table[np.frombuffer(chunk, dtype=np.uint8)])
        for c in targets - found:
            inside = np.searchsorted(hits, bounds[:, c + 1]) - np.searchsorted(hits, bounds[:, c])
            if inside.any():
                found.add(c)
        if piece is None:
            break
    return found


def _could_be_integer(values: np.ndarray) -> bool:
    """False when the first rows already hold a fraction (a quick exit for columns of doubles)."""
    head = values[:4096]
    head = head[~np.isnan(head)]
    return not np.any(head != np.round(head))


def read_fast(src: Source, sep: str, columns: set[str] | None, name: str) -> Frame | None:
    """The Frame pandas' C parser gives, or None where the pure-Python reader must decide."""
    import pandas as pd

    raw = sample_bytes(src)
    first = parse_sample(raw, src, sep, "utf-8") if raw is not None else None
    if first is None:
        return None
    scan = _scan(src, sep, len(first[0]))
    if scan.nul:
        raise nul_in_field(src.name, src.nul_line() or 1)
    if scan.blank_line or not scan.fields_ok:
        return None
    encoding = "utf-8" if scan.utf8 else "latin-1"
    parsed = first if scan.utf8 else parse_sample(raw, src, sep, encoding)
    if parsed is None:
        return None
    header, sample, n_sample, whole = parsed
    wanted = select_columns(header, columns, src.name, sep)
    k = len(header)
    names = make_names(header)
    keep = [j for j in range(k) if names[j] in wanted]
    # a column the first rows show to be text (or TRUE/FALSE) is read as strings at once
    text_cols = {j for j in keep if n_sample and whole is None and isinstance(convert(sample[j])[0], Factor)}
    labels = [f"c{j}" for j in range(k)]

    def read(cols: list[int], as_text: set[int]):
        source = src.name if src.data is None else io.BytesIO(src.data)
        with warnings.catch_warnings():
            # a column of mixed types is expected: it is read again as text
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            return pd.read_csv(
                source,
                sep=sep,
                header=0,
                names=labels,
                usecols=[labels[j] for j in cols],
                index_col=False,
                engine="c",
                keep_default_na=False,
                na_values={labels[j]: ["NA"] if j in as_text else ["NA", ""] for j in cols},
                dtype={labels[j]: object for j in as_text},
                encoding=encoding,
                compression=src.compression,
                quotechar='"',
                doublequote=True,
                skip_blank_lines=True,
            )

    try:
        df = read(keep, text_cols)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    n = len(df)
    if scan.lines != n + 1:
        return None  # pandas and the scan disagree on the lines: let R's rules decide
    if n == 0:
        raise no_data_rows(src.name)

    out: dict[str, np.ndarray | Factor] = {}
    int_columns: set[str] = set()
    again: list[int] = []  # columns to read again as text
    whole_valued: set[int] = set()
    for j in keep:
        s = df[labels[j]]
        if j in text_cols:
            converted = _from_text(s)
            if converted is None:
                return None
            out[names[j]], is_int = converted
            if is_int:
                int_columns.add(names[j])
            continue
        if s.dtype.kind not in "if":
            again.append(j)
            continue
        values = s.to_numpy(dtype=np.float64)
        out[names[j]] = values
        if not _could_be_integer(values):
            continue
        if np.isnan(values).all():
            del out[names[j]]
            again.append(j)  # all missing: logical in R, unless a field was "NaN"
            continue
        fits = np.nanmax(np.abs(values)) <= INT32_MAX and bool(np.all(np.isnan(values) | (values == np.round(values))))
        if fits:
            if s.dtype.kind == "i" and not scan.blank_ends:
                int_columns.add(names[j])
            else:
                again.append(j)
                whole_valued.add(j)
    written = _columns_writing(src, sep, k, b".eE", whole_valued) if whole_valued and not scan.blank_ends else None
    if written is not None:
        for j in sorted(whole_valued):
            again.remove(j)
            if j not in written:
                int_columns.add(names[j])
    if again:
        try:
            df2 = read(again, set(again))
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError):
            return None
        for j in again:
            s = df2[labels[j]]
            if j in whole_valued:
                if _integer_text(s):
                    int_columns.add(names[j])
                continue
            converted = _from_text(s)
            if converted is None:
                return None
            out[names[j]], is_int = converted
            if is_int:
                int_columns.add(names[j])
    ordered = {names[j]: out[names[j]] for j in keep}
    return Frame(name=name, columns=ordered, n_rows=n, int_columns=int_columns)
