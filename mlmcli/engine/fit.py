"""Optimizing the profiled criterion over theta, with lme4's post-fit steps and checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mlmcli.engine import observe
from mlmcli.engine.factor import BlockedFactor
from mlmcli.engine.polish import Derivatives, Polisher, central_differences
from mlmcli.errors import FitError

if TYPE_CHECKING:
    from mlmcli.engine.newton import GradientDifferences
    from mlmcli.engine.response import Response

SINGULAR_TOL = 1e-4  # lme4's isSingular(tol = 1e-4)
BOUNDARY_TOL = 1e-5  # lmerControl(boundary.tol)
GRAD_TOL = 0.002  # check.conv.grad
HESS_TOL = 1e-6  # check.conv.hess
DERIV_DELTA = 1e-4  # lme4's deriv12
# criterion gains below this (absolute, or relative to the criterion) are not worth another run
POLISH_GAIN, POLISH_GAIN_REL = 1e-6, 1e-10
SINGULAR_MESSAGE = "boundary (singular) fit: see help('isSingular')"
# A failed factorization gives a large value rather than an error, so that BOBYQA steps back.
FAILED_VALUE = 1e300


@dataclass
class Optimum:
    theta: np.ndarray
    criterion: float
    evaluations: int
    status: str
    check_code: int = 0  # lme4's checkConv code (optinfo$conv$lme4$code)
    messages: list[str] = field(default_factory=list)  # lme4's optinfo$conv$lme4$messages
    warnings: list[str] = field(default_factory=list)  # what lme4 warns or messages about the fit
    singular: bool = False
    polished: bool = False  # moved past BOBYQA's end point (rescaled_restart, polish.py)
    gradient: np.ndarray | None = None  # lme4's finite-difference derivatives at the end
    hessian: np.ndarray | None = None  # point, where its checks computed them
    checked_at: np.ndarray | None = None  # that point (before any boundary adjustment)
    # the exact gradient's central differences at theta, where Newton's path (newton.py) ended
    # there: lmerTest's Hessian reuses them (satterthwaite.py)
    differences: GradientDifferences | None = None

    @property
    def path(self) -> str:
        """How the optimum was reached: "newton" (Newton's method on the exact gradient, newton.py),
        "bobyqa" (BOBYQA's end point, as lme4 stops) or "bobyqa+polish" (moved past it, polish.py)."""
        if self.differences is not None:
            return "newton"
        return "bobyqa+polish" if self.polished else "bobyqa"

    @property
    def conv_code(self) -> int:
        """nloptwrap's code (optinfo$conv$opt): NLopt's status when it failed or hit maxeval, else 0."""
        codes = {"NLOPT_MAXEVAL_REACHED": 5, "NLOPT_MAXTIME_REACHED": 6, "NLOPT_ROUNDOFF_LIMITED": -4}
        code = codes.get(self.status, 0)
        return code if code < 0 or code == 5 else 0


class Objective:
    """theta -> criterion: the factor at theta, the response's criterion from it; counting evaluations."""

    def __init__(self, system: BlockedFactor, response: Response) -> None:
        self.system = system
        self.response = response
        self.count = 0

    def __call__(self, theta: np.ndarray) -> float:
        self.count += 1
        if observe.on_evaluation is not None:
            observe.on_evaluation()
        if not self.system.update(np.asarray(theta, dtype=float)):
            return FAILED_VALUE
        v = self.response.criterion(self.system)
        return v if np.isfinite(v) else FAILED_VALUE


def start_theta(
    system: BlockedFactor, group_codes: list[np.ndarray], scalar_distinct: bool, response: np.ndarray | None = None
) -> np.ndarray:
    """lme4's start: 1 on diagonals, 0 off them; for scalar terms on distinct factors, a moment guess
    from the response as the data hold it (lme4's model.response: no offset taken off, no weights)."""
    theta = np.concatenate([np.where(s.tri_rows == s.tri_cols, 1.0, 0.0) for s in system.structures])
    if scalar_distinct:
        v, _, total, _ = _group_moments(system, group_codes, response)
        v_e = total - sum(v)
        if np.isfinite(v_e) and v_e > 0:
            theta = np.sqrt(np.array(v) / v_e)
    return theta


def _group_moments(
    system: BlockedFactor, group_codes: list[np.ndarray], response: np.ndarray | None
) -> tuple[list[float], list[int], float, int]:
    """The moment guess's pieces: each factor's variance of its group means over the rows (R's var),
    its number of levels, the response's variance and the number of rows."""
    y = system.cp.y if response is None else np.asarray(response, dtype=float)
    n = len(y)
    v, ells = [], []
    for codes in group_codes:
        counts = np.bincount(codes)
        means = np.bincount(codes, weights=y) / counts
        v.append(float(np.var(means[codes], ddof=1)) if n > 1 else 0.0)
        ells.append(len(counts))
    return v, ells, float(np.var(y, ddof=1)), n


def moment_start(
    system: BlockedFactor, group_codes: list[np.ndarray], response: np.ndarray | None = None
) -> np.ndarray | None:
    """start_theta's moment guess with each factor's group means freed of their own sampling
    variance (the residual variance over the group's size, averaged over the rows: levels / n),
    three rounds: closer to the optimum than lme4's guess, which counts that variance as the
    factor's.  The Newton path's start only: BOBYQA keeps lme4's, so its path stays lme4's.  None
    where the residual's share comes out at zero or below (lme4's guess then falls back to 1s)."""
    v, ells, total, n = _group_moments(system, group_codes, response)
    own, v_e = v, total - sum(v)
    for _ in range(3):
        if not (np.isfinite(v_e) and v_e > 0):
            return None
        own = [max(vj - v_e * ell / n, 1e-6 * vj) for vj, ell in zip(v, ells, strict=True)]
        v_e = total - sum(own)
    if not (np.isfinite(v_e) and v_e > 0):
        return None
    theta = np.sqrt(np.array(own) / v_e)
    return theta if np.all(np.isfinite(theta) & (theta > 0)) else None


def bobyqa(
    fn,
    x0: np.ndarray,
    lower: np.ndarray,
    *,
    initial_step: float | None = None,
    xtol_abs: float = 1e-8,
    ftol_abs: float = 1e-8,
    xtol_rel: float = 1e-4,
    maxeval: int = 100000,
) -> tuple[np.ndarray, float, str]:
    """NLopt's BOBYQA with lme4's nloptwrap settings."""
    import nlopt

    n = len(x0)
    opt = nlopt.opt(nlopt.LN_BOBYQA, n)
    opt.set_min_objective(lambda x, grad: fn(x))
    opt.set_lower_bounds(lower)
    opt.set_upper_bounds(np.full(n, np.inf))
    opt.set_xtol_abs(xtol_abs)
    opt.set_ftol_abs(ftol_abs)
    opt.set_xtol_rel(xtol_rel)
    opt.set_maxeval(maxeval)
    if initial_step is not None:
        opt.set_initial_step(initial_step)
    try:
        x = opt.optimize(np.asarray(x0, dtype=float))
        status = opt.last_optimize_result()
    except nlopt.RoundoffLimited:
        x = np.asarray(x0, dtype=float)
        status = nlopt.ROUNDOFF_LIMITED
    return np.asarray(x), float(opt.last_optimum_value()), _status_name(status)


def _status_name(code: int) -> str:
    names = {
        1: "NLOPT_SUCCESS",
        2: "NLOPT_STOPVAL_REACHED",
        3: "NLOPT_FTOL_REACHED",
        4: "NLOPT_XTOL_REACHED",
        5: "NLOPT_MAXEVAL_REACHED",
        6: "NLOPT_MAXTIME_REACHED",
        -4: "NLOPT_ROUNDOFF_LIMITED",
    }
    return names.get(code, f"NLOPT_{code}")


def deriv12(fn, x: np.ndarray, fx: float, delta: float = DERIV_DELTA) -> tuple[np.ndarray, np.ndarray]:
    """Central-difference gradient and Hessian, as lme4's deriv12 (no bounds)."""
    return central_differences(fn, np.asarray(x, dtype=float), fx, np.full(len(x), delta))


def optimize_theta(
    system: BlockedFactor,
    response: Response,
    theta0: np.ndarray,
    polish: bool = True,
    checks: bool = True,
    initial_step: float | None = None,
    objective: Objective | None = None,
    gradient: bool | None = None,
    newton_start: np.ndarray | None = None,
) -> Optimum:
    """lme4's optimizeLmer and checkConv: BOBYQA, restart at an edge, snap to the boundary, checks.
    With `polish`, the end point is polished into the optimum (`_finish`, polish.py).  Without
    `checks` only singularity is judged: the derivative checks cost a fifth of a warm-started refit.
    `objective` evaluates the criterion in place of the response's own (the bootstrap's, batched).
    With `gradient` (None: where an evaluation is expensive, newton.uses_gradient) the optimum is
    sought first by Newton's method on the exact gradient (newton.py), from `newton_start` where given
    (moment_start); BOBYQA, from theta0, where that gives up."""
    f = objective if objective is not None else Objective(system, response)
    lower = system.cp.lower_bounds()
    if gradient is None:
        from mlmcli.engine.newton import uses_gradient

        gradient = polish and checks and objective is None and uses_gradient(system)
    if gradient:
        start = theta0 if newton_start is None else newton_start
        opt = _newton_path(f, system, response, start, lower)
        if opt is not None:
            return opt
    theta, fval, status = bobyqa(f, theta0, lower, initial_step=initial_step)
    # derivatives at the optimizer's answer, before any boundary adjustment (lme4's optwrap);
    # computed only when the checks need them (a singular fit skips them)
    at = theta.copy()
    on_bound = np.flatnonzero(theta == lower)
    if on_bound.size:
        d0 = f(theta)
        btol = 1e-5
        bgrad = []
        for i in on_bound:
            t = theta.copy()
            t[i] = lower[i] + btol
            bgrad.append((f(t) - d0) / btol)
        if any(g < 0 for g in bgrad):
            theta, fval, status = bobyqa(f, theta, lower)
            at = theta.copy()
    theta, fval = check_boundary(f, theta, fval, lower)
    opt = Optimum(theta=theta, criterion=fval, evaluations=f.count, status=status, checked_at=at)
    if checks:
        check_convergence(opt, lambda: deriv12(f, at, f(at)), lower)
    else:
        opt.singular = is_singular(theta, lower)
    return _finish(f, opt, lower, polish, checks)


def _newton_path(
    f: Objective, system: BlockedFactor, response: Response, theta0: np.ndarray, lower: np.ndarray
) -> Optimum | None:
    """The optimum by Newton's method on the exact gradient, with lme4's checks made from that
    gradient and the Hessian of its central differences; None where Newton's path gives up (the
    optimum may be on the boundary) and BOBYQA's is taken."""
    from mlmcli.engine.newton import CriterionGradient, newton_optimum
    from mlmcli.engine.response import GaussianResponse

    if not isinstance(response, GaussianResponse):
        return None
    result = newton_optimum(CriterionGradient(f, system, response), theta0, lower)
    if result is None:
        return None
    p = result.point
    theta = p.theta.copy()
    opt = Optimum(
        theta=theta, criterion=p.value, evaluations=f.count, status="NLOPT_SUCCESS", polished=True, checked_at=theta
    )
    check_convergence(opt, lambda: (p.gradient, result.differences.hessian()), lower)
    if opt.singular:
        return None
    opt.differences = result.differences
    if not (system.ok and np.array_equal(system.theta, theta)):
        factor_at(system, theta)
    opt.evaluations = f.count
    return opt


def reoptimize_theta(system: BlockedFactor, response: Response, theta0: np.ndarray, polish: bool = True) -> Optimum:
    """lme4's refitML: BOBYQA from a fitted theta with a trust region scaled to it."""
    f = Objective(system, response)
    theta0 = np.array(theta0, dtype=float)
    x0 = np.where(theta0 == 0, 0.001, theta0) if np.all(theta0 == 0) else theta0
    rhobeg = min(0.95, 0.2 * float(np.max(np.abs(x0))))
    lower = system.cp.lower_bounds()
    theta, fval, status = bobyqa(
        f, x0, lower, initial_step=rhobeg, xtol_abs=1e-6 * rhobeg, ftol_abs=1e-12, xtol_rel=0.0
    )
    opt = Optimum(theta=theta, criterion=fval, evaluations=f.count, status=status, checked_at=theta)
    check_convergence(opt, lambda: deriv12(f, theta, fval), lower)
    return _finish(f, opt, lower, polish)


def _finish(f: Objective, opt: Optimum, lower: np.ndarray, polish: bool, checks: bool = True) -> Optimum:
    """Polish the end point into the optimum (polish.py), then leave the system factored there.
    An end point that fails lme4's checks first gets BOBYQA again on rescaled theta.  Without
    `checks`, only singularity is judged at the end point."""
    if polish:
        start = opt.theta.copy()
        failed = not opt.singular and (opt.check_code != 0 or opt.conv_code != 0) and _may_gain(opt)
        theta, fval, status = opt.theta, opt.criterion, opt.status
        # lme4 skips its checks at a singular end point; on badly scaled columns of Z such a point is
        # often a boundary BOBYQA ran into rather than the optimum
        if failed or (opt.singular and _badly_scaled(f.system)):
            better = rescaled_restart(f, theta, fval, lower)
            if better is not None:
                theta, fval, status = better
                theta, fval = check_boundary(f, theta, fval, lower)
        polisher = newton_polisher(f, lower)
        known = None
        if opt.gradient is not None and opt.hessian is not None and np.array_equal(theta, opt.checked_at):
            # lme4's checks differentiated at BOBYQA's end point: the first Newton step's derivatives
            known = Derivatives(start, fval, opt.gradient, opt.hessian, np.full(len(start), DERIV_DELTA))
        theta, fval = polisher.run(theta, fval, known)
        if not np.array_equal(theta, start):
            opt = Optimum(theta=theta, criterion=fval, evaluations=f.count, status=status, polished=True)
            # lme4's checks and messages for the point we end at, not for the one we left
            last = polisher.last
            if not checks:
                opt.singular = is_singular(theta, lower)
            elif last is not None and np.array_equal(last.theta, theta) and np.all(last.delta == DERIV_DELTA):
                derivs = (last.gradient, last.hessian)
                check_convergence(opt, lambda: derivs, lower)
            else:
                check_convergence(opt, lambda: deriv12(f, theta, f(theta)), lower)
        opt.evaluations = f.count
    factor_at(f.system, opt.theta)
    return opt


def newton_polisher(f: Objective, lower: np.ndarray) -> Polisher:
    """Newton steps on the scaled theta, with BOBYQA on that scale for the restarts."""
    s = theta_scales(f.system)

    def restart(theta: np.ndarray) -> tuple[np.ndarray, float]:
        phi, value, _ = bobyqa(lambda v: f(v / s), theta * s, lower)
        return check_boundary(f, phi / s, value, lower)

    return Polisher(f, lower, s, restart, _columns_below(f.system))


def _columns_below(system: BlockedFactor) -> dict[int, np.ndarray]:
    """Per diagonal theta, the thetas below it in its column of T."""
    out, offset = {}, 0
    for st in system.structures:
        rows, cols = np.asarray(st.tri_rows), np.asarray(st.tri_cols)
        for i in np.flatnonzero(rows == cols):
            below = np.flatnonzero((cols == cols[i]) & (rows > rows[i]))
            if below.size:
                out[offset + int(i)] = offset + below
        offset += len(rows)
    return out


def theta_scales(system: BlockedFactor) -> np.ndarray:
    """Per theta, the root mean square of its row's column of Z: T's row for a slope on a covariate
    in the hundreds holds numbers a hundred times smaller than the intercept's."""
    return np.concatenate(
        [
            np.where(rms > 0, rms, 1.0)[st.tri_rows]
            for st, rms in zip(system.structures, _column_rms(system), strict=True)
        ]
    )


def _column_rms(system: BlockedFactor) -> list[np.ndarray]:
    """Per term, the root mean square of each of its columns of Z."""
    cp = system.cp
    if cp.rows_available:
        # einsum's sums of squares: no temporary as long as the data (80 MB on 5M rows and two columns)
        return [np.sqrt(np.einsum("ij,ij->j", st.X, st.X) / len(st.X)) for st in system.structures]
    # sums of squares of Z's columns: the diagonals of Z'Z's blocks, over the levels
    out = []
    for j, st in enumerate(cp.structures):
        if j < cp.nbd:
            ss = np.diagonal(cp.A_diag[j], axis1=1, axis2=2).sum(axis=0)
        else:
            o = cp.tail_offsets[j - cp.nbd]
            ss = np.diag(cp.A_tt)[o : o + st.q].reshape(st.ell, st.k).sum(axis=0)
        out.append(np.sqrt(ss / cp.n))
    return out


def _may_gain(opt: Optimum) -> bool:
    """Whether a failed check leaves a criterion worth seeking: the Newton step's predicted gain
    g'H^{-1}g / 2 exceeds POLISH_GAIN (or POLISH_GAIN_REL of the criterion), or the Hessian gives no
    prediction.  On millions of rows lme4's absolute gradient tolerance fails at points within
    1e-12 of the optimum, relatively."""
    g, H = opt.gradient, opt.hessian
    if g is None or H is None or not np.all(np.isfinite(g)) or not np.all(np.isfinite(H)):
        return True
    try:
        L = np.linalg.cholesky(H)
    except np.linalg.LinAlgError:
        return True
    z = np.linalg.solve(L, g)
    return bool(0.5 * z @ z > max(POLISH_GAIN, POLISH_GAIN_REL * abs(opt.criterion)))


def _badly_scaled(system: BlockedFactor, ratio: float = 10.0) -> bool:
    """Some term's columns of Z differ in scale by more than `ratio`."""
    for rms in _column_rms(system):
        rms = rms[rms > 0]
        if rms.size > 1 and rms.max() > ratio * rms.min():
            return True
    return False


def rescaled_restart(
    f: Objective, theta: np.ndarray, fval: float, lower: np.ndarray, rounds: int = 3
) -> tuple[np.ndarray, float, str] | None:
    """BOBYQA again from theta, on theta times the scale of Z's columns: on that scale its trust
    region fits every direction, where lme4's stops short on badly scaled slopes.  Repeated while
    it gains (each run restarts the trust region); the result only when its criterion is lower."""
    s = theta_scales(f.system)
    best = None
    for _ in range(rounds):
        phi, value, status = bobyqa(lambda v: f(v / s), theta * s, lower)
        if not value < fval:
            break
        gain = fval - value
        theta, fval, best = phi / s, value, (phi / s, value, status)
        if gain < 1e-6:
            break
    return best


def factor_at(system: BlockedFactor, theta: np.ndarray) -> None:
    """Leave the system factored at the optimum, or say why there is none."""
    if not system.update(theta):
        raise FitError(
            "the model cannot be fitted: the penalized system is not positive definite at any "
            "parameter value tried (the fixed-effects model matrix is too ill-conditioned, e.g. "
            "nearly collinear columns or many powers of one variable); centre or rescale the "
            "predictors, or use poly()"
        )


def check_boundary(
    f: Callable[[np.ndarray], float], theta: np.ndarray, fval: float, lower: np.ndarray
) -> tuple[np.ndarray, float]:
    """Put a theta within BOUNDARY_TOL of its bound onto it where that does not raise the criterion."""
    bdiff = theta - lower
    edge = (bdiff > 0) & (bdiff < BOUNDARY_TOL)
    if not edge.any():
        return theta, fval
    new = theta.copy()
    for i in np.flatnonzero(edge):
        t = theta.copy()
        t[i] = lower[i]
        if f(t) < fval:
            new[i] = lower[i]
    return new, f(new)


def is_singular(theta: np.ndarray, lower: np.ndarray) -> bool:
    """lme4's isSingular: a diagonal element of some T_i below SINGULAR_TOL."""
    return bool(np.any(theta[lower == 0] < SINGULAR_TOL))


def check_convergence(opt: Optimum, derivs: Callable[[], tuple[np.ndarray, np.ndarray]], lower: np.ndarray) -> None:
    """lme4's checkConv: the singular message, else the gradient and Hessian checks."""
    opt.singular = is_singular(opt.theta, lower)
    if opt.singular:
        opt.messages.append(SINGULAR_MESSAGE)
        opt.warnings.append(SINGULAR_MESSAGE)
        return
    grad, hess = derivs()
    opt.gradient, opt.hessian = grad, hess
    if not np.all(np.isfinite(grad)):
        opt.check_code = -5
        opt.messages.append("Gradient contains NAs")
        return
    try:
        R = np.linalg.cholesky(hess).T  # R'R = H, as R's chol
        scgrad = np.linalg.solve(R, grad)
        bad = not np.all(np.isfinite(scgrad))
    except np.linalg.LinAlgError:
        bad = True
    if bad:
        opt.check_code = -1
        msg = "unable to evaluate scaled gradient"
        opt.messages.append(msg)
        opt.warnings.append(msg)
    else:
        maxmingrad = float(np.max(np.minimum(np.abs(scgrad), np.abs(grad))))
        if maxmingrad > GRAD_TOL:
            opt.check_code = -1
            # lme4 reports which.max() of a single number: always component 1
            msg = f"Model failed to converge with max|grad| = {_format_g(maxmingrad)} (tol = 0.002, component 1)"
            opt.messages.append(msg)
            opt.warnings.append(msg)
    _check_hessian(opt, hess)


def _check_hessian(opt: Optimum, hess: np.ndarray) -> None:
    try:
        ev = np.linalg.eigvalsh(hess)
    except np.linalg.LinAlgError:
        opt.check_code = -6
        opt.messages.append("Problem with Hessian check (infinite or missing values?)")
        return
    msgs = []
    negative = int(np.sum(ev < -HESS_TOL))
    if negative:
        opt.check_code = -3
        msgs.append(f"Model failed to converge: degenerate  Hessian with {negative} negative eigenvalues")
    else:
        zero = int(np.sum(np.abs(ev) < HESS_TOL))
        try:
            np.linalg.cholesky(hess)
            chol_ok = True
        except np.linalg.LinAlgError:
            chol_ok = False
        if zero or not chol_ok:
            opt.check_code = -4
            msgs.append(" Hessian is numerically singular: parameters are not uniquely determined")
        else:
            if ev.max() * HESS_TOL > 1:
                opt.check_code = 2
                msgs.append("Model is nearly unidentifiable: very large eigenvalue\n - Rescale variables?")
            if ev.min() / ev.max() < HESS_TOL:
                opt.check_code = 3
                msgs.append("Model is nearly unidentifiable: large eigenvalue ratio\n - Rescale variables?")
    opt.messages.extend(msgs)
    if msgs:
        opt.warnings.append(";".join(msgs))


def _format_g(x: float) -> str:
    """C's %g, as R's gettextf uses it."""
    return f"{x:g}"
