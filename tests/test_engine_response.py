"""The engine's seam for new response families: a GLM's PIRLS re-forms the cross-products with new
row weights and a working response (CrossProducts.reweighted, MixedModels.jl's reweight!) and
refactors on them with the same block types (BlockedFactor.reweight).  Re-formed products must be
those built from scratch with the same weights, on nested, slope and crossed designs, with the
general block types and with the big-data kernels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlmcli.design import build_design
from mlmcli.engine.crossprod import CrossProducts
from mlmcli.engine.factor import BlockedFactor
from mlmcli.engine.fit import Objective
from mlmcli.engine.response import GaussianResponse
from mlmcli.formula import parse_formula
from mlmcli.io.csv import read_csv

DATA = Path(__file__).parent / "fixtures" / "lme4" / "data"
ROUNDING = 1e-12

CASES = {
    "nested": ("Pastes.csv", "strength ~ 1 + (1|batch/cask)"),
    "slope": ("sleepstudy.csv", "Reaction ~ Days + (Days|Subject)"),
    "crossed": ("Penicillin.csv", "diameter ~ 1 + (1|plate) + (1|sample)"),
    "nested_and_crossed": ("subjitem.csv", "y ~ x + (1|item) + (1|subject/session)"),
    # a slope in the finer term, the coarser's sums taken from the finer's (LevelSums)
    "nested_slope": ("nested.csv", "y ~ x + (x|classid) + (1|school) + (x|region)"),
}


def design(case: str):
    data, formula = CASES[case]
    parsed = parse_formula(formula)
    return build_design(read_csv(str(DATA / data)), parsed)


def weights_and_response(d, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.2, 3.0, size=len(d.y)), d.y + rng.normal(scale=np.std(d.y), size=len(d.y))


def assert_same_products(a: CrossProducts, b: CrossProducts) -> None:
    # the structure: terms, nesting, the tail's layout
    assert (a.n, a.p, a.nbd, a.q_tail, a.tail_sizes) == (b.n, b.p, b.nbd, b.q_tail, b.tail_sizes)
    assert a.parents.keys() == b.parents.keys()
    for key in a.parents:
        np.testing.assert_array_equal(a.parents[key], b.parents[key])
    for sa, sb in zip(a.structures, b.structures, strict=True):
        assert (sa.k, sa.ell) == (sb.k, sb.ell)
        np.testing.assert_array_equal(sa.codes, sb.codes)
        np.testing.assert_allclose(sa.X, sb.X, rtol=ROUNDING)
    # the products and the rows they came from
    np.testing.assert_allclose(a.X, b.X, rtol=ROUNDING)
    np.testing.assert_allclose(a.y, b.y, rtol=ROUNDING)
    np.testing.assert_allclose(a.weights, b.weights, rtol=ROUNDING)
    assert a.log_weights == pytest.approx(b.log_weights, rel=ROUNDING)
    np.testing.assert_allclose(a.A_FF, b.A_FF, rtol=ROUNDING)
    for x, y in zip(a.A_diag + a.A_F, b.A_diag + b.A_F, strict=True):
        np.testing.assert_allclose(x, y, rtol=ROUNDING, atol=ROUNDING * np.abs(y).max())
    assert a.A_nested.keys() == b.A_nested.keys()
    for key, nb in a.A_nested.items():
        np.testing.assert_array_equal(nb.parent, b.A_nested[key].parent)
        np.testing.assert_allclose(nb.values, b.A_nested[key].values, rtol=ROUNDING)
    if a.q_tail:
        for x, y in zip(a.A_tail, b.A_tail, strict=True):
            np.testing.assert_allclose(x.toarray(), y.toarray(), rtol=ROUNDING)
        np.testing.assert_allclose(a.A_tt, b.A_tt, rtol=ROUNDING)
        np.testing.assert_allclose(a.A_Ft, b.A_Ft, rtol=ROUNDING, atol=ROUNDING * np.abs(b.A_Ft).max())


@pytest.mark.parametrize("case", list(CASES))
def test_reweighted_products_equal_products_built_with_those_weights(case):
    d = design(case)
    cp = CrossProducts(d.terms, d.X, d.y)
    A_FF = cp.A_FF.copy()
    w, z = weights_and_response(d, 1)
    assert_same_products(cp.reweighted(w, z), CrossProducts(d.terms, d.X, z, w))
    # weights replace the earlier ones (the data's rows are re-weighted, not the weighted rows)
    w2, z2 = weights_and_response(d, 2)
    assert_same_products(cp.reweighted(w, z).reweighted(w2, z2), CrossProducts(d.terms, d.X, z2, w2))
    # the products re-formed from are untouched
    assert cp.weights is None and cp.log_weights == 0.0
    np.testing.assert_array_equal(cp.A_FF, A_FF)


def block_types(f: BlockedFactor) -> list[object]:
    return [
        [type(b) for b in f.diagonal],
        {k: type(b) for k, b in f.below.items()},
        [type(b) for b in f.rows],
        type(f.fixed),
    ]


@pytest.mark.parametrize("big", [False, True], ids=["general", "big-data kernels"])
@pytest.mark.parametrize("case", list(CASES))
def test_factor_on_reweighted_products_equals_a_fresh_one(case, big):
    """The factor keeps its block types (the closed-form term's and the laid-out tail product's
    among them) and, refactored on re-formed products, equals the factor of products built with
    the weights from the start; so does the Gaussian criterion of them."""
    d = design(case)
    cp = CrossProducts(d.terms, d.X, d.y)
    one_small = len(cp.structures) == 1 and cp.structures[0].k <= 2
    kernels = {"small_term": big and one_small, "tail_gram": big and cp.q_tail > 0}
    theta = np.concatenate([np.where(s.tri_rows == s.tri_cols, 0.7, 0.2) for s in cp.structures])
    f = BlockedFactor(cp, **kernels)
    kinds = block_types(f)
    assert f.update(theta)
    w, z = weights_and_response(d, 3)
    f.reweight(cp.reweighted(w, z))
    assert block_types(f) == kinds
    assert f.update(theta)
    fresh_cp = CrossProducts(d.terms, d.X, z, w)
    g = BlockedFactor(fresh_cp, **kernels)
    assert g.update(theta)
    assert f.ldL2 == pytest.approx(g.ldL2, rel=ROUNDING)
    np.testing.assert_allclose(f.L_FF, g.L_FF, rtol=1e-10, atol=1e-10 * np.abs(g.L_FF).max())
    np.testing.assert_allclose(f.beta(), g.beta(), rtol=1e-10)
    for u, v in zip(f.spherical_modes(), g.spherical_modes(), strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-9 * np.abs(v).max())
    for reml in (True, False):
        ours = GaussianResponse.of(f.cp, reml).criterion(f)
        assert ours == pytest.approx(GaussianResponse.of(fresh_cp, reml).criterion(g), rel=ROUNDING)
        # the criterion of the weighted model, as a fit of it evaluates it
        assert ours == pytest.approx(Objective(BlockedFactor(fresh_cp), GaussianResponse.of(fresh_cp, reml))(theta))


def test_a_factor_takes_only_products_of_its_own_layout():
    nested, crossed = design("nested"), design("crossed")
    f = BlockedFactor(CrossProducts(nested.terms, nested.X, nested.y))
    with pytest.raises(ValueError, match="keep the terms"):
        f.reweight(CrossProducts(crossed.terms, crossed.X, crossed.y))


def test_reweighting_needs_the_rows():
    from mlmcli.errors import FitError

    d = design("nested")
    cp = CrossProducts(d.terms, d.X, d.y)
    summed = CrossProducts.from_blocks(
        cp.structures, cp.n, cp.A_FF, cp.A_diag, cp.A_F, cp.parents,
        {k: v.values for k, v in cp.A_nested.items()}, cp.nbd, [], None, None,
    )  # fmt: skip
    with pytest.raises(FitError, match="needs the rows"):
        summed.reweighted(np.ones(cp.n), d.y)


def test_the_gaussian_criterion_is_lme4s():
    """REML criterion and ML deviance from the factor's pieces, prior weights' ldW subtracted; the
    deviance at the ML estimate of sigma is the ML criterion (profile.merMod's devfun2)."""
    d = design("slope")
    rng = np.random.default_rng(4)
    w = rng.uniform(0.5, 2.0, size=len(d.y))
    cp = CrossProducts(d.terms, d.X, d.y, w)
    f = BlockedFactor(cp)
    assert f.update(np.array([0.9, 0.05, 0.25]))
    n, p = cp.n, cp.p
    ldL2, ldRX2, pwrss = f.ldL2, f.ldRX2, GaussianResponse.of(cp, True).pwrss(f)
    ldW = float(np.log(w).sum())
    reml = ldL2 - ldW + ldRX2 + (n - p) * (1 + np.log(2 * np.pi * pwrss / (n - p)))
    ml = ldL2 - ldW + n * (1 + np.log(2 * np.pi * pwrss / n))
    assert GaussianResponse.of(cp, True).criterion(f) == pytest.approx(reml, rel=1e-13)
    ml_response = GaussianResponse.of(cp, False)
    assert ml_response.criterion(f) == pytest.approx(ml, rel=1e-13)
    assert ml_response.deviance(f, pwrss / n) == pytest.approx(ml, rel=1e-13)
    # on small data the penalized RSS is the one summed from the residuals; off the factor it agrees
    assert pwrss == ml_response.pwrss_direct(f)
    assert GaussianResponse.of(cp, False, direct_rows=0).pwrss(f) == pytest.approx(pwrss, rel=1e-10)
    assert ml_response.sigma(f) == pytest.approx(np.sqrt(f.pwrss / n), rel=1e-15)
