"""Passes over the rows in pieces give what whole-column arithmetic gives.

The per-level sums of A (engine/crossprod.py) are np.bincount's to the last bit, with weights, nested
and crossed terms and a term sharing the fixed-effects matrix; Z b, the scaled residuals' quantiles,
a numeric grouping factor's codes, checkScaleX's standard deviations and the variance of X beta are
the whole-column computations' values.  The pieces are made a few rows long here so that every pass crosses many
piece boundaries on small data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlmcli.design import ReTerm, build_design, checks, factors, model_matrix
from mlmcli.engine import crossprod
from mlmcli.engine.crossprod import CrossProducts
from mlmcli.formula import parse_formula
from mlmcli.io.csv import read_csv
from mlmcli.io.source import Source
from mlmcli.pipeline import lmer

HECK = str(Path(__file__).parent.parent / "sample_data" / "heck2011.csv")


@pytest.fixture
def small_pieces(monkeypatch):
    monkeypatch.setattr(crossprod, "PIECE", 7)
    monkeypatch.setattr(checks, "PIECE", 5)
    monkeypatch.setattr(factors, "PIECE", 3)


def _terms(rng: np.random.Generator, kind: str, X: np.ndarray) -> list[ReTerm]:
    n = len(X)
    low = rng.integers(0, 12, size=n)
    top = low // 4  # nested in low
    crossed = rng.integers(0, 5, size=n)
    groups = {"single": [low], "nested": [low, top], "crossed": [low, crossed]}[kind]
    out = []
    for i, g in enumerate(groups):
        codes = np.unique(g, return_inverse=True)[1].astype(np.int64)
        Z = X if i == 0 else np.column_stack([np.ones(n)])  # the first term shares X's columns
        out.append(
            ReTerm(f"g{i}", [str(v) for v in range(codes.max() + 1)], codes, Z, [f"c{a}" for a in range(Z.shape[1])])
        )
    return out


def _bincount_blocks(terms: list[ReTerm], X: np.ndarray, y: np.ndarray, w: np.ndarray | None):
    """Z_j'Z_j and [X y]'Z_j per level with one np.bincount per product, as the blocks were formed
    before the pass in pieces."""
    sw = np.ones(len(y)) if w is None else np.sqrt(w)
    Xw, yw = X * sw[:, None], y * sw
    XY = [Xw[:, c] for c in range(Xw.shape[1])] + [yw]
    diag, cross = [], []
    for t in terms:
        Z = t.X * sw[:, None]
        ell, k = len(t.levels), Z.shape[1]
        D = np.empty((ell, k, k))
        for a in range(k):
            for b in range(a + 1):
                D[:, a, b] = D[:, b, a] = np.bincount(t.codes, weights=Z[:, a] * Z[:, b], minlength=ell)
        F = np.empty((ell, len(XY), k))
        for a, col in enumerate(XY):
            for b in range(k):
                F[:, a, b] = np.bincount(t.codes, weights=col * Z[:, b], minlength=ell)
        diag.append(D)
        cross.append(F)
    return diag, cross


@pytest.mark.parametrize("kind", ["single", "nested", "crossed"])
@pytest.mark.parametrize("weighted", [False, True])
def test_level_sums_are_bincounts_to_the_bit(small_pieces, kind, weighted):
    rng = np.random.default_rng(11)
    n = 203
    X = np.column_stack([np.ones(n), rng.normal(size=n) * 3 + 1])
    y = X @ [2.0, -0.5] + rng.normal(size=n)
    w = rng.uniform(0.5, 2.0, size=n) if weighted else None
    terms = _terms(rng, kind, X)
    cp = CrossProducts(terms, X, y, w)
    diag, cross = _bincount_blocks(terms, X, y, w)
    for t in range(cp.nbd):
        assert np.array_equal(cp.A_diag[t], diag[t])
        assert np.array_equal(cp.A_F[t], cross[t])
    if cp.q_tail:  # the crossed term's [X y]'Z: its own pass
        F = cross[-1]
        assert np.array_equal(cp.A_Ft, F.transpose(1, 0, 2).reshape(F.shape[1], -1))
    # a term holding a copy of X's columns rather than X itself: the same sums
    copied = [ReTerm(t.group, t.levels, t.codes, t.X.copy(), t.cnames) for t in terms]
    other = CrossProducts(copied, X, y, w)
    for t in range(cp.nbd):
        assert np.array_equal(cp.A_diag[t], other.A_diag[t])
        assert np.array_equal(cp.A_F[t], other.A_F[t])


def test_z_b_in_pieces_is_the_whole_columns_sum(small_pieces):
    rng = np.random.default_rng(5)
    n = 150
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    terms = _terms(rng, "crossed", X)
    cp = CrossProducts(terms, X, rng.normal(size=n))
    b = [rng.normal(size=(len(t.levels), t.X.shape[1])) for t in terms]
    expected = np.zeros(n)
    for t, bi in zip(terms, b, strict=True):
        for a in range(t.X.shape[1]):
            expected += t.X[:, a] * bi[:, a][t.codes]
    assert np.array_equal(cp.Zb(b), expected)


def test_a_slope_on_the_fixed_part_shares_its_matrix():
    frame = read_csv(HECK)
    formula = parse_formula("math ~ ses + (ses | schcode)")
    design = build_design(frame, formula)
    assert design.terms[0].X is design.X
    X, names = model_matrix(formula.fixed, design.values, design.n_obs)
    assert np.array_equal(design.X, X) and design.xnames == names == ["(Intercept)", "ses"]
    assert design.terms[0].cnames == ["(Intercept)", "ses"]
    assert design.xnames is not design.terms[0].cnames
    # another left-hand side: a matrix of its own
    other = build_design(frame, parse_formula("math ~ ses + female + (ses | schcode)"))
    assert other.terms[0].X is not other.X
    assert other.terms[0].X.shape == (6871, 2) and other.X.shape == (6871, 3)
    assert np.array_equal(other.terms[0].X, other.X[:, :2])


def test_model_matrix_columns_written_in_place():
    values = {"x": np.array([1.5, -2.0, 0.25]), "f": np.array([0.0, 1.0, 1.0])}
    X, names = model_matrix(parse_formula("y ~ x * f + (1 | g)").fixed, values, 3)
    assert names == ["(Intercept)", "x", "f", "x:f"]
    assert X.flags.c_contiguous
    assert X.tolist() == [[1.0, 1.5, 0.0, 0.0], [1.0, -2.0, 1.0, -2.0], [1.0, 0.25, 1.0, 0.25]]


def test_grouping_codes_in_pieces(small_pieces):
    ids = np.array([7.0, 3.0, 3.0, 12.0, 7.0, 5.0, 3.0, 12.0, 9.0, 5.0])
    values, codes = factors._sorted_codes(ids)
    assert values.tolist() == [3.0, 5.0, 7.0, 9.0, 12.0]
    assert codes.tolist() == [2, 0, 0, 4, 2, 1, 0, 4, 3, 1]
    # a fraction after the first pieces: factor() of the distinct values, sorted
    mixed = ids.copy()
    mixed[8] = 9.5
    values, codes = factors._sorted_codes(mixed)
    assert values.tolist() == [3.0, 5.0, 7.0, 9.5, 12.0]
    assert codes.tolist() == [2, 0, 0, 4, 2, 1, 0, 4, 3, 1]


def test_check_scale_x_in_pieces(small_pieces):
    rng = np.random.default_rng(3)
    x = rng.normal(size=101) * 7 + 40
    assert checks._column_sd(x) == pytest.approx(float(np.std(x, ddof=1)), rel=1e-13)
    assert checks._binary(np.array([0.0, 1.0] * 20)) and not checks._binary(np.array([0.0] * 20 + [2.0]))
    X = np.column_stack([np.ones(101), x, (rng.random(101) < 0.5).astype(float)])
    assert checks.scale_warning(X) is None
    X[:, 1] *= 1e3
    assert checks.scale_warning(X) == checks.SCALE_WARNING


@pytest.mark.parametrize("weighted", [False, True])
def test_scaled_residual_quantiles_are_type_7_quantiles(small_pieces, weighted):
    """From the system's rows in pieces (no fitted values yet), and from the fitted values."""
    frame = read_csv(HECK)
    frame.columns["w"] = 0.5 + (np.arange(frame.n_rows) % 4) / 2
    fit, _ = lmer(frame, "math ~ ses + female + (1 | schcode)", weights="w" if weighted else None)
    got = fit.scaled_residual_quantiles()
    r = fit.pearson_residuals / fit.sigma
    expected = np.quantile(r, [0.0, 0.25, 0.5, 0.75, 1.0])  # numpy's "linear" is R's type 7
    assert got == pytest.approx(expected.tolist(), rel=1e-12, abs=1e-12)
    assert fit.scaled_residual_quantiles() == pytest.approx(got, rel=1e-12, abs=1e-12)
    # as the summary prints them (today's values, unchanged by the pass in one array)
    printed = {
        False: [-3.72, -0.5473, 0.1332, 0.6505, 5.7705],
        True: [-4.2329, -0.5235, 0.1165, 0.6218, 6.3535],
    }[weighted]
    assert [round(v, 4) for v in got] == printed


def test_integer_columns_become_doubles_as_they_are_copied_out():
    import pyarrow as pa

    from mlmcli.io.csv_arrow import _doubles

    sliced = pa.array([4, 5, 6, None, 8], pa.int64()).slice(1, 3)
    col = pa.chunked_array([[1, None, -7], sliced, [2**53 - 1]], pa.int64())
    got = _doubles(col)
    assert got.dtype == np.float64
    assert np.array_equal(got, [1.0, np.nan, -7.0, 5.0, 6.0, np.nan, 2.0**53 - 1], equal_nan=True)
    assert np.isnan(_doubles(pa.chunked_array([[None, None]], pa.int64()))).all()
    assert _doubles(pa.chunked_array([[1.5, None]], pa.float64()))[0] == 1.5
    # pyarrow's cast refuses what a double cannot hold, and so does the copy
    with pytest.raises(pa.ArrowInvalid, match="not in range"):
        _doubles(pa.chunked_array([[3, -(2**53) - 1]], pa.int64()))


@pytest.mark.parametrize("trim_bytes", [0, 1 << 26])
def test_arrow_reader_gives_the_python_readers_frame(tmp_path, monkeypatch, trim_bytes):
    """Columns copied out of pyarrow's buffers (integers, doubles, missing values, a text column read
    again), with the memory handed back column by column or not: the pure-Python reader's frame."""
    import mlmcli.io.csv_arrow

    monkeypatch.setattr(mlmcli.io.csv_arrow, "_TRIM_BYTES", trim_bytes)
    rng = np.random.default_rng(2)
    lines = ["id,x,big,word,y"]
    for i in range(3000):
        x = "NA" if i % 17 == 0 else f"{rng.normal():.6g}"
        big = "" if i % 23 == 0 else str(3_000_000_000 + i)
        lines.append(f"{i % 40},{x},{big},{'ab'[i % 2]}{i % 3},{rng.integers(-5, 5)}")
    path = tmp_path / "d.csv"
    path.write_text("\n".join(lines) + "\n")
    fast = mlmcli.io.csv_arrow.read_arrow(Source.open(str(path)), ",", None, "d")
    assert fast is not None  # pyarrow's own result, not a reader it handed the file on to
    slow = read_csv(str(path), engine="python")
    assert list(fast.columns) == list(slow.columns) == ["id", "x", "big", "word", "y"]
    assert fast.int_columns == slow.int_columns == {"id", "y"}  # 3e9 is beyond R's integers
    for name in ("id", "x", "big", "y"):
        assert fast.columns[name].dtype == np.float64
        assert np.array_equal(fast.columns[name], slow.columns[name], equal_nan=True)
    assert np.isnan(fast.columns["x"][::17]).all() and np.isnan(fast.columns["big"][::23]).all()
    assert fast.columns["word"].levels == slow.columns["word"].levels == ["a0", "a1", "a2", "b0", "b1", "b2"]
    assert np.array_equal(fast.columns["word"].codes, slow.columns["word"].codes)


def test_variance_of_the_fixed_part_in_pieces(monkeypatch):
    """insight's var.fixed, R's var(X beta), over pieces of rows: the whole column's value, and a
    constant's variance exactly 0."""
    from mlmcli import effects

    rng = np.random.default_rng(5)
    X = np.column_stack([np.ones(1000), rng.normal(50.0, 2.0, 1000), rng.integers(0, 2, 1000)])
    beta = np.array([3.0, 0.7, -1.2])
    whole = effects._r_var(X @ beta)
    monkeypatch.setattr(effects, "PIECE", 64)
    assert effects._var_of_product(X, beta) == pytest.approx(whole, rel=1e-13)
    assert whole == pytest.approx(float(np.var(X @ beta, ddof=1)), rel=1e-13)
    assert effects._var_of_product(X, np.array([2.5, 0.0, 0.0])) == 0.0
