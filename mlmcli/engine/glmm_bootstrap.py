"""Parametric bootstrap replicates of a glmer fit (lme4's bootMer with use.u = FALSE and simulate()).

Each replicate draws new spherical random effects u* ~ N(0, I), so b* = Lambda u* ~ N(0, Lambda
Lambda'), forms mu* = linkinv(offset + X beta + Z b*), and draws the response as R's families
simulate it: binomial successes ~ Binomial(prior weights, mu*) divided by the prior weights (the
numbers of trials for cbind() and proportions; 0/1 data have weights 1), poisson counts ~
Poisson(mu*) (R ignores prior weights there, with a warning).  The refit is lme4's refit(fit,
newresp): one optimization from the fit's estimates (glmm_fit.refit_glmm), without the polish.  The statistic is what
confint(method = "boot") collects: the sd/cor of each term (sigma is 1) and the fixed effects.

Replicate i draws from its own stream, SeedSequence(seed, spawn_key=(i,)), as engine/bootstrap.py's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlmcli.engine.bootstrap import FAILURES, Replicates
from mlmcli.engine.crossprod import CrossProducts
from mlmcli.engine.glmm import GlmmProblem, GlmResponse, PirlsError
from mlmcli.engine.glmm_fit import refit_glmm
from mlmcli.engine.profile import sdcor
from mlmcli.errors import MlmError


@dataclass
class GlmmBootstrapModel:
    """What every replicate shares: the fit's design and response and its estimates."""

    problem: GlmmProblem
    cp: CrossProducts  # the fit's blocks: its terms' structures, for theta's sd/cor
    nagq: int
    theta: np.ndarray
    beta: np.ndarray
    beta_se: np.ndarray
    seed: int

    def __post_init__(self) -> None:
        resp = self.problem.response
        if resp.family.name == "binomial":
            # R's binomial()$simulate draws rbinom(size = prior weights)
            if np.any(np.abs(resp.weights - np.round(resp.weights)) > 1e-8):
                raise MlmError("cannot simulate from non-integer prior.weights")
            self.size = np.round(resp.weights).astype(np.int64)
        self.fixed = resp.offset + self.problem.X @ self.beta
        self.T = self.cp.templates(self.theta)

    def rng(self, i: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(i,)))

    def simulate(self, i: int) -> np.ndarray:
        """Replicate i's response on the family's scale (binomial: proportions of the trials)."""
        g = self.rng(i)
        eta = self.fixed.copy()
        for term, s, T in zip(self.problem.terms, self.cp.structures, self.T, strict=True):
            b = g.standard_normal((s.ell, s.k)) @ T.T
            eta += np.einsum("ik,ik->i", term.X, b[term.codes])
        fam = self.problem.response.family
        mu = fam.linkinv(eta)
        if fam.name == "poisson":
            return g.poisson(mu).astype(float)
        k = g.binomial(self.size, np.clip(mu, 0.0, 1.0))
        return np.where(self.size > 0, k / np.maximum(self.size, 1), 0.0)

    def refit(self, y: np.ndarray) -> tuple[np.ndarray, bool]:
        """The statistic of the model refitted to response y, and whether the refit is singular."""
        r = self.problem.response
        problem = GlmmProblem(self.problem.terms, self.problem.X, GlmResponse(r.family, y, r.n, r.weights, r.offset))
        # BOBYQA's end without the Newton polish, as lme4's refit ends where its optimizer stops: the
        # polish moves a replicate by ~1e-4 of a standard error (cbpp) and would double its cost
        theta, beta, singular = refit_glmm(problem, self.nagq, self.theta, self.beta, self.beta_se, polish=False)
        return np.concatenate([sdcor(self.cp, theta, 1.0, zero_sd=0.0)[:-1], beta]), singular

    @property
    def nstat(self) -> int:
        return self.cp.ntheta + len(self.beta)


GLMM_FAILURES = (*FAILURES, PirlsError)


def replicate(bm: GlmmBootstrapModel, indices: range | list[int]) -> Replicates:
    """Simulate and refit the replicates `indices`, one after another."""
    values = np.full((len(indices), bm.nstat), np.nan)
    failed = singular = 0
    errors: list[str] = []
    for r, i in enumerate(indices):
        try:
            with np.errstate(all="ignore"):
                values[r], sing = bm.refit(bm.simulate(i))
        except GLMM_FAILURES as e:
            failed += 1
            errors.append(str(e))
            continue
        singular += sing
    return Replicates(values, failed, singular, errors)
