"""CSV reading, R's collation and number formatting, and lmer's model matrices against R."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlmcli.design import build_design, evaluate, model_matrix, pivoted_rank
from mlmcli.errors import DataError
from mlmcli.formula import parse_formula
from mlmcli.io.csv import read_csv
from mlmcli.io.frame import Factor, Frame, make_names
from mlmcli.rcompat.rsort import collation_key, format_number, r_sort

FIXTURES = Path(__file__).parent / "fixtures" / "design"
ROOT = Path(__file__).parent.parent


def _load(name: str):
    return json.loads((FIXTURES / name).read_text())


def _path(file: str) -> Path:
    return (FIXTURES / file).resolve()


# ---------------------------------------------------------------- rsort


def test_collation_matches_r_sort():
    case = _load("collation.json")
    assert r_sort(case["input"]) == case["sorted"]


def test_collation_of_latin1_characters():
    # R: sort(intToUtf8(c(32:126, 160:255), multiple = TRUE)), first and last few
    chars = [chr(c) for c in [*range(32, 127), *range(160, 256)]]
    ordered = r_sort(chars)
    assert ordered[:8] == ["\u00ad", " ", "\u00a0", "_", "-", ",", ";", ":"]
    assert ordered[-5:] == ["z", "Z", "\u00fe", "\u00de", "\u00b5"]
    assert collation_key("a") < collation_key("A") < collation_key("\u00e1") < collation_key("b")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e5, "1e+05"),
        (123456, "123456"),
        (0.1, "0.1"),
        (1 / 3, "0.333333333333333"),
        (1e15, "1e+15"),
        (1e-5, "1e-05"),
        (0.0001, "1e-04"),
        (123456.7, "123456.7"),
        (1234567890123456789, "1234567890123456768"),
        (100, "100"),
        (1e5 + 0.1, "100000.1"),
        (0.1 + 0.2, "0.3"),
        (-2.5, "-2.5"),
        (0.0, "0"),
        (math.inf, "Inf"),
        (-math.inf, "-Inf"),
        (1e300, "1e+300"),
        (0.0001234, "0.0001234"),
    ],
)
def test_format_number_as_r(value, text):
    # the values R's as.character() gives
    assert format_number(value) == text


def test_make_names():
    assert make_names(["my col", "2x", "_a", ".b", ".2c", "if", "a-b", "", "x", "x", "TRUE", "\u00e9"]) == [
        "my.col",
        "X2x",
        "X_a",
        ".b",
        "X.2c",
        "if.",
        "a.b",
        "X",
        "x",
        "x.1",
        "TRUE.",
        "\u00e9",
    ]


# ---------------------------------------------------------------- read_csv


@pytest.mark.parametrize("case", _load("reader.json"), ids=lambda c: c["file"])
def test_read_csv_matches_read_csv(case):
    frame = read_csv(str(FIXTURES / case["file"]))
    assert frame.n_rows == case["n_rows"]
    assert list(frame.columns) == case["names"]
    for name, expected in case["columns"].items():
        col = frame.columns[name]
        if expected["type"] in ("factor", "logical"):
            assert isinstance(col, Factor), name
            if expected["type"] == "factor":
                assert col.levels == expected["levels"], name
                assert [c + 1 if c >= 0 else None for c in col.codes.tolist()] == expected["codes"], name
            else:
                assert col.logical and col.levels == ["FALSE", "TRUE"]
                want = [None if v is None else int(v) for v in expected["values"]]
                assert [None if c < 0 else c for c in col.codes.tolist()] == want, name
        else:
            assert isinstance(col, np.ndarray), name
            want = np.array([np.nan if v is None else v for v in expected["values"]], dtype=float)
            want[np.array(expected["inf"])] = np.inf * np.sign(want[np.array(expected["inf"])])
            np.testing.assert_array_equal(col, want)
            assert (name in frame.int_columns) == (expected["type"] == "integer"), name


def test_read_csv_data_name():
    assert read_csv(str(ROOT / "sample_data" / "heck2011.csv")).name == "heck2011"


def test_read_csv_from_stdin(monkeypatch):
    data = b"y,g\n1.5,a\n2,b\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
    frame = read_csv("-")
    assert frame.name == "stdin" and frame.n_rows == 2
    np.testing.assert_array_equal(frame.columns["y"], [1.5, 2.0])
    assert frame.columns["g"].levels == ["a", "b"]


def test_read_csv_errors(tmp_path):
    with pytest.raises(DataError, match="cannot open file"):
        read_csv(str(tmp_path / "missing.csv"))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        read_csv(str(empty))
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3\n4,5\n")
    with pytest.raises(DataError, match="line 3: 1 fields, but the header has 2"):
        read_csv(str(ragged))
    quoted = tmp_path / "ragged_quoted.csv"
    quoted.write_text('a,b\n"x",2\n"y",3,4\n')
    with pytest.raises(DataError, match="line 3: 3 fields"):
        read_csv(str(quoted))


def test_read_csv_header_only_and_blank_lines(tmp_path):
    p = tmp_path / "h.csv"
    p.write_text("\n\na,b\n\n1,x\n\n2,y\n\n")
    frame = read_csv(str(p))
    assert frame.n_rows == 2
    np.testing.assert_array_equal(frame.columns["a"], [1.0, 2.0])
    p.write_text("a,b\n")
    with pytest.raises(DataError, match="no data rows"):
        read_csv(str(p))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=30),
    st.lists(st.text(alphabet="abcXYZ _-", min_size=1, max_size=4), min_size=1, max_size=30),
)
def test_read_csv_round_trips_numbers_and_text(tmp_path_factory, numbers, words):
    n = min(len(numbers), len(words))
    words = [w if w.strip() and w != "NA" else "w" for w in words[:n]]
    path = tmp_path_factory.mktemp("csv") / "d.csv"
    lines = ["num,word"] + [f'{repr(x)},"{w}"' for x, w in zip(numbers[:n], words, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    frame = read_csv(str(path))
    np.testing.assert_array_equal(frame.columns["num"], numbers[:n])
    col = frame.columns["word"]
    assert col.levels == r_sort(set(words))
    assert [col.levels[c] for c in col.codes] == words


# ---------------------------------------------------------------- design against lme4

DESIGN = _load("design.json")


def _frame(file: str) -> Frame:
    return _frames.setdefault(file, read_csv(str(_path(file))))


_frames: dict[str, Frame] = {}


def _case_id(case: dict) -> str:
    return f"{Path(case['file']).stem}: {case['formula']}"


@pytest.mark.parametrize("case", [c for c in DESIGN if "error" not in c], ids=_case_id)
def test_design_matches_lformula(case):
    d = build_design(_frame(case["file"]), parse_formula(case["formula"]))
    assert d.xnames == case["xnames"]
    assert d.n_obs == case["n_obs"]
    assert d.messages == case["messages"]
    assert d.dropped == case["dropped"]
    assert [t.label for t in d.terms] == [t["label"] for t in case["terms"]]
    if "X" in case:
        np.testing.assert_allclose(d.X, np.array(case["X"]).reshape(d.n_obs, -1), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(d.y, case["y"], rtol=1e-12)
        assert d.rows.tolist() == case["rows"]
    else:
        np.testing.assert_allclose(d.X.sum(axis=0), case["X_colsums"], rtol=1e-10)
        np.testing.assert_allclose(d.X[:5], case["X_head"], rtol=1e-12)
        assert d.y.sum() == pytest.approx(case["y_sum"], rel=1e-12)
        assert int(d.rows.sum()) == case["rows_sum"]
    for ours, theirs in zip(d.terms, case["terms"], strict=True):
        assert ours.group == theirs["group"]
        assert ours.levels == theirs["levels"]
        assert ours.cnames == theirs["cnames"]
        if "codes" in theirs:
            assert ours.codes.tolist() == theirs["codes"]
            np.testing.assert_allclose(ours.X, np.array(theirs["X"]).reshape(d.n_obs, -1), rtol=1e-12)
        else:
            assert int(ours.codes.sum()) == theirs["code_sum"]
            assert ours.codes[:10].tolist() == theirs["codes_head"]
            np.testing.assert_allclose(ours.X.sum(axis=0), theirs["X_colsums"], rtol=1e-10)


@pytest.mark.parametrize("case", [c for c in DESIGN if "error" in c], ids=_case_id)
def test_design_errors_as_lme4(case):
    with pytest.raises(DataError) as info:
        build_design(_frame(case["file"]), parse_formula(case["formula"]))
    # lme4's own checks word the message exactly; R's contrasts error is the message's start
    assert str(info.value).startswith(case["error"])


# ---------------------------------------------------------------- our own errors


def test_unknown_column_suggests_a_close_name():
    frame = read_csv(str(ROOT / "sample_data" / "heck2011.csv"))
    with pytest.raises(DataError, match=r"unknown column 'sess' in formula; did you mean 'ses'\?"):
        build_design(frame, parse_formula("math ~ sess + (1 | schcode)"))
    with pytest.raises(DataError, match=r"unknown column 'SCHCODE' in formula; did you mean 'schcode'\?"):
        build_design(frame, parse_formula("math ~ ses + (1 | SCHCODE)"))
    with pytest.raises(DataError, match="unknown column 'zzz' in formula; the columns are: schcode, Rid"):
        build_design(frame, parse_formula("math ~ zzz + (1 | schcode)"))


def test_text_response_and_missing_rows():
    frame = _frame("toy.csv")
    with pytest.raises(DataError, match="the response 'g' is not numeric"):
        build_design(frame, parse_formula("g ~ x + (1 | a)"))
    with pytest.raises(DataError, match="cannot be computed"):
        build_design(frame, parse_formula("y ~ I(f * 2) + (1 | a)"))
    frame2 = Frame("d", {"y": np.array([np.nan, np.nan]), "g": Factor(np.array([0, 1]), ["a", "b"])}, 2)
    with pytest.raises(DataError, match="the response column 'y' is missing in every row"):
        build_design(frame2, parse_formula("y ~ 1 + (1 | g)"))
    frame3 = Frame("d", {"y": np.array([1.0, np.nan]), "g": Factor(np.array([-1, 1]), ["a", "b"])}, 2)
    with pytest.raises(DataError, match="no rows left after removing rows with missing values"):
        build_design(frame3, parse_formula("y ~ 1 + (1 | g)"))


# ---------------------------------------------------------------- pieces


def test_scale_uses_all_rows_of_the_data():
    # R's model.frame evaluates scale(x) before dropping rows with missing values
    frame = Frame("d", {"x": np.array([1.0, 2.0, 3.0, 10.0]), "z": np.array([1.0, 1.0, 1.0, np.nan])}, 4)
    var = parse_formula("z ~ scale(x) + (1 | x)").fixed.terms[0].vars[0]
    x = np.array([1.0, 2.0, 3.0, 10.0])
    np.testing.assert_allclose(evaluate(var, frame), (x - x.mean()) / x.std(ddof=1))


def test_scale_check_of_x_and_of_its_sums_agree():
    """lme4's checkScaleX says the same of X's rows as of the sums the Dask engine holds instead of rows."""
    from mlmcli.design import SCALE_WARNING, scale_warning, scale_warning_of_sums

    rng = np.random.default_rng(7)
    n = 200
    one, binary = np.ones(n), rng.integers(0, 2, n).astype(float)
    x, z = rng.normal(size=n), rng.normal(size=n)
    cases = [
        ([one, binary, x, 50 * z], None),
        ([one, binary, 30 * x, 0.02 * z], SCALE_WARNING),  # 1500-fold apart, each within 1000 of 1
        ([one, 1e-4 * x], SCALE_WARNING),  # one SD far from 1
        ([one, binary], None),  # indicators are not checked
    ]
    for cols, expected in cases:
        X = np.column_stack(cols)
        W = np.column_stack([np.ones(n), X])
        binary = np.all((X == 0) | (X == 1), axis=0)
        assert scale_warning(X) == expected
        assert scale_warning_of_sums(W.T @ W, binary, n) == expected


def test_a_predictor_on_another_scale_is_reported_in_the_design():
    rng = np.random.default_rng(8)
    n = 60
    frame = Frame(
        "d",
        {"y": rng.normal(size=n), "x": 1e5 * rng.normal(size=n), "g": np.repeat(np.arange(6.0), 10)},
        n,
    )
    messages = build_design(frame, parse_formula("y ~ x + (1 | g)")).messages
    assert messages == ["Some predictor variables are on very different scales: consider rescaling"]
    assert build_design(frame, parse_formula("y ~ I(x / 1e5) + (1 | g)")).messages == []


def test_logical_keeps_both_levels_and_counts_as_numbers():
    frame = Frame("d", {"b": Factor(np.array([1, 1, 1]), ["FALSE", "TRUE"], logical=True)}, 3)
    spec = parse_formula("y ~ b + (1 | g)").fixed
    X, names = model_matrix(spec, {"b": frame.columns["b"]}, 3)
    assert names == ["(Intercept)", "bTRUE"]
    np.testing.assert_array_equal(X[:, 1], [1, 1, 1])
    var = parse_formula("y ~ I(b * 2) + (1 | g)").fixed.terms[0].vars[0]
    np.testing.assert_array_equal(evaluate(var, frame), [2, 2, 2])


@settings(max_examples=50, deadline=None)
@given(st.integers(5, 30), st.integers(1, 6), st.data())
def test_pivoted_rank_keeps_independent_columns_in_order(n, p, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    X = rng.normal(size=(n, p))
    copies = data.draw(st.lists(st.integers(0, p - 1), max_size=3))
    cols = [X[:, j] for j in range(p)]
    for j in copies:  # a column that repeats (a multiple of) an earlier one is dropped
        cols.append(3.0 * cols[j])
    full = np.column_stack(cols)
    keep = pivoted_rank(full)
    rank = np.linalg.matrix_rank(full)
    assert len(keep) == rank
    assert keep == sorted(keep)
    assert np.linalg.matrix_rank(full[:, keep]) == rank
    if rank == p:
        assert keep == list(range(p))


def test_tall_rank_check_agrees_with_the_householder_pass(monkeypatch):
    """The X'X shortcut for tall data keeps exactly the columns dqrdc2's pass keeps."""
    import mlmcli.design.checks as dz

    rng = np.random.default_rng(5)
    x = rng.normal(size=(3000, 3))
    cases = [
        np.column_stack([np.ones(3000), x]),
        np.column_stack([np.ones(3000), x, 2 * x[:, 0]]),  # exactly dependent
        np.column_stack([np.ones(3000), x, x[:, 1] + 1e-9 * x[:, 2]]),
    ]  # nearly dependent
    fast = [pivoted_rank(X) for X in cases]
    assert [dz._clearly_full_rank(X) for X in cases] == [True, False, False]
    monkeypatch.setattr(dz, "_clearly_full_rank", lambda X: False)
    assert fast == [pivoted_rank(X) for X in cases]
    assert fast[0] == [0, 1, 2, 3] and fast[1] == [0, 1, 2, 3]


def test_numeric_grouping_codes_by_table_and_by_sort_agree():
    import mlmcli.design.factors as dz

    rng = np.random.default_rng(6)
    for x in (
        rng.integers(-5, 40, size=500).astype(float),
        rng.normal(size=300).round(1),
        np.array([3.0, 1e15, -2.0, 3.0]),
    ):
        values, codes = dz._sorted_codes(x)
        ref_values, ref_codes = np.unique(x, return_inverse=True)
        assert np.array_equal(values, ref_values) and np.array_equal(codes, ref_codes.ravel())
