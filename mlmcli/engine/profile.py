"""Likelihood profiles of the ML deviance, for profile confidence intervals (lme4's profile.merMod).

Variance parameters are profiled on lme4's standard-deviation/correlation scale: the deviance at
given (sd, cor, sigma) with beta profiled out is devfun2's

    ldL2(theta) + pwrss(theta) / sigma^2 + n log(2 pi sigma^2),   theta = chol(Cov / sigma^2),

and each point of a profile minimizes it over the other parameters (BOBYQA, bounded: sd >= 0,
-1 <= cor <= 1).  A fixed effect beta_j is profiled by refitting with its column moved into an
offset, y - x_j beta_j, and the ML criterion optimized over theta.

The signed root deviance zeta(x) = sign(x - x_hat) sqrt(dev(x) - dev_min) is followed outward
from the estimate, each optimization starting where the previous one ended, and the interval
ends are the exact crossings zeta = +-z (lme4 interpolates a spline through profile points).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from mlmcli.engine.crossprod import CrossProducts
from mlmcli.engine.factor import BlockedFactor
from mlmcli.engine.fit import FAILED_VALUE, Objective, bobyqa, newton_polisher
from mlmcli.engine.response import GaussianResponse

# the first step away from the estimate, as lme4 takes it: 1% of it, or 0.001 from zero
FIRST_STEP = 0.01
FIRST_STEP_AT_ZERO = 0.001
MAX_STEPS = 60  # outward steps before a profile is declared flat
ROOT_XTOL = 1e-7  # relative to the parameter's scale


def _safe_chol(C: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a positive semi-definite matrix: zero pivots give zero columns
    (lme4's safe_chol), so that an sd of 0 or a correlation of +-1 has a factor."""
    k = C.shape[0]
    L = np.zeros_like(C)
    for j in range(k):
        d = C[j, j] - float(L[j, :j] @ L[j, :j])
        if d <= 1e-14 * max(1.0, abs(C[j, j])):
            continue
        L[j, j] = np.sqrt(d)
        for i in range(j + 1, k):
            L[i, j] = (C[i, j] - float(L[i, :j] @ L[j, :j])) / L[j, j]
    return L


def sdcor_from_theta(system: BlockedFactor, theta: np.ndarray, sigma: float) -> np.ndarray:
    """lme4's Cv_to_Sv: per term the lower triangle (by columns) of the covariance's sd (diagonal)
    and correlations (off it), then sigma; a correlation with a zero sd is 0 (the profile's start)."""
    return sdcor(system.cp, theta, sigma, zero_sd=0.0)


def sdcor(cp: CrossProducts, theta: np.ndarray, sigma: float, zero_sd: float = math.nan) -> np.ndarray:
    """Cv_to_Sv(theta, s = sigma); a correlation with a zero sd is `zero_sd` (cov2cor's 0/0 is NaN)."""
    out = []
    for s, th in zip(cp.structures, cp.split_theta(theta), strict=True):
        T = s.template(th)
        C = sigma**2 * T @ T.T
        sd = np.sqrt(np.diag(C))
        for i, j in zip(s.tri_rows, s.tri_cols, strict=True):
            if i == j:
                out.append(sd[i])
            else:
                out.append(C[i, j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else zero_sd)
    out.append(sigma)
    return np.array(out, dtype=float)


def theta_from_sdcor(system: BlockedFactor, pars: np.ndarray) -> np.ndarray:
    """lme4's Sv_to_Cv: theta from (sd, cor, ..., sigma)."""
    sigma = pars[-1]
    out = []
    pos = 0
    for s in system.structures:
        m = len(s.tri_rows)
        v = pars[pos : pos + m]
        pos += m
        sd = np.zeros(s.k)
        R = np.eye(s.k)
        for val, i, j in zip(v, s.tri_rows, s.tri_cols, strict=True):
            if i == j:
                sd[i] = val
            else:
                R[i, j] = R[j, i] = val
        L = _safe_chol(sd[:, None] * R * sd[None, :] / sigma**2)
        out.append(L[s.tri_rows, s.tri_cols])
    return np.concatenate(out)


def varpar_bounds(system: BlockedFactor) -> tuple[np.ndarray, np.ndarray]:
    """Bounds on (sd, cor, ..., sigma): sd and sigma >= 0, correlations in [-1, 1]."""
    diag = np.concatenate([s.tri_rows == s.tri_cols for s in system.structures] + [np.array([True])])
    return np.where(diag, 0.0, -1.0), np.where(diag, np.inf, 1.0)


def varpar_deviance(system: BlockedFactor, pars: np.ndarray, response: GaussianResponse | None = None) -> float:
    """devfun2: the ML deviance at (sd, cor, sigma), beta profiled out (`response`: the ML response
    of the system's products, made here when not given)."""
    sigma = float(pars[-1])
    if not sigma > 0:
        return FAILED_VALUE
    if not system.update(theta_from_sdcor(system, pars)):
        return FAILED_VALUE
    if response is None:
        response = GaussianResponse.of(system.cp, reml=False)
    dev = response.deviance(system, sigma * sigma)
    return float(dev) if np.isfinite(dev) else FAILED_VALUE


def bounded_bobyqa(
    fn: Callable[[np.ndarray], float], x0: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> tuple[np.ndarray, float]:
    """NLopt's BOBYQA within box bounds, with lme4's nloptwrap tolerances."""
    import nlopt

    n = len(x0)
    x0 = np.clip(np.asarray(x0, dtype=float), lower, upper)
    if n == 0:
        return x0, fn(x0)
    opt = nlopt.opt(nlopt.LN_BOBYQA, n)
    opt.set_min_objective(lambda x, grad: fn(x))
    opt.set_lower_bounds(lower)
    opt.set_upper_bounds(upper)
    opt.set_xtol_abs(1e-8)
    opt.set_ftol_abs(1e-8)
    opt.set_xtol_rel(1e-4)
    opt.set_maxeval(100000)
    # NLopt's default initial step, as lme4's nloptwrap leaves it: the profile then follows lme4's
    # path where the deviance surface has more than one way down (a correlation on its bound)
    try:
        x = opt.optimize(x0)
        return np.asarray(x), float(opt.last_optimum_value())
    except nlopt.RoundoffLimited:
        return x0, fn(x0)


class HeldProfile:
    """A deviance over a parameter vector minimized with one parameter held at x, over the others
    within their bounds; each point warm-starts the next."""

    def __init__(
        self,
        deviance: Callable[[np.ndarray], float],
        optimum: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        which: int,
    ) -> None:
        self.deviance = deviance
        self.free = np.arange(len(optimum)) != which
        self.lower, self.upper = lower[self.free], upper[self.free]
        self.start = np.asarray(optimum, dtype=float)[self.free]

    def __call__(self, x: float) -> float:
        pars = np.empty(len(self.free))
        pars[~self.free] = x

        def dev(others: np.ndarray) -> float:
            pars[self.free] = others
            return self.deviance(pars)

        others, fval = bounded_bobyqa(dev, self.start, self.lower, self.upper)
        self.start = others
        return fval


class VarparProfile(HeldProfile):
    """The profiled ML deviance (devfun2) with one variance parameter held fixed; warm-started."""

    def __init__(self, system: BlockedFactor, optimum: np.ndarray, which: int) -> None:
        response = GaussianResponse.of(system.cp, reml=False)
        lower, upper = varpar_bounds(system)
        super().__init__(lambda pars: varpar_deviance(system, pars, response), optimum, lower, upper, which)


class FixedProfile:
    """The ML criterion with beta_j held fixed (its column an offset), optimized over theta."""

    def __init__(self, terms: list, system: BlockedFactor, theta: np.ndarray, which: int) -> None:
        cp = system.cp
        self.terms = terms
        # on the data's scale: each profile point's cross-products weight the rows again
        X = cp.unweighted(cp.X.T).T
        self.X = np.delete(X, which, axis=1)
        self.x = X[:, which]
        self.y = cp.unweighted(cp.y)
        self.weights = cp.weights
        self.theta = np.asarray(theta, dtype=float)
        self.lower = cp.lower_bounds()
        self.default_start = np.where(self.lower == 0, 1.0, 0.0)  # lme4's start: 1 on diagonals

    def __call__(self, b: float) -> float:
        cp = CrossProducts(self.terms, self.X, self.y - b * self.x, self.weights)
        f = Objective(BlockedFactor(cp), GaussianResponse.of(cp, reml=False))
        theta, fval, _ = bobyqa(f, self.theta, self.lower)
        # a warm start with a variance near zero can hold BOBYQA there (heck2011's ML fit, whose
        # slope variance is 2e-8): lme4's own start is the second opinion, the lower one counts
        other, oval, _ = bobyqa(f, self.default_start, self.lower)
        if oval < fval:
            theta, fval = other, oval
        # the point's optimum, not BOBYQA's end point: the bounds are then the same on every CPU
        theta, fval = newton_polisher(f, self.lower).run(theta, fval)
        self.theta = theta
        return fval


def crossing(
    zeta: Callable[[float], float], estimate: float, first: float, target: float, bound: float, scale: float
) -> float:
    """Where zeta crosses `target` going from the estimate (zeta 0) toward `bound`; the bound when
    the profile stays short of the target all the way (lme4 reports the bound then)."""
    from scipy.optimize import brentq

    direction = 1.0 if target > 0 else -1.0
    x_prev, z_prev = estimate, 0.0
    x = first
    for _ in range(MAX_STEPS):
        if direction * (x - bound) >= 0:
            x = bound
        z = zeta(x)
        if direction * (z - target) >= 0:
            try:
                return float(brentq(lambda t: zeta(t) - target, x_prev, x, xtol=ROOT_XTOL * scale, rtol=1e-10))
            except ValueError:
                # re-evaluated ends no longer straddle the target (optimizer noise at the 1e-8
                # level): the crossing of the straight line through the two points
                return float(x_prev + (target - z_prev) * (x - x_prev) / (z - z_prev))
        if x == bound:
            return bound
        # secant toward the target, at most ten times the last step and at least a little
        step = x - x_prev
        slope = (z - z_prev) / step if step != 0 else 0.0
        new = x + (target - z) / slope if direction * slope > 0 else x + 2.0 * step
        limit = 10.0 * abs(step)
        new = x + np.clip(new - x, -limit, limit)
        if direction * (new - x) <= 0:
            new = x + step
        # overshoot a little so that the bracket is found in one step more often
        new = x + 1.2 * (new - x)
        x_prev, z_prev, x = x, z, float(new)
    return float("nan")
