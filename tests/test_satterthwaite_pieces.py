"""The derivatives' shared solves (derivatives.GradientPieces) and the closed-form kernels of one
small term (small_term_derivatives.py) against the formulas they replace, written out here as they
were: one solve per derivative, the general (ell, k, k) kernels on every factor.  The theta-theta
Hessian and lmerTest's pieces must not move beyond rounding."""

from __future__ import annotations

import numpy as np
import pytest

from mlmcli.engine.blocks import bmm
from mlmcli.engine.derivatives import GradientPieces, _ldL2_gradient, _theta_entries
from mlmcli.engine.factor import BlockedFactor
from mlmcli.engine.satterthwaite import satterthwaite, theta_hessian, theta_steps
from mlmcli.engine.small_term_derivatives import SmallTermGradient
from tests.test_engine_refs import fitted_case


def old_pwrss_gradient(f: BlockedFactor) -> np.ndarray:
    cp, p = f.cp, f.p
    u = f.spherical_modes()
    b = [bi[:, :, None] for bi in f.conditional_modes(u)]
    beta = f.beta()
    Zr = [ZF[:, :, p] - ZF[:, :, :p] @ beta - ZZb[:, :, 0] for ZF, ZZb in zip(cp.z_xy(), cp.zz_times(b), strict=True)]
    us = [ui.reshape(s.ell, s.k) for s, ui in zip(f.structures, u, strict=True)]
    return np.array([-2.0 * float(Zr[j][:, a] @ us[j][:, bb]) for j, a, bb in _theta_entries(f)])


def old_rx_gradient(f: BlockedFactor) -> list[np.ndarray]:
    cp, p = f.cp, f.p
    U = f.solve_modes(f.LF_rows(slice(0, p)))
    B = [bmm(T, Ui.reshape(s.ell, s.k, p)) for s, T, Ui in zip(f.structures, f.T, U, strict=True)]
    W = [ZF[:, :, :p] - ZZB for ZF, ZZB in zip(cp.z_xy(), cp.zz_times(B), strict=True)]
    LW = [bmm(T.T, Wj) for T, Wj in zip(f.T, W, strict=True)]
    out = []
    for j, a, b in _theta_entries(f):
        G = W[j][:, a, :].T @ LW[j][:, b, :]
        out.append(-(G + G.T))
    return out


def old_deviance_gradient(f: BlockedFactor, reml: bool, sigma: float) -> np.ndarray:
    g = _ldL2_gradient(f) + old_pwrss_gradient(f) / sigma**2
    if reml:
        C = f.unscaled_vcov()
        g = g + np.array([float(np.sum(C * dM)) for dM in old_rx_gradient(f)])
    return g


def old_theta_hessian(f: BlockedFactor, reml: bool, theta: np.ndarray, sigma: float) -> np.ndarray:
    nt = len(theta)
    H = np.empty((nt, nt))
    for k, h in enumerate(theta_steps(theta)):
        g = []
        for sign in (1.0, -1.0):
            x = theta.copy()
            x[k] += sign * h
            assert f.update(x)
            g.append(old_deviance_gradient(f, reml, sigma))
        H[:, k] = (g[0] - g[1]) / (2.0 * h)
    return 0.5 * (H + H.T)


def rel(new: np.ndarray, old: np.ndarray) -> float:
    return float(np.max(np.abs(new - old)) / np.max(np.abs(old)))


# a vector term (sleepstudy, heck2011-like slopes, ML), nested, crossed (dense tail), 3 x 3 blocks
CASES = ["ss_slope_reml", "heck_seed1_reml", "dye_ml", "nested_slope_class_reml", "subjitem_reml", "block3_ml"]
# the closed-form kernel of one small term, forced (chosen by size on big data): k = 2 and k = 1
SMALL = ["ss_slope_reml", "heck_seed1_reml", "dye_ml", "ss_int_reml"]


def factors(name: str, small: bool) -> tuple[object, BlockedFactor, np.ndarray]:
    model = fitted_case(name)
    f = BlockedFactor(model.system.cp, small_term=True) if small else model.system
    return model, f, np.asarray(model.theta, dtype=float)


@pytest.mark.parametrize(("name", "small"), [(n, False) for n in CASES] + [(n, True) for n in SMALL])
def test_theta_hessian_as_the_separate_formulas_had_it(name, small):
    """The Hessian differenced from the shared pieces against the separate solves': 1e-10 of the
    largest entry (the general kernels' rounding on the small term's factor included)."""
    model, f, theta = factors(name, small)
    reml, sigma = model.response.reml, model.sigma
    new = theta_hessian(f, model.response, theta, sigma)
    old = old_theta_hessian(f, reml, theta, sigma)
    f.update(theta)
    assert rel(new, old) <= 1e-10
    assert np.all(np.isfinite(new)) and np.max(np.abs(new)) > 1.0


@pytest.mark.parametrize(("name", "small"), [(n, False) for n in CASES] + [(n, True) for n in SMALL])
def test_pieces_at_theta_as_the_separate_formulas_had_them(name, small):
    """Away from the optimum: every piece to 1e-12 of its largest entry."""
    model, f, theta = factors(name, small)
    theta = theta * 1.3 + 0.07
    assert f.update(theta)
    d = GradientPieces(f)
    assert (d._small is not None) == small  # the kernel under test is the one taken
    np.testing.assert_allclose(d.ldL2(), _ldL2_gradient(f), rtol=0, atol=1e-12 * np.max(np.abs(_ldL2_gradient(f))))
    old_pw = old_pwrss_gradient(f)
    assert rel(d.pwrss(), old_pw) <= 1e-12 and np.max(np.abs(old_pw)) > 1e-3
    for new_rx, old_rx in zip(d.rx(), old_rx_gradient(f), strict=True):
        assert rel(new_rx, old_rx) <= 1e-12
    C = f.unscaled_vcov()
    for dC, dM in zip(d.unscaled_vcov_gradient(), old_rx_gradient(f), strict=True):
        assert rel(dC, -C @ dM @ C) <= 1e-12
    model.system.update(model.theta)


def test_small_term_kernel_is_taken_only_for_the_closed_form_factor():
    model = fitted_case("nested_slope_class_reml")
    assert GradientPieces(model.system)._small is None
    f = BlockedFactor(fitted_case("ss_slope_reml").system.cp, small_term=True)
    f.update(np.asarray(fitted_case("ss_slope_reml").theta, dtype=float))
    assert isinstance(GradientPieces(f)._small, SmallTermGradient)


@pytest.mark.parametrize("name", ["ss_slope_reml", "dye_ml"])
def test_satterthwaite_df_on_the_small_term_kernel(name):
    """lmerTest's df through the closed-form kernel equal the general kernels' (1e-9 relative)."""
    model = fitted_case(name)
    theta = np.asarray(model.theta, dtype=float)
    general = satterthwaite(model.system, model.response, theta, model.sigma, model._vcov)
    f = BlockedFactor(model.system.cp, small_term=True)
    small = satterthwaite(f, model.response, theta, model.sigma, model._vcov)
    for c in np.eye(len(model._vcov)):
        df_general, df_small = general.df(c), small.df(c)
        assert 1.0 < df_general < 1e6
        assert abs(df_small - df_general) <= 1e-9 * df_general
    model.system.update(model.theta)
