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
    is_singular,
)
from mlmcli.engine.glmm import FAILED_VALUE, GlmmProblem, Modes, PirlsError
from mlmcli.engine.polish import (
    Derivatives,
    Polisher,
    central_differences,
    central_gradient,
    pair_differences,
)
from mlmcli.errors import FitError

# how far (in standard errors of beta, on theta's own scale) the end point may lie from where the
# polish differenced its Hessian for that Hessian to serve the checks and the standard errors
HESSIAN_REUSE = 0.01
# Hessians differenced at stage 2's end points before the last one is kept whatever Newton promises
NEWTON_REFRESH = 3


class GlmmObjective:
    """Parameters -> deviance, counting evaluations; PIRLS from a fixed linear predictor."""

    def __init__(self, problem: GlmmProblem, eta0: np.ndarray, ntheta: int, nagq: int) -> None:
        self.problem, self.eta0, self.ntheta, self.nagq = problem, eta0, ntheta, nagq
        self.count = 0
        self.first = problem.first_iteration(eta0) if nagq > 0 else None

    def modes(self, x: np.ndarray, own: bool = False) -> Modes:
        theta = np.asarray(x[: self.ntheta], dtype=float)
        beta = None if self.nagq == 0 else np.asarray(x[self.ntheta :], dtype=float)
        return self.problem.pirls(theta, self.eta0, beta, own=own, first=self.first)

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
    if polish:
        opt = _newton_from(f, x0, lower_all, scales, opt0.status)
    else:
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
    # the derivatives lme4's checks and the Hessian's standard errors need, with lme4's step: the
    # polish's (its Hessian differenced once, at BOBYQA's end, its gradient at the end point) where
    # it took that step and ended near there, else differenced anew at the end point
    known = None
    delta = np.full(len(x), DERIV_DELTA)
    if polish:

        def restart(v: np.ndarray) -> tuple[np.ndarray, float]:
            y, val, _ = run(v)
            return check_boundary(f, y, val, lower)

        # a Hessian only for Newton's steps (no checks here: stage 1 of a Laplace fit) from the
        # cheaper scheme
        differences = central_differences if checks else pair_differences
        polisher = Polisher(f, lower, scales, restart, reuse_hessian=True, differences=differences)
        x2, f2 = polisher.run(x, fval)
        if f2 < fval:
            opt = Optimum(theta=x2, criterion=f2, evaluations=f.count, status=status, polished=True, checked_at=x2)
            x, fval = x2, f2
        last, hess = polisher.last, polisher.hessian_at
        # where the polish differenced with lme4's step (scales near 1), its derivatives serve
        if last is not None and hess is not None and np.array_equal(last.theta, x) and np.all(last.delta == delta):
            # a Hessian from farther away than a small part of a standard error is differenced anew
            moved = float(np.max(np.abs((x - hess.theta) * scales)))
            # the differenced Hessian, not the chord steps' BFGS update of it
            known = Derivatives(x, fval, last.gradient, hess.hessian, delta) if moved <= HESSIAN_REUSE else None
    theta_lower = lower[: f.ntheta]
    if checks:
        g, H = (known.gradient, known.hessian) if known is not None else central_differences(f, x, fval, delta)
        check_convergence(opt, lambda: (g, H), _singular_bounds(lower, f.ntheta))
        if opt.hessian is None:  # a singular fit skips lme4's checks, not its derivatives
            opt.gradient, opt.hessian = g, H
    else:
        opt.singular = is_singular(x[: f.ntheta], theta_lower)
    opt.evaluations = f.count
    return opt


def _newton_from(f: GlmmObjective, x0: np.ndarray, lower: np.ndarray, scales: np.ndarray, status: str) -> Optimum:
    """Stage 2 by Newton steps from stage 1's end point (theta, and beta from PIRLS), without the
    BOBYQA run before them: the nAGQ = 0 optimum lies close to the Laplace one, where Newton
    converges in a few steps; BOBYQA runs only from where Newton finds negative curvature (the
    polish's restarts).  The Hessian is differenced once at the start, the steps after it take
    gradients alone (BFGS-updated); at the end point it is differenced anew with lme4's step, and
    where Newton with it still promises a gain the steps go on from there.  That last Hessian
    serves lme4's checks and the standard errors: every Hessian here from n^2 + n values
    (pair_differences), not deriv12's 2n^2, with deriv12's gradient and diagonal and its accuracy
    (the standard errors agree with deriv12's at the same point to ~1e-6)."""

    def restart(v: np.ndarray) -> tuple[np.ndarray, float]:
        y, val, _ = bobyqa(lambda w: f(w / scales), v * scales, lower * scales)
        return check_boundary(f, y / scales, val, lower)

    x, fval = np.array(x0, dtype=float), f(x0)
    if fval >= FAILED_VALUE:
        raise FitError("the model cannot be fitted: PIRLS failed at every parameter value tried")
    polisher = Polisher(f, lower, scales, restart, reuse_hessian=True, differences=pair_differences)
    x, fval = polisher.run(x, fval)
    x, fval = check_boundary(f, x, fval, lower)
    delta = np.full(len(x), DERIV_DELTA)
    last, hess = polisher.last, polisher.hessian_at
    near = (
        last is not None
        and hess is not None
        and np.array_equal(last.theta, x)
        and np.all(last.delta == delta)
        and float(np.max(np.abs((x - hess.theta) * scales))) <= HESSIAN_REUSE
    )
    for _ in range(NEWTON_REFRESH):
        if near:  # the polish's Hessian was differenced with lme4's step close to here
            assert last is not None and hess is not None  # (its BFGS update in the chord steps aside)
            known = Derivatives(x.copy(), fval, last.gradient, hess.hessian, delta)
            break
        g, H = pair_differences(f, x, fval, delta)
        known = Derivatives(x.copy(), fval, g, H, delta)
        again = Polisher(f, lower, scales, restart, reuse_hessian=True, delta=delta, differences=pair_differences)
        x2, f2 = again.run(x, fval, known)
        if not f2 < fval:
            break
        moved = float(np.max(np.abs((x2 - x) * scales)))
        x, fval = check_boundary(f, x2, f2, lower)
        if moved <= HESSIAN_REUSE and np.array_equal(x, x2):
            break  # so close that the Hessian there is this one (and the gradient the last step's)
    else:
        g, H = pair_differences(f, x, fval, delta)
        known = Derivatives(x.copy(), fval, g, H, delta)
    g, H = known.gradient, known.hessian
    if not np.array_equal(known.theta, x):
        g = central_gradient(f, x, delta)
    opt = Optimum(theta=x, criterion=fval, evaluations=f.count, status=status, polished=True, checked_at=x.copy())
    check_convergence(opt, lambda: (g, H), _singular_bounds(lower, f.ntheta))
    if opt.hessian is None:  # a singular fit skips lme4's checks, not its derivatives
        opt.gradient, opt.hessian = g, H
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


def refit_glmm(
    problem: GlmmProblem, nagq: int, theta: np.ndarray, beta: np.ndarray, beta_se: np.ndarray, polish: bool = True
) -> tuple[np.ndarray, np.ndarray, bool]:
    """lme4's refit(fit, newresp) of a glmer fit, for bootMer: `problem` holds the new response; one
    optimization from the fit's theta and beta (over theta alone for nAGQ = 0, beta inside PIRLS),
    PIRLS starting where it ends from the response's mustart at the fit's theta, on the scale of
    the fit's standard errors.  The refit's theta, beta and whether it is singular."""
    from mlmcli.engine.terms import term_structure

    lower = np.concatenate([term_structure(t).lower_bounds() for t in problem.terms])
    nt = len(lower)
    fam, resp = problem.response.family, problem.response
    eta_start = problem.pirls(theta, fam.linkfun(fam.start_mu(resp.y, resp.weights))).eta
    f = GlmmObjective(problem, eta_start, nt, nagq)
    if nagq == 0:
        opt = _optimize(f, np.asarray(theta, dtype=float), lower, np.ones(nt), polish, checks=False)
        return opt.theta, f.modes(opt.theta).beta, bool(opt.singular)
    x0 = np.concatenate([theta, beta])
    lower_all = np.concatenate([lower, np.full(len(beta), -np.inf)])
    scales = np.concatenate([np.ones(nt), 1.0 / np.maximum(beta_se, 1e-300)])
    opt = _optimize(f, x0, lower_all, scales, polish, checks=False)
    return opt.theta[:nt], opt.theta[nt:], bool(opt.singular)
