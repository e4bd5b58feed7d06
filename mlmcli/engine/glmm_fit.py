"""lme4's glmer optimization: stage 1 over theta with beta inside PIRLS (nAGQ = 0), stage 2 over
(theta, beta) with the Laplace or adaptive-quadrature deviance, lme4's checks, and vcov(beta) from
the finite-difference Hessian (vcov.merMod's use.hessian).

lme4 runs BOBYQA in stage 1 and Nelder-Mead in stage 2 and evaluates PIRLS to tolPwrss = 1e-7,
which leaves the weights of its last iteration one step behind the modes: its deviance at its
optimum sits up to ~1e-3 above the Laplace optimum (cbpp: 184.05313 against 184.05256, which
glmer itself reaches with tolPwrss = 1e-12).  Here PIRLS converges to 1e-10 and both stages end
with the Newton polish of the LMM optimizer (polish.py), so the optimum does not depend on the
optimizer's path or the CPU's BLAS kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlmcli.engine import observe
from mlmcli.engine.fit import (
    DERIV_DELTA,
    Optimum,
    bobyqa,
    check_boundary,
    check_convergence,
    deriv12,
    is_singular,
)
from mlmcli.engine.glmm import FAILED_VALUE, GlmmProblem, Modes, PirlsError
from mlmcli.engine.polish import Derivatives, Polisher
from mlmcli.errors import FitError


class GlmmObjective:
    """Parameters -> deviance, counting evaluations; PIRLS from a fixed linear predictor."""

    def __init__(self, problem: GlmmProblem, eta0: np.ndarray, ntheta: int, nagq: int) -> None:
        self.problem, self.eta0, self.ntheta, self.nagq = problem, eta0, ntheta, nagq
        self.count = 0

    def modes(self, x: np.ndarray, own: bool = False) -> Modes:
        theta = np.asarray(x[: self.ntheta], dtype=float)
        beta = None if self.nagq == 0 else np.asarray(x[self.ntheta :], dtype=float)
        return self.problem.pirls(theta, self.eta0, beta, own=own)

    def value(self, x: np.ndarray, modes: Modes) -> float:
        if self.nagq > 1:
            return self.problem.agq(modes, self.nagq)
        return modes.laplace

    def __call__(self, x: np.ndarray) -> float:
        self.count += 1
        if observe.on_evaluation is not None:
            observe.on_evaluation()
        try:
            with np.errstate(all="ignore"):
                v = self.value(x, self.modes(x))
        except (PirlsError, np.linalg.LinAlgError, FloatingPointError):
            return FAILED_VALUE
        return v if np.isfinite(v) else FAILED_VALUE


@dataclass
class GlmmFit:
    theta: np.ndarray
    beta: np.ndarray
    deviance: float  # lme4's -2 logLik: the Laplace (or AGQ) deviance at the optimum
    modes: Modes
    optimum: Optimum
    vcov: np.ndarray
    nagq: int
    warnings: list[str] = field(default_factory=list)


def fit_glmm(problem: GlmmProblem, nagq: int = 1, polish: bool = True) -> GlmmFit:
    """glmer's two stages on `problem`."""
    from mlmcli.engine.terms import term_structure

    structures = [term_structure(t) for t in problem.terms]
    lower = np.concatenate([s.lower_bounds() for s in structures])
    # lme4's start: 1 on the diagonals of the relative covariance factors, 0 off them
    theta0 = np.concatenate([np.where(s.tri_rows == s.tri_cols, 1.0, 0.0) for s in structures])
    nt = len(lower)
    # mkGlmerDevfun: PIRLS over beta and u at the starting theta from family$initialize's mustart;
    # every evaluation of stage 1 starts from the linear predictor it ends at
    eta_start = problem.pirls(theta0, problem.start_eta()).eta
    f0 = GlmmObjective(problem, eta_start, nt, 0)
    opt0 = _optimize(f0, theta0, lower, np.ones(nt), polish, checks=nagq == 0)
    stage1 = f0.modes(opt0.theta, own=True)
    if nagq == 0:
        opt, modes, f = opt0, stage1, f0
        vcov = modes.system.unscaled_vcov()
        return GlmmFit(opt.theta, modes.beta, opt.criterion, modes, opt, vcov, nagq, list(opt.warnings))
    f = GlmmObjective(problem, stage1.eta, nt, nagq)
    x0 = np.concatenate([opt0.theta, stage1.beta])
    lower_all = np.concatenate([lower, np.full(len(stage1.beta), -np.inf)])
    # on the scale of beta's standard errors from stage 1: a coefficient of a predictor in the
    # hundreds is a hundred times smaller than the others, and the optimizer's steps should not be
    se = np.sqrt(np.maximum(np.diag(stage1.system.unscaled_vcov()), 1e-300))
    scales = np.concatenate([np.ones(nt), 1.0 / se])
    opt = _optimize(f, x0, lower_all, scales, polish, checks=True)
    modes = f.modes(opt.theta, own=True)
    theta, beta = opt.theta[:nt], opt.theta[nt:]
    crit = f.value(opt.theta, modes)
    opt.theta = theta
    warnings = list(opt.warnings)
    hessian_vcov = _vcov_from_hessian(opt.hessian, nt)
    if hessian_vcov is not None:
        vcov = hessian_vcov
    else:
        if opt.hessian is not None:
            warnings.append(
                "variance-covariance matrix computed from finite-difference Hessian is\n"
                "not positive definite or contains NA values: falling back to var-cov estimated from RX"
            )
        vcov = _rx_vcov(problem, modes, opt.theta)
    return GlmmFit(theta, beta, crit, modes, opt, vcov, nagq, warnings)


def _optimize(
    f: GlmmObjective, x0: np.ndarray, lower: np.ndarray, scales: np.ndarray, polish: bool, checks: bool
) -> Optimum:
    """BOBYQA and the Newton polish on x * scales; lme4's checks on x itself."""

    def scaled(v: np.ndarray) -> float:
        return f(v / scales)

    def run(start: np.ndarray) -> tuple[np.ndarray, float, str]:
        v, val, status = bobyqa(scaled, start * scales, lower * scales)
        return v / scales, val, status

    x, fval, status = run(x0)
    if fval >= FAILED_VALUE:
        raise FitError("the model cannot be fitted: PIRLS failed at every parameter value tried")
    at = x.copy()
    x, fval = check_boundary(f, x, fval, lower)
    opt = Optimum(theta=x, criterion=fval, evaluations=f.count, status=status, checked_at=at)
    step = np.full(len(x), DERIV_DELTA)
    # lme4's derivatives at the end point (its checks and the Hessian's standard errors need them):
    # also the first Newton step's, so that a point the polish leaves as it is costs them once
    known = None
    if polish:

        def restart(v: np.ndarray) -> tuple[np.ndarray, float]:
            y, val, _ = run(v)
            return check_boundary(f, y, val, lower)

        # on the scale of the standard errors; where those are all near 1 the polish differentiates
        # with lme4's step, and then starts from the checks' derivatives, computed once
        polisher = Polisher(f, lower, scales, restart)
        if checks and np.array_equal(polisher.delta, step):
            g0, H0 = deriv12(f, x, fval)
            known = Derivatives(x.copy(), fval, g0, H0, step)
        x2, f2 = polisher.run(x, fval, known)
        if f2 < fval:
            opt = Optimum(theta=x2, criterion=f2, evaluations=f.count, status=status, polished=True, checked_at=x2)
            x, fval = x2, f2
        last = polisher.last
        known = last if last is not None and np.array_equal(last.theta, x) and np.all(last.delta == step) else None
    theta_lower = lower[: f.ntheta]
    if checks:
        g, H = (known.gradient, known.hessian) if known is not None else deriv12(f, x, fval)
        check_convergence(opt, lambda: (g, H), _singular_bounds(lower, f.ntheta))
        if opt.hessian is None:  # a singular fit skips lme4's checks, not its derivatives
            opt.gradient, opt.hessian = g, H
    else:
        opt.singular = is_singular(x[: f.ntheta], theta_lower)
    opt.evaluations = f.count
    return opt


def _singular_bounds(lower: np.ndarray, ntheta: int) -> np.ndarray:
    """The bounds isSingular reads: theta's (beta has none, and -inf never counts as zero)."""
    return np.where(np.arange(len(lower)) < ntheta, lower, -np.inf)


def _vcov_from_hessian(hessian: np.ndarray | None, ntheta: int) -> np.ndarray | None:
    """vcov.merMod's calc.vcov.hess: the beta block of 2 H^{-1}, symmetrized; None when H cannot be
    inverted or the block is not positive definite."""
    if hessian is None or not np.all(np.isfinite(hessian)):
        return None
    try:
        Hinv = np.linalg.inv(hessian)
    except np.linalg.LinAlgError:
        return None
    V = Hinv[ntheta:, ntheta:]
    V = V + V.T
    if not np.all(np.isfinite(V)) or np.linalg.eigvalsh(V).min() <= 0:
        return None
    return V


def _rx_vcov(problem: GlmmProblem, modes: Modes, theta: np.ndarray) -> np.ndarray:
    """(R_X'R_X)^{-1} of the weighted system at the modes (vcov from RX, sigma = 1)."""
    return problem.rx_system(modes, theta).unscaled_vcov()
