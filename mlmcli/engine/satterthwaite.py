"""Satterthwaite denominator degrees of freedom for fixed effects, as lmerTest 3.1-3 computes them.

The variance parameters are varpar = (theta, sigma).  lmerTest differentiates the deviance
(unprofiled in sigma, profiled in beta) and vcov(beta) with respect to varpar numerically, by
numDeriv's Richardson-extrapolated central differences.  Here everything but the theta-theta
block of the Hessian is exact (derivatives.py), and that block is differenced as numDeriv does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mlmcli.engine.factor import BlockedFactor
    from mlmcli.engine.response import GaussianResponse

EIGEN_TOL = 1e-8  # lmerTest: eigenvalues of the Hessian above this are inverted
HESSIAN_STEP = 0.05
# Richardson levels: three print the same digits as four on the reference suite (two move the
# df by up to 2e-5 relative), at three quarters of the factorizations
HESSIAN_LEVELS = 3
HESSIAN_FLOOR = 1e-4


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


def _steps(x: np.ndarray, d: float, eps: float = 1e-4, floor: float = 0.0) -> np.ndarray:
    """numDeriv's steps: d|x|, plus eps where x is near zero; `floor` bounds them below."""
    zero_tol = np.sqrt(np.finfo(float).eps / 7e-7)
    return np.maximum(np.abs(d * x) + eps * (np.abs(x) < zero_tol), floor)


def _richardson(a: list) -> object:
    """Richardson extrapolation over successively halved steps (numDeriv, v = 2)."""
    a = list(a)
    r = len(a)
    for m in range(1, r):
        a = [(a[k + 1] * 4**m - a[k]) / (4**m - 1) for k in range(r - m)]
    return a[0]


def hessian(func, x: np.ndarray, d: float = 1e-4, r: int = 4) -> np.ndarray:
    """numDeriv::hessian (genD): Richardson-extrapolated second differences; the mixed ones step
    along e_i + e_j and remove the extrapolated diagonal terms."""
    n = len(x)
    f0 = func(x)
    h0 = _steps(x, d, floor=HESSIAN_FLOOR)
    H = np.zeros((n, n))

    def extrapolated(i: int, j: int) -> float:
        h = h0.copy()
        approx = []
        for _ in range(r):
            e = np.zeros(n)
            e[i] = h[i]
            e[j] = h[j]
            central = func(x + e) - 2 * f0 + func(x - e)
            if i == j:
                approx.append(central / h[i] ** 2)
            else:
                approx.append((central - H[i, i] * h[i] ** 2 - H[j, j] * h[j] ** 2) / (2 * h[i] * h[j]))
            h = h / 2
        return float(_richardson(approx))

    for i in range(n):
        H[i, i] = extrapolated(i, i)
    for i in range(n):
        for j in range(i):
            H[i, j] = H[j, i] = extrapolated(i, j)
    return H


def satterthwaite(
    system: BlockedFactor, response: GaussianResponse, theta: np.ndarray, sigma: float, vcov_beta: np.ndarray
) -> Satterthwaite:
    """Set up the Satterthwaite approximation at the optimum (lmerTest's as_lmerModLT).

    The deviance is g(theta) + pwrss(theta) / sigma^2 + c log(sigma^2): its derivatives in sigma,
    and vcov(beta)'s in everything, are exact (derivatives.py); only the theta-theta block of
    the Hessian is differenced, at sigma fixed.
    """
    from mlmcli.engine.derivatives import pwrss_gradient, unscaled_vcov_gradient

    theta = np.asarray(theta, dtype=float)
    # numDeriv's relative step (1e-4) makes the second differences of a deviance in the thousands
    # mostly rounding noise.  A larger step with the same Richardson extrapolation converges to the
    # exact Hessian, which lmerTest's own evaluations approximate to about seven digits (checked on
    # the reference suite for steps from 1e-2 to 2e-1).
    Htt = hessian(lambda th: deviance_at(system, response, th, sigma), theta, d=HESSIAN_STEP, r=HESSIAN_LEVELS)
    system.update(theta)
    n, p = system.n, system.p
    c = n - p if response.reml else n
    pwrss = response.pwrss(system)
    nt = len(theta)
    H = np.empty((nt + 1, nt + 1))
    H[:nt, :nt] = Htt
    H[:nt, nt] = H[nt, :nt] = -2.0 * pwrss_gradient(system) / sigma**3
    H[nt, nt] = 6.0 * pwrss / sigma**4 - 2.0 * c / sigma**2
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
    J = [sigma**2 * dC for dC in unscaled_vcov_gradient(system)]
    J.append(2.0 * sigma * system.unscaled_vcov())
    return Satterthwaite(vcov_varpar=vcov_varpar, jacobian=J, vcov_beta=vcov_beta, messages=messages)
