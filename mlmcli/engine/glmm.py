"""Generalized linear mixed models: lme4's glmer criterion on the blocked factor.

lme4 (mkGlmerDevfun, glmerLaplace, pwrssUpdate, glmerAGQ in src/external.cpp) and MixedModels.jl
(GeneralizedLinearMixedModel, pirls!) both fit a GLMM as a sequence of weighted LMMs: penalized
iteratively reweighted least squares (PIRLS) finds the conditional modes u for given parameters,
each iteration reweighting the rows by the GLM's working weights and refactoring the same blocks
the LMM uses (CrossProducts re-formed with those weights, BlockedFactor on them).  The criterion at
the modes is the Laplace approximation to the deviance,

    ldL2 + ||u||^2 + aic(y, mu)          (glmResp::Laplace: aic is -2 log p(y | u))

or, for one scalar random-effects term and nAGQ > 1, adaptive Gauss-Hermite quadrature around the
modes (glmerAGQ, on the deviance-residual scale as lme4 computes it).

Two stages, as glmer: over theta with beta found inside PIRLS (nAGQ = 0), then over (theta, beta)
with PIRLS over u alone, beta entering as an offset.  Each evaluation starts PIRLS from the same
linear predictor (the stage's start), so the criterion is a function of its parameters alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mlmcli.engine.crossprod import CrossProducts
from mlmcli.engine.factor import BlockedFactor
from mlmcli.engine.family import Family

# lme4's tolPwrss: PIRLS stops when the penalized deviance changes by less than this, relatively.
# The criterion is then read with the weights of the last iteration, one step behind the modes:
# that is the function glmer optimizes and differentiates (its standard errors come from the
# Hessian of it), so it is the one reproduced here.
PIRLS_TOL = 1e-7
# That criterion converges quadratically, ldL2 only linearly in the last step: where lme4's test
# passes, the step still moves the linear predictor by ~1e-3, so the criterion depends on where
# PIRLS started (by ~0.02 on grouseticks' null model, 403 observation-level levels).  With `exact`,
# PIRLS goes on until no linear predictor moves by more than MODES_TOL (one iteration more, by
# Newton's quadratic convergence), and the criterion is the Laplace deviance at the exact modes to
# ~1e-10 relative, whatever the start: lme4's with tolPwrss = 1e-12.  lme4's own fits are on the
# default, whose optima (and printed estimates) sit up to 2e-3 standard errors from the exact ones.
MODES_TOL = 1e-8
# iterations allowed past lme4's test to meet MODES_TOL (near separation, with the working weights
# vanishing, PIRLS converges slowly: there lme4's test alone decides)
EXACT_MAXIT = 4
PIRLS_MAXIT = 100
STEP_HALVINGS = 20  # lme4's maxstephalfit
FAILED_VALUE = 1e300


class PirlsError(ArithmeticError):
    """PIRLS did not converge (lme4: 'pwrssUpdate did not converge', step-halvings failing)."""


@dataclass
class GlmResponse:
    """The response of a GLMM as lme4's glmResp holds it: y on the family's scale (proportions for
    binomial), the numbers of trials n, the prior weights and the offset."""

    family: Family
    y: np.ndarray
    n: np.ndarray
    weights: np.ndarray
    offset: np.ndarray

    def __post_init__(self) -> None:
        self._aic_terms = self.family.aic_terms(self.y, self.n, self.weights)
        # a 0/1 binomial response: each deviance residual is -2 w log of the fitted probability of
        # the observed outcome, one logarithm instead of y log(y/mu) + (1-y) log((1-y)/(1-mu))
        binary = self.family.name == "binomial" and bool(np.all((self.y == 0) | (self.y == 1)))
        self._ones = (self.y == 1) if binary else None
        # with unit weights and one trial a row, family$aic is then the sum of those residuals
        # (-2 log dbinom(y, 1, mu)): PIRLS has them already
        self._aic_is_deviance = binary and bool(np.all(self.weights == 1)) and not bool(np.any(self.n > 1))

    def mu(self, eta: np.ndarray) -> np.ndarray:
        return self.family.linkinv(eta)

    def dev_resids(self, mu: np.ndarray) -> np.ndarray:
        if self._ones is not None:
            with np.errstate(divide="ignore"):
                return -2.0 * self.weights * np.log(np.where(self._ones, mu, 1.0 - mu))
        return self.family.dev_resids(self.y, mu, self.weights)

    def aic(self, mu: np.ndarray, dev_resids: np.ndarray | None = None) -> float:
        """family$aic at mu; `dev_resids`: the deviance residuals at that mu, where known."""
        if self._aic_is_deviance and dev_resids is not None:
            return float(np.sum(dev_resids))
        return self.family.aic(self._aic_terms, mu)

    def working(self, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The working weights and the working response without the offset (glmResp::sqrtWrkWt
        squared, glmResp::wrkResp) at the linear predictor eta."""
        fam = self.family
        mu = fam.linkinv(eta)
        d = fam.mu_eta(eta)
        w = self.weights * d * d / fam.variance(mu)
        z = eta - self.offset + (self.y - mu) / d
        return w, z


@dataclass
class Modes:
    """PIRLS's solution at given parameters."""

    u: list[np.ndarray]  # spherical modes per term
    beta: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    system: BlockedFactor  # the factor at the last iteration's weights
    laplace: float
    iterations: int
    pdev: float  # sum of deviance residuals + ||u||^2


@dataclass
class GlmmProblem:
    """The parts of a GLMM the criterion needs: the design's terms and X, and the response."""

    terms: list
    X: np.ndarray
    response: GlmResponse

    def __post_init__(self) -> None:
        self.n, self.p = self.X.shape
        self._empty = np.empty((self.n, 0))
        # per kind of system (with X: beta inside PIRLS; without: beta fixed), the products first
        # formed, the one factor every PIRLS iteration re-weights (MixedModels.jl's reweight!) and
        # the (weights, response) it holds now: the same arrays again need no re-forming
        self._working: dict[bool, tuple[CrossProducts, BlockedFactor, tuple[np.ndarray, np.ndarray]]] = {}
        # every evaluation of a stage starts PIRLS from the same linear predictor: its working
        # weights and response, computed once
        self._start: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ pieces
    def system(self, joint: bool, z: np.ndarray, w: np.ndarray, theta: np.ndarray, own: bool = False) -> BlockedFactor:
        """The factor of the weighted LMM with working response z and row weights w at theta, with
        X's columns (`joint`: beta solved with u) or without (beta fixed): the working factor,
        re-weighted in place (CrossProducts.reweighted, BlockedFactor.reweight), or with `own` a
        factor of its own that later iterations leave alone."""
        working = self._working.get(joint)
        if working is None:
            cp = CrossProducts(self.terms, self.X if joint else self._empty, z, weights=w)
            other = next(iter(self._working.values()), None)
            system = BlockedFactor(cp, like=None if other is None else other[1])
            if own:
                return self._updated(system, theta)
            self._working[joint] = (cp, system, (w, z))
        else:
            base, system, held = working
            if own:  # the same products as the working factor's, in a factor of its own
                system = BlockedFactor(base.reweighted(w, z), like=system)
                return self._updated(system, theta)
            if held[0] is not w or held[1] is not z:
                system.reweight(base.reweighted(w, z))
                self._working[joint] = (base, system, (w, z))
        return self._updated(system, theta)

    @staticmethod
    def _updated(system: BlockedFactor, theta: np.ndarray) -> BlockedFactor:
        if not system.update(theta):
            raise PirlsError("the penalized weighted least squares system is not positive definite")
        return system

    def first_iteration(self, eta0: np.ndarray) -> FirstIteration:
        """The first PIRLS iteration over u alone from eta0, solved once per theta."""
        return FirstIteration(self, eta0)

    def start_working(self, eta0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The working weights and response at a stage's start eta0: the same arrays for every
        evaluation from it, so that the products re-formed with them are formed once (system)."""
        if self._start is None or self._start[0] is not eta0:
            self._start = (eta0, *self.response.working(eta0))
        return self._start[1], self._start[2]

    def start_eta(self) -> np.ndarray:
        """mkGlmerDevfun's start: family$initialize's mustart on the link scale."""
        fam, resp = self.response.family, self.response
        return fam.linkfun(fam.start_mu(resp.y, resp.weights))

    def rx_system(self, modes: Modes, theta: np.ndarray) -> BlockedFactor:
        """The factor with X's columns at the working weights of the modes' linear predictor (vcov
        from RX), a factor of its own."""
        w, z = self.response.working(modes.eta)
        return self.system(True, z, w, theta, own=True)

    def linear_predictor(self, system: BlockedFactor, u: list[np.ndarray], fixed: np.ndarray) -> np.ndarray:
        """offset + X beta + Z Lambda u (fixed = X beta)."""
        return self.response.offset + fixed + self._zb(system.T, u)

    # ------------------------------------------------------------------ PIRLS
    def pirls(
        self,
        theta: np.ndarray,
        eta0: np.ndarray,
        beta: np.ndarray | None = None,
        own: bool = False,
        exact: bool = False,
        first: FirstIteration | None = None,
    ) -> Modes:
        """Conditional modes at theta from the linear predictor eta0: with `beta` given, over u
        alone (beta is an offset, as glmer's second stage); without, over beta and u together
        (nAGQ = 0).  With `own`, the modes keep a factor of their own (the fitted model's); with
        `exact`, PIRLS converges past lme4's test to MODES_TOL; `first`, the first iteration's
        solutions from eta0 by theta (over u alone)."""
        resp = self.response
        fixed = None if beta is None else self.X @ beta
        eta = eta0
        old_pdev = np.inf
        extra = 0  # iterations since lme4's test passed
        prev: tuple[list[np.ndarray], np.ndarray, np.ndarray] | None = None
        system: BlockedFactor | None = None
        for it in range(1, PIRLS_MAXIT + 1):
            w, z = self.start_working(eta0) if it == 1 else resp.working(eta)
            if fixed is None:
                system = self.system(True, z, w, theta)
                beta_it = system.beta()
                fixed_it = self.X @ beta_it
                u = system.spherical_modes()
                eta_new = self.linear_predictor(system, u, fixed_it)
            elif it == 1 and first is not None and first.eta0 is eta0:
                assert beta is not None
                beta_it, fixed_it = beta, fixed
                u, T = first.modes(theta, beta)
                eta_new = resp.offset + fixed + self._zb(T, u)
            else:
                assert beta is not None
                system = self.system(False, z - fixed, w, theta)
                beta_it, fixed_it = beta, fixed
                u = system.spherical_modes()
                eta_new = self.linear_predictor(system, u, fixed_it)
            mu = resp.mu(eta_new)
            dev = resp.dev_resids(mu)
            pdev = float(dev.sum() + sum(float(ui @ ui) for ui in u))
            halvings = 0
            while (not np.isfinite(pdev) or pdev > old_pdev) and prev is not None and halvings < STEP_HALVINGS:
                # lme4's step halving: half way back to the previous solution
                u = [(a + b) / 2.0 for a, b in zip(prev[0], u, strict=True)]
                beta_it = (prev[1] + beta_it) / 2.0
                fixed_it = self.X @ beta_it if fixed is None else fixed
                assert system is not None  # (no halving in the first iteration)
                eta_new = self.linear_predictor(system, u, fixed_it)
                mu = resp.mu(eta_new)
                dev = resp.dev_resids(mu)
                pdev = float(dev.sum() + sum(float(ui @ ui) for ui in u))
                halvings += 1
            if not np.isfinite(pdev):
                raise PirlsError("PIRLS resulted in a non-finite deviance")
            if pdev > old_pdev * (1.0 + 1e-12) and halvings == STEP_HALVINGS:
                raise PirlsError("PIRLS step-halvings failed to reduce the deviance")
            if extra or abs(old_pdev - pdev) < PIRLS_TOL * pdev:
                extra += 1
            step = float(np.max(np.abs(eta_new - eta))) if exact else 0.0
            eta, old_pdev, prev = eta_new, pdev, (u, beta_it, eta_new)
            if extra and (not exact or step <= MODES_TOL or extra > EXACT_MAXIT):
                assert system is not None  # (lme4's test cannot pass in the first iteration)
                if own:  # the same factor, not the working one later evaluations re-weight
                    system = self.system(fixed is None, z if fixed is None else z - fixed, w, theta, own=True)
                laplace = system.ldL2 + sum(float(ui @ ui) for ui in u) + resp.aic(mu, dev)
                return Modes(u, beta_it, eta, mu, system, laplace, it, pdev)
        raise PirlsError(f"PIRLS did not converge in {PIRLS_MAXIT} iterations")

    # ------------------------------------------------------------------ AGQ
    def agq(self, modes: Modes, nagq: int) -> float:
        """glmerAGQ: the deviance by adaptive Gauss-Hermite quadrature around the modes, for one
        scalar term (on lme4's scale: deviance residuals, not the aic)."""
        resp, system = self.response, modes.system
        s = system.structures[0]
        codes = s.codes
        u0 = modes.u[0]
        fixed = modes.eta - resp.offset - self._zb(system.T, modes.u)
        devc0 = u0 * u0 + np.bincount(codes, weights=resp.dev_resids(modes.mu), minlength=s.ell)
        sd = 1.0 / system.Ldiag[0][:, 0, 0]
        z, w = gauss_hermite(nagq)
        mult = np.zeros(s.ell)
        for zk, wk in zip(z, w, strict=True):
            if zk == 0.0:
                mult += wk
                continue
            uk = u0 + zk * sd
            eta = resp.offset + fixed + self._zb(system.T, [uk])
            dev = uk * uk + np.bincount(codes, weights=resp.dev_resids(resp.mu(eta)), minlength=s.ell)
            mult += wk * np.exp(-0.5 * (dev - devc0) + 0.5 * zk * zk)
        return float(devc0.sum() + system.ldL2 - 2.0 * np.log(mult).sum())

    def _zb(self, T: list[np.ndarray], u: list[np.ndarray]) -> np.ndarray:
        """Z Lambda u on the data's rows (not the weighted ones a factor holds); T: each term's
        template of Lambda (BlockedFactor.T)."""
        out = np.zeros(self.n)
        for term, Ti, ui in zip(self.terms, T, u, strict=True):
            b = ui.reshape(-1, Ti.shape[0]) @ Ti.T  # b = Lambda u, per level (conditional_modes)
            out += np.einsum("ik,ik->i", term.X, b[term.codes])
        return out


class FirstIteration:
    """The first PIRLS iteration over u alone (glmer's second stage) from a stage's fixed start
    eta0, as a map of beta.  Its working weights w and response z are eta0's whatever the
    parameters, and the iteration solves the weighted LMM for the response z - X beta, whose modes
    are linear in beta: u(beta) = U_z - U_X beta, with [U_X U_z] solving L_ZZ' U = L_Z[X z] in the
    factor with X's columns at theta.  The differences of the criterion along beta (the points of
    its gradient and Hessian) share theta and so this map: it is solved once per theta and kept for
    the last few, so that a point at a theta seen before refactors for its second iteration alone."""

    KEEP = 8  # thetas kept: one central-difference Hessian's points visit 1 + 2n + n(n-1) of them at most

    def __init__(self, problem: GlmmProblem, eta0: np.ndarray) -> None:
        self.problem, self.eta0 = problem, eta0
        self._maps: dict[bytes, tuple[list[np.ndarray], list[np.ndarray]]] = {}

    def modes(self, theta: np.ndarray, beta: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The first iteration's u at (theta, beta), and Lambda's templates at theta."""
        key = np.asarray(theta, dtype=float).tobytes()
        got = self._maps.pop(key, None)
        if got is None:
            problem = self.problem
            w, z = problem.start_working(self.eta0)
            system = problem.system(True, z, w, theta)
            p = problem.p
            U = system.solve_modes(system.LF_rows(slice(0, p + 1)))  # per term, (q, p + 1)
            got = ([t.copy() for t in system.T], U)
            while len(self._maps) >= self.KEEP:
                self._maps.pop(next(iter(self._maps)))
        self._maps[key] = got  # the most recently used last
        T, U = got
        p = self.problem.p
        return [Ui[:, p] - Ui[:, :p] @ beta for Ui in U], T


@lru_cache(maxsize=8)
def gauss_hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """lme4's GHrule(n): nodes and weights of Gauss-Hermite quadrature against the standard normal
    density (weights summing to 1)."""
    from numpy.polynomial.hermite_e import hermegauss

    z, w = hermegauss(n)
    z = np.where(np.abs(z) < 1e-14, 0.0, z)
    return z, w / w.sum()
