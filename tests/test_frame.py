"""The CSV reader: both engines agree, compressed files, separators, and clear errors."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlmcli.io.csv_arrow
import mlmcli.io.csv_fast
from mlmcli.errors import DataError
from mlmcli.io import csv as csv_module
from mlmcli.io.csv import read_csv
from mlmcli.io.frame import Factor, Frame

FIXTURES = Path(__file__).parent / "fixtures" / "design"
ENGINES = ["python", "pandas", "arrow"]


def assert_same_frame(a: Frame, b: Frame) -> None:
    assert a.name == b.name
    assert a.n_rows == b.n_rows
    assert list(a.columns) == list(b.columns)
    assert a.int_columns == b.int_columns
    for name, col in a.columns.items():
        other = b.columns[name]
        if isinstance(col, Factor):
            assert isinstance(other, Factor), name
            assert col.levels == other.levels, name
            assert col.logical == other.logical, name
            assert col.codes.dtype == other.codes.dtype == np.int64
            np.testing.assert_array_equal(col.codes, other.codes, err_msg=name)
        else:
            assert isinstance(other, np.ndarray) and other.dtype == col.dtype == np.float64, name
            np.testing.assert_array_equal(col, other, err_msg=name)


def read_both(path: str, **kw) -> Frame:
    """Read with every engine; they must give the same frame or the same error."""
    results = []
    for engine in ENGINES:
        try:
            results.append(read_csv(path, engine=engine, **kw))
        except DataError as exc:
            results.append(str(exc))
    first = results[0]
    for other in results[1:]:
        if isinstance(first, str) or isinstance(other, str):
            assert first == other
        else:
            assert_same_frame(first, other)
    if isinstance(first, str):
        raise DataError(first)
    return first


# ---------------------------------------------------------------- R's fixtures through pandas


@pytest.mark.parametrize("file", [c["file"] for c in json.loads((FIXTURES / "reader.json").read_text())])
def test_fixtures_same_through_both_engines(file):
    read_both(str(FIXTURES / file))


@pytest.mark.parametrize("engine", ["pandas", "arrow"])
def test_fixture_values_through_native_readers(monkeypatch, engine):
    # the R fixture test itself, with a native reader forced through the environment
    from tests.test_design import test_read_csv_matches_read_csv

    monkeypatch.setenv("MLM_CSV_ENGINE", engine)
    for case in json.loads((FIXTURES / "reader.json").read_text()):
        test_read_csv_matches_read_csv(case)


def test_arrow_engine_is_used_for_big_files(monkeypatch, tmp_path):
    calls = []
    real = mlmcli.io.csv_arrow.read_arrow

    def spy(*a):
        frame = real(*a)
        calls.append(frame)
        return frame

    monkeypatch.setattr(mlmcli.io.csv_arrow, "read_arrow", spy)
    monkeypatch.delenv("MLM_CSV_ENGINE", raising=False)
    p = tmp_path / "d.csv"
    p.write_text("y,g\n" + "".join(f"{i * 0.5},g{i % 7}\n" for i in range(200)))
    small = read_csv(str(p))
    assert calls == []
    monkeypatch.setattr(csv_module, "FAST_MIN_BYTES", 100)
    big = read_csv(str(p))
    assert len(calls) == 1 and calls[0] is not None  # pyarrow read it, nobody after it
    assert_same_frame(small, big)


# ---------------------------------------------------------------- generated files

_NUMBERS = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(-1e4, 1e4).map(lambda x: f"{x:.3f}"),
    st.sampled_from(
        [
            "1e",
            "1.e5",
            "0x1A",
            "-0X10",
            "Inf",
            "-inf",
            "infinity",
            "NaN",
            "1e500",
            " 4 ",
            "4 ",
            " 4",
            "+5",
            "007",
            ".5",
            "5.",
            "1E+05",
            "-0",
            "2147483648",
            "99999999999999999999",
            "1_000",
            "1d5",
            "1.5e+",
            "e5",
            ".",
            "-",
            "\u0663",
        ]
    ),
)
_SPECIAL = st.sampled_from(["NA", "", " ", "  ", "T", "F", "TRUE", "FALSE", "true", "False", " NA", "NA "])
_TEXT = st.text(alphabet='abAB \u00e9_-.,"\n;', min_size=0, max_size=5)


def _column_strategy():
    # mostly one kind per column, so that numeric, logical and text columns all occur
    return st.sampled_from(["num", "int", "logical", "text", "mixed"])


def _field(kind: str):
    if kind == "int":
        return st.one_of(st.integers(-(10**6), 10**6).map(str), st.sampled_from(["NA", "", "3.0", " 7"]))
    if kind == "num":
        return st.one_of(_NUMBERS, st.sampled_from(["NA", ""]))
    if kind == "logical":
        return st.sampled_from(["TRUE", "FALSE", "T", "F", "NA", "", "true"])
    if kind == "text":
        return st.one_of(_TEXT, st.sampled_from(["NA", ""]))
    return st.one_of(_NUMBERS, _SPECIAL, _TEXT)


def _quote(field: str, sep: str) -> str:
    if any(c in field for c in (sep, '"', "\n")) or (field and field[0] == '"'):
        return '"' + field.replace('"', '""') + '"'
    return field


@st.composite
def csv_files(draw):
    sep = draw(st.sampled_from([",", ",", ";", "\t"]))
    kinds = draw(st.lists(_column_strategy(), min_size=1, max_size=4))
    header = [draw(st.sampled_from(["y", "x", "my col", "x", "2b", "if", "", "g"])) for _ in kinds]
    n = draw(st.integers(1, 25))
    rows = [[draw(_field(k)) for k in kinds] for _ in range(n)]
    if len(kinds) == 1:  # an empty field alone is a blank line, which read.csv skips
        rows = [r if r[0] != "" else ["NA"] for r in rows]
    quote_all = draw(st.booleans())
    eol = draw(st.sampled_from(["\n", "\n", "\r\n"]))
    lines = [sep.join(('"' + h + '"') if quote_all else _quote(h, sep) for h in header)]
    lines += [sep.join(_quote(f, sep) for f in r) for r in rows]
    damage = draw(st.sampled_from(["none"] * 6 + ["short row", "long row", "blank line", "line of blanks"]))
    at = draw(st.integers(1, len(lines)))
    if damage == "short row" and at < len(lines):
        lines[at] = sep.join(_quote(f, sep) for f in rows[at - 1][:-1])
    elif damage == "long row" and at < len(lines):
        lines[at] += sep + "1"
    elif damage != "none":
        lines.insert(at, "" if damage == "blank line" else draw(st.sampled_from([" ", "\t ", "  "])))
    text = eol.join(lines) + draw(st.sampled_from([eol, "", eol + eol]))
    if draw(st.booleans()):
        text = "\ufeff" + text
    return text, sep


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(csv_files())
def test_engines_agree_on_generated_files(tmp_path, case):
    text, sep = case
    path = tmp_path / "gen.csv"
    path.write_bytes(text.encode("utf-8"))
    try:
        read_both(str(path), sep=sep)
    except DataError:
        pass  # both engines gave the same error


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(csv_files(), st.integers(1, 12))
def test_engines_agree_when_the_scan_reads_small_pieces(tmp_path, case, chunk):
    # the pass over the bytes carries quotes, blanks and line ends from one piece to the next
    text, sep = case
    path = tmp_path / "gen.csv"
    path.write_bytes(text.encode("utf-8"))
    saved = mlmcli.io.csv_fast.SCAN_CHUNK
    mlmcli.io.csv_fast.SCAN_CHUNK = chunk
    try:
        read_both(str(path), sep=sep)
    except DataError:
        pass
    finally:
        mlmcli.io.csv_fast.SCAN_CHUNK = saved


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(csv_files(), st.data())
def test_engines_agree_on_a_subset_of_columns(tmp_path, case, data):
    text, sep = case
    path = tmp_path / "gen.csv"
    path.write_bytes(text.encode("utf-8"))
    try:
        everything = read_csv(str(path), sep=sep, engine="python")
    except DataError:
        return
    names = list(everything.columns)
    chosen = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True))
    frame = read_both(str(path), sep=sep, columns=chosen)
    assert list(frame.columns) == [n for n in names if n in chosen]
    for name in chosen:
        col, ref = frame.columns[name], everything.columns[name]
        if isinstance(ref, Factor):
            np.testing.assert_array_equal(col.codes, ref.codes)
        else:
            np.testing.assert_array_equal(col, ref)


# ---------------------------------------------------------------- what pandas would accept but R refuses


@pytest.mark.parametrize("engine", ENGINES)
def test_short_row_is_an_error_in_both_engines(tmp_path, engine):
    p = tmp_path / "short.csv"
    p.write_text("a,b\n1,2\n3\n4,5\n")
    with pytest.raises(DataError, match="line 3: 1 fields, but the header has 2"):
        read_csv(str(p), engine=engine)
    p.write_text('a,b\n"x,y",2\n"z"\n')
    with pytest.raises(DataError, match="line 3: 1 fields"):
        read_csv(str(p), engine=engine)
    # a long row and a short one: as many separators in all as the header asks for
    p.write_text("a,b\n1,2\n3,4,\n6\n")
    with pytest.raises(DataError, match="line 3: 3 fields"):
        read_csv(str(p), engine=engine)
    p.write_text("a,b,c\n1,2,3\n4,5,6,7\n")
    with pytest.raises(DataError, match="line 3: 4 fields"):
        read_csv(str(p), columns=["a"], engine=engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_line_of_blanks_is_a_row(tmp_path, engine):
    p = tmp_path / "blank.csv"
    p.write_text("a,b\n1,2\n   \n4,5\n")
    with pytest.raises(DataError, match="line 3: 1 fields"):
        read_csv(str(p), engine=engine)
    p.write_text("a\n1\n  \n4\n")
    frame = read_csv(str(p), engine=engine)
    np.testing.assert_array_equal(frame.columns["a"], [1.0, np.nan, 4.0])


def test_integer_or_double_decided_by_the_text(tmp_path):
    p = tmp_path / "ints.csv"
    p.write_text("a,b,c,d,e\n1,1.0,1,4 ,1\nNA,2,,5,2\n3,3,3,6,3e0\n")
    frame = read_both(str(p))
    assert frame.int_columns == {"a", "c"}  # "1.0", "4 " and "3e0" make doubles, as in R
    np.testing.assert_array_equal(frame.columns["a"], [1.0, np.nan, 3.0])


def test_latin1_file_read_as_latin1(tmp_path):
    p = tmp_path / "latin.csv"
    p.write_bytes("g,y\ncaf\u00e9,1\nb,2\n".encode("latin-1"))
    assert read_both(str(p)).columns["g"].levels == ["b", "caf\u00e9"]


# ---------------------------------------------------------------- compressed files


@pytest.mark.parametrize(
    ("suffix", "compress"),
    [(".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress), ("", gzip.compress)],
)
def test_compressed_files_read_transparently(tmp_path, suffix, compress):
    text = "y,g\n1.5,a\n2,b\nNA,a\n"
    p = tmp_path / f"scores.csv{suffix}"
    p.write_bytes(compress(text.encode()))
    frame = read_both(str(p))
    assert frame.name == "scores" and frame.n_rows == 3
    np.testing.assert_array_equal(frame.columns["y"], [1.5, 2.0, np.nan])
    assert frame.columns["g"].levels == ["a", "b"]


def test_compressed_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(gzip.compress(b"y,g\n1,a\n2,b\n"))))
    frame = read_csv("-")
    assert frame.name == "stdin"
    np.testing.assert_array_equal(frame.columns["y"], [1.0, 2.0])


def test_damaged_compressed_file(tmp_path):
    p = tmp_path / "bad.csv.gz"
    p.write_bytes(gzip.compress(b"y,g\n1,a\n2,b\n")[:-12])
    with pytest.raises(DataError, match="damaged gzip data"):
        read_csv(str(p))


# ---------------------------------------------------------------- separators, header-only, columns


def test_tsv_by_extension_and_explicit_separators(tmp_path):
    tsv = tmp_path / "d.tsv"
    tsv.write_text("y\tmy g\n1\ta\n2\tb\n")
    frame = read_both(str(tsv))
    assert frame.name == "d" and list(frame.columns) == ["y", "my.g"]
    for sep in [";", "|", "\t"]:
        p = tmp_path / "d.txt"
        p.write_text(f"y{sep}x\n1,5{sep}2\n3{sep}4\n")
        frame = read_both(str(p), sep=sep)
        assert frame.columns["y"].levels == ["1,5", "3"]
        np.testing.assert_array_equal(frame.columns["x"], [2.0, 4.0])
    with pytest.raises(DataError, match="unsupported separator ':'"):
        read_csv(str(tsv), sep=":")


@pytest.mark.parametrize("engine", ENGINES)
def test_one_field_header_hints_at_the_separator(tmp_path, engine):
    p = tmp_path / "semi.csv"
    p.write_text("y;x;g\n1;2;a\n3;4;b\n")
    with pytest.raises(DataError, match=r"single column 'y;x;g' when split at ','.*give --sep ';'"):
        read_csv(str(p), columns=["y", "x", "g"], engine=engine)
    frame = read_csv(str(p), engine=engine)  # asked for everything, read.csv reads one column
    assert list(frame.columns) == ["y.x.g"]


@pytest.mark.parametrize("engine", ENGINES)
def test_header_only_file(tmp_path, engine):
    p = tmp_path / "head.csv"
    p.write_text("y,x,g\n\n")
    with pytest.raises(DataError, match="'.*head.csv': no data rows"):
        read_csv(str(p), engine=engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_only_asked_columns_are_converted(tmp_path, engine):
    p = tmp_path / "d.csv"
    p.write_text("y,x,g,extra\n1,2,a,0x\n3,4,b,zz\n")
    frame = read_csv(str(p), columns=["g", "y"], engine=engine)
    assert list(frame.columns) == ["y", "g"] and frame.n_rows == 2
    # an unknown name: every column, so that the caller's message can list them
    frame = read_csv(str(p), columns=["y", "nope"], engine=engine)
    assert list(frame.columns) == ["y", "x", "g", "extra"]


# ---------------------------------------------------------------- the command line


def _mlm(*args: str, env: dict | None = None):
    from tests.commands import mlm

    return mlm(*args, env=env)


def test_command_line_reads_compressed_separated_files_through_either_engine(tmp_path):
    heck = Path(__file__).resolve().parent.parent / "sample_data" / "heck2011.csv"
    text = heck.read_text()
    gz = tmp_path / "heck2011.csv.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    (tmp_path / "semi").mkdir()
    semi = tmp_path / "semi" / "heck2011.csv"
    semi.write_text(text.replace(",", ";"))
    formula = "math ~ ses + (1|schcode)"
    plain = _mlm("fit", str(heck), formula, "--format", "json")
    assert plain.returncode == 0, plain.stderr
    for args, env in [
        ((str(gz),), {"MLM_CSV_ENGINE": "pandas"}),
        ((str(gz),), {"MLM_CSV_ENGINE": "arrow"}),
        ((str(gz),), {}),
        ((str(semi), "--sep", ";"), {"MLM_CSV_ENGINE": "arrow"}),
        ((str(semi), "--sep", ";"), {"MLM_CSV_ENGINE": "pandas"}),
    ]:
        p = _mlm("fit", args[0], formula, "--format", "json", *args[1:], env=env)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout) == json.loads(plain.stdout)
    p = _mlm("fit", str(semi), formula)
    assert p.returncode == 2
    assert p.stderr.strip().endswith("give --sep ';'") and p.stderr.count("\n") == 1


def test_command_line_header_only_file(tmp_path):
    p = tmp_path / "empty.csv"
    p.write_text("math,ses,schcode\n")
    out = _mlm("fit", str(p), "math ~ ses + (1|schcode)")
    assert out.returncode == 2
    assert out.stderr == f"mlm: error: '{p}': no data rows, only a header line\n"


def test_a_long_column_of_digit_runs_is_checked_field_by_field(tmp_path):
    """A column of long digit runs ending in one word is text (a factor) in R; checking it as one
    regex over the joined column backtracked exponentially."""
    path = tmp_path / "digits.csv"
    path.write_text("y,g\n" + "".join(f"{i}.5,{'7' * 40} \n" for i in range(60)) + "1,7x\n")
    for engine in ENGINES:
        frame = read_csv(str(path), engine=engine)
        assert isinstance(frame.columns["g"], Factor) and frame.columns["g"].levels[-1] == "7x"


def test_a_quoted_header_over_plain_rows_reads_as_the_quoted_file(tmp_path):
    """R's write.csv quotes the names only: the rows take the plain path (and its fast numbers);
    a separator inside a quoted name, or a quote in the rows, keeps the csv module's path."""
    rows = "".join(f"{i},{i % 3},{i * 0.25}\n" for i in range(50))
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('"a","b","c"\n' + "".join(f'"{i}","{i % 3}","{i * 0.25}"\n' for i in range(50)))
    reference = read_csv(str(quoted), engine="python")
    cases = {
        '"a","b","c"\n': (["a", "b", "c"], 50),
        '\n"a b","b,c",c\n': (["a.b", "b.c", "c"], 50),
        '"a","b","c"\n"7",1,0.5\n': (["a", "b", "c"], 51),
    }
    for k, (head, (names, n)) in enumerate(cases.items()):
        path = tmp_path / f"h{k}.csv"
        path.write_text(head + rows)
        frame = read_both(str(path))
        assert list(frame.columns) == names and frame.n_rows == n
        if n == 50:
            for name, ref in zip(names, reference.columns.values(), strict=True):
                np.testing.assert_array_equal(frame.columns[name], ref)
            assert {names.index(c) for c in frame.int_columns} == {
                list(reference.columns).index(c) for c in reference.int_columns
            }


def test_a_byte_order_mark_before_a_blank_line_is_no_header(tmp_path):
    """Found by the generated files: the blank line after a BOM is skipped, so the header is the
    next line and there are no rows, with every reader."""
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeff\n0,1\n".encode())
    for engine in ENGINES:
        with pytest.raises(DataError, match="no data rows"):
            read_csv(str(path), engine=engine)


def test_compressed_file_with_text_read_again_by_arrow(tmp_path):
    """A compressed file is parsed from memory; the second read (text columns under R's rules)
    needs its own stream over the same bytes."""
    text = "y,g,w\n" + "".join(f"{i * 0.5},g{i % 7},{'T' if i % 2 else 'F'}\n" for i in range(300))
    path = tmp_path / "d.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    frame = read_both(str(path))
    assert frame.columns["g"].levels == [f"g{i}" for i in range(7)] and frame.columns["w"].logical
    from mlmcli.io.csv_arrow import read_arrow
    from mlmcli.io.source import Source

    assert read_arrow(Source.open(str(path)), ",", None, "d") is not None  # arrow's own result
