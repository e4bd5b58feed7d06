"""Newton's method on the exact gradient of the profiled criterion, for designs where one evaluation
is expensive (a large dense tail of crossed terms).

lme4's optimizeLmer runs BOBYQA, which models the criterion from its values alone: on two or three
thetas it spends some 40 evaluations reaching its tolerance, and the polish (polish.py) another
2n^2 per Newton step for the derivatives of values.  The gradient of the criterion is exact and
costs a few factorizations' worth (derivatives.py),

    REML: d ldL2 + d ldRX2 + (n - p) d pwrss / pwrss,        ML: d ldL2 + n d pwrss / pwrss,

so here the path is quasi-Newton instead: the Hessian by forward differences of the gradient at
the start, BFGS updates along the way, a backtracking line search; at the end the Hessian by central
differences of the gradient (2n gradients) and Newton steps with it until the step promises less
than the criterion's own rounding (polish.py's tolerance), which makes the end point the optimum
whatever the kernel's rounding, as the polish does.  That last Hessian also serves lme4's
convergence checks and, where its steps are Satterthwaite's, lmerTest's Hessian (satterthwaite.py):
the pieces of every gradient are kept for it.

It gives up (returns None) wherever the optimum may lie on the boundary or the criterion is not
convex along the path: BOBYQA and the polish handle those, as lme4 does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mlmcli.engine.polish import GAIN_ABS, GAIN_REL
from mlmcli.engine.satterthwaite import theta_steps

if TYPE_CHECKING:
    from mlmcli.engine.factor import BlockedFactor
    from mlmcli.engine.response import GaussianResponse

# A dense tail of at least this many columns makes an evaluation expensive enough (its Cholesky is
# most of the cost) that the gradient's path is the shorter one.
GRADIENT_TAIL = 400
MAX_STEPS = 30
LINE_STEPS = 12  # halvings of a step before the line search gives up
FINAL_ROUNDS = 3  # Newton steps with the central-difference Hessian at the end
ARMIJO = 1e-4
# a theta this close to its bound (relative to the largest theta, or to its start) may be headed
# for it: the boundary is BOBYQA's and the polish's
NEAR_BOUND = 1e-3
BELOW_START = 1e-2
# near a zero variance the criterion is even in theta, and Newton in log theta only shrinks it by
# a constant factor per step: this many shrinks in a row by more than SHRINK (in log theta) mark one
CREEPS, SHRINK = 3, 0.2
STEP_TOL = 1e-10  # or when the step moves no coordinate by more than this


@dataclass
class GradientPoint:
    """The criterion and its gradient at theta, with the gradient's pieces: the smooth part
    (d ldL2, plus d ldRX2 for REML) and d pwrss, with pwrss (lmerTest's Hessian at sigma fixed
    recombines them)."""

    theta: np.ndarray
    value: float
    gradient: np.ndarray
    smooth: np.ndarray
    pwrss_gradient: np.ndarray
    pwrss: float


@dataclass
class GradientDifferences:
    """Gradients at theta +- step_k e_k, for every k: the central-difference Hessians."""

    theta: np.ndarray
    steps: np.ndarray
    plus: list[GradientPoint]
    minus: list[GradientPoint]

    def hessian(self) -> np.ndarray:
        """The criterion's Hessian."""
        H = np.column_stack(
            [(p.gradient - m.gradient) / (2.0 * h) for p, m, h in zip(self.plus, self.minus, self.steps, strict=True)]
        )
        return 0.5 * (H + H.T)

    def deviance_hessian(self, sigma: float) -> np.ndarray:
        """The Hessian in theta of the deviance at sigma fixed (lmerTest's devfun_vp): smooth part
        plus d pwrss / sigma^2, differenced."""
        H = np.column_stack(
            [
                (p.smooth - m.smooth) / (2.0 * h) + (p.pwrss_gradient - m.pwrss_gradient) / (2.0 * h * sigma**2)
                for p, m, h in zip(self.plus, self.minus, self.steps, strict=True)
            ]
        )
        return 0.5 * (H + H.T)


def uses_gradient(system: BlockedFactor) -> bool:
    """Whether the optimizer should take the exact gradient's path for this design: a large dense
    tail, whose Cholesky is most of an evaluation; or one small term on large data (the closed-form
    factor), whose gradient costs about two evaluations, where BOBYQA and the polish take some 90
    evaluations for a slope and Satterthwaite's df 6 gradients more (slope5m: 0.33 s against 0.44)."""
    from mlmcli.engine.small_term import closed_form

    return system.cp.q_tail >= GRADIENT_TAIL or closed_form(system)


class CriterionGradient:
    """theta -> GradientPoint: `value` factors at theta and gives the criterion (the optimizer's
    objective, which counts evaluations); the gradient comes from that factor."""

    def __init__(self, value: Callable[[np.ndarray], float], system: BlockedFactor, response: GaussianResponse):
        self.value = value
        self.system = system
        self.response = response

    def __call__(self, theta: np.ndarray) -> GradientPoint | None:
        from mlmcli.engine.derivatives import GradientPieces

        theta = np.array(theta, dtype=float)
        v = self.value(theta)
        f = self.system
        if not (np.isfinite(v) and v < 1e300 and f.ok and np.array_equal(f.theta, theta)):
            return None
        d = GradientPieces(f)  # the three share their solves
        smooth = d.ldL2()
        if self.response.reml:
            smooth = smooth + d.ldRX2()
        pg = d.pwrss()
        pwrss = float(f.pwrss)
        r = self.response
        c = r.n - r.p if r.reml else r.n
        g = smooth + c * pg / pwrss
        if not np.all(np.isfinite(g)):
            return None
        return GradientPoint(theta, float(v), g, smooth, pg, pwrss)


@dataclass
class NewtonResult:
    point: GradientPoint
    differences: GradientDifferences  # at point.theta, Satterthwaite's steps


def newton_optimum(grad: CriterionGradient, theta0: np.ndarray, lower: np.ndarray) -> NewtonResult | None:
    """The optimum from theta0 by quasi-Newton steps on the exact gradient, then Newton steps with
    the central-difference Hessian; None where the path leaves the interior or loses convexity."""
    p = grad(theta0)
    if p is None or _near_bound(p.theta, lower):
        return None
    xs = _Coordinates(lower, p.theta)
    H0 = _forward_hessian(grad, p)
    if H0 is None:
        return None
    H = xs.hessian(p, H0)
    rounds = 0
    central = False  # whether H is the central-difference Hessian at p
    creeps = np.zeros(len(p.theta), dtype=int)
    for _ in range(MAX_STEPS):
        if _near_bound(p.theta, lower) or np.any(xs.logged & (p.theta < BELOW_START * xs.start)):
            return None
        if np.any(creeps >= CREEPS):
            return None
        gx = xs.gradient(p)
        step, gain = _newton_step(gx, H)
        if step is None:
            return None
        tol = max(GAIN_ABS, GAIN_REL * abs(p.value))
        if gain <= tol or np.max(np.abs(step)) <= STEP_TOL:
            # converged on this Hessian: confirm with the central differences at the point (the
            # factor at the point is kept: the fit ends there)
            state = grad.system.snapshot()
            diffs = _central(grad, p)
            if diffs is None:
                return None
            H = xs.hessian(p, diffs.hessian())
            step, gain = _newton_step(gx, H)
            if step is None:
                return None
            if gain <= tol:
                grad.system.restore(state)
                return NewtonResult(p, diffs)
            if rounds >= FINAL_ROUNDS:  # not settling: BOBYQA and the polish
                return None
            rounds += 1
            central = True
        q = _line_search(grad, xs, p, step)
        if q is None:
            if central:
                return None
            # no descent along the quasi-Newton step: the central-difference Hessian next
            diffs = _central(grad, p)
            if diffs is None:
                return None
            H, central = xs.hessian(p, diffs.hessian()), True
            continue
        dx = xs.of(q.theta) - xs.of(p.theta)
        creeps = np.where(xs.logged & (dx < -SHRINK), creeps + 1, 0)
        H, central = _bfgs(H, dx, xs.gradient(q) - gx), False
        p = q
    return None


class _Coordinates:
    """The optimizer's coordinates: log theta for the thetas bounded at zero (the criterion is far
    closer to quadratic in a standard deviation's log than in itself, and the bound is never
    crossed), theta itself for the others."""

    def __init__(self, lower: np.ndarray, theta0: np.ndarray) -> None:
        self.logged = (lower == 0) & (theta0 > 0)
        self.start = np.where(self.logged, theta0, 0.0)

    def of(self, theta: np.ndarray) -> np.ndarray:
        return np.where(self.logged, np.log(np.where(self.logged, theta, 1.0)), theta)

    def theta(self, x: np.ndarray) -> np.ndarray:
        return np.where(self.logged, np.exp(np.where(self.logged, x, 0.0)), x)

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        """d theta / d x, a diagonal."""
        return np.where(self.logged, theta, 1.0)

    def gradient(self, p: GradientPoint) -> np.ndarray:
        return p.gradient * self.jacobian(p.theta)

    def hessian(self, p: GradientPoint, H: np.ndarray) -> np.ndarray:
        """The Hessian in x from theta's: J H J + diag(g J) on the logged coordinates."""
        J = self.jacobian(p.theta)
        return J[:, None] * H * J[None, :] + np.diag(np.where(self.logged, p.gradient * J, 0.0))


def _newton_step(g: np.ndarray, H: np.ndarray) -> tuple[np.ndarray | None, float]:
    """-H^{-1} g and the gain g'H^{-1}g / 2 it promises; None where H is not positive definite."""
    if not (np.all(np.isfinite(H)) and np.all(np.isfinite(g))):
        return None, 0.0
    try:
        L = np.linalg.cholesky(H)
    except np.linalg.LinAlgError:
        return None, 0.0
    z = np.linalg.solve(L, g)
    step = -np.linalg.solve(L.T, z)
    return step, 0.5 * float(z @ z)


def _near_bound(theta: np.ndarray, lower: np.ndarray) -> bool:
    bounded = np.isfinite(lower)
    scale = max(float(np.max(np.abs(theta))), 1e-300)
    return bool(np.any(theta[bounded] - lower[bounded] < NEAR_BOUND * scale))


def _forward_hessian(grad: CriterionGradient, p: GradientPoint) -> np.ndarray | None:
    """Forward differences of the gradient, n gradients: the quasi-Newton start."""
    n = len(p.theta)
    H = np.empty((n, n))
    for k in range(n):
        h = 1e-4 * max(abs(float(p.theta[k])), 0.1)
        x = p.theta.copy()
        x[k] += h
        q = grad(x)
        if q is None:
            return None
        H[:, k] = (q.gradient - p.gradient) / h
    return 0.5 * (H + H.T)


def _central(grad: CriterionGradient, p: GradientPoint) -> GradientDifferences | None:
    # theta_hessian's steps: the end point's differences then serve lmerTest's Hessian too
    steps = theta_steps(p.theta)
    plus: list[GradientPoint] = []
    minus: list[GradientPoint] = []
    for k, h in enumerate(steps):
        for sign, out in ((1.0, plus), (-1.0, minus)):
            x = p.theta.copy()
            x[k] += sign * h
            q = grad(x)
            if q is None:
                return None
            out.append(q)
    return GradientDifferences(p.theta.copy(), steps, plus, minus)


def _line_search(grad: CriterionGradient, xs: _Coordinates, p: GradientPoint, step: np.ndarray) -> GradientPoint | None:
    """Backtracking from the full step (in the optimizer's coordinates) to a point that lowers the
    criterion enough (Armijo's)."""
    gx = xs.gradient(p)
    slope = float(gx @ step)
    if not slope < 0:
        return None
    x0 = xs.of(p.theta)
    t = 1.0
    for _ in range(LINE_STEPS):
        q = grad(xs.theta(x0 + t * step))
        if q is not None and q.value <= p.value + ARMIJO * t * slope:
            return q
        t *= 0.5
    return None


def _bfgs(H: np.ndarray, s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The BFGS update (kept as it is where y's curvature along s is not positive)."""
    Hs = H @ s
    sHs, ys = float(s @ Hs), float(y @ s)
    if not (sHs > 0 and ys > 1e-10 * np.sqrt(float(y @ y) * float(s @ s))):
        return H
    return H - np.outer(Hs, Hs) / sHs + np.outer(y, y) / ys
