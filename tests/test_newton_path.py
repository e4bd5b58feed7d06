"""Newton's method on the exact gradient (engine/newton.py) against BOBYQA and the polish: the same
optimum, lme4's messages, in far fewer evaluations; its end point's differences serve lmerTest's
Hessian; where the optimum may be on the boundary it gives up and BOBYQA's path is taken."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

import mlmcli.model as model_module
from mlmcli.design import build_design
from mlmcli.engine import fit as fit_module
from mlmcli.engine.factor import BlockedFactor
from mlmcli.engine.newton import GRADIENT_TAIL, CriterionGradient, uses_gradient
from mlmcli.engine.satterthwaite import satterthwaite
from mlmcli.formula import parse_formula
from mlmcli.model import fit_model
from tests.refcheck import CRIT_NOT_WORSE_REL, reference
from tests.test_engine_refs import fit_cases, fitted, frame

# crossed (a dense tail of one or two scalar terms), nested, a correlated slope, ML and REML
CASES = [
    "pen_crossed_reml",
    "pen_crossed_ml",
    "subjitem_reml",
    "crossed3_reml",
    "movers_reml",
    "twogroups_reml",
    "nested4_reml",
    "ss_slope_reml",
    "block3_reml",
]
# optima on the boundary (a zero variance): Newton gives up, BOBYQA's path decides
SINGULAR = ["dye2_reml", "twogroups_sing_reml", "nested_sing_reml"]


@cache
def fit(case_id: str, gradient: bool):
    """The model fitted with Newton's path forced on or off."""
    case = next(c for c in fit_cases() if c["id"] == case_id)
    f = frame(case["data"])
    parsed = parse_formula(case["formula"])
    original = fit_module.optimize_theta

    def optimize(*args, **kwargs):
        return original(*args, gradient=gradient, **kwargs)

    model_module.optimize_theta = optimize
    try:
        return fit_model(parsed, build_design(f, parsed), reml=case["reml"], data_name=f.name)
    finally:
        model_module.optimize_theta = original


@pytest.mark.parametrize("case_id", CASES)
def test_newton_reaches_the_optimum_of_bobyqa_and_the_polish(case_id):
    newton, bobyqa = fit(case_id, True), fit(case_id, False)
    assert newton.optimum.differences is not None  # Newton's path was taken
    assert bobyqa.optimum.differences is None
    assert newton.criterion == pytest.approx(bobyqa.criterion, rel=1e-13, abs=2e-11)
    lme4 = reference(case_id)["fit"]["criterion"]
    assert newton.criterion - lme4 <= max(1e-9, CRIT_NOT_WORSE_REL * abs(lme4))
    np.testing.assert_allclose(newton.theta, bobyqa.theta, rtol=1e-4, atol=1e-5)
    assert newton.optimum.messages == bobyqa.optimum.messages
    assert newton.warnings == bobyqa.warnings
    # every evaluation of Newton's path is a factorization and a gradient: fewer than half of
    # BOBYQA's and the polish's, and at most 35 on these (BOBYQA: 46 to 250)
    assert newton.optimum.evaluations <= min(35, bobyqa.optimum.evaluations // 2)


@pytest.mark.parametrize("case_id", CASES[:4])
def test_lmertest_hessian_from_the_end_points_differences(case_id):
    """Satterthwaite's df from the differences Newton's path ended with, and computed afresh."""
    model = fit(case_id, True)
    diffs = model.optimum.differences
    assert diffs is not None and np.array_equal(diffs.theta, model.theta)
    reused = model.satterthwaite()
    fresh = satterthwaite(model.system, model.response, model.theta, model.sigma, model._vcov)
    np.testing.assert_allclose(reused.vcov_varpar, fresh.vcov_varpar, rtol=1e-9, atol=0)
    for c in np.eye(len(model.design.xnames)):
        assert reused.df(c) == pytest.approx(fresh.df(c), rel=1e-9)
    assert reused.messages == fresh.messages


@pytest.mark.parametrize("case_id", SINGULAR)
def test_newton_gives_up_at_the_boundary(case_id):
    newton, bobyqa = fit(case_id, True), fit(case_id, False)
    assert newton.optimum.differences is None
    assert newton.criterion == bobyqa.criterion
    np.testing.assert_array_equal(newton.theta, bobyqa.theta)
    assert newton.optimum.messages == bobyqa.optimum.messages
    # the attempt costs a few evaluations only
    assert newton.optimum.evaluations <= bobyqa.optimum.evaluations + 25


@pytest.mark.parametrize(
    ("case_id", "kernels"),
    [("pen_crossed_ml", {}), ("pen_crossed_reml", {"tail_gram": True}), ("crossed3_reml", {"tail_gram": True})],
)
def test_criterion_gradient_matches_differences(case_id, kernels):
    """The profiled criterion's gradient (REML and ML) against central differences of the
    criterion, away from the optimum, through the general tail and the laid-out one (where every
    term is scalar, ldL2's part from the traces of Omega^{-1}, derivatives.py)."""
    model = fit(case_id, False)
    system = BlockedFactor(model.system.cp, **kernels)
    response = type(model.response).of(system.cp, model.response.reml)

    def value(theta):
        system.update(theta)
        return response.criterion(system)

    theta = np.asarray(model.theta, dtype=float) * 1.3 + 0.07
    point = CriterionGradient(value, system, response)(theta)
    assert point is not None
    h = 1e-5
    numeric = np.array([(value(theta + h * e) - value(theta - h * e)) / (2 * h) for e in np.eye(len(theta))])
    assert np.max(np.abs(point.gradient - numeric)) <= 1e-5 * max(1.0, float(np.max(np.abs(numeric))))
    assert np.max(np.abs(point.gradient)) > 1.0


def test_the_path_is_chosen_by_the_tail():
    """Small tails keep BOBYQA (lme4's path); InstEval's 1128 lecturers take Newton's, which ends
    at lme4's optimum in 10 factorizations with their gradients (BOBYQA and the polish: 59, and 8
    more for lmerTest's Hessian), with the differences lmerTest's Hessian then reuses."""
    assert GRADIENT_TAIL > 100
    assert not uses_gradient(fit("pen_crossed_reml", False).system)
    case = next(c for c in fit_cases(big=True) if c["id"] == "insteval_reml")
    model = fitted(case)
    assert uses_gradient(model.system)
    assert model.optimum.differences is not None
    assert model.optimum.evaluations <= 15
    lme4 = reference("insteval_reml")["fit"]["criterion"]
    assert model.criterion - lme4 <= CRIT_NOT_WORSE_REL * abs(lme4)


@pytest.mark.parametrize("kernels", [{}, {"tail_gram": True}])
def test_snapshot_restores_the_factor(kernels):
    """A factor restored from its snapshot after another update holds the snapshot's theta's
    factor: the same pieces as a factor made there afresh."""
    model = fit("crossed3_reml", False)
    system = BlockedFactor(model.system.cp, **kernels)
    theta = np.asarray(model.theta, dtype=float)
    assert system.update(theta)
    state = system.snapshot()
    assert system.update(theta * 1.7 + 0.1)
    system.restore(state)
    fresh = BlockedFactor(model.system.cp, **kernels)
    assert fresh.update(theta)
    assert np.array_equal(system.theta, theta)
    assert system.ldL2 == fresh.ldL2 and system.pwrss == fresh.pwrss and system.ldRX2 == fresh.ldRX2
    np.testing.assert_array_equal(system.beta(), fresh.beta())
    np.testing.assert_array_equal(np.concatenate(system.spherical_modes()), np.concatenate(fresh.spherical_modes()))
    response = model.response
    a = CriterionGradient(lambda t: response.criterion(system), system, response)
    b = CriterionGradient(lambda t: response.criterion(fresh), fresh, response)
    system.theta = fresh.theta = theta  # (the value callables read the factors as they are)
    np.testing.assert_array_equal(a(theta).gradient, b(theta).gradient)


@pytest.mark.parametrize(
    ("case_id", "nearer"),
    [
        ("pen_crossed_reml", True),
        ("pen_crossed_ml", True),
        ("movers_reml", True),
        ("crossed3_reml", False),
        ("subjitem_reml", None),
    ],
)
def test_the_moment_start_reaches_the_same_optimum(case_id, nearer):
    """The Newton path's start (moment_start: the group means' own sampling variance taken off) lies
    nearer the optimum than lme4's guess on Penicillin and movers (not on every design: three crossed
    factors' means hold each other's variance, and the correction moves away), and the path from it
    ends where BOBYQA's does; where the residual's share of the moments is not positive there is
    none (None) and lme4's guess (1s) serves."""
    from mlmcli.engine.fit import Objective, moment_start, optimize_theta, start_theta
    from mlmcli.engine.response import GaussianResponse

    bobyqa = fit(case_id, False)
    design = bobyqa.design
    codes = [t.codes for t in design.terms]
    system = BlockedFactor(bobyqa.system.cp)
    lme4s = start_theta(system, codes, True, design.response_values)
    ours = moment_start(system, codes, design.response_values)
    if nearer is None:
        assert ours is None and np.all(lme4s == 1.0)
        return
    best = np.log(bobyqa.theta)
    assert bool(np.max(np.abs(np.log(ours) - best)) < np.max(np.abs(np.log(lme4s) - best))) is nearer
    response = GaussianResponse.of(system.cp, bobyqa.response.reml)
    opt = optimize_theta(system, response, lme4s, gradient=True, newton_start=ours)
    assert opt.differences is not None  # Newton's path, from the moment start
    assert Objective(system, response)(opt.theta) == pytest.approx(bobyqa.criterion, rel=CRIT_NOT_WORSE_REL)


def _one_term_rows(slope_sd: float, n_groups: int = 2500, per: int = 24):
    """(x | g) on more rows than SMALL_DATA_ROWS: the closed-form factor of one small term."""
    rng = np.random.default_rng(23)
    g = np.repeat(np.arange(n_groups), per)
    x = rng.normal(size=g.size)
    b0, b1 = rng.normal(0.0, 1.0, n_groups), rng.normal(0.0, slope_sd, n_groups)
    y = 2.0 + 0.5 * x + b0[g] + b1[g] * x + rng.normal(0.0, 1.5, g.size)
    from mlmcli.io.frame import Frame

    return Frame(name="rows", columns={"y": y, "x": x, "g": g.astype(float)}, n_rows=g.size, int_columns={"g"})


@pytest.mark.parametrize(("slope_sd", "newton"), [(0.6, True), (0.0, False)])
def test_one_small_term_on_large_data_takes_the_gradient(slope_sd, newton):
    """One small term above SMALL_DATA_ROWS takes Newton's path (its gradient costs about two
    evaluations) and ends at BOBYQA's and the polish's optimum with their df; where the slope's
    variance is zero Newton's path gives up and BOBYQA's decides."""
    from mlmcli.engine.factor import SMALL_DATA_ROWS
    from mlmcli.engine.small_term import SmallTermDiagonal
    from mlmcli.report import fit_report

    f = _one_term_rows(slope_sd)
    assert f.n_rows > SMALL_DATA_ROWS
    parsed = parse_formula("y ~ x + (x | g)")
    design = build_design(f, parsed)
    fits = {}
    original = fit_module.optimize_theta
    for gradient in (None, False):

        def optimize(*args, gradient=gradient, **kwargs):
            return original(*args, gradient=gradient, **kwargs)

        model_module.optimize_theta = optimize
        try:
            fits[gradient] = fit_model(parsed, design, reml=True, data_name=f.name)
        finally:
            model_module.optimize_theta = original
    chosen, bobyqa = fits[None], fits[False]
    assert isinstance(chosen.system.diagonal[0], SmallTermDiagonal) and uses_gradient(chosen.system)
    assert (chosen.optimum.differences is not None) is newton
    assert chosen.criterion == pytest.approx(bobyqa.criterion, rel=1e-13)
    ours, theirs = fit_report(chosen), fit_report(bobyqa)
    assert ours["conv_messages"] == theirs["conv_messages"] and ours["warnings"] == theirs["warnings"]
    for a, b in zip(ours["fixed_effects"], theirs["fixed_effects"], strict=True):
        assert a["estimate"] == pytest.approx(b["estimate"], rel=1e-7)
        assert a["df"] == pytest.approx(b["df"], rel=1e-5)
    if newton:
        assert chosen.optimum.evaluations <= bobyqa.optimum.evaluations // 2
