"""The exact gradient of lmerTest's devfun_vp in theta and the Hessian differenced from it
(engine/satterthwaite.py, engine/derivatives.py) against differences of the deviance itself."""

from __future__ import annotations

import numpy as np
import pytest

from mlmcli.engine import factor as factor_module
from mlmcli.engine.factor import BlockedFactor
from mlmcli.engine.satterthwaite import deviance_at, deviance_gradient, satterthwaite, theta_hessian
from tests.test_engine_refs import fitted, fitted_case
from tests.test_weights import optimum as weighted_optimum

# scalar, vector (x|g), uncorrelated, nested (3 and 4 levels, slopes), crossed (dense tail of
# scalar terms, of a vector term), nested within crossed, 3 x 3 blocks, a singular fit; REML and ML
CASES = [
    "ss_slope_reml",
    "ss_uncorr_ml",
    "heck_seed1_reml",
    "pastes_nested_reml",
    "nested_slope_class_reml",
    "nested4_ml",
    "subjitem_reml",
    "crossed3_reml",
    "twogroups_reml",
    "block3_ml",
    "factor_re_reml",
    "dye2_reml",
    "twogroups_sing_reml",
]
WEIGHTED = ["sleep_w", "sleep_w_ml", "heck_w_slope", "pastes_w", "penicillin_w"]
TAIL_VECTOR = {"data": "twogroups.csv", "formula": "y ~ x + (1|g1) + (1 + x|g2)", "reml": True}


def model_of(name: str):
    if name in WEIGHTED:
        return weighted_optimum(name)
    if name == "tail_vector":
        return fitted(TAIL_VECTOR)
    return fitted_case(name)


def numdiff_gradient(func, x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """Central differences, Richardson-extrapolated over two halvings."""
    out = np.empty(len(x))
    for k in range(len(x)):
        est = []
        for step in (h, h / 2, h / 4):
            e = np.zeros(len(x))
            e[k] = step
            est.append((func(x + e) - func(x - e)) / (2 * step))
        a = [(4 * est[1] - est[0]) / 3, (4 * est[2] - est[1]) / 3]
        out[k] = (16 * a[1] - a[0]) / 15
    return out


def numderiv_hessian(func, x: np.ndarray, d: float = 0.05, r: int = 3) -> np.ndarray:
    """numDeriv::hessian (genD) as lmerTest calls it, with the larger step the engine used before
    (0.05 relative, 3 Richardson levels): second differences of the deviance."""
    n = len(x)
    f0 = func(x)
    zero_tol = np.sqrt(np.finfo(float).eps / 7e-7)
    h0 = np.maximum(np.abs(d * x) + 1e-4 * (np.abs(x) < zero_tol), 1e-4)
    H = np.zeros((n, n))

    def extrapolated(i: int, j: int) -> float:
        h = h0.copy()
        approx = []
        for _ in range(r):
            e = np.zeros(n)
            e[i], e[j] = h[i], h[j]
            central = func(x + e) - 2 * f0 + func(x - e)
            if i == j:
                approx.append(central / h[i] ** 2)
            else:
                approx.append((central - H[i, i] * h[i] ** 2 - H[j, j] * h[j] ** 2) / (2 * h[i] * h[j]))
            h = h / 2
        for m in range(1, r):
            approx = [(approx[k + 1] * 4**m - approx[k]) / (4**m - 1) for k in range(len(approx) - 1)]
        return float(approx[0])

    for i in range(n):
        H[i, i] = extrapolated(i, i)
    for i in range(n):
        for j in range(i):
            H[i, j] = H[j, i] = extrapolated(i, j)
    return H


def gradient_at(system: BlockedFactor, model, theta: np.ndarray) -> np.ndarray:
    assert system.update(theta)
    return deviance_gradient(system, model.response, model.sigma)


@pytest.mark.parametrize("name", CASES + WEIGHTED + ["tail_vector"])
def test_gradient_matches_differences_of_the_deviance(name):
    """Away from the optimum (where the gradient is not ~0), every component to 1e-7 relative."""
    model = model_of(name)
    system = model.system
    theta = np.asarray(model.theta, dtype=float) * 1.3 + 0.07
    exact = gradient_at(system, model, theta)
    numeric = numdiff_gradient(lambda th: deviance_at(system, model.response, th, model.sigma), theta)
    scale = max(1.0, float(np.max(np.abs(numeric))))
    assert np.max(np.abs(exact - numeric)) <= 1e-7 * scale
    assert np.max(np.abs(exact)) > 0.1  # a real gradient, not one vanishing at an optimum
    system.update(model.theta)


@pytest.mark.parametrize(
    ("name", "kernels"),
    [
        ("ss_slope_reml", {"small_term": True}),
        ("dye_ml", {"small_term": True}),
        ("pen_crossed_reml", {"tail_gram": True}),
        ("crossed3_reml", {"tail_gram": True}),
    ],
)
def test_gradient_on_the_big_data_kernels(name, kernels):
    """The same gradient through the closed-form kernel of one small term and the laid-out
    product of a crossed tail (chosen by size on big data, forced here)."""
    model = fitted_case(name)
    cp = model.system.cp
    theta = np.asarray(model.theta, dtype=float) * 1.3 + 0.07
    general = gradient_at(model.system, model, theta)
    big = gradient_at(BlockedFactor(cp, **kernels), model, theta)
    np.testing.assert_allclose(big, general, rtol=1e-9, atol=1e-9 * float(np.max(np.abs(general))))
    model.system.update(model.theta)


@pytest.mark.parametrize("name", CASES + WEIGHTED[2:])
def test_hessian_matches_numderiv(name):
    """H_tt from the exact gradient against numDeriv's Richardson second differences of the
    deviance (the previous method): to 1e-5 of the largest entry.  The second differences are the
    less accurate of the two: against a four-level Richardson extrapolation of the gradient's
    differences (below) they are off by up to 5e-6 where a theta sits on its bound (heck_seed1)."""
    model = model_of(name)
    system, theta = model.system, np.asarray(model.theta, dtype=float)
    new = theta_hessian(system, model.response, theta, model.sigma)
    old = numderiv_hessian(lambda th: deviance_at(system, model.response, th, model.sigma), theta)
    system.update(theta)
    scale = float(np.max(np.abs(old)))
    assert np.max(np.abs(new - old)) <= 1e-5 * scale
    assert np.array_equal(new, new.T)


@pytest.mark.parametrize("name", ["ss_slope_reml", "heck_seed1_reml", "nested_slope_class_reml", "crossed3_reml"])
def test_hessian_step_is_converged(name):
    """The central difference at the engine's step against Richardson's extrapolation of the
    gradient's differences from a 100 times larger step: 1e-6 of the largest entry (5e-8 measured)."""
    model = model_of(name)
    system, theta = model.system, np.asarray(model.theta, dtype=float)
    new = theta_hessian(system, model.response, theta, model.sigma)
    ref = np.column_stack(
        [numdiff_gradient(lambda th, k=k: gradient_at(system, model, th)[k], theta, h=1e-2) for k in range(len(theta))]
    )
    system.update(theta)
    assert np.max(np.abs(new - ref)) <= 1e-6 * float(np.max(np.abs(ref)))


def test_df_costs_two_factorizations_a_theta_and_leaves_the_factor_at_theta(monkeypatch):
    model = fitted_case("subjitem_reml")
    system, theta = model.system, np.asarray(model.theta, dtype=float)
    system.update(theta)
    before = (system.ldL2, system.pwrss)
    calls = []
    update = factor_module.BlockedFactor.update

    def counted(self, th):
        calls.append(np.array(th))
        return update(self, th)

    monkeypatch.setattr(factor_module.BlockedFactor, "update", counted)
    sat = satterthwaite(system, model.response, theta, model.sigma, model._vcov)
    assert len(calls) == 2 * len(theta) + 1
    assert np.array_equal(system.theta, theta) and (system.ldL2, system.pwrss) == before
    assert 0 < sat.df(np.array([0.0, 1.0])) < np.inf
