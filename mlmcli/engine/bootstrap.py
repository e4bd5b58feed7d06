"""Parametric bootstrap replicates of a fitted model (lme4's bootMer with use.u = FALSE).

Each replicate simulates a response from the fitted model, y* = X beta + Z Lambda u* + sigma e*
with u* ~ N(0, sigma^2 I) and e* ~ N(0, I) (lme4's simulate()), and refits it.  A refit changes
only the response: the blocks of A that involve Z and X alone are shared with the fit
(CrossProducts.with_response), the optimizer starts at the fitted theta (lme4's refit() does), and
the criterion reads the penalized RSS off the factor instead of summing it over the rows.  With
one random-effects term the refits of a chunk share one batched criterion (lockstep.py).

Replicate i draws from its own stream, SeedSequence(seed, spawn_key=(i,)), so the replicates do
not depend on how they are shared out between processes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlmcli.engine.crossprod import CrossProducts
from mlmcli.engine.factor import BlockedFactor
from mlmcli.engine.fit import Objective, optimize_theta
from mlmcli.engine.profile import sdcor
from mlmcli.engine.response import GaussianResponse
from mlmcli.errors import MlmError


@dataclass
class BootstrapModel:
    """What every replicate shares: the data's blocks and the fitted parameters."""

    cp: CrossProducts
    reml: bool
    theta: np.ndarray
    beta: np.ndarray
    sigma: float
    seed: int

    def __post_init__(self) -> None:
        self.mean = self.cp.X @ self.beta
        self.T = self.cp.templates(self.theta)
        # BOBYQA's first trust region as lme4's refitML scales it to a fitted theta: from the fit a
        # refit needs about a third fewer evaluations than with NLopt's default step
        self.step = min(0.95, 0.2 * float(np.max(np.abs(self.theta)))) if np.any(self.theta) else None

    def rng(self, i: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(i,)))

    def simulate(self, i: int) -> np.ndarray:
        """Replicate i's response: new random effects and new residuals, on the scale of the
        blocks' rows (rows with prior weights w carry sqrt(w) y: residual variance sigma^2 / w)."""
        g = self.rng(i)
        b = [
            self.sigma * g.standard_normal((s.ell, s.k)) @ T.T for s, T in zip(self.cp.structures, self.T, strict=True)
        ]
        return self.mean + self.cp.Zb(b) + self.sigma * g.standard_normal(self.cp.n)

    @property
    def nstat(self) -> int:
        return self.cp.ntheta + 1 + self.cp.p


@dataclass
class Replicates:
    """The statistic of each replicate (rows; NaN rows for failed refits), lme4's confint() order:
    sd/cor per term, sigma, then the fixed effects."""

    values: np.ndarray
    failed: int
    singular: int
    errors: list[str]


def refit_objective(bm: BootstrapModel, y: np.ndarray) -> Objective:
    """A refit's criterion: the blocks for response y, its penalized RSS read off the factor (no
    pass over the rows)."""
    cp = bm.cp.with_response(y)
    return Objective(BlockedFactor(cp), GaussianResponse.of(cp, bm.reml, direct_rows=0))


def refit(bm: BootstrapModel, y: np.ndarray, objective: Objective | None = None) -> tuple[np.ndarray, bool]:
    """The statistic of the model refitted to response y, and whether the refit is singular
    (`objective`: the refit's criterion, when it is evaluated elsewhere: lockstep.py)."""
    f = refit_objective(bm, y) if objective is None else objective
    system = f.system
    opt = optimize_theta(system, f.response, bm.theta, polish=True, checks=False, initial_step=bm.step, objective=f)
    sigma = f.response.sigma(system)
    return np.concatenate([sdcor(bm.cp, opt.theta, sigma), system.beta()]), opt.singular


def one_term(cp: CrossProducts) -> bool:
    """Whether refits can run in lockstep (lockstep.py): one random-effects term, no crossed tail."""
    return len(cp.structures) == 1 and cp.nbd == 1 and not cp.q_tail


FAILURES = (MlmError, np.linalg.LinAlgError, FloatingPointError)


def replicate(bm: BootstrapModel, indices: range | list[int], lockstep: bool = True) -> Replicates:
    """Simulate and refit the replicates `indices`: in lockstep (lockstep.py) for a model with one
    random-effects term, else one after another."""
    ys = [bm.simulate(i) for i in indices]
    if lockstep and len(ys) > 1 and one_term(bm.cp):
        results = _in_lockstep(bm, ys)
    else:
        results = []
        for y in ys:
            try:
                results.append(refit(bm, y))
            except FAILURES as e:
                results.append(e)
    values = np.full((len(ys), bm.nstat), np.nan)
    failed = singular = 0
    errors: list[str] = []
    for r, res in enumerate(results):
        if isinstance(res, BaseException):
            if not isinstance(res, FAILURES):
                raise res
            failed += 1
            errors.append(str(res))
        else:
            values[r], sing = res
            singular += sing
    return Replicates(values, failed, singular, errors)


def _in_lockstep(bm: BootstrapModel, ys: list[np.ndarray]) -> list:
    from mlmcli.engine.lockstep import BatchedCriterion, Lockstep, LockstepObjective

    criterion = BatchedCriterion([bm.cp.with_response(y) for y in ys], bm.reml)
    step = Lockstep(criterion)
    tasks = []
    for j, y in enumerate(ys):
        tasks.append(lambda j=j, y=y: refit(bm, y, LockstepObjective(step, j, criterion.fallback[j])))
    return step.run(tasks)
