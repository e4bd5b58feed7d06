"""Likelihood profiles of a GLMM's deviance, for profile confidence intervals (lme4's
profile.merMod on a glmerMod, through devfun2).

For a GLMM lme4 profiles every parameter the same way: the deviance of the fit's second stage
(Laplace, or adaptive quadrature for nAGQ > 1) as a function of (sd, cor, ..., beta) (devfun2:
theta from the sd/cor scale with sigma = 1, lme4's useSc = FALSE), held at a value of one
parameter and minimized over the others within their bounds (sd >= 0, -1 <= cor <= 1, beta free).
The fixed effects are not moved into an offset as for an LMM: they are parameters of the same
deviance.

The deviance here is PIRLS's solution run to convergence: PIRLS from a fixed linear predictor stops
at lme4's relative tolerance one iteration behind the modes, which leaves the criterion up to ~1e-3
above the Laplace deviance, with steps where the number of iterations changes; a second PIRLS from
where the first ended removes both, so that each profile point is the optimizer's, not PIRLS's
tolerance.  The profile's base is the lowest deviance found from the fit's estimates.
"""

from __future__ import annotations

import numpy as np

from mlmcli.engine.factor import BlockedFactor
from mlmcli.engine.glmm import FAILED_VALUE, GlmmProblem, Modes
from mlmcli.engine.glmm_fit import GlmmObjective
from mlmcli.engine.profile import HeldProfile, bounded_bobyqa, sdcor, theta_from_sdcor, varpar_bounds


class ConvergedObjective(GlmmObjective):
    """The GLMM criterion over (theta, beta) with PIRLS run twice: from the fixed start, then from
    the linear predictor the first run ended at."""

    def modes(self, x: np.ndarray, own: bool = False) -> Modes:
        first = super().modes(x)
        theta = np.asarray(x[: self.ntheta], dtype=float)
        beta = None if self.nagq == 0 else np.asarray(x[self.ntheta :], dtype=float)
        return self.problem.pirls(theta, first.eta, beta, own=own)


class GlmmDeviance:
    """devfun2 of a glmer fit: the deviance at (sd, cor, ..., beta)."""

    def __init__(self, problem: GlmmProblem, system: BlockedFactor, eta0: np.ndarray, nagq: int) -> None:
        self.system = system
        self.ntheta = len(system.cp.lower_bounds())
        self.objective = ConvergedObjective(problem, eta0, self.ntheta, nagq)
        self.nvar = self.ntheta  # sd/cor parameters: as many as theta's
        lower, upper = varpar_bounds(system)
        p = problem.p
        # varpar_bounds ends with sigma's: a GLMM has none
        self.lower = np.concatenate([lower[:-1], np.full(p, -np.inf)])
        self.upper = np.concatenate([upper[:-1], np.full(p, np.inf)])

    def sdcor(self, theta: np.ndarray) -> np.ndarray:
        """The sd/cor of theta (sigma = 1)."""
        return sdcor(self.system.cp, theta, 1.0, zero_sd=0.0)[:-1]

    def __call__(self, pars: np.ndarray) -> float:
        v = pars[: self.nvar]
        try:
            theta = theta_from_sdcor(self.system, np.append(v, 1.0))
        except (np.linalg.LinAlgError, FloatingPointError, ValueError):
            return FAILED_VALUE
        return self.objective(np.concatenate([theta, pars[self.nvar :]]))


class GlmmProfiles:
    """The deviance profiles of one glmer fit, parameter by parameter (sd/cor, then beta)."""

    def __init__(
        self,
        problem: GlmmProblem,
        system: BlockedFactor,
        eta0: np.ndarray,
        nagq: int,
        theta: np.ndarray,
        beta: np.ndarray,
    ) -> None:
        self.deviance = GlmmDeviance(problem, system, eta0, nagq)
        self.optimum = np.concatenate([self.deviance.sdcor(theta), np.asarray(beta, dtype=float)])
        at_fit = self.deviance(self.optimum)
        # the lowest point of this deviance near the fit (its optimum differs from the fit's
        # criterion's by PIRLS's tolerance): zeta is measured from it
        _, polished = bounded_bobyqa(self.deviance, self.optimum, self.deviance.lower, self.deviance.upper)
        self.base = min(at_fit, polished)

    @property
    def lower(self) -> np.ndarray:
        return self.deviance.lower

    @property
    def upper(self) -> np.ndarray:
        return self.deviance.upper

    def held(self, which: int) -> HeldProfile:
        """The deviance minimized with parameter `which` held, warm-started point to point."""
        return HeldProfile(self.deviance, self.optimum, self.lower, self.upper, which)
