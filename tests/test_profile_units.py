"""Units of the likelihood profile: the crossing search and the sd/cor <-> theta maps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlmcli.engine.profile import _safe_chol, crossing


def test_crossing_of_a_linear_zeta_is_exact():
    def zeta(x: float) -> float:
        return (x - 1.0) / 0.5

    assert crossing(zeta, 1.0, 1.01, 1.959964, math.inf, 0.5) == pytest.approx(1.0 + 0.979982, abs=1e-7)
    assert crossing(zeta, 1.0, 0.99, -1.959964, -math.inf, 0.5) == pytest.approx(1.0 - 0.979982, abs=1e-7)


def test_crossing_of_a_curved_zeta_from_a_far_start():
    def zeta(x: float) -> float:  # the signed root deviance of a log-scale parameter
        return 3.0 * math.log(x)

    got = crossing(zeta, 1.0, 1.001, 1.959964, math.inf, 1.0)
    assert got == pytest.approx(math.exp(1.959964 / 3.0), rel=1e-7)


def test_a_profile_that_stays_short_of_the_target_gives_the_bound():
    def zeta(x: float) -> float:  # a correlation whose deviance flattens toward -1
        return 0.5 * (x - 0.2)

    assert crossing(zeta, 0.2, 0.19, -1.959964, -1.0, 1.0) == -1.0


def test_safe_chol_of_semidefinite_matrices():
    C = np.array([[4.0, -6.0], [-6.0, 9.0]])  # correlation -1
    L = _safe_chol(C)
    assert np.allclose(L @ L.T, C) and L[1, 1] == 0.0
    Z = np.array([[0.0, 0.0], [0.0, 2.0]])  # a standard deviation of zero
    L = _safe_chol(Z)
    assert np.allclose(L @ L.T, Z) and L[0, 0] == 0.0


def test_sdcor_and_theta_maps_invert_each_other():
    from mlmcli.engine.profile import sdcor_from_theta, theta_from_sdcor, varpar_deviance
    from mlmcli.pipeline import lmer

    model, _ = lmer(
        "tests/fixtures/lme4/data/sleepstudy.csv", "Reaction ~ Days + (Days|Subject)", reml=False, ddf="none"
    )
    pars = sdcor_from_theta(model.system, model.theta, model.sigma)
    # lme4's ML estimates: sd 23.78, cor 0.08, sd 5.72, sigma 25.59 (VarCorr of the ML fit)
    assert pars == pytest.approx([23.780468, 0.0813, 5.716798, 25.591907], rel=2e-3)
    assert theta_from_sdcor(model.system, pars) == pytest.approx(model.theta, rel=1e-10)
    # devfun2 at the ML estimates is the ML deviance
    assert varpar_deviance(model.system, pars) == pytest.approx(model.criterion, rel=1e-12)
