"""A fitted generalized linear mixed model (lme4's glmerMod): glmer's estimates and what its
summary, ranef, fitted and residuals methods compute from them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mlmcli.engine.family import Family, family
from mlmcli.engine.glmm import GlmmProblem, GlmResponse
from mlmcli.engine.glmm_fit import GlmmFit, fit_glmm
from mlmcli.errors import DataError
from mlmcli.model import Prediction, VarComp

if TYPE_CHECKING:
    from mlmcli.design import Design
    from mlmcli.formula import Formula

MAX_NAGQ = 100  # lme4: 0 <= nAGQ <= 100


@dataclass
class GlmmModel:
    formula: Formula
    design: Design
    family: Family
    problem: GlmmProblem
    fit: GlmmFit
    data_name: str
    warnings: list[str] = field(default_factory=list)
    optimizer: str = "robust"

    # ---------------------------------------------------------------- basics
    @property
    def theta(self) -> np.ndarray:
        return self.fit.theta

    @property
    def beta(self) -> np.ndarray:
        return self.fit.beta

    @property
    def nagq(self) -> int:
        return self.fit.nagq

    @property
    def optimum(self):
        return self.fit.optimum

    @property
    def n(self) -> int:
        return self.design.n_obs

    @property
    def p(self) -> int:
        return self.design.X.shape[1]

    @property
    def reml(self) -> bool:
        """glmer fits by maximum likelihood: compare() has nothing to refit."""
        return False

    @property
    def method(self) -> str:
        """summary's heading: lme4 says "Adaptive Gauss-Hermite Quadrature" for nAGQ 0 too."""
        return "Laplace" if self.nagq == 1 else "AGQ"

    @property
    def deviance(self) -> float:
        """-2 logLik, as summary(glmer) prints it under "deviance"."""
        return float(self.fit.deviance)

    @property
    def criterion(self) -> float:
        return self.deviance

    @property
    def loglik(self) -> float:
        return -self.deviance / 2.0

    @property
    def npar(self) -> int:
        return self.p + len(self.theta)

    @property
    def aic(self) -> float:
        return self.deviance + 2.0 * self.npar

    @property
    def bic(self) -> float:
        return self.deviance + self.npar * math.log(self.n)

    @property
    def df_resid(self) -> int:
        return self.n - self.npar

    @property
    def sigma(self) -> float:
        return 1.0

    @property
    def singular(self) -> bool:
        return self.fit.optimum.singular

    @property
    def converged(self) -> bool:
        opt = self.fit.optimum
        return opt.conv_code == 0 and opt.check_code == 0

    @property
    def vcov(self) -> np.ndarray:
        return self.fit.vcov

    @property
    def std_errors(self) -> np.ndarray:
        return np.sqrt(np.diag(self.fit.vcov))

    def fixed_effect_correlation(self) -> np.ndarray:
        sd = self.std_errors
        return self.vcov / np.outer(sd, sd)

    def coef_table(self) -> list[dict]:
        """summary's fixed effects with Wald z tests."""
        from mlmcli.rcompat.distributions import normal_upper

        out = []
        for name, est, se in zip(self.design.xnames, self.beta, self.std_errors, strict=True):
            z = float(est / se)
            out.append(
                {
                    "term": name,
                    "estimate": float(est),
                    "std_error": float(se),
                    "z_value": z,
                    "p_value": 2.0 * normal_upper(abs(z)),
                }
            )
        return out

    # ---------------------------------------------------------------- random effects
    def varcomps(self) -> list[VarComp]:
        """VarCorr of a GLMM: T_i T_i' (sigma is 1)."""
        out = []
        seen: dict[str, int] = {}
        for term, T in zip(self.design.terms, self.fit.modes.system.T, strict=True):  # at theta
            k = seen.get(term.group, 0)
            seen[term.group] = k + 1
            name = term.group if k == 0 else f"{term.group}.{k}"
            out.append(VarComp(name=name, factor=term.group, terms=list(term.cnames), covariance=T @ T.T))
        return out

    def groups(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.design.terms:
            out.setdefault(t.group, len(t.levels))
        return out

    def conditional_modes(self) -> list[np.ndarray]:
        system = self.fit.modes.system
        return system.conditional_modes(self.fit.modes.u)

    def conditional_sd(self) -> list[np.ndarray]:
        """lme4's condVar for a GLMM: Lambda (L L')^{-1} Lambda' at the modes' weights."""
        blocks = self.fit.modes.system.unscaled_condvar()
        return [np.sqrt(np.maximum(np.diagonal(B, axis1=1, axis2=2), 0.0)) for B in blocks]

    # ---------------------------------------------------------------- fit
    @property
    def linear_predictor(self) -> np.ndarray:
        return self.fit.modes.eta

    def fitted_values(self) -> Prediction:
        """predict(fit) and predict(fit, re.form = NA) on the rows used, on the link scale, offsets
        included (lme4's type = "link")."""
        fixed = self.design.X @ self.beta + self.problem.response.offset
        return Prediction(values=self.linear_predictor.copy(), fixed=fixed)

    @property
    def fitted(self) -> np.ndarray:
        """fitted(fit): mu, on the response scale."""
        return self.fit.modes.mu

    def pearson_residuals(self) -> np.ndarray:
        r = self.problem.response
        mu = self.fitted
        return (r.y - mu) * np.sqrt(r.weights) / np.sqrt(self.family.variance(mu))

    def deviance_residuals(self) -> np.ndarray:
        r = self.problem.response
        d = r.dev_resids(self.fitted)
        return np.sign(r.y - self.fitted) * np.sqrt(np.maximum(d, 0.0))

    def scaled_residual_quantiles(self) -> list[float]:
        """summary.merMod: quantiles of residuals(fit, "pearson", scaled = TRUE) (sigma is 1)."""
        r = np.sort(self.pearson_residuals())
        h = (len(r) - 1) * np.array([0.0, 0.25, 0.5, 0.75, 1.0])
        lo = np.floor(h).astype(int)
        hi = np.minimum(lo + 1, len(r) - 1)
        return [float(v) for v in r[lo] + (h - lo) * (r[hi] - r[lo])]


def fit_glmm_model(
    formula: Formula,
    design: Design,
    family_name: str,
    link: str | None = None,
    nagq: int = 1,
    data_name: str = "",
    optimizer: str = "robust",
) -> GlmmModel:
    """glmer(): checks lme4 makes of nAGQ, then the two-stage fit."""
    fam = family(family_name, link)
    if not 0 <= nagq <= MAX_NAGQ:
        raise DataError(f"nAGQ must be between 0 and {MAX_NAGQ}: {nagq}")
    if nagq > 1 and (len(design.terms) != 1 or design.terms[0].X.shape[1] != 1):
        raise DataError("nAGQ > 1 is only available for models with a single, scalar random-effects term")
    g = design.glm
    if g is None:
        raise DataError("the design was built without a family")
    n = design.n_obs
    offset = np.zeros(n) if design.offset is None else np.asarray(design.offset, dtype=float)
    response = GlmResponse(fam, g.y, g.trials, g.weights, offset)
    problem = GlmmProblem(design.terms, design.X, response)
    result = fit_glmm(problem, nagq, polish=optimizer == "robust")
    warnings = list(design.messages) + list(result.warnings)
    return GlmmModel(formula, design, fam, problem, result, data_name, warnings, optimizer)
