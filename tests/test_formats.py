"""Data files other than CSV: Parquet, Feather, SPSS, Stata and Excel give the columns the CSV reader gives
and the same fits; value-labelled SPSS/Stata columns are factors as haven::as_factor() makes them.
References for the labelled files: fixtures/formats/make_refs.R (haven writes the files, lme4 fits them)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from mlmcli.design import build_design
from mlmcli.errors import DataError
from mlmcli.formula import parse_formula
from mlmcli.io.csv import read_csv
from mlmcli.io.formats import read_data
from mlmcli.io.frame import Factor
from mlmcli.io.labelled import as_factor
from mlmcli.model import fit_model
from tests.commands import mlm, python

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "formats"
REFS = json.loads((FIXTURES / "refs.json").read_text())
HECK = str(ROOT / "sample_data" / "heck2011.csv")
SLEEP = ROOT / "tests" / "fixtures" / "lme4" / "data" / "sleepstudy.csv"
LABELLED = "math ~ ses + female + public + region + track + (1 | schcode)"
HECK_MODEL = "math ~ ses*public + (ses|schcode)"


def fit(frame, formula: str):
    f = parse_formula(formula)
    return fit_model(f, build_design(frame, f))


@cache
def heck_csv_fit():
    return fit(read_csv(HECK), HECK_MODEL)


@pytest.fixture(scope="module")
def heck_files(tmp_path_factory) -> dict[str, Path]:
    """heck2011 written by pandas' and pyreadstat's writers in every format."""
    d = tmp_path_factory.mktemp("heck")
    df = pd.read_csv(HECK)
    files = {k: d / f"heck2011.{k}" for k in ("parquet", "feather", "sav", "zsav", "dta", "xlsx")}
    df.to_parquet(files["parquet"])
    df.to_feather(files["feather"])
    pyreadstat.write_sav(df, files["sav"])
    pyreadstat.write_sav(df, files["zsav"], compress=True)
    pyreadstat.write_dta(df, files["dta"])
    df.to_excel(files["xlsx"], index=False)
    return files


# ------------------------------------------------------------------ the same data, the same fit


@pytest.mark.parametrize("kind", ["parquet", "feather", "sav", "zsav", "dta", "xlsx"])
def test_every_format_fits_as_the_csv_does(heck_files, kind):
    frame = read_data(str(heck_files[kind]))
    assert frame.name == "heck2011" and frame.n_rows == 6871
    m, ref = fit(frame, HECK_MODEL), heck_csv_fit()
    assert m.criterion == ref.criterion
    np.testing.assert_array_equal(m.beta, ref.beta)
    np.testing.assert_array_equal(m.theta, ref.theta)


def test_only_the_formula_columns_are_converted(heck_files):
    for kind in ("parquet", "sav", "xlsx"):
        assert set(read_data(str(heck_files[kind]), columns={"math", "ses"}).columns) == {"math", "ses"}
        # an unknown name: every column, so that the error can list them
        assert len(read_data(str(heck_files[kind]), columns={"nope"}).columns) == 10


# ------------------------------------------------------------------ SPSS and Stata against haven + lme4


@pytest.mark.parametrize("file", ["labelled.sav", "labelled.zsav", "labelled.dta"])
def test_labelled_columns_are_factors_as_haven_as_factor_makes_them(file):
    ref = REFS[file]
    frame = read_data(str(FIXTURES / file))
    for col, levels in ref["levels"].items():
        assert isinstance(frame.columns[col], Factor) and frame.columns[col].levels == levels
    # a text column: R's sort order, as lmer makes the factor
    assert frame.columns["track"].levels == ["a", "A", "b", "B c"]
    assert any("'region'" in note and "South, East, North, 4, Islands" in note for note in frame.notes)
    m = fit(frame, LABELLED)
    assert list(m.design.xnames) == ref["terms"]
    assert m.n == ref["n_obs"]
    assert m.criterion == pytest.approx(ref["reml"], abs=1e-6)
    np.testing.assert_allclose(m.beta, ref["estimate"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(m.std_errors, ref["std_error"], rtol=1e-6)
    np.testing.assert_allclose([r["df"] for r in m.coef_table()], ref["df"], rtol=1e-5)
    assert m.sigma == pytest.approx(ref["sigma"], rel=1e-7)


def test_as_factor_rules():
    # levels sorted by value; unlabelled values show as themselves; unused labels stay
    f = as_factor([3.0, 1.0, 2.0, None, 5.0, 1.0], {1: "Low", 2: "Mid", 3: "High", 4: "Unused"})
    assert f.levels == ["Low", "Mid", "High", "Unused", "5"]
    assert f.codes.tolist() == [2, 0, 1, -1, 4, 0]
    assert as_factor([10.0, 1.0, 2.0], {2: "B", 1: "A"}).levels == ["A", "B", "10"]
    # rows of one label share a level; a value's text that equals a label is that level
    assert as_factor([1.0, 2.0, 1.0], {1: "Same", 2: "Same"}).levels == ["Same"]
    assert as_factor([1.0, 2.0, 3.0], {1: "3", 2: "1"}).codes.tolist() == [0, 1, 0]
    assert as_factor([2.5], {}).levels == ["2.5"]
    # labelled text sorts by value, as R sorts text
    assert as_factor(["m", "f", "x"], {"m": "Male", "f": "Female"}).levels == ["Female", "Male", "x"]


def test_pyreadstat_written_labels(tmp_path):
    df = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0], "g": [2.0, 1.0, 2.0, np.nan], "s": ["b", "a", None, "b"]})
    path = tmp_path / "small.sav"
    pyreadstat.write_sav(df, path, variable_value_labels={"g": {1: "one", 2: "two", 3: "three"}})
    frame = read_data(str(path))
    assert frame.columns["g"].levels == ["one", "two", "three"]
    assert frame.columns["g"].codes.tolist() == [1, 0, 1, -1]
    # SPSS has no missing text: an empty string is a level, as haven reads it and factor() makes it
    assert frame.columns["s"].levels == ["", "a", "b"] and frame.columns["s"].codes.tolist() == [2, 1, 0, 2]
    np.testing.assert_array_equal(frame.columns["y"], [1, 2, 3, 4])


@pytest.mark.parametrize("suffix", ["sav", "dta"])
def test_dates_count_days_and_date_times_seconds(tmp_path, suffix):
    import datetime as dt

    df = pd.DataFrame(
        {
            "d": [dt.date(1970, 1, 2), dt.date(2000, 1, 1), None],
            "t": pd.to_datetime(["1970-01-01 00:00:10", "2000-01-01 00:00:00", "2001-01-01 12:00:00"]),
        }
    )
    path = tmp_path / f"dates.{suffix}"
    (pyreadstat.write_sav if suffix == "sav" else pyreadstat.write_dta)(df, path)
    frame = read_data(str(path))
    # as.numeric() of what haven::read_sav / read_dta give (Date and POSIXct)
    np.testing.assert_array_equal(frame.columns["d"], [1, 10957, np.nan])
    np.testing.assert_array_equal(frame.columns["t"], [10, 946684800, 978350400])


# ------------------------------------------------------------------ Parquet and Feather column types


def test_arrow_columns_keep_r_semantics(tmp_path):
    df = pd.DataFrame(
        {
            "text": pd.array(["b", "A", None, "a"], dtype="string"),
            "cat": pd.Categorical(["lo", "hi", "lo", None], categories=["lo", "hi", "mid"]),
            "flag": pd.array([True, False, None, True], dtype="boolean"),
            "count": pd.array([1, None, 3, 100000], dtype="Int64"),
            "big": [1, 2, 3, 2**40],
            "x": [0.5, np.nan, 1.5, 2.5],
            "day": pd.to_datetime(["1970-01-02", "2000-01-01", None, "1970-01-01"]).date,
            "my col": [1.0, 2.0, 3.0, 4.0],
        }
    )
    path = tmp_path / "types.parquet"
    df.to_parquet(path)
    frame = read_data(str(path))
    c = frame.columns
    assert c["text"].levels == ["a", "A", "b"] and c["text"].codes.tolist() == [2, 1, -1, 0]
    assert c["cat"].levels == ["lo", "hi", "mid"] and c["cat"].codes.tolist() == [0, 1, 0, -1]
    assert c["flag"].logical and c["flag"].codes.tolist() == [1, 0, -1, 1]
    np.testing.assert_array_equal(c["count"], [1, np.nan, 3, 100000])
    assert "count" in frame.int_columns and "big" not in frame.int_columns  # beyond R's integers
    np.testing.assert_array_equal(c["x"], [0.5, np.nan, 1.5, 2.5])
    np.testing.assert_array_equal(c["day"], [1, 10957, np.nan, 0])  # as.numeric(as.Date(...))
    assert "my.col" in c  # make.names, as for CSV
    # the same columns from Feather, and without importing pandas (a second of start-up)
    df.to_feather(tmp_path / "types.feather")
    code = (
        f"import sys; from mlmcli.io.formats import read_data; f = read_data({str(tmp_path / 'types.feather')!r}); "
        f"g = read_data({str(path)!r}); print(sorted(f.columns) == sorted(g.columns), 'pandas' in sys.modules)"
    )
    p = python("-c", code, capture_output=True, text=True)
    assert p.stdout.split() == ["True", "False"], p.stderr
    feather = read_data(str(tmp_path / "types.feather"))
    for name, col in c.items():
        other = feather.columns[name]
        if isinstance(col, Factor):
            assert other.levels == col.levels and other.codes.tolist() == col.codes.tolist()
        else:
            np.testing.assert_array_equal(other, col)


def test_unusable_arrow_column_is_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "list.parquet"
    pq.write_table(pa.table({"y": [1.0, 2.0], "l": [[1], [2, 3]]}), path)
    with pytest.raises(DataError, match="column 'l' holds values of type list"):
        read_data(str(path), columns={"y", "l"})
    assert set(read_data(str(path), columns={"y"}).columns) == {"y"}  # not asked for: not converted


# ------------------------------------------------------------------ Excel


@pytest.fixture(scope="module")
def workbook(tmp_path_factory) -> Path:
    import openpyxl

    path = tmp_path_factory.mktemp("xl") / "book.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "notes"
    ws.append(["nothing to see"])
    ws.append(["here"])
    ws = wb.create_sheet("data")
    ws.append(["y", "x", "g", "mixed", "flag", "blank col"])
    ws.append([1.5, 1, "b", 1, True, None])
    ws.append([])  # a blank row: skipped, as read.csv skips blank lines
    ws.append([2.5, 2, "a", "two", False, None])
    ws.append([None, 3, "NA", None, True, None])
    wb.save(path)
    return path


def test_excel_sheet_by_name_and_position(workbook):
    for sheet in ("data", "2"):
        frame = read_data(str(workbook), sheet=sheet)
        c = frame.columns
        assert frame.n_rows == 3 and frame.name == "book"
        np.testing.assert_array_equal(c["y"], [1.5, 2.5, np.nan])
        np.testing.assert_array_equal(c["x"], [1, 2, 3])
        assert frame.int_columns == {"x"}
        assert c["g"].levels == ["a", "b"] and c["g"].codes.tolist() == [1, 0, -1]
        assert c["mixed"].levels == ["1", "two"] and c["mixed"].codes.tolist() == [0, 1, -1]
        assert c["flag"].logical and c["flag"].codes.tolist() == [1, 0, 1]
        assert c["blank.col"].logical  # all missing: R's logical NA column
    assert list(read_data(str(workbook)).columns) == ["nothing.to.see"]  # the first sheet by default
    with pytest.raises(DataError, match="has no sheet 'missing': its sheets are 'notes', 'data'"):
        read_data(str(workbook), sheet="missing")


# ------------------------------------------------------------------ the command line


def test_cli_fit_from_spss_verbose_names_the_converted_columns():
    p = mlm("fit", str(FIXTURES / "labelled.sav"), LABELLED, "-f", "json", "-v")
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    ref = REFS["labelled.sav"]
    assert [r["term"] for r in got["fixed_effects"]] == ref["terms"]
    assert got["data_name"] == "labelled"
    np.testing.assert_allclose([r["estimate"] for r in got["fixed_effects"]], ref["estimate"], rtol=1e-6, atol=1e-6)
    notes = [line for line in p.stderr.splitlines() if "value labels" in line]
    assert notes == [
        "mlm: column 'female' has SPSS value labels: read as a factor with levels Male, Female, Refused "
        "(haven::as_factor)",
        "mlm: column 'public' has SPSS value labels: read as a factor with levels Private, Public (haven::as_factor)",
        "mlm: column 'region' has SPSS value labels: read as a factor with levels South, East, North, 4, Islands "
        "(haven::as_factor)",
    ]
    quiet = mlm("tau", str(FIXTURES / "labelled.dta"), LABELLED, "-f", "json")
    assert quiet.returncode == 0 and "value labels" not in quiet.stderr


def test_cli_predict_newdata_from_parquet_and_excel(tmp_path):
    new = pd.DataFrame({"Days": [0, 4.5, 9], "Subject": [308, 309, 372]})
    new.to_parquet(tmp_path / "new.parquet")
    with pd.ExcelWriter(tmp_path / "new.xlsx") as xl:
        pd.DataFrame({"a": [1]}).to_excel(xl, sheet_name="first", index=False)
        new.to_excel(xl, sheet_name="rows", index=False)
    new.to_csv(tmp_path / "new.csv", index=False)
    model = "Reaction ~ Days + (Days|Subject)"
    ref = mlm("predict", str(SLEEP), model, "--newdata", str(tmp_path / "new.csv"))
    assert ref.returncode == 0, ref.stderr
    for args in (
        ["--newdata", str(tmp_path / "new.parquet")],
        ["--newdata", str(tmp_path / "new.xlsx"), "--newdata-sheet", "rows"],
    ):
        p = mlm("predict", str(SLEEP), model, *args)
        assert p.returncode == 0, p.stderr
        assert p.stdout == ref.stdout


def test_cli_format_errors_are_one_line(tmp_path, heck_files):
    cases = [
        (["fit", HECK, "math ~ ses + (1|schcode)", "--sheet", "2"], "--sheet applies to Excel files"),
        (["fit", str(heck_files["parquet"]), "math ~ ses + (1|schcode)", "--sep", ";"], "--sep applies to CSV"),
        (["fit", str(heck_files["xlsx"]), "math ~ ses + (1|schcode)", "--sheet", "7"], "has no sheet '7'"),
        (["fit", str(tmp_path / "none.parquet"), "y ~ (1|g)"], "no such file"),
        (["fit", str(tmp_path / "old.xls"), "y ~ (1|g)"], "old Excel (.xls) files are not read"),
        (
            ["fit", str(FIXTURES / "labelled.sav"), "region ~ ses + (1|schcode)"],
            "the response 'region' is not numeric: its column holds value labels, so it is a factor as "
            "haven::as_factor",
        ),
    ]
    (tmp_path / "bad.parquet").write_text("not parquet\n")
    cases.append((["fit", str(tmp_path / "bad.parquet"), "y ~ (1|g)"], "cannot read '"))
    for args, message in cases:
        p = mlm(*args)
        assert p.returncode == 2, (args, p.stderr)
        assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


_BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == {pkg!r}:
            raise ImportError(name)
sys.meta_path.insert(0, Block())
sys.argv = ['mlm', 'fit', {path!r}, 'math ~ ses + (1|schcode)']
from mlmcli.cli import main
main()
"""


@pytest.mark.parametrize("kind,package", [("parquet", "pyarrow"), ("sav", "pyreadstat"), ("xlsx", "openpyxl")])
def test_a_missing_extra_names_the_pip_install(heck_files, kind, package):
    code = _BLOCK.format(pkg=package, path=str(heck_files[kind]))
    p = python("-c", code, capture_output=True, text=True)
    assert p.returncode == 2
    hint = "pip install pyarrow" if package == "pyarrow" else "pip install 'mlm[formats]'"
    assert p.stderr.strip().endswith(f"needs the package {package}: {hint}")
    assert len(p.stderr.strip().splitlines()) == 1


def test_csv_fits_import_no_format_package():
    code = (
        f"import sys; sys.argv = ['mlm', 'fit', {HECK!r}, 'math ~ ses + (1|schcode)', '-f', 'json', '-o', "
        "'/dev/null']\nfrom mlmcli.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('pyarrow', 'pyreadstat', 'openpyxl', 'pandas') if m in sys.modules))"
    )
    p = python("-c", code, capture_output=True, text=True)
    assert p.stdout.strip() == "[]", p.stderr
