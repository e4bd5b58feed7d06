"""The response: y, its weights, and the criterion the factor's pieces make (lme4's lmerResp).

lme4 splits a model into a predictor module (the factor: `pp`) and a response module (`resp`: y,
weights, offset and the criterion's terms).  Here `BlockedFactor` (factor.py) is the predictor: it
factors L(theta) and offers its pieces (ldL2, ldRX2, pwrss, beta, the modes) and its solves; a
response holds what is the response's and turns those pieces into the criterion that the
optimizer minimizes (fit.Objective).  The factor never reads the response.

`GaussianResponse` is the linear mixed model's: lme4's profiled REML criterion or ML deviance,

    REML: ldL2 - ldW + ldRX2 + (n - p) (1 + log(2 pi pwrss / (n - p)))
    ML:   ldL2 - ldW + n (1 + log(2 pi pwrss / n)),

ldW = sum(log w) for prior weights w, and the deviance with sigma given (profiles, Satterthwaite).
The offset never reaches the engine for it: the design takes it off the response (lme4's
lmerResp holds it only to do the same).

A GLM response (binomial, Poisson: glmer's PIRLS) plugs in here, as MixedModels.jl's GLMM wraps
a linear mixed model and calls `reweight!` on it.  Besides the protocol's `criterion` and `sigma`
it holds y on the data's scale, its prior weights, its offset (the linear predictor
eta = X beta + Z b + offset is the engine's now), the family's variance and link, and adds:

- row weights and a working response that change at every PIRLS iteration,
  w = w_prior mu_eta(eta)^2 / var(mu) and z = eta - offset + (y - mu) / mu_eta(eta): it re-forms
  the products with them, `CrossProducts.reweighted(w, z)` (every structural piece kept: terms,
  levels, nesting, the tail's layout), hands them to the factor, `BlockedFactor.reweight(cp)`
  (the same block types read their new blocks of A), and refactors at the same theta
  (`BlockedFactor.update`) until the penalized deviance settles;
- its own criterion, the Laplace approximation: the sum of the family's deviance residuals
  + ||u||^2 + ldL2 at the PIRLS solution (lme4's glmerLaplace; sigma is 1 for binomial and
  Poisson), so that `criterion(f)` runs PIRLS at f's theta before it reads the pieces.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

import numpy as np

from mlmcli.engine.factor import SMALL_DATA_ROWS

if TYPE_CHECKING:
    from mlmcli.engine.crossprod import CrossProducts
    from mlmcli.engine.factor import BlockedFactor

LOG_2PI = float(np.log(2.0 * np.pi))
# Up to this many rows the penalized RSS is summed from the residuals, as lme4 does, so that
# BOBYQA follows lme4's path to the last digits (as the factor's general blocks do up to the same
# size); above it the factor's value is used and no evaluation reads the rows.
DIRECT_PWRSS_ROWS = SMALL_DATA_ROWS


class Response(Protocol):
    """What the optimizer and the fitted model ask of a response."""

    n: int  # observations
    reml: bool  # the REML criterion (a GLM's: False)

    def criterion(self, f: BlockedFactor) -> float:
        """The objective at f's current theta; inf where f is not factored (not positive definite)."""
        ...

    def sigma(self, f: BlockedFactor) -> float:
        """The residual standard deviation at f's theta."""
        ...


class GaussianResponse:
    """lme4's lmerResp: the response's rows, prior weights and their log term, REML or ML."""

    # up to this many rows the criterion sums the penalized residual (DIRECT_PWRSS_ROWS); a response
    # sets 0 where it need not follow lme4's path to the last digit (the bootstrap's refits)
    direct_rows = DIRECT_PWRSS_ROWS

    def __init__(
        self,
        y: np.ndarray | None,
        weights: np.ndarray | None,
        log_weights: float,
        n: int,
        p: int,
        reml: bool,
        direct_rows: int | None = None,
    ) -> None:
        self.y = y  # the rows the blocks were formed from (sqrt(w) times the response); None off-site
        self.weights = weights  # prior weights (None: all one); sigma^2 / w_i is row i's variance
        self.log_weights = log_weights  # ldW = sum(log w), subtracted from ldL2
        self.n, self.p = n, p
        self.reml = reml  # lme4's lmerResp$REML holds p for REML, 0 for ML
        if direct_rows is not None:
            self.direct_rows = direct_rows

    @classmethod
    def of(cls, cp: CrossProducts, reml: bool, direct_rows: int | None = None) -> GaussianResponse:
        """The response whose rows and prior weights `cp`'s blocks were formed from."""
        return cls(cp.y, cp.weights, cp.log_weights, cp.n, cp.p, reml, direct_rows)

    # ------------------------------------------------------------------ penalized RSS
    def pwrss(self, f: BlockedFactor) -> float:
        """The penalized RSS the criterion uses: summed from the residuals on small data."""
        direct = self.n <= self.direct_rows and self.y is not None and f.cp.rows_available
        return self.pwrss_direct(f) if direct else f.pwrss

    def pwrss_direct(self, f: BlockedFactor) -> float:
        """||y - X beta - Z b||^2 + ||u||^2 (rows weighted), summed from f's solution as lme4 does."""
        u = f.spherical_modes()
        r = self.y - f.cp.X @ f.beta() - f.cp.Zb(f.conditional_modes(u))
        return float(r @ r + sum(float(ui @ ui) for ui in u))

    # ------------------------------------------------------------------ criteria
    def profiled(self, ldL2, pwrss, ldRX2=0.0):
        """lme4's profiled criterion from the factor's pieces (floats, or arrays over many
        factorizations at once: lockstep.py); ldRX2 enters the REML criterion only."""
        ldL2 = ldL2 - self.log_weights
        if self.reml:
            nmp = self.n - self.p
            return ldL2 + ldRX2 + nmp * (1.0 + LOG_2PI + np.log(pwrss / nmp))
        return ldL2 + self.n * (1.0 + LOG_2PI + np.log(pwrss / self.n))

    def criterion(self, f: BlockedFactor) -> float:
        """lme4's profiled REML criterion or ML deviance at f's theta."""
        if not f.ok:
            return float("inf")
        pwrss = self.pwrss(f)
        if pwrss <= 0.0:
            return float("inf")
        return self.profiled(f.ldL2, pwrss, f.ldRX2 if self.reml else 0.0)

    def deviance(self, f: BlockedFactor, sigma2: float, with_ldW: bool = True) -> float:
        """The deviance at f's theta with sigma^2 given and beta profiled out,

            ldL2 - ldW + pwrss / sigma^2 + n log(2 pi sigma^2)   (+ ldRX2 - p log(2 pi sigma^2): REML)

        lme4's devfun2 (profile.merMod, ML) and lmerTest's devfun_vp, which leaves ldW out
        (`with_ldW`): a constant in the parameters, it moves no derivative."""
        ldL2 = f.ldL2 - self.log_weights if with_ldW else f.ldL2
        dev = ldL2 + self.pwrss(f) / sigma2 + self.n * (LOG_2PI + np.log(sigma2))
        if not self.reml:
            return dev
        return dev + f.ldRX2 - self.p * (LOG_2PI + np.log(sigma2))

    def sigma(self, f: BlockedFactor) -> float:
        """sqrt(pwrss / (n - p)) for REML, sqrt(pwrss / n) for ML, pwrss as the factor holds it."""
        return math.sqrt(f.pwrss / (self.n - self.p if self.reml else self.n))
