"""The end point made the optimum: Newton steps on the profiled criterion after BOBYQA.

BOBYQA (lme4's optimizeLmer) stops when its trust region has shrunk below its tolerance, wherever
its path led; on a flat or ill-conditioned criterion the last bits of the BLAS kernel decide that
path, and so the end point.  Newton steps on the criterion's gradient and Hessian end where the
gradient vanishes, whichever path led there, so every kernel ends at the same optimum:

- on theta scaled by the RMS of Z's columns (fit.theta_scales), where a unit step means the same
  in every direction;
- the derivatives are central differences of the criterion (lme4's deriv12 scheme), which is
  smooth through theta = 0, so a parameter on its bound is differentiated as any other;
- a step that would cross a bound stops those parameters on it, Newton's for the others; a
  variance that Newton moves towards zero is tried at zero with the others re-optimized (near
  zero the criterion is even in it and Newton only creeps), kept where the criterion is lower;
- at a zero diagonal of a covariance factor T, the sign of the column below it is free (T T' is
  the same): where the gradient holds the diagonal at zero, the column is flipped and it is free;
- a Hessian with a negative eigenvalue marks a saddle or ridge, not an optimum: a step along that
  direction, then BOBYQA again from the lower point, then Newton again;
- a point is kept only when its criterion is lower than the best so far.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# central-difference step on the scaled theta: truncation error ~1e-8 of the curvature, rounding
# error of the criterion divided by 1e-8 in the Hessian.  Where every scale lies within
# LME4_STEP_SCALES of 1, lme4's own step (1e-4 on theta) serves as well, and the derivatives at
# the end point are then those lme4's checks need: no second set
SCALED_DELTA = 1e-4
LME4_STEP_SCALES = (0.1, 10.0)
NEWTON_STEPS = 20
RESTARTS = 3  # BOBYQA runs after steps along negative curvature
# stop when the Newton step promises less than this (relative to the criterion, with an absolute
# floor): the criterion's own rounding (measured ~1e-16 to 1e-15 of it).  A gain far below any
# printed digit of the criterion can still be a 1e-5 move of a parameter along a flat direction.
GAIN_REL, GAIN_ABS = 1e-15, 1e-13
STEP_TOL = 1e-7  # or when it moves no scaled theta by more than this
FLAT = 1e-9  # eigenvalues below this fraction of the largest are flat directions
NEGATIVE = 1e-6  # lme4's check.conv.hess: curvature below -this is negative
ZERO_TRY = 0.1  # scaled diagonal thetas below this are tried at zero


@dataclass
class Derivatives:
    """Gradient and Hessian of the criterion at theta, and the steps they were taken with."""

    theta: np.ndarray
    value: float
    gradient: np.ndarray
    hessian: np.ndarray
    delta: np.ndarray


def central_differences(
    fn: Callable[[np.ndarray], float], x: np.ndarray, fx: float, delta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """lme4's deriv12 with a step per coordinate: gradient and Hessian by central differences, in
    lme4's order of operations (its checks' messages are computed from these)."""
    n = len(x)
    g = np.zeros(n)
    H = np.zeros((n, n))

    def at(*moves: tuple[int, float]) -> float:
        z = np.array(x, dtype=float)
        for i, d in moves:
            z[i] = x[i] + d
        return fn(z)

    for j in range(n):
        dj = delta[j]
        fadd, fsub = at((j, dj)), at((j, -dj))
        H[j, j] = fadd / dj**2 - 2 * fx / dj**2 + fsub / dj**2
        g[j] = (fadd - fsub) / (2 * dj)
        for i in range(j):
            di = delta[i]
            H[i, j] = H[j, i] = (
                at((i, di), (j, dj)) - at((i, di), (j, -dj)) - at((i, -di), (j, dj)) + at((i, -di), (j, -dj))
            ) / ((2 * di) * (2 * dj))
    return g, H


def pair_differences(
    fn: Callable[[np.ndarray], float], x: np.ndarray, fx: float, delta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian by central differences from n^2 + n values, not deriv12's 2n^2: the
    gradient and the diagonal as deriv12's, an off-diagonal from the two points along e_i + e_j,

        H_ij = (f(x+h) + f(x-h) - f(x+d_i) - f(x-d_i) - f(x+d_j) - f(x-d_j) + 2 f(x)) / (2 d_i d_j),

    h = d_i e_i + d_j e_j: second order in the steps as deriv12's, in about half the values where
    n is large (glmer's Hessians over theta and beta)."""
    n = len(x)
    g = np.zeros(n)
    H = np.zeros((n, n))
    plus, minus = np.zeros(n), np.zeros(n)

    def at(sign: float, *coords: int) -> float:
        z = np.array(x, dtype=float)
        for i in coords:
            z[i] = x[i] + sign * delta[i]
        return fn(z)

    for j in range(n):
        dj = delta[j]
        plus[j], minus[j] = at(1.0, j), at(-1.0, j)
        H[j, j] = plus[j] / dj**2 - 2 * fx / dj**2 + minus[j] / dj**2
        g[j] = (plus[j] - minus[j]) / (2 * dj)
    for j in range(n):
        for i in range(j):
            pair = at(1.0, i, j) + at(-1.0, i, j)
            singles = plus[i] + minus[i] + plus[j] + minus[j]
            H[i, j] = H[j, i] = (pair - singles + 2 * fx) / (2 * delta[i] * delta[j])
    return g, H


def central_gradient(fn: Callable[[np.ndarray], float], x: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """The gradient alone by central differences, as central_differences computes it (2n values)."""
    g = np.zeros(len(x))
    for j in range(len(x)):
        z = np.array(x, dtype=float)
        z[j] = x[j] + delta[j]
        fadd = fn(z)
        z[j] = x[j] - delta[j]
        g[j] = (fadd - fn(z)) / (2 * delta[j])
    return g


def _newton_step(g: np.ndarray, H: np.ndarray, free: np.ndarray) -> tuple[np.ndarray, float]:
    """-H^+ g over the free coordinates (flat directions left out), and the gain it promises."""
    step = np.zeros(len(g))
    w, V = np.linalg.eigh(H[np.ix_(free, free)])
    keep = w > FLAT * max(float(np.max(np.abs(w))), 1e-300)
    proj = V[:, keep].T @ g[free]
    coef = proj / w[keep]
    step[free] = -V[:, keep] @ coef
    return step, 0.5 * float(coef @ proj)


def _bfgs(H: np.ndarray, s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The BFGS update of the Hessian H by the step s and the change y of the gradient along it:
    the chord steps converge superlinearly instead of linearly.  Kept as it is where the change
    does not show positive curvature (the update would not stay positive definite)."""
    Hs = H @ s
    sHs, ys = float(s @ Hs), float(y @ s)
    if not (sHs > 0 and ys > 1e-10 * np.sqrt(float(y @ y) * float(s @ s))):
        return H
    return H - np.outer(Hs, Hs) / sHs + np.outer(y, y) / ys


class Polisher:
    """Newton steps with a line search on f(theta), theta >= lower, from BOBYQA's end point."""

    def __init__(
        self,
        fn: Callable[[np.ndarray], float],
        lower: np.ndarray,
        scales: np.ndarray,
        restart: Callable[[np.ndarray], tuple[np.ndarray, float]],
        columns: dict[int, np.ndarray] | None = None,
        reuse_hessian: bool = False,
        delta: np.ndarray | None = None,
        differences: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        self.fn = fn
        self.differences = differences or central_differences  # gradient and Hessian from values
        # with `reuse_hessian`, the Hessian is differenced once and the later Newton steps take
        # gradients only (2n values, not 2n^2): a chord method, which from BOBYQA's end point
        # converges in a step or two; the Hessian then serves the standard errors and the checks
        # (glmer: its 2n^2 evaluations are most of a fit)
        self.reuse_hessian = reuse_hessian
        self.hessian_at: Derivatives | None = None
        self._delta = delta  # the differencing steps, where the caller chooses them
        # diagonal theta -> the thetas below it in its column of T: at a zero diagonal the column's
        # sign is free (T T' is the same), so the bound there is the parametrization's, not the model's
        self.columns = columns or {}
        self.lower = lower
        self.scales = scales
        self.restart = restart  # BOBYQA from a theta: (theta, criterion)
        self.last: Derivatives | None = None
        self.heading = np.zeros(len(lower), dtype=bool)

    @property
    def delta(self) -> np.ndarray:
        if self._delta is not None:
            return self._delta
        lo, hi = LME4_STEP_SCALES
        if np.all((self.scales >= lo) & (self.scales <= hi)):
            return np.full(len(self.scales), SCALED_DELTA)
        return SCALED_DELTA / self.scales

    def derivatives(self, theta: np.ndarray, value: float) -> Derivatives:
        last = self.last
        if last is not None and np.array_equal(last.theta, theta) and last.value == value:
            return last
        if self.reuse_hessian and self.hessian_at is not None:
            g = central_gradient(self.fn, theta, self.delta)
            H = self.hessian_at.hessian if last is None else _bfgs(last.hessian, theta - last.theta, g - last.gradient)
            self.last = Derivatives(theta.copy(), value, g, H, self.delta)
            return self.last
        g, H = self.differences(self.fn, theta, value, self.delta)
        self.last = self.hessian_at = Derivatives(theta.copy(), value, g, H, self.delta)
        return self.last

    def run(self, theta: np.ndarray, value: float, known: Derivatives | None = None) -> tuple[np.ndarray, float]:
        """The optimum reached from theta, and its criterion (never above `value`); `known`: the
        derivatives at theta already computed with this polisher's steps (lme4's checks')."""
        theta = np.array(theta, dtype=float)
        if known is not None and np.array_equal(known.delta, self.delta):
            self.last = self.hessian_at = known
        restarts = zeroed = 0
        while True:
            theta, value, curvature = self._newton(theta, value)
            if zeroed < RESTARTS:
                better = self._zero_tries(theta, value)
                if better is not None:
                    (theta, value), zeroed = better, zeroed + 1
                    continue
            if curvature is None or restarts >= RESTARTS:
                return theta, value
            moved = self._down_the_ridge(theta, value, curvature)
            if moved is None:
                return theta, value
            restarts += 1
            t_new, v_new = self.restart(moved[0])
            theta, value = (t_new, v_new) if v_new < moved[1] else moved

    def _newton(self, theta: np.ndarray, value: float) -> tuple[np.ndarray, float, np.ndarray | None]:
        """Newton steps until the promised gain is negligible; with a direction of negative
        curvature (scaled) when the Hessian there has one."""
        s = self.scales
        tol = max(GAIN_ABS, GAIN_REL * abs(value))
        for _ in range(NEWTON_STEPS):
            d = self.derivatives(theta, value)
            # in scaled coordinates phi = theta * s
            g = d.gradient / s
            H = d.hessian / np.outer(s, s)
            at_bound = (theta <= self.lower) & (g >= 0)  # held at zero by the gradient
            flipped = self._flip_columns(theta, value, at_bound & (g > 0), tol)
            if flipped is not None:
                theta, value = flipped
                continue
            free = ~at_bound
            if not free.any():
                return theta, value, None
            gf, Hf = g[free], H[np.ix_(free, free)]
            if not (np.all(np.isfinite(gf)) and np.all(np.isfinite(Hf))):
                return theta, value, None
            w, V = np.linalg.eigh(Hf)
            scale = max(float(np.max(np.abs(w))), 1e-300)
            if w[0] < -NEGATIVE and w[0] < -FLAT * scale:
                v = np.zeros(len(theta))
                v[free] = V[:, 0]
                return theta, value, v / s
            step, gain = _newton_step(g, H, free)
            # variances Newton moves towards zero by a good part of their value
            self.heading = (self.lower == 0) & (theta > 0) & (step < -0.01 * theta * s)
            if not (gain > tol and np.max(np.abs(step)) > STEP_TOL):
                return theta, value, self._negative_curvature(H, at_bound)
            moved = None
            for cand in self._bounded_steps(theta * s, g, H, at_bound, step):
                found = self._line_search(theta, value, cand / s)
                if found is not None and (moved is None or found[1] < moved[1]):
                    moved = found
            if moved is None:
                return theta, value, None
            theta, value = moved
        return theta, value, None

    def _bounded_steps(
        self, phi: np.ndarray, g: np.ndarray, H: np.ndarray, held: np.ndarray, step: np.ndarray
    ) -> list[np.ndarray]:
        """The Newton step; where it crosses a bound, the step that stops those parameters on it
        and is Newton's for the others given that (a projected step would leave them where the
        crossing ones' pull put them); and where it heads for a zero variance from close by, that
        variance set to zero, the rest left as they are (the criterion is even in a scalar
        variance's theta, flat to second order at zero: Newton only creeps towards it there, and
        its quadratic model misjudges the others' response)."""
        low = self.lower * self.scales
        out = [step]
        heading = ~held & (low == 0) & (step < 0) & (phi < ZERO_TRY)
        if heading.any():
            out.append(np.where(heading, low - phi, 0.0))
        held = held.copy()
        fixed = np.zeros(len(phi))
        for _ in range(len(phi)):
            cross = ~held & (phi + step < low)
            if not cross.any():
                break
            held |= cross
            fixed[cross] = low[cross] - phi[cross]
            free = ~held
            step = fixed.copy()
            if free.any():
                rhs = g[free] + H[np.ix_(free, held)] @ fixed[held]
                step[free] = _newton_step(rhs, H[np.ix_(free, free)], np.ones(int(free.sum()), bool))[0]
            out.append(step)
        return out

    def _flip_columns(
        self, theta: np.ndarray, value: float, pushed: np.ndarray, tol: float
    ) -> tuple[np.ndarray, float] | None:
        """A zero diagonal whose gradient holds it at zero, with the column below it flipped: the
        same covariance, where the gradient points into the feasible region instead."""
        cand = theta.copy()
        for i in np.flatnonzero(pushed):
            below = self.columns.get(int(i))
            if below is not None and np.any(theta[below] != 0):
                cand[below] = -cand[below]
        if np.array_equal(cand, theta):
            return None
        fc = self.fn(cand)
        return (cand, fc) if fc <= value + tol else None

    def _negative_curvature(self, H: np.ndarray, at_bound: np.ndarray) -> np.ndarray | None:
        """At a point where the free parameters are optimal, a direction of negative curvature
        that moves parameters held at zero too (theta), pointing into the feasible region."""
        w, V = np.linalg.eigh(H)
        if not (w[0] < -NEGATIVE and w[0] < -FLAT * max(float(np.max(np.abs(w))), 1e-300)):
            return None
        v = V[:, 0]
        if at_bound.any() and v[at_bound].sum() < 0:
            v = -v
        return v / self.scales

    def _project(self, theta: np.ndarray) -> np.ndarray:
        return np.maximum(theta, self.lower)

    def _line_search(self, theta: np.ndarray, value: float, step: np.ndarray) -> tuple[np.ndarray, float] | None:
        t = 1.0
        for _ in range(30):
            cand = self._project(theta + t * step)
            fc = self.fn(cand)
            if fc < value:
                return cand, fc
            t *= 0.5
        return None

    def _down_the_ridge(self, theta: np.ndarray, value: float, v: np.ndarray) -> tuple[np.ndarray, float] | None:
        """The lowest point found along +-v (a direction of negative curvature), by doubling steps."""
        s = self.scales
        length = max(1e-3, 0.1 * float(np.linalg.norm(theta * s)))
        best = None
        for sign in (1.0, -1.0):
            t = length
            for _ in range(30):
                cand = self._project(theta + sign * t * v)
                fc = self.fn(cand)
                if best is not None and fc >= best[1]:
                    break
                if fc < value and (best is None or fc < best[1]):
                    best = (cand, fc)
                    t *= 2.0
                elif best is None:
                    t *= 0.5
                    if t < 1e-8 * length:
                        break
                else:
                    break
        return best

    def _zero_tries(self, theta: np.ndarray, value: float) -> tuple[np.ndarray, float] | None:
        """A small variance that Newton was moving towards zero, set to zero and the others
        optimized given that (Newton creeps towards a zero variance, and the others move with it):
        the point, where its criterion is lower."""
        small = np.flatnonzero(self.heading & (theta * self.scales < ZERO_TRY))
        for i in small:
            cand = theta.copy()
            cand[i] = 0.0
            t0, v0, _ = self._newton(cand, self.fn(cand))
            if v0 < value:
                return t0, v0
        return None
