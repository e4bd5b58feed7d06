"""Satterthwaite denominator degrees of freedom for fixed effects, as lmerTest 3.1-3 computes them.

The variance parameters are varpar = (theta, sigma).  lmerTest differentiates the deviance
(unprofiled in sigma, profiled in beta) and vcov(beta) with respect to varpar numerically, by
numDeriv's Richardson-extrapolated central differences.  Here the gradient in theta, the sigma
derivatives and vcov(beta)'s Jacobian are exact (derivatives.py); the theta-theta block of the
Hessian is the central difference of the exact gradient, 2 factorizations per theta.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mlmcli.engine.factor import BlockedFactor
    from mlmcli.engine.newton import GradientDifferences
    from mlmcli.engine.response import GaussianResponse

EIGEN_TOL = 1e-8  # lmerTest: eigenvalues of the Hessian above this are inverted
# The theta-theta block is the central difference of the exact gradient, step
# GRADIENT_STEP * max(|theta_k|, STEP_FLOOR).  On the reference suite its error (largest entry's
# relative to the largest entry) against a four-level Richardson extrapolation of the gradient's
# differences falls as the step squared: 4e-4 at 1e-2, 4e-6 at 1e-3, 5e-8 at 1e-4, 3e-9 at 1e-5,
# where rounding starts to show.  At 1e-4 it is far below the df's printed digits and below the
# error of numDeriv's second differences of the deviance (up to 5e-6 where a theta is on its bound).
GRADIENT_STEP = 1e-4
STEP_FLOOR = 0.1  # theta is relative to sigma: a scale-free floor for a theta at or near zero


@dataclass
class Satterthwaite:
    vcov_varpar: np.ndarray  # 2 H^+ (asymptotic covariance of theta and sigma)
    jacobian: list[np.ndarray]  # d vcov(beta) / d varpar_i
    vcov_beta: np.ndarray
    messages: list[str]

    def df(self, c: np.ndarray) -> float:
        """2 (c'Vc)^2 / (g'Ag) for the contrast c."""
        var_con = float(c @ self.vcov_beta @ c)
        grad = np.array([float(c @ J @ c) for J in self.jacobian])
        denom = float(grad @ self.vcov_varpar @ grad)
        if denom <= 0 or not np.isfinite(denom):
            return float("nan")
        return 2.0 * var_con**2 / denom


def deviance_at(system: BlockedFactor, response: GaussianResponse, theta: np.ndarray, sigma: float) -> float:
    """lmerTest's devfun_vp: the deviance at theta with sigma given, beta profiled (REML-adjusted for
    a REML response; without the prior weights' constant ldW, as lmerTest has it)."""
    if not system.update(theta):
        return float("nan")
    return float(response.deviance(system, sigma**2, with_ldW=False))


def deviance_gradient(system: BlockedFactor, response: GaussianResponse, sigma: float) -> np.ndarray:
    """The gradient in theta of `deviance_at` at the factored theta (derivatives.py): of ldL2, of
    the penalized RSS over sigma^2 and, for REML, of ldRX2."""
    from mlmcli.engine.derivatives import GradientPieces

    d = GradientPieces(system)  # the three share their solves
    g = d.ldL2() + d.pwrss() / sigma**2
    return g + d.ldRX2() if response.reml else g


def theta_hessian(system: BlockedFactor, response: GaussianResponse, theta: np.ndarray, sigma: float) -> np.ndarray:
    """The theta-theta block of lmerTest's Hessian: central differences of the exact gradient,
    two factorizations per theta (the factor is left at the last one)."""
    nt = len(theta)
    H = np.empty((nt, nt))
    steps = theta_steps(theta)
    for k in range(nt):
        h = float(steps[k])
        g = []
        for sign in (1.0, -1.0):
            x = theta.copy()
            x[k] += sign * h
            g.append(deviance_gradient(system, response, sigma) if system.update(x) else np.full(nt, np.nan))
        H[:, k] = (g[0] - g[1]) / (2.0 * h)
    return 0.5 * (H + H.T)


def theta_steps(theta: np.ndarray) -> np.ndarray:
    """theta_hessian's difference steps."""
    return GRADIENT_STEP * np.maximum(np.abs(np.asarray(theta, dtype=float)), STEP_FLOOR)


def _differences_fit(differences: GradientDifferences, theta: np.ndarray) -> bool:
    """Whether the optimizer's differences were taken at theta with theta_hessian's steps."""
    return np.array_equal(differences.theta, theta) and np.array_equal(differences.steps, theta_steps(theta))


def satterthwaite(
    system: BlockedFactor,
    response: GaussianResponse,
    theta: np.ndarray,
    sigma: float,
    vcov_beta: np.ndarray,
    differences: GradientDifferences | None = None,
) -> Satterthwaite:
    """Set up the Satterthwaite approximation at the optimum (lmerTest's as_lmerModLT).

    The deviance is g(theta) + pwrss(theta) / sigma^2 + c log(sigma^2): its derivatives in sigma,
    and vcov(beta)'s in everything, are exact (derivatives.py); the theta-theta block of the
    Hessian differences the exact gradient in theta at sigma fixed.  The factor is left at theta.
    `differences`: the gradient's pieces at theta +- theta_hessian's steps where the optimizer
    computed them (newton.py), recombined rather than computed again.
    """
    from mlmcli.engine.derivatives import GradientPieces

    theta = np.asarray(theta, dtype=float)
    # the exact pieces at theta first: no factorization where the fit left the factor at theta
    if not (system.ok and np.array_equal(system.theta, theta)):
        system.update(theta)
    n, p = system.n, system.p
    c = n - p if response.reml else n
    pwrss = response.pwrss(system)
    nt = len(theta)
    H = np.empty((nt + 1, nt + 1))
    d = GradientPieces(system)  # pwrss's and vcov(beta)'s derivatives share their solves
    H[:nt, nt] = H[nt, :nt] = -2.0 * d.pwrss() / sigma**3
    H[nt, nt] = 6.0 * pwrss / sigma**4 - 2.0 * c / sigma**2
    J = [sigma**2 * dC for dC in d.unscaled_vcov_gradient()]
    J.append(2.0 * sigma * system.unscaled_vcov())
    if differences is not None and _differences_fit(differences, theta):
        H[:nt, :nt] = differences.deviance_hessian(sigma)
    else:
        H[:nt, :nt] = theta_hessian(system, response, theta, sigma)
        system.update(theta)
    messages = []
    if not np.all(np.isfinite(H)):
        vcov_varpar = np.full_like(H, np.nan)
    else:
        evals, evecs = np.linalg.eigh(H)
        evals, evecs = evals[::-1], evecs[:, ::-1]  # R's eigen() order: decreasing
        neg = evals < -EIGEN_TOL
        zero = (evals > -EIGEN_TOL) & (evals < EIGEN_TOL)
        if neg.any():
            word = "eigenvalues" if neg.sum() > 1 else "eigenvalue"
            vals = " ".join(f"{v:1.1e}" for v in evals[neg])
            messages.append(f"Model failed to converge with {int(neg.sum())} negative {word}: {vals}")
        if zero.any():
            word = "eigenvalues" if zero.sum() > 1 else "eigenvalue"
            vals = " ".join(f"{v:1.1e}" for v in evals[zero])
            messages.append(f"Model may not have converged with {int(zero.sum())} {word} close to zero: {vals}")
        pos = evals > EIGEN_TOL
        V = evecs[:, pos]
        vcov_varpar = 2.0 * (V / evals[pos]) @ V.T
    return Satterthwaite(vcov_varpar=vcov_varpar, jacobian=J, vcov_beta=vcov_beta, messages=messages)
